-- Console sign-ins. The cookie holds a random secret; only its SHA-256 is kept, so a copy
-- of the store signs nobody in. The API token's name is kept, not the token: a token taken
-- out of LIFEBOAT_API_TOKENS ends its sessions at the next request.
CREATE TABLE console_sessions (
    id         TEXT    PRIMARY KEY,
    token_name TEXT    NOT NULL,
    csrf       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
