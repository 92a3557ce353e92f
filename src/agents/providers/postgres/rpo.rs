//! The recovery point of promoting a PostgreSQL replica: the WAL the replica has not
//! replayed. Measured against the writer while it answers
//! (`pg_wal_lsn_diff(writer's pg_current_wal_lsn(), replica's pg_last_wal_replay_lsn())`);
//! otherwise estimated from what the replica received but has not replayed, and from how
//! long ago it last heard from the writer.

use sqlx::{PgConnection, Row};

use crate::domain::{Basis, RecoveryPoint};

/// Where the writer's WAL ends, if it answers as a writer.
pub async fn writer_lsn(c: &mut PgConnection) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END",
    )
    .fetch_one(c)
    .await
}

/// Measured on the replica against the writer's `lsn`, or estimated without one.
pub async fn measure(
    replica: &mut PgConnection,
    writer_lsn: Option<&str>,
) -> Result<RecoveryPoint, sqlx::Error> {
    match writer_lsn {
        Some(lsn) => {
            let row = sqlx::query(
                "SELECT GREATEST(pg_wal_lsn_diff($1::pg_lsn, pg_last_wal_replay_lsn()), 0)::float8 AS bytes, \
                 EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 AS since_replay",
            )
            .bind(lsn)
            .fetch_one(replica)
            .await?;
            let bytes = row.try_get::<Option<f64>, _>("bytes")?.map(whole);
            // Nothing behind is nothing lost, however long ago the last write was.
            let seconds = match bytes {
                Some(0) => Some(0.0),
                _ => row.try_get::<Option<f64>, _>("since_replay")?,
            };
            Ok(RecoveryPoint {
                seconds,
                bytes,
                basis: Basis::Measured,
                limit: None,
            })
        }
        None => {
            let row = sqlx::query(
                "SELECT GREATEST(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::float8 AS bytes, \
                 EXTRACT(EPOCH FROM now() - (SELECT last_msg_receipt_time FROM pg_stat_wal_receiver))::float8 AS since_heard, \
                 EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 AS since_replay",
            )
            .fetch_one(replica)
            .await?;
            let seconds = match row.try_get::<Option<f64>, _>("since_heard")? {
                Some(s) => Some(s),
                None => row.try_get::<Option<f64>, _>("since_replay")?,
            };
            Ok(RecoveryPoint {
                seconds: seconds.map(|s| s.max(0.0)),
                bytes: row.try_get::<Option<f64>, _>("bytes")?.map(whole),
                basis: Basis::Estimated,
                limit: None,
            })
        }
    }
}

fn whole(bytes: f64) -> u64 {
    bytes.max(0.0).round() as u64
}
