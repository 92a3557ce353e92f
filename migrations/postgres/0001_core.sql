-- Runs, their stages, the audit log, the outbox and the semaphore's leases.
-- Times are milliseconds since the epoch; JSON is TEXT; flags are 0/1.

CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    group_name   TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    workflow     TEXT    NOT NULL,
    dry_run      BIGINT NOT NULL,
    reason       TEXT,
    requested_by TEXT    NOT NULL,
    params       TEXT    NOT NULL,
    plan         TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    -- group/action while the run is unfinished, NULL after: one active run per key.
    active_key   TEXT,
    created_at   BIGINT NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT,
    message      TEXT,
    version      BIGINT NOT NULL
);
CREATE UNIQUE INDEX runs_active_key ON runs (active_key);
CREATE INDEX runs_unfinished ON runs (finished_at) WHERE finished_at IS NULL;

CREATE TABLE stages (
    run_id      TEXT    NOT NULL REFERENCES runs (id),
    position    BIGINT NOT NULL,
    name        TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    attempts    BIGINT NOT NULL,
    started_at  BIGINT,
    finished_at BIGINT,
    message     TEXT,
    retry_at    BIGINT,
    deadline    BIGINT,
    approved_by TEXT,
    PRIMARY KEY (run_id, position)
);

CREATE TABLE audit (
    id      BIGSERIAL PRIMARY KEY,
    run_id  TEXT    NOT NULL,
    at      BIGINT NOT NULL,
    actor   TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    stage   TEXT,
    attempt BIGINT,
    message TEXT
);
CREATE INDEX audit_run ON audit (run_id, id);

-- Messages decided in a state change, published after it commits.
CREATE TABLE outbox (
    id         BIGSERIAL PRIMARY KEY,
    topic      TEXT    NOT NULL,
    msg_key    TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE leases (
    resource    TEXT    PRIMARY KEY,
    request_id  TEXT    NOT NULL UNIQUE,
    run_id      TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    attempt     BIGINT NOT NULL,
    holder      TEXT    NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- How each request's lease ended; also what makes a redelivered request a no-op.
CREATE TABLE lease_outcomes (
    request_id  TEXT    PRIMARY KEY,
    run_id      TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    attempt     BIGINT NOT NULL,
    outcome     TEXT    NOT NULL,
    retryable   BIGINT NOT NULL,
    message     TEXT,
    holder      TEXT,
    released_us BIGINT NOT NULL
);
CREATE INDEX lease_outcomes_run ON lease_outcomes (run_id);
