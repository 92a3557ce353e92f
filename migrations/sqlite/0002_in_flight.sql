-- Stages in flight, for the orchestrator's resync: found without reading every stage ever run.
CREATE INDEX stages_in_flight ON stages (run_id, name) WHERE state IN ('dispatched', 'running');
