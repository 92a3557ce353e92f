//! Waiting on a system that moves at its own pace: a promotion, a DNS change, a rollout.

use std::time::Duration;

use crate::agents::work::{Failure, Work};

/// Polls `probe` until it says done, with waits growing from one second to fifteen, for as
/// long as the attempt has; `what` names the wait in progress and in the failure.
pub async fn wait_until<F, Fut>(work: &Work, what: &str, mut probe: F) -> Result<String, Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, Failure>>,
{
    let mut pause = Duration::from_millis(250);
    let mut said = None;
    loop {
        // A probe that fails retryably (throttling, a blip) is asked again: what it waits
        // for is under way, and only the deadline ends the wait.
        match probe().await {
            Ok(Some(done)) => return Ok(done),
            Err(f) if !f.retryable => return Err(f),
            Err(f) if work.time_left() <= pause => return Err(f),
            Err(_) | Ok(None) => {
                if said.is_none() {
                    work.say(format!("waiting until {what}")).await;
                    said = Some(());
                }
            }
        }
        if work.time_left() <= pause {
            return Err(Failure::retryable(format!(
                "timed out waiting until {what}"
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).clamp(Duration::from_secs(1), Duration::from_secs(15));
    }
}
