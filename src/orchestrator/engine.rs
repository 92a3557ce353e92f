//! The engine: one task that owns the unfinished runs. It takes inputs (new runs, lease
//! outcomes, agent progress, timers, approvals), applies them with the pure state machine,
//! stores every resulting change in one transaction (state, audit, outbox, revocations),
//! and only then hands the outbox to the publisher, which sends it without holding the
//! engine up. Inputs that arrive together are committed together,
//! which is what keeps SQLite fast under a thousand concurrent runs.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::backoff;
use super::machine::{self, Audit, Ctx, Effect, Input, Outcome, Refusal};
use super::publisher::{Outgoing, Publisher};
use super::state::{Run, RunState};
use crate::bus::{self, Bus, Progress, ProgressKind, RunEvent, WorkRequest};
use crate::clock::{self, Millis};
use crate::ids::{self, RunId};
use crate::metrics::Metrics;
use crate::semaphore::{LeaseOutcome, OutcomeKind, Semaphore};
use crate::store::{Batch, OutboxMessage, Revocation, RunWrite, Store};

/// Most inputs folded into one transaction.
const BATCH: usize = 512;

/// The longest a commit holding only `accepted` progress waits for company.
const PROGRESS_COALESCE: Duration = Duration::from_millis(2);

/// How long the engine stays idle before trimming the outbox and letting the store do its
/// housekeeping.
const QUIET_AFTER: Duration = Duration::from_millis(250);

/// Published rows deleted along with each state change's commit: small enough that no one
/// commit pays for a backlog, large enough to keep up with what a busy engine publishes.
const OUTBOX_TRIM_WITH_COMMIT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("run {0} not found")]
    NotFound(RunId),
    #[error("stage `{0}` not found")]
    UnknownStage(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("the orchestrator could not store the change: {0}")]
    Store(String),
    #[error("the orchestrator is shutting down")]
    Closed,
}

type Reply = oneshot::Sender<Result<Run, CommandError>>;

pub enum Command {
    /// A run just inserted by `Orchestrator::create`.
    Start(Box<Run>),
    Apply {
        run: RunId,
        input: Input,
        reply: Option<Reply>,
    },
    /// Approve by stage name, resolved against the run's plan inside the engine.
    Approve {
        run: RunId,
        stage: Option<String>,
        actor: String,
        reply: Reply,
    },
    Outcome(LeaseOutcome),
    Progress(Progress),
}

/// Where the release-to-dispatch overhead is recorded, for `lifeboat bench`.
pub type OverheadLog = Arc<std::sync::Mutex<Vec<u32>>>;

pub struct Engine {
    store: Store,
    semaphore: Semaphore,
    metrics: Arc<Metrics>,
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

/// How often a replica with remote agents looks for runs and outcomes it was not told of.
const RESYNC_EVERY: Duration = Duration::from_secs(3);

/// An outbox row this old was committed by a replica that never sent it (it died).
const ORPHANED_OUTBOX: Duration = Duration::from_secs(10);

/// One input in a batch, with what the engine needs after the commit.
pub struct Item {
    run: RunId,
    input: Input,
    reply: Option<Reply>,
    /// When the lease behind this input was released, for the overhead measurement.
    released_us: Option<i64>,
    /// Answered already (refused): not applied again if the batch is retried.
    settled: bool,
}

impl Engine {
    pub fn new(
        store: Store,
        bus: Arc<dyn Bus>,
        semaphore: Semaphore,
        metrics: Arc<Metrics>,
    ) -> Self {
        let publisher = Publisher::start(bus.clone(), metrics.clone());
        Engine {
            store,
            semaphore,
            metrics,
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

    /// Picks up every unfinished run where it stopped: publishes what the outbox still
    /// holds, then resyncs.
    pub async fn recover(&mut self) -> anyhow::Result<Vec<Item>> {
        self.send_outbox(i64::MAX).await?;
        self.resync().await
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
    async fn resync(&mut self) -> anyhow::Result<Vec<Item>> {
        tracing::debug!(cached = self.runs.len(), "Resync.");
        // Outcomes of attempts still in flight: what a lost or unread message would have said.
        let pending = self.semaphore.pending_outcomes().await?;
        let mut items = Vec::new();
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
                items.push(Item {
                    run: id,
                    input: Input::Start,
                    reply: None,
                    released_us: None,
                    settled: false,
                });
            }
            if adopted {
                let mut resend = Vec::new();
                for (i, stage) in run.stages.iter().enumerate() {
                    let request = ids::request_id(id, &run.plan[i].name, stage.attempts);
                    if stage.state.in_flight() && !pending.iter().any(|o| o.request_id == request) {
                        resend.push(work_message(&work_request(&run, i))?);
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
                items.push(Item {
                    run: id,
                    input: Input::Tick,
                    reply: None,
                    released_us: None,
                    settled: false,
                });
                tracing::info!(run_id = %id, group = %run.group, state = %run.state, "Resuming run.");
            }
            if let Some(at) = run.next_wake() {
                self.timers.push(Reverse((at, id)));
            }
            self.runs.insert(id, run);
        }
        for o in pending {
            if let Some(run) = self.runs.get(&o.run_id) {
                items.extend(Self::outcome_item(run, o));
            }
        }
        Ok(items)
    }

    fn outcome_item(run: &Run, o: LeaseOutcome) -> Option<Item> {
        let stage = run.stage_index(&o.stage)?;
        let outcome = match o.kind {
            OutcomeKind::Succeeded => Outcome::Succeeded { message: o.message },
            OutcomeKind::Failed => Outcome::Failed {
                retryable: o.retryable,
                message: o.message.unwrap_or_else(|| "failed".into()),
            },
            OutcomeKind::Expired => Outcome::Expired,
            OutcomeKind::Revoked => Outcome::Revoked,
        };
        let actor = match (&o.kind, &o.holder) {
            (OutcomeKind::Succeeded | OutcomeKind::Failed, Some(h)) => format!("agent:{h}"),
            _ => machine::SYSTEM.to_string(),
        };
        Some(Item {
            run: o.run_id,
            input: Input::Outcome {
                stage,
                attempt: o.attempt,
                outcome,
                actor,
            },
            reply: None,
            released_us: Some(o.released_us),
            settled: false,
        })
    }

    /// Runs until every sender is gone.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>, initial: Vec<Item>) {
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
                        let wait = (at - clock::now_ms()).max(0) as u64;
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
                    if let Err(e) = self.send_outbox(clock::now_ms() - ORPHANED_OUTBOX.as_millis() as i64).await {
                        tracing::warn!(error = %e, "Could not send orphaned outbox rows; will retry.");
                    }
                    match self.resync().await {
                        Ok(items) if !items.is_empty() => self.process(items).await,
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "Resync failed; will retry."),
                    }
                    continue;
                }
                first = rx.recv() => match first {
                    Some(c) => commands.push(c),
                    None => break,
                },
                _ = sleep => {}
                _ = quiet => {
                    let ids = self.publisher.take_delivered(usize::MAX);
                    if let Err(e) = self.store.delete_outbox(&ids).await {
                        tracing::warn!(error = %e, "Could not trim the outbox; will retry.");
                        self.publisher.give_back(ids);
                    }
                    if let Err(e) = self.store.maintain().await {
                        tracing::warn!(error = %e, "Store housekeeping failed; will retry.");
                    }
                    self.maintenance_due = false;
                    continue;
                }
            }
            drain(&mut rx, &mut commands);
            // `accepted` only marks a stage running. A short wait lets the outcome that often
            // follows at once share its commit, instead of queueing behind it.
            if commands.iter().all(|c| matches!(c, Command::Progress(_)))
                && let Ok(Some(c)) = tokio::time::timeout(PROGRESS_COALESCE, rx.recv()).await
            {
                commands.push(c);
                drain(&mut rx, &mut commands);
            }
            let mut items = self.due_ticks();
            let mut released = self.released_outcomes(&commands).await;
            for c in commands {
                if let Some(item) = self.item_for(c, &mut released).await {
                    items.push(item);
                }
            }
            if !items.is_empty() {
                self.process(items).await;
                self.maintenance_due = true;
            }
        }
    }

    fn due_ticks(&mut self) -> Vec<Item> {
        let now = clock::now_ms();
        let mut due = Vec::new();
        while let Some(Reverse((at, run))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !due.contains(&run) {
                due.push(run);
            }
        }
        due.into_iter()
            .map(|run| Item {
                run,
                input: Input::Tick,
                reply: None,
                released_us: None,
                settled: false,
            })
            .collect()
    }

    /// With remote agents, a release comes as a progress message and its outcome is in
    /// the store: looked up here for the whole batch at once.
    async fn released_outcomes(&self, commands: &[Command]) -> HashMap<String, LeaseOutcome> {
        if !self.remote_agents {
            return HashMap::new();
        }
        let ids: Vec<&str> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Progress(p)
                    if matches!(p.kind, ProgressKind::Succeeded | ProgressKind::Failed) =>
                {
                    Some(p.request_id.as_str())
                }
                _ => None,
            })
            .collect();
        if ids.is_empty() {
            return HashMap::new();
        }
        match self.semaphore.outcomes(&ids).await {
            Ok(found) => found
                .into_iter()
                .map(|o| (o.request_id.clone(), o))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, count = ids.len(), "Could not read released outcomes; the resync will.");
                HashMap::new()
            }
        }
    }

    async fn item_for(
        &mut self,
        command: Command,
        released: &mut HashMap<String, LeaseOutcome>,
    ) -> Option<Item> {
        match command {
            Command::Start(run) => {
                let id = run.id;
                // A resync may have picked the new run up already, and moved it on.
                self.runs.entry(id).or_insert(*run);
                Some(Item {
                    run: id,
                    input: Input::Start,
                    reply: None,
                    released_us: None,
                    settled: false,
                })
            }
            Command::Apply { run, input, reply } => Some(Item {
                run,
                input,
                reply,
                released_us: None,
                settled: false,
            }),
            Command::Approve {
                run,
                stage,
                actor,
                reply,
            } => {
                let loaded = match self.cached(run).await {
                    Some(r) => r,
                    None => {
                        let _ = reply.send(Err(self.missing(run).await));
                        return None;
                    }
                };
                let stage = match stage {
                    None => None,
                    Some(name) => match loaded.stage_index(&name) {
                        Some(i) => Some(i),
                        None => {
                            let _ = reply.send(Err(CommandError::UnknownStage(name)));
                            return None;
                        }
                    },
                };
                Some(Item {
                    run,
                    input: Input::Approve { actor, stage },
                    reply: Some(reply),
                    released_us: None,
                    settled: false,
                })
            }
            Command::Outcome(o) => {
                let run = self.current(o.run_id, &o.stage, o.attempt).await?;
                Self::outcome_item(run, o)
            }
            Command::Progress(p) => match p.kind {
                ProgressKind::Accepted => {
                    let run = self.current(p.run_id, &p.stage, p.attempt).await?;
                    let stage = run.stage_index(&p.stage)?;
                    Some(Item {
                        run: p.run_id,
                        input: Input::Accepted {
                            stage,
                            attempt: p.attempt,
                            agent: format!("agent:{}", p.agent_instance),
                        },
                        reply: None,
                        released_us: None,
                        settled: false,
                    })
                }
                // The agent released its lease; the store has the outcome.
                ProgressKind::Succeeded | ProgressKind::Failed if self.remote_agents => {
                    let outcome = released.remove(&p.request_id)?;
                    let run = self
                        .current(outcome.run_id, &outcome.stage, outcome.attempt)
                        .await?;
                    Self::outcome_item(run, outcome)
                }
                _ => None,
            },
        }
    }

    /// The run as `cached` has it, unless news of a later attempt of `stage` than the copy
    /// knows shows that another replica moved the run on: then it is read again. Applied
    /// to the old copy, the news would be dropped as stale.
    async fn current(&mut self, id: RunId, stage: &str, attempt: u32) -> Option<&Run> {
        let behind = self.cached(id).await.is_some_and(|run| {
            run.stage_index(stage)
                .is_some_and(|i| run.stages[i].attempts < attempt)
        });
        if behind {
            self.runs.remove(&id);
        }
        self.cached(id).await
    }

    /// The unfinished run, from memory or (after a failed write or on another replica's
    /// run) from the store.
    async fn cached(&mut self, id: RunId) -> Option<&Run> {
        if !self.runs.contains_key(&id) {
            match self.store.load_run(id).await {
                Ok(Some(run)) if !run.state.is_final() => {
                    self.runs.insert(id, run);
                }
                Ok(_) => return None,
                Err(e) => {
                    tracing::warn!(run_id = %id, error = %e, "Could not load run.");
                    return None;
                }
            }
        }
        self.runs.get(&id)
    }

    async fn missing(&self, id: RunId) -> CommandError {
        match self.store.load_run(id).await {
            Ok(Some(run)) => CommandError::Refused(Refusal::Finished(run.state)),
            Ok(None) => CommandError::NotFound(id),
            Err(e) => CommandError::Store(e.to_string()),
        }
    }

    /// Replies with each run as it stands after the batch.
    fn answer(&self, replies: Vec<(RunId, Reply)>) {
        for (id, reply) in replies {
            let _ = reply.send(
                self.runs
                    .get(&id)
                    .cloned()
                    .ok_or(CommandError::NotFound(id)),
            );
        }
    }

    /// Applies a batch and stores it. A write refused because a run moved on underneath
    /// (another replica advanced it) reloads those runs and applies the same inputs again.
    async fn process(&mut self, mut items: Vec<Item>) {
        const TRIES: usize = 3;
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
                        for item in &mut items {
                            if let Some(reply) = item.reply.take() {
                                let _ = reply.send(Err(CommandError::Store(e.to_string())));
                            }
                        }
                    } else {
                        tracing::warn!(error = %e, attempt, "A state change was not stored; reloading and applying again.");
                    }
                }
            }
        }
    }

    async fn try_process(&mut self, items: &mut [Item]) -> Result<(), (Vec<RunId>, anyhow::Error)> {
        let now = clock::now_ms();
        let ctx = Ctx {
            now,
            backoff: &backoff::jittered,
        };
        // Per run: the version the batch started from and the stages it changed.
        let mut touched: Vec<(RunId, i64, Vec<usize>)> = Vec::new();
        let mut audit: Vec<(RunId, Audit)> = Vec::new();
        let mut effects: Vec<(RunId, Effect, Option<i64>)> = Vec::new();

        for item in items.iter_mut().filter(|i| !i.settled) {
            if self.cached(item.run).await.is_none() {
                item.settled = true;
                if let Some(reply) = item.reply.take() {
                    let _ = reply.send(Err(self.missing(item.run).await));
                }
                continue;
            }
            let Some(run) = self.runs.get_mut(&item.run) else {
                continue;
            };
            let version = run.version;
            match machine::apply(run, item.input.clone(), &ctx) {
                Err(refusal) => {
                    item.settled = true;
                    if let Some(reply) = item.reply.take() {
                        let _ = reply.send(Err(refusal.into()));
                    }
                }
                Ok(t) => {
                    if !t.is_empty() {
                        let entry = match touched.iter_mut().find(|(id, _, _)| *id == item.run) {
                            Some(e) => e,
                            None => {
                                touched.push((item.run, version, Vec::new()));
                                touched.last_mut().expect("just pushed")
                            }
                        };
                        for i in t.changed {
                            if !entry.2.contains(&i) {
                                entry.2.push(i);
                            }
                        }
                        audit.extend(t.audit.into_iter().map(|a| (item.run, a)));
                        effects.extend(
                            t.effects
                                .into_iter()
                                .map(|e| (item.run, e, item.released_us)),
                        );
                    }
                }
            }
        }
        // Replies wait for the commit; on a retry they are still with their items.
        let take_replies = |items: &mut [Item]| -> Vec<(RunId, Reply)> {
            items
                .iter_mut()
                .filter_map(|i| i.reply.take().map(|r| (i.run, r)))
                .collect()
        };
        if touched.is_empty() {
            self.answer(take_replies(items));
            return Ok(());
        }

        for (id, expected, _) in &touched {
            if let Some(run) = self.runs.get_mut(id) {
                run.version = expected + 1;
            }
        }
        let mut outbox = Vec::new();
        // Per outbox message: when the lease behind a dispatch was released.
        let mut released: Vec<Option<i64>> = Vec::new();
        let mut revocations = Vec::new();
        for (id, effect, released_us) in &effects {
            let Some(run) = self.runs.get(id) else {
                continue;
            };
            match effect {
                Effect::Dispatch { stage } => {
                    let w = work_request(run, *stage);
                    released.push(*released_us);
                    outbox.push(OutboxMessage {
                        topic: bus::work_topic(&w.agent),
                        key: id.to_string(),
                        payload: serde_json::to_string(&w).unwrap_or_default(),
                    });
                }
                Effect::Revoke {
                    stage,
                    attempt,
                    reason,
                } => revocations.push(Revocation {
                    request_id: ids::request_id(*id, &run.plan[*stage].name, *attempt),
                    run_id: *id,
                    stage: run.plan[*stage].name.clone(),
                    attempt: *attempt,
                    reason: reason.clone(),
                }),
            }
        }
        let mut nth: HashMap<RunId, usize> = HashMap::new();
        for (id, a) in &audit {
            if let Some(run) = self.runs.get(id) {
                let n = nth.entry(*id).or_default();
                *n += 1;
                outbox.push(OutboxMessage {
                    topic: bus::EVENTS_TOPIC.to_string(),
                    key: id.to_string(),
                    payload: serde_json::to_string(&event(run, a, *n)).unwrap_or_default(),
                });
            }
        }
        let delivered = self.publisher.take_delivered(OUTBOX_TRIM_WITH_COMMIT);
        let result = {
            let batch = Batch {
                runs: touched
                    .iter()
                    .filter_map(|(id, expected, stages)| {
                        self.runs.get(id).map(|run| RunWrite {
                            run,
                            expected_version: *expected,
                            stages,
                        })
                    })
                    .collect(),
                audit,
                outbox,
                revocations,
                delivered: &delivered,
            };
            self.store
                .commit(&batch)
                .await
                .map(|ids| (ids, batch.outbox, batch.audit))
        };
        let (ids, outbox, audit) = match result {
            Ok((ids, outbox, audit)) => (ids, outbox, audit),
            Err(e) => {
                self.publisher.give_back(delivered);
                // What was published before stays in the outbox and is sent again later.
                return Err((touched.iter().map(|(id, _, _)| *id).collect(), e));
            }
        };
        // Committed: now the messages may leave, in order, without the engine waiting on
        // the broker.
        self.publisher.send(
            ids.into_iter()
                .zip(outbox)
                .enumerate()
                .map(|(n, (id, message))| Outgoing {
                    row: Some(id),
                    message,
                    released_us: released.get(n).copied().flatten(),
                })
                .collect(),
        );
        self.metrics.observe(&audit, &self.runs);
        for (id, _, _) in &touched {
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
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Command>, commands: &mut Vec<Command>) {
    while commands.len() < BATCH {
        match rx.try_recv() {
            Ok(c) => commands.push(c),
            Err(_) => break,
        }
    }
}

fn work_message(w: &WorkRequest) -> anyhow::Result<OutboxMessage> {
    Ok(OutboxMessage {
        topic: bus::work_topic(&w.agent),
        key: w.run_id.to_string(),
        payload: serde_json::to_string(w)?,
    })
}

pub fn work_request(run: &Run, stage: usize) -> WorkRequest {
    let s = &run.stages[stage];
    let p = &run.plan[stage];
    WorkRequest {
        v: bus::VERSION,
        id: ids::request_id(run.id, &p.name, s.attempts),
        run_id: run.id,
        stage: p.name.clone(),
        agent: p.agent.clone(),
        attempt: s.attempts,
        spec: p.spec.clone(),
        resource: run.resource(stage),
        deadline: s
            .deadline
            .unwrap_or_else(|| clock::add(clock::now_ms(), p.timeout)),
        dry_run: run.dry_run,
    }
}

fn event(run: &Run, a: &Audit, nth: usize) -> RunEvent {
    RunEvent {
        v: bus::VERSION,
        id: format!("{}/{}/{nth}", run.id, run.version),
        run_id: run.id,
        group: run.group.clone(),
        action: run.action.to_string(),
        dry_run: run.dry_run,
        kind: a.kind.clone(),
        stage: a.stage.clone(),
        attempt: a.attempt,
        message: a.message.clone(),
        actor: a.actor.clone(),
        at: a.at,
    }
}
