//! Delays between attempts: exponential from `initial_backoff`, with jitter (a random extra
//! of up to the delay itself) so that stages failing together do not retry in lockstep,
//! and never beyond `max_backoff`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::workflow::RetryPolicy;

/// The delay after the `failures`-th failed attempt.
pub fn jittered(policy: &RetryPolicy, failures: u32) -> Duration {
    delay(policy, failures, true)
}

/// The same without jitter, for tests that state the schedule.
#[cfg(test)]
pub fn exact(policy: &RetryPolicy, failures: u32) -> Duration {
    delay(policy, failures, false)
}

fn delay(policy: &RetryPolicy, failures: u32, jitter: bool) -> Duration {
    let mut builder = ExponentialBuilder::new()
        .with_factor(2.0)
        .with_min_delay(policy.initial_backoff)
        .with_max_delay(policy.max_backoff)
        .without_max_times();
    if jitter {
        builder = builder.with_jitter();
    }
    builder
        .build()
        .nth(failures.saturating_sub(1) as usize)
        .unwrap_or(policy.max_backoff)
        .min(policy.max_backoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(10),
        };
        let got: Vec<u64> = (1..=5).map(|n| exact(&p, n).as_secs()).collect();
        assert_eq!(got, vec![2, 4, 8, 10, 10]);
        for _ in 0..200 {
            let j = jittered(&p, 2);
            assert!(
                j >= Duration::from_secs(4) && j < Duration::from_secs(8),
                "{j:?}"
            );
            assert_eq!(
                jittered(&p, 5),
                Duration::from_secs(10),
                "jitter never passes the cap"
            );
        }
    }
}
