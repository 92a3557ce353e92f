-- Evacuations: many groups moved at once, each by a run of its own, in dependency order.
-- Every move of a group is a compare-and-set on its row, so that of several replicas one
-- makes it; a group's run id is chosen in the same move, so that a run is made once.
CREATE TABLE evacuations (
    id           TEXT PRIMARY KEY,
    action       TEXT    NOT NULL,
    dry_run      INTEGER NOT NULL,
    reason       TEXT,
    requested_by TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX evacuations_by_state ON evacuations (state);
CREATE TABLE evacuation_groups (
    evacuation_id TEXT    NOT NULL,
    group_name    TEXT    NOT NULL,
    position      INTEGER NOT NULL,
    state         TEXT    NOT NULL,
    run_id        TEXT,
    note          TEXT,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (evacuation_id, group_name)
);
