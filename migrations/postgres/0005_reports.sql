-- What a provider checked and changed (or, in a dry run, would change), as JSON: recorded
-- with the lease's outcome by the agent and kept with the stage by the orchestrator.
ALTER TABLE lease_outcomes ADD COLUMN report TEXT;
ALTER TABLE stages ADD COLUMN report TEXT;
