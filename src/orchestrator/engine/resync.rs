//! Recovery and resync: after a restart every unfinished run is picked up where it stopped;
//! on a replica with remote agents, runs another replica left (it died) or moved on are
//! adopted or refreshed, and outcomes no message told of are applied.

use std::cmp::Reverse;
use std::time::Duration;

use super::intake::outcome_item;
use super::{Engine, Pending};
use crate::bus::{Envelope, WorkRequest};
use crate::clock::Millis;
use crate::domain::{RunState, request_id};
use crate::orchestrator::batch::Item;
use crate::orchestrator::machine::Input;
use crate::orchestrator::publisher::Outgoing;
use crate::store::Batch;

/// An outbox row this old was committed by a replica that never sent it (it died).
const ORPHANED_OUTBOX: Duration = Duration::from_secs(10);

impl Engine {
    /// Picks up every unfinished run where it stopped: publishes what the outbox still
    /// holds, then resyncs. The result is the engine's first batch.
    pub async fn recover(&mut self) -> anyhow::Result<Vec<Pending>> {
        self.send_outbox(i64::MAX).await?;
        self.resync().await
    }

    /// The periodic resync of a replica with remote agents.
    pub(super) async fn resync_now(&mut self) {
        let orphaned = self.clock.now_ms() - ORPHANED_OUTBOX.as_millis() as i64;
        if let Err(e) = self.send_outbox(orphaned).await {
            tracing::warn!(error = %e, "Could not send orphaned outbox rows; will retry.");
        }
        match self.resync().await {
            Ok(items) if !items.is_empty() => self.process(items).await,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Resync failed; will retry."),
        }
    }

    /// Sends outbox rows written before `before` that are neither sent nor being sent: after
    /// a restart, all of them; on a replica, those a dead replica committed but never sent,
    /// and those a broker outage kept from leaving.
    async fn send_outbox(&mut self, before: Millis) -> anyhow::Result<()> {
        let rows = self.store.pending_outbox(before).await?;
        self.publisher.send(
            rows.into_iter()
                .map(|row| Outgoing {
                    row: Some(row.id),
                    message: row.message,
                    released_us: None,
                })
                .collect(),
        );
        Ok(())
    }

    /// Loads unfinished runs this engine does not hold (after a restart, or a replica's
    /// death), applies outcomes recorded while no one was told, and for an adopted run sends
    /// again the work of attempts that have neither an outcome nor a lease holder.
    async fn resync(&mut self) -> anyhow::Result<Vec<Pending>> {
        tracing::debug!(cached = self.runs.len(), "Resync.");
        // Outcomes of attempts still in flight: what a lost or unread message would have said.
        let pending = self.semaphore.pending_outcomes().await?;
        let mut items = Vec::new();
        let input = |run, input| {
            Pending::new(
                Item {
                    run,
                    input,
                    released_us: None,
                },
                None,
            )
        };
        for (id, version) in self.store.active_versions().await? {
            let adopted = match self.runs.get(&id) {
                None => true,
                // Another replica moved it on: an input applied to the old copy could be
                // ignored as stale without any write failing to say so.
                Some(cached) if cached.version < version => false,
                Some(_) => continue,
            };
            let Some(run) = self.store.load_run(id).await? else {
                continue;
            };
            if run.state.is_final() {
                continue;
            }
            if run.state == RunState::Pending {
                items.push(input(id, Input::Start));
            }
            if adopted {
                let now = self.clock.now_ms();
                let mut resend = Vec::new();
                for (i, stage) in run.stages.iter().enumerate() {
                    let request = request_id(id, &run.plan[i].name, stage.attempts);
                    if stage.state.in_flight() && !pending.iter().any(|o| o.request_id == request) {
                        resend.push(Envelope::work(&WorkRequest::for_stage(&run, i, now))?);
                    }
                }
                // Through the outbox, like any message: one the broker refuses now is
                // offered again later, rather than left to the attempt's timeout.
                if !resend.is_empty() {
                    let batch = Batch {
                        outbox: resend,
                        ..Batch::default()
                    };
                    let rows = self.store.commit(&batch).await?;
                    self.publisher.send(
                        rows.into_iter()
                            .zip(batch.outbox)
                            .map(|(row, message)| Outgoing {
                                row: Some(row),
                                message,
                                released_us: None,
                            })
                            .collect(),
                    );
                }
                items.push(input(id, Input::Tick));
                tracing::info!(run_id = %id, group = %run.group, state = %run.state, "Resuming run.");
            }
            if let Some(at) = run.next_wake() {
                self.timers.push(Reverse((at, id)));
            }
            self.runs.insert(id, run);
        }
        for o in pending {
            if let Some(run) = self.runs.get(&o.run_id) {
                items.extend(outcome_item(run, o));
            }
        }
        Ok(items)
    }
}
