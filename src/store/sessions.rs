//! Console sign-ins (`console_sessions`), by the SHA-256 of the cookie's secret.

use sqlx::Row;

use super::Store;

/// A signed-in console user: the API token they signed in with, by name, and the token
/// every form of theirs must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub token_name: String,
    pub csrf: String,
    pub expires_at: i64,
}

impl Store {
    /// Keeps a new session under `id` (the secret's hash) until `expires_at`, dropping
    /// those already expired.
    pub async fn open_session(&self, id: &str, session: &Session) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id, token_name, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(&session.token_name)
        .bind(&session.csrf)
        .bind(now)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session under `id`, unless it has expired.
    pub async fn session(&self, id: &str) -> anyhow::Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT token_name, csrf, expires_at FROM console_sessions \
             WHERE id = $1 AND expires_at > $2",
        )
        .bind(id)
        .bind(self.clock.now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Session {
                token_name: r.try_get("token_name")?,
                csrf: r.try_get("csrf")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn close_session(&self, id: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM console_sessions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
