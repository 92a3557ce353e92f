//! What a store call's failure means to its caller: a write that lost a race (`Conflict`:
//! reload and apply again), a database that cannot be reached (`Unavailable`: wait, and
//! tell callers to try later), a row that is not there (`NotFound`), or anything else.

/// A store failure, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found its row moved on: another writer got there first.
    #[error("{0}")]
    Conflict(String),
    /// The database did not answer: no connection, a timeout, a connection lost.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Other(anyhow::Error),
}

/// PostgreSQL's codes for a transaction that lost to another: serialization failure and
/// deadlock. SQLite's busy and locked are the same for it.
const LOST_RACE: &[&str] = &["40001", "40P01", "5", "6", "517"];

/// PostgreSQL's codes for a server that is going away or cannot take more work.
const GOING_AWAY: &[&str] = &["57P01", "57P02", "57P03", "53300"];

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) => match db.code() {
                Some(code) if LOST_RACE.contains(&code.as_ref()) => {
                    StoreError::Conflict(e.to_string())
                }
                Some(code) if GOING_AWAY.contains(&code.as_ref()) => {
                    StoreError::Unavailable(e.to_string())
                }
                _ => StoreError::Other(e.into()),
            },
            _ => StoreError::Other(e.into()),
        }
    }
}

impl From<anyhow::Error> for StoreError {
    /// An error from deeper down, sorted by the database error in its chain, if any.
    fn from(e: anyhow::Error) -> Self {
        let e = match e.downcast::<StoreError>() {
            Ok(store) => return store,
            Err(e) => e,
        };
        match e.downcast::<sqlx::Error>() {
            Ok(sqlx) => sqlx.into(),
            Err(e) => StoreError::Other(e),
        }
    }
}

impl StoreError {
    /// Whether trying later may succeed where trying again now would not.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_a_lost_race_and_a_missing_row_are_told_apart() {
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolClosed),
            StoreError::Unavailable(_)
        ));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(StoreError::from(sqlx::Error::Io(io)).is_unavailable());
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::NotFound(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::ColumnNotFound("x".into())),
            StoreError::Other(_)
        ));
        // Through anyhow, as most of the store still answers.
        let wrapped = anyhow::Error::from(sqlx::Error::PoolTimedOut);
        assert!(StoreError::from(wrapped).is_unavailable());
        let conflict = anyhow::Error::from(StoreError::Conflict("run moved on".into()));
        assert!(matches!(
            StoreError::from(conflict),
            StoreError::Conflict(_)
        ));
        assert!(matches!(
            StoreError::from(anyhow::anyhow!("a bad row")),
            StoreError::Other(_)
        ));
    }
}
