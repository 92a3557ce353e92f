-- Alerts as received, each once (a re-sent notification counts as a repeat of its row), with
-- what was decided for it; and the runs alerts proposed (offers), started at once or after
-- a confirmation or a countdown.

CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source       TEXT    NOT NULL,
    -- What makes a notification a re-send of this alert: the fingerprint and start of an
    -- Alertmanager or Grafana alert, a PagerDuty webhook id and event.
    dedupe_key   TEXT    NOT NULL,
    -- The alert across its notifications (fingerprint, incident id): ties a resolve to the
    -- firing it ends.
    fingerprint  TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    labels       TEXT    NOT NULL,
    summary      TEXT,
    link         TEXT,
    -- The PagerDuty incident, for notes.
    incident     TEXT,
    received_at  INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    repeats      INTEGER NOT NULL DEFAULT 0,
    route        TEXT,
    group_name   TEXT,
    action       TEXT,
    -- NULL until decided: a restart decides what a crash left undecided.
    decision     TEXT,
    detail       TEXT,
    offer_id     TEXT,
    run_id       TEXT,
    UNIQUE (source, dedupe_key)
);
CREATE INDEX alerts_undecided ON alerts (id) WHERE decision IS NULL;
CREATE INDEX alerts_by_run ON alerts (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX alerts_by_offer ON alerts (offer_id) WHERE offer_id IS NOT NULL;

CREATE TABLE offers (
    -- Also the id of the run it starts: starting it twice finds the run already there.
    id          TEXT    PRIMARY KEY,
    route       TEXT    NOT NULL,
    group_name  TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    mode        TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    -- `group/action` while open or starting, NULL after: one offer at a time per group and
    -- action, whichever replica opens it.
    open_key    TEXT    UNIQUE,
    opened_at   INTEGER NOT NULL,
    -- When a countdown starts the run.
    deadline    INTEGER,
    decided_by  TEXT,
    decided_at  INTEGER,
    -- The run started, or the active run it joined.
    run_id      TEXT,
    message     TEXT,
    -- The alert that opened it, as shown in chat.
    alert       TEXT    NOT NULL
);
CREATE INDEX offers_open ON offers (state) WHERE open_key IS NOT NULL;
CREATE INDEX offers_by_route ON offers (route, group_name, decided_at);
