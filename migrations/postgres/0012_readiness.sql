-- What each chat platform was last told of a group's readiness, and when each way was last
-- told: a change is posted once (the replica whose update moves the row posts it), and a
-- flapping group is told each way at most once an hour.
CREATE TABLE readiness_told (
    group_name        TEXT    NOT NULL,
    platform          TEXT    NOT NULL,
    ready             INTEGER NOT NULL,
    told_ready_at     BIGINT  NOT NULL,
    told_not_ready_at BIGINT  NOT NULL,
    PRIMARY KEY (group_name, platform)
);
