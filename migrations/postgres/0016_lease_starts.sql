-- When the holder took each ended lease: the start of its attempt. An agent whose work ends
-- at once does not say it started; the orchestrator records the start from here instead.
ALTER TABLE lease_outcomes ADD COLUMN acquired_at BIGINT;
