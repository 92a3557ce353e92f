-- Scheduled drills, one row per group and scheduled time (ms since the epoch). The replica
-- whose insert makes the row starts the drill, so each runs once however many replicas
-- there are; the row then says which run it was, or why none started.
CREATE TABLE drills (
    group_name TEXT NOT NULL,
    slot       BIGINT  NOT NULL,
    run_id     TEXT,
    skipped    TEXT,
    PRIMARY KEY (group_name, slot)
);
