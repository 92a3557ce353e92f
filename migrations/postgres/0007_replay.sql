-- Chat interactions already taken, by the platform's id for them (Discord's interaction
-- id, Slack's trigger_id or action_ts): a replay of one starts and decides nothing. Kept
-- an hour, well past the five minutes a signed request is good for.
CREATE TABLE chat_seen (
    platform TEXT    NOT NULL,
    seen_id  TEXT    NOT NULL,
    seen_at  BIGINT  NOT NULL,
    PRIMARY KEY (platform, seen_id)
);
CREATE INDEX chat_seen_at ON chat_seen (seen_at);
