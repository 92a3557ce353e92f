-- Budgets (`limits:` in targets.yaml): a stage's lease takes one numbered slot of each
-- budget it counts against, in the lease's own transaction, and gives it back with the
-- lease. The key on (budget, slot) is what keeps every replica and agent process within
-- the limit.
CREATE TABLE budget_slots (
    budget     TEXT    NOT NULL,
    slot       INTEGER NOT NULL,
    request_id TEXT    NOT NULL,
    PRIMARY KEY (budget, slot)
);
CREATE INDEX budget_slots_by_request ON budget_slots (request_id);
-- Requests waiting for a budget, and who waits for each: the orchestrator believes an
-- agent's word that a stage is waiting, not a timeout, only when it is written here.
CREATE TABLE budget_waits (
    request_id TEXT   NOT NULL,
    holder     TEXT   NOT NULL,
    budget     TEXT   NOT NULL,
    since      INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL,
    PRIMARY KEY (request_id, holder)
);
-- The evacuation a run was made for: asked for every run card, to keep a group's
-- card out of chat while it goes well.
CREATE INDEX evacuation_groups_by_run ON evacuation_groups (run_id);
