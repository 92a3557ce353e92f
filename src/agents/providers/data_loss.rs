//! The data-loss gate every promote passes: the provider measures the recovery point (the
//! writes the promoted side would not have); over the stage's `max_data_loss`, it is
//! measured again until it is under or `catchup` runs out, and then the stage stops for a
//! person to decide. A dry run reports it and goes on; an attempt whose gate a person
//! approved goes on too, saying what it accepted.

use std::future::Future;
use std::time::Duration;

use super::capability::Promote;
use crate::agents::work::{Failure, Work};
use crate::domain::{Basis, RecoveryPoint};

/// How often the recovery point is measured again while the replica catches up.
const REMEASURE: Duration = Duration::from_secs(1);

/// Measures the recovery point of promoting `name` with `measure` (`None`: the provider
/// cannot tell), records it with the stage's report, and holds the stage when it is over
/// the limit.
pub async fn guard<F, Fut>(
    name: &str,
    p: &Promote,
    work: &Work,
    mut measure: F,
) -> Result<(), Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<RecoveryPoint>, Failure>>,
{
    let limit = p.max_data_loss;
    // Measured twice at least, a second apart, before a person is asked: a write caught
    // between the two sides' readings is no reason to stop a failover.
    let wait = p.catchup.max(REMEASURE).min(work.time_left());
    let until = tokio::time::Instant::now() + wait;
    let mut said_waiting = false;
    loop {
        // A measurement that fails is a loss unknown: with no limit set, it does not stand
        // in the way of a failover; with one, it is no reason to promote.
        let rpo = match measure().await {
            Ok(rpo) => rpo,
            Err(f) => {
                work.say(format!(
                    "cannot measure the recovery point of {name}: {}",
                    f.message
                ))
                .await;
                None
            }
        };
        if rpo.is_none() && limit.is_none() {
            return Ok(());
        }
        let rpo = RecoveryPoint {
            limit: limit.map(|l| l.as_secs_f64()),
            ..rpo.unwrap_or(RecoveryPoint {
                seconds: None,
                bytes: None,
                basis: Basis::Estimated,
                limit: None,
            })
        };
        let over = rpo.over_limit();
        let settled = !over
            || work.request.accept_data_loss
            || work.request.dry_run
            || tokio::time::Instant::now() >= until;
        if !settled {
            if !said_waiting {
                work.say(format!(
                    "promoting {name} now loses {}, over max_data_loss {}: waiting up to {} for it to catch up",
                    rpo.loss(),
                    limit.map(humantime::format_duration).map(|d| d.to_string()).unwrap_or_default(),
                    humantime::format_duration(std::time::Duration::from_secs(wait.as_secs().max(1)))
                ))
                .await;
                said_waiting = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(REMEASURE) => continue,
                _ = work.cancel.cancelled() => return Err(Failure::retryable("stopped while waiting for the replica to catch up")),
            }
        }
        let detail = match limit {
            Some(l) => format!(
                "{} {} max_data_loss {}",
                rpo.loss(),
                if over { ">" } else { "≤" },
                humantime::format_duration(l)
            ),
            None => rpo.loss(),
        };
        let loss = rpo.loss();
        work.recovery_point(rpo);
        work.check("recovery point", !over, detail).await;
        if !over {
            return Ok(());
        }
        if work.request.accept_data_loss {
            work.say(format!(
                "promoting {name} although it loses {loss}: a person approved the data-loss gate"
            ))
            .await;
            return Ok(());
        }
        if work.request.dry_run {
            return Ok(());
        }
        return Err(Failure::held(format!("promoting {name} now loses {loss}")));
    }
}
