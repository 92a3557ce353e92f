//! A batch from inputs to the store: applied by the pure step, written in one
//! transaction, then answered and published.

use std::cmp::Reverse;

use super::{Engine, Pending};
use crate::bus::Envelope;
use crate::domain::RunId;
use crate::orchestrator::backoff;
use crate::orchestrator::batch;
use crate::orchestrator::command::{CommandError, Reply};
use crate::orchestrator::machine::Ctx;
use crate::orchestrator::publisher::Outgoing;
use crate::store::{Batch, RunWrite, StoreError};

/// Published rows deleted along with each state change's commit: small enough that no one
/// commit pays for a backlog, large enough to keep up with what a busy engine publishes.
const OUTBOX_TRIM_WITH_COMMIT: usize = 64;

/// How often a batch is applied again after its write was refused.
const TRIES: usize = 3;

/// How long to wait before trying again a write the store did not answer, times the
/// attempt: a lost race is retried at once, an outage is given a moment.
const UNAVAILABLE_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

impl Engine {
    /// Applies a batch and stores it. A write refused because a run moved on underneath
    /// (another replica advanced it) reloads those runs and applies the same inputs again.
    pub(super) async fn process(&mut self, mut items: Vec<Pending>) {
        for attempt in 1..=TRIES {
            match self.try_process(&mut items).await {
                Ok(()) => return,
                Err((touched, e)) => {
                    for id in &touched {
                        self.runs.remove(id);
                    }
                    items.retain(|i| !i.settled);
                    if attempt == TRIES {
                        tracing::error!(error = %e, "Could not store a state change; the runs involved are reloaded on their next input.");
                        self.runs.retain(|_, r| !r.state.is_final());
                        for item in &mut items {
                            if let Some(reply) = item.reply.take() {
                                let _ = reply.send(Err(CommandError::from(&e)));
                            }
                        }
                    } else if e.is_unavailable() {
                        tracing::warn!(error = %e, attempt, "The store did not answer; applying the state change again shortly.");
                        tokio::time::sleep(UNAVAILABLE_PAUSE * attempt as u32).await;
                    } else {
                        tracing::warn!(error = %e, attempt, "A state change was not stored; reloading and applying again.");
                    }
                }
            }
        }
    }

    async fn try_process(&mut self, items: &mut [Pending]) -> Result<(), (Vec<RunId>, StoreError)> {
        // A resume or skip retried after a failed write loads its run again, and asks
        // again whether another run has taken its group meanwhile.
        for p in items.iter_mut().filter(|p| p.reopens && !p.settled) {
            if let Err(e) = self.load_reopened(p.item.run).await {
                p.settled = true;
                if let Some(reply) = p.reply.take() {
                    let _ = reply.send(Err(e));
                }
            }
        }
        // Every run the batch names is in memory before the pure step; inputs for runs that
        // are finished or unknown are answered now.
        for p in items.iter_mut().filter(|p| !p.settled) {
            if self.cached(p.item.run).await.is_none() {
                p.settled = true;
                if let Some(reply) = p.reply.take() {
                    let _ = reply.send(Err(self.missing(p.item.run).await));
                }
            }
        }
        let live: Vec<usize> = (0..items.len()).filter(|&i| !items[i].settled).collect();
        let ctx = Ctx {
            now: self.clock.now_ms(),
            backoff: &backoff::jittered,
        };
        let mut changes =
            match batch::apply(&mut self.runs, live.iter().map(|&i| &items[i].item), &ctx) {
                Ok(c) => c,
                Err(e) => {
                    let named = live.iter().map(|&i| items[i].item.run).collect();
                    return Err((named, StoreError::Other(e.into())));
                }
            };
        for m in std::mem::take(&mut changes.missing) {
            let p = &mut items[live[m]];
            p.settled = true;
            if let Some(reply) = p.reply.take() {
                let _ = reply.send(Err(self.missing(p.item.run).await));
            }
        }
        for r in std::mem::take(&mut changes.refused) {
            let p = &mut items[live[r.item]];
            p.settled = true;
            if let Some(reply) = p.reply.take() {
                let _ = reply.send(Err(r.why.into()));
            }
        }
        if changes.is_empty() {
            self.answer(take_replies(items));
            // A finished run loaded for a resume that was refused.
            self.runs.retain(|_, r| !r.state.is_final());
            return Ok(());
        }

        let touched: Vec<RunId> = changes.runs.iter().map(|c| c.run).collect();
        let (outbox, released): (Vec<Envelope>, Vec<Option<i64>>) = changes
            .outbox
            .into_iter()
            .map(|o| (o.envelope, o.released_us))
            .unzip();
        let delivered = self.publisher.take_delivered(OUTBOX_TRIM_WITH_COMMIT);
        let result = {
            let batch = Batch {
                runs: changes
                    .runs
                    .iter()
                    .filter_map(|c| {
                        self.runs.get(&c.run).map(|run| RunWrite {
                            run,
                            expected_version: c.from_version,
                            stages: &c.stages,
                        })
                    })
                    .collect(),
                audit: changes.audit,
                outbox,
                revocations: changes.revocations,
                delivered: &delivered,
            };
            self.store
                .commit(&batch)
                .await
                .map(|ids| (ids, batch.outbox, batch.audit))
        };
        let (ids, outbox, audit) = match result {
            Ok(written) => written,
            Err(e) => {
                self.publisher.give_back(delivered);
                // What was published before stays in the outbox and is sent again later.
                return Err((touched, e));
            }
        };
        // Committed: now the messages may leave, in order, without the engine waiting on
        // the broker.
        self.publisher.send(
            ids.into_iter()
                .zip(outbox)
                .zip(released)
                .map(|((row, message), released_us)| Outgoing {
                    row: Some(row),
                    message,
                    released_us,
                })
                .collect(),
        );
        self.metrics.observe(&audit, &self.runs);
        for id in &touched {
            if let Some(run) = self.runs.get(id) {
                if let Some(at) = run.next_wake() {
                    self.timers.push(Reverse((at, *id)));
                }
                if run.state.is_final() {
                    tracing::info!(run_id = %id, state = %run.state, "Run finished.");
                }
            }
        }
        self.answer(take_replies(items));
        self.runs.retain(|_, r| !r.state.is_final());
        Ok(())
    }

    /// Replies with each run as it stands after the batch.
    fn answer(&self, replies: Vec<Waiting>) {
        for Waiting { run, reply } in replies {
            let _ = reply.send(
                self.runs
                    .get(&run)
                    .cloned()
                    .ok_or(CommandError::NotFound(run)),
            );
        }
    }
}

/// Someone waiting to hear how a run stands after the batch.
struct Waiting {
    run: RunId,
    reply: Reply,
}

/// Replies wait for the commit; on a retry they are still with their items.
fn take_replies(items: &mut [Pending]) -> Vec<Waiting> {
    items
        .iter_mut()
        .filter_map(|i| {
            i.reply.take().map(|reply| Waiting {
                run: i.item.run,
                reply,
            })
        })
        .collect()
}
