-- Chat: each run's live card on each platform, the messages posted once, where runs were
-- asked for, and who was refused what.

CREATE TABLE chat_cards (
    platform   TEXT    NOT NULL,
    run_id     TEXT    NOT NULL,
    -- Where the card lives: Slack's incident channel, Discord's incident thread.
    channel    TEXT,
    -- The card message: Slack's ts, Discord's message id. NULL until it is posted.
    message    TEXT,
    -- Who is posting it, since when: a replica that died before the message was known
    -- leaves a claim that another may take over once it is stale.
    claimed_by TEXT    NOT NULL,
    claimed_at INTEGER NOT NULL,
    -- What the card shows, so that an edit that would change nothing is not sent.
    shown      TEXT,
    -- 1 once the card shows the run's final state.
    settled    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (platform, run_id)
);
CREATE INDEX chat_cards_unsettled ON chat_cards (platform) WHERE settled = 0;

-- Thread replies and summaries, each posted once: keyed by the event they tell of.
CREATE TABLE chat_posts (
    platform  TEXT    NOT NULL,
    post_key  TEXT    NOT NULL,
    run_id    TEXT    NOT NULL,
    posted_at INTEGER NOT NULL,
    PRIMARY KEY (platform, post_key)
);

-- Where a run was asked for from chat: that channel gets a link to the incident.
CREATE TABLE chat_origins (
    run_id   TEXT NOT NULL,
    platform TEXT NOT NULL,
    channel  TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    PRIMARY KEY (run_id, platform)
);

-- Requests refused for want of permission.
CREATE TABLE refusals (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    group_name TEXT,
    run_id     TEXT,
    request    TEXT    NOT NULL,
    reason     TEXT    NOT NULL
);
