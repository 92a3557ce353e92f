-- Runs, their stages, the audit log, the outbox and the semaphore's leases.
-- Times are milliseconds since the epoch; JSON is TEXT; flags are 0/1.

CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    group_name   TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    workflow     TEXT    NOT NULL,
    dry_run      INTEGER NOT NULL,
    reason       TEXT,
    requested_by TEXT    NOT NULL,
    params       TEXT    NOT NULL,
    plan         TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    -- group/action while the run is unfinished, NULL after: one active run per key.
    active_key   TEXT,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    message      TEXT,
    version      INTEGER NOT NULL
);
CREATE UNIQUE INDEX runs_active_key ON runs (active_key);
CREATE INDEX runs_unfinished ON runs (finished_at) WHERE finished_at IS NULL;

CREATE TABLE stages (
    run_id      TEXT    NOT NULL REFERENCES runs (id),
    position    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    attempts    INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    message     TEXT,
    retry_at    INTEGER,
    deadline    INTEGER,
    approved_by TEXT,
    PRIMARY KEY (run_id, position)
);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    stage   TEXT,
    attempt INTEGER,
    message TEXT
);
CREATE INDEX audit_run ON audit (run_id, id);

-- Messages decided in a state change, published after it commits.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    topic      TEXT    NOT NULL,
    msg_key    TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE leases (
    resource    TEXT    PRIMARY KEY,
    request_id  TEXT    NOT NULL UNIQUE,
    run_id      TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    holder      TEXT    NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- How each request's lease ended; also what makes a redelivered request a no-op.
CREATE TABLE lease_outcomes (
    request_id  TEXT    PRIMARY KEY,
    run_id      TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    retryable   INTEGER NOT NULL,
    message     TEXT,
    holder      TEXT,
    released_us INTEGER NOT NULL
);
CREATE INDEX lease_outcomes_run ON lease_outcomes (run_id);
