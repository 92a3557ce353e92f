-- What each run used, by hash (its workflow file, the templates its stages use, the
-- targets they name), and when this deployment first saw each hash of a group's workflow:
-- a group is verified while what it would run is what last recovered it.
CREATE TABLE run_versions (
    run_id    TEXT PRIMARY KEY,
    workflow  TEXT,
    templates TEXT NOT NULL,
    targets   TEXT NOT NULL
);
CREATE TABLE versions_seen (
    workflow   TEXT    NOT NULL,
    part       TEXT    NOT NULL,
    hash       TEXT    NOT NULL,
    first_seen BIGINT NOT NULL,
    PRIMARY KEY (workflow, part, hash)
);
