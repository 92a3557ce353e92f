-- Operator controls: every approval given at a gate (JSON, for four eyes), who skipped a
-- stage, and where a resumed stage's retry budget starts; the params a run was asked with
-- (JSON), so that a resume can tell whether its workflow now plans differently; agents'
-- heartbeats.
ALTER TABLE runs ADD COLUMN overrides TEXT;
ALTER TABLE stages ADD COLUMN approvals TEXT;
ALTER TABLE stages ADD COLUMN skipped_by TEXT;
ALTER TABLE stages ADD COLUMN budget_from INTEGER NOT NULL DEFAULT 0;

CREATE TABLE agents (
    instance  TEXT    PRIMARY KEY,
    kinds     TEXT    NOT NULL,
    host      TEXT    NOT NULL,
    version   TEXT    NOT NULL,
    in_flight INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
);
