//! The engine: one task that owns the unfinished runs. It takes inputs (new runs, lease
//! outcomes, agent progress, timers, approvals) through `intake`, applies a batch of them
//! with the pure `batch` step, and `commit`s every resulting change in one transaction
//! (state, audit, outbox, revocations); only then does the publisher send the outbox,
//! without holding the engine up. Inputs that arrive together are committed together,
//! which is what keeps SQLite fast under a thousand concurrent runs. `resync` picks up
//! runs after a restart, and on a replica those another replica left or moved on.

mod commit;
mod intake;
mod resync;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::batch::Item;
use super::command::{Command, Reply};
use super::publisher::{OverheadLog, Publisher};
use crate::bus::Bus;
use crate::clock::{Clock, Millis};
use crate::domain::{Run, RunId};
use crate::metrics::Metrics;
use crate::semaphore::Semaphore;
use crate::store::Store;

/// Most inputs folded into one transaction.
const BATCH: usize = 512;

/// How long the engine stays idle before trimming the outbox and letting the store do its
/// housekeeping.
const QUIET_AFTER: Duration = Duration::from_millis(250);

/// How often a replica with remote agents looks for runs and outcomes it was not told of.
const RESYNC_EVERY: Duration = Duration::from_secs(3);

pub struct Engine {
    store: Store,
    semaphore: Semaphore,
    metrics: Arc<Metrics>,
    clock: Clock,
    runs: HashMap<RunId, Run>,
    timers: BinaryHeap<Reverse<(Millis, RunId)>>,
    /// Sends what is committed, and knows which outbox rows went out.
    publisher: Publisher,
    /// Agents run elsewhere: their outcomes are read from the store when their progress
    /// says they released, and a periodic resync adopts runs and catches lost messages.
    remote_agents: bool,
    /// Something was written since the store's last housekeeping.
    maintenance_due: bool,
}

/// An input waiting for its batch, with what the engine needs after the commit.
pub struct Pending {
    item: Item,
    reply: Option<Reply>,
    /// Answered already (refused): not applied again if the batch is retried.
    settled: bool,
    /// A resume or skip: its run is loaded even if it has ended (again, if the batch is
    /// retried after a failed write).
    reopens: bool,
}

impl Pending {
    fn new(item: Item, reply: Option<Reply>) -> Pending {
        Pending {
            item,
            reply,
            settled: false,
            reopens: false,
        }
    }
}

impl Engine {
    /// The engine of this process. Time is read from the semaphore's clock, so that leases
    /// and runs are timed alike.
    pub fn new(
        store: Store,
        bus: Arc<dyn Bus>,
        semaphore: Semaphore,
        metrics: Arc<Metrics>,
    ) -> Self {
        let clock = semaphore.clock().clone();
        let publisher = Publisher::start(bus, metrics.clone(), clock.clone());
        Engine {
            store,
            semaphore,
            metrics,
            clock,
            runs: HashMap::new(),
            timers: BinaryHeap::new(),
            publisher,
            remote_agents: false,
            maintenance_due: false,
        }
    }

    pub fn with_remote_agents(mut self) -> Self {
        self.remote_agents = true;
        self
    }

    pub fn record_overhead(&mut self, log: OverheadLog) {
        self.publisher.record_overhead(log);
    }

    /// Runs until every sender is gone.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>, initial: Vec<Pending>) {
        if !initial.is_empty() {
            self.process(initial).await;
        }
        let mut resync =
            tokio::time::interval_at(tokio::time::Instant::now() + RESYNC_EVERY, RESYNC_EVERY);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_timer = self.timers.peek().map(|Reverse((at, _))| *at);
            let sleep = async {
                match next_timer {
                    Some(at) => {
                        let wait = (at - self.clock.now_ms()).max(0) as u64;
                        tokio::time::sleep(Duration::from_millis(wait)).await
                    }
                    None => std::future::pending().await,
                }
            };
            // Published rows leave the outbox with later commits, or after a quiet spell,
            // when the store also does its housekeeping: never on the path between stages.
            let quiet = async {
                if !self.publisher.has_delivered() && !self.maintenance_due {
                    std::future::pending().await
                } else {
                    tokio::time::sleep(QUIET_AFTER).await
                }
            };
            let mut commands = Vec::new();
            tokio::select! {
                _ = resync.tick(), if self.remote_agents => {
                    self.resync_now().await;
                    continue;
                }
                first = rx.recv() => match first {
                    Some(c) => commands.push(c),
                    None => break,
                },
                _ = sleep => {}
                _ = quiet => {
                    self.housekeeping().await;
                    continue;
                }
            }
            drain(&mut rx, &mut commands);
            let items = self.intake(commands).await;
            if !items.is_empty() {
                self.process(items).await;
                self.maintenance_due = true;
            }
        }
    }

    /// Deletes published outbox rows and lets the store tidy up, while nothing moves.
    async fn housekeeping(&mut self) {
        let ids = self.publisher.take_delivered(usize::MAX);
        if let Err(e) = self.store.delete_outbox(&ids).await {
            tracing::warn!(error = %e, "Could not trim the outbox; will retry.");
            self.publisher.give_back(ids);
        }
        if let Err(e) = self.store.maintain().await {
            tracing::warn!(error = %e, "Store housekeeping failed; will retry.");
        }
        self.maintenance_due = false;
    }
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Command>, commands: &mut Vec<Command>) {
    while commands.len() < BATCH {
        match rx.try_recv() {
            Ok(c) => commands.push(c),
            Err(_) => break,
        }
    }
}
