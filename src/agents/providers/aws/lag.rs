//! Replica lag as the service reports it: the newest CloudWatch datapoint of an RDS metric
//! (`ReplicaLag` in seconds for an instance, `AuroraReplicaLag` in milliseconds for a
//! cluster) over the last five minutes.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};

use super::failure;
use crate::agents::work::{Failure, Work};
use crate::domain::{Basis, RecoveryPoint};

pub struct Metric<'a> {
    pub name: &'a str,
    pub dimension: &'a str,
    pub id: &'a str,
    /// What one unit of the metric is worth in seconds.
    pub unit_seconds: f64,
}

/// The newest lag in seconds; `None` when the metric has no datapoint in the window, or
/// says replication is not running.
pub async fn read(config: &SdkConfig, m: &Metric<'_>) -> Result<Option<f64>, Failure> {
    let client = aws_sdk_cloudwatch::Client::new(config);
    let now = SystemTime::now();
    let start = now - Duration::from_secs(300);
    // A window that ends in the future keeps the newest datapoint's period whole.
    let end = now + Duration::from_secs(60);
    let out = client
        .get_metric_statistics()
        .namespace("AWS/RDS")
        .metric_name(m.name)
        .dimensions(Dimension::builder().name(m.dimension).value(m.id).build())
        .start_time(DateTime::from(start))
        .end_time(DateTime::from(end))
        .period(60)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .map_err(|e| failure(&format!("CloudWatch {} of {}", m.name, m.id), e))?;
    let newest = out
        .datapoints()
        .iter()
        .filter_map(|d| Some((d.timestamp()?.secs(), d.maximum()?)))
        .max_by_key(|(at, _)| *at);
    // RDS reports -1 when replication is not running: no lag is known then.
    Ok(newest.and_then(|(_, v)| (v >= 0.0).then_some(v * m.unit_seconds)))
}

/// Checks the lag against `max_lag`, recording the check; a replica too far behind, or
/// one whose lag is unknown, is refused (retryably: lag changes) before anything changes.
pub async fn check(
    config: &SdkConfig,
    m: &Metric<'_>,
    max_lag: Option<Duration>,
    work: &Work,
) -> Result<(), Failure> {
    let Some(max) = max_lag else {
        return Ok(());
    };
    let limit = humantime::format_duration(max);
    let lag = read(config, m).await?;
    if let Some(seconds) = lag {
        work.replica_lag(seconds);
    }
    match lag {
        Some(lag) if lag <= max.as_secs_f64() => {
            work.check(
                "replica lag",
                true,
                format!("{lag:.1}s ≤ {limit} ({})", m.name),
            )
            .await;
            Ok(())
        }
        Some(lag) => {
            let detail = format!("{lag:.1}s > {limit} ({})", m.name);
            work.check("replica lag", false, detail.clone()).await;
            Err(Failure::retryable(format!(
                "{}: replica lag {detail}: not promoted",
                m.id
            )))
        }
        None => {
            let detail = format!("unknown: no {} datapoint in the last 5 minutes", m.name);
            work.check("replica lag", false, detail.clone()).await;
            Err(Failure::retryable(format!(
                "{}: replica lag {detail}: not promoted",
                m.id
            )))
        }
    }
}

/// The recovery point from the first of `metrics` that has a datapoint: the time behind
/// that the service reports (it says nothing of bytes).
pub async fn recovery_point(
    config: &SdkConfig,
    metrics: &[Metric<'_>],
) -> Result<Option<RecoveryPoint>, Failure> {
    for m in metrics {
        if let Some(seconds) = read(config, m).await? {
            return Ok(Some(RecoveryPoint {
                seconds: Some(seconds),
                bytes: None,
                basis: Basis::Measured,
                limit: None,
            }));
        }
    }
    Ok(None)
}
