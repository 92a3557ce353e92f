//! The orchestrator: `machine` is the pure transition function of one run, `batch` the pure
//! step of many inputs at once, `engine` the task that stores and carries out their
//! results, `publisher` what sends the committed messages, and `Orchestrator` the handle
//! the rest of the service uses to create runs, decide on them and read them.

pub(crate) mod backoff;
pub(crate) mod batch;
mod command;
pub(crate) mod engine;
pub mod failback;
pub(crate) mod machine;
pub(crate) mod publisher;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::clock;
use crate::clock::Clock;
use crate::domain::{
    Actor, Audit, Check, Control, EventKind, Report, Run, RunId, RunState, StageRun, StageState,
};
use crate::metrics::StateCounts;
use crate::store::{CreateError, Store, StoreError};
use crate::workflow::{Action, Catalog, Params, Plan, PlanError, PlannedStage};
use command::Command;
pub use command::CommandError;
pub(crate) use engine::Engine;
use machine::Input;
pub use machine::Refusal;
pub use publisher::OverheadLog;

/// A request to start a run, after the trigger was authenticated and authorised.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub group: String,
    pub action: Action,
    pub dry_run: bool,
    pub reason: Option<String>,
    pub params: Params,
    /// Who asked.
    pub requested_by: Actor,
    /// The run's id when the caller chose it, so that asking again (after a crash, or from
    /// another replica) finds this run instead of making a second; a new id if `None`.
    pub id: Option<RunId>,
    /// Start even if no live agent serves a kind of work the run needs (audited).
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateRunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Busy(CreateError),
    #[error("{0}")]
    Store(StoreError),
    #[error("{0}")]
    Unserved(String),
    /// A failback that cannot be worked out from the record.
    #[error(transparent)]
    Unreversible(#[from] failback::Unreversible),
    #[error("the orchestrator is shutting down")]
    Closed,
}

#[derive(Clone)]
pub struct Orchestrator {
    tx: mpsc::UnboundedSender<Command>,
    store: Store,
    catalog: Arc<Catalog>,
    clock: Clock,
    /// Agents run in other processes: a run is checked against their heartbeats first.
    preflight: bool,
    /// The kinds live agents served when last read, and when: a burst of new runs reads
    /// the heartbeats once.
    live_kinds: Arc<tokio::sync::Mutex<Option<LiveKinds>>>,
}

/// The kinds of work live agents served, and when that was read.
type LiveKinds = (clock::Millis, Vec<String>);

/// How long a reading of the live agents' kinds serves the preflight: well inside the
/// heartbeat's own window of `LIVE_FOR`.
const LIVE_KINDS_FOR_MS: clock::Millis = 1000;

impl Orchestrator {
    pub(crate) fn new(
        tx: mpsc::UnboundedSender<Command>,
        store: Store,
        catalog: Arc<Catalog>,
        clock: Clock,
    ) -> Self {
        Orchestrator {
            tx,
            store,
            catalog,
            clock,
            preflight: false,
            live_kinds: Arc::default(),
        }
    }

    /// Checks each new run against the agents' heartbeats: with agents in their own
    /// processes, one may be missing. In-process agents serve every kind by construction.
    pub(crate) fn with_preflight(mut self) -> Self {
        self.preflight = true;
        self
    }

    /// The agents heard from lately, the most recent first, each with whether it is live.
    pub async fn agents(&self) -> anyhow::Result<Vec<(crate::store::AgentBeat, bool)>> {
        use crate::agents::heartbeat::{LISTED_FOR, LIVE_FOR};
        let now = self.clock.now_ms();
        let listed = self.store.agents(clock::sub(now, LISTED_FOR)).await?;
        let live_since = clock::sub(now, LIVE_FOR);
        Ok(listed
            .into_iter()
            .map(|a| {
                let live = a.last_seen >= live_since;
                (a, live)
            })
            .collect())
    }

    /// The kinds of work live agents serve: read at most once a second, or now if `fresh`.
    async fn live_kinds(&self, fresh: bool) -> anyhow::Result<Vec<String>> {
        let mut cached = self.live_kinds.lock().await;
        let now = self.clock.now_ms();
        if let Some((at, kinds)) = cached.as_ref()
            && now - at < LIVE_KINDS_FOR_MS
            && !fresh
        {
            return Ok(kinds.clone());
        }
        let since = clock::sub(now, crate::agents::heartbeat::LIVE_FOR);
        let kinds: Vec<String> = self
            .store
            .agents(since)
            .await?
            .into_iter()
            .flat_map(|a| a.kinds)
            .collect();
        *cached = Some((now, kinds.clone()));
        Ok(kinds)
    }

    /// The stages among those `wanted` whose kind of work no live agent serves, each with
    /// its kind; none when the agents run in this process.
    async fn unserved(
        &self,
        stages: &[PlannedStage],
        wanted: impl Fn(usize) -> bool,
    ) -> anyhow::Result<Vec<(usize, String)>> {
        if !self.preflight {
            return Ok(Vec::new());
        }
        let missing = |live: &[String]| -> Vec<(usize, String)> {
            stages
                .iter()
                .enumerate()
                .filter(|&(i, s)| wanted(i) && s.has_work() && !live.contains(&s.agent))
                .map(|(i, s)| (i, s.agent.clone()))
                .collect()
        };
        let unserved = missing(&self.live_kinds(false).await?);
        if unserved.is_empty() {
            return Ok(unserved);
        }
        // Never refused on an old reading: an agent may have come up since.
        Ok(missing(&self.live_kinds(true).await?))
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Plans and stores a new run, then hands it to the engine.
    pub async fn create(&self, req: NewRun) -> Result<Run, CreateRunError> {
        // Asked again for a run made already (after a crash, or by another replica): that
        // run, whatever the agents do now. Without a preflight the insert finds it.
        if let Some(id) = req.id.filter(|_| self.preflight)
            && let Some(run) = self
                .store
                .load_run(id)
                .await
                .map_err(|e| CreateRunError::Store(e.into()))?
        {
            return Ok(run);
        }
        let (plan, worked_out) = self
            .plan_for(&req.group, req.action, &req.params, req.force)
            .await?;
        let now = self.clock.now_ms();
        let mut run = Run {
            id: req.id.unwrap_or_default(),
            group: req.group.clone(),
            action: req.action,
            workflow: plan.workflow,
            // A drill is a rehearsal: it never changes anything.
            dry_run: req.dry_run || req.action == Action::Drill,
            reason: req.reason.clone(),
            requested_by: req.requested_by.clone(),
            params: plan.params,
            overrides: Some(req.params.clone()),
            state: RunState::Pending,
            created_at: now,
            started_at: None,
            finished_at: None,
            message: None,
            stages: vec![StageRun::default(); plan.stages.len()],
            plan: plan.stages,
            version: 0,
        };
        let mut audit = vec![Audit {
            at: now,
            actor: req.requested_by.clone(),
            kind: EventKind::RunCreated,
            stage: None,
            attempt: None,
            message: req.reason.clone(),
        }];
        if let (Some(from), true) = (worked_out, req.force) {
            audit.push(Audit {
                at: now,
                actor: req.requested_by.clone(),
                kind: EventKind::DriftOverridden,
                stage: None,
                attempt: None,
                message: Some(format!(
                    "failback from run {from} forced: the estate is not checked against what that failover left"
                )),
            });
        }
        let unserved = self
            .unserved(&run.plan, |_| true)
            .await
            .map_err(|e| CreateRunError::Store(e.into()))?;
        if !unserved.is_empty() {
            if run.dry_run {
                audit.extend(unserved_checks(&mut run, &unserved, now));
            } else if req.force {
                audit.push(overridden(&run, &unserved, &req.requested_by, now));
            } else {
                return Err(CreateRunError::Unserved(refusal(&run, &unserved)));
            }
        }
        let stored = self
            .store
            .insert_run_versioned(
                &run,
                &audit,
                Some(&self.catalog.versions(&run.workflow, &run.plan)),
            )
            .await
            .map_err(|e| match e {
                CreateError::Store(e) => CreateRunError::Store(e),
                busy => CreateRunError::Busy(busy),
            });
        match stored {
            Ok(()) => {}
            // Made already by an earlier call: that run, which its engine (or the next
            // start's recovery) carries on.
            Err(CreateRunError::Busy(CreateError::Exists(id))) => {
                return self
                    .store
                    .load_run(id)
                    .await
                    .map_err(|e| CreateRunError::Store(e.into()))?
                    .ok_or_else(|| {
                        CreateRunError::Store(StoreError::NotFound(format!("run {id}")))
                    });
            }
            Err(e) => return Err(e),
        }
        tracing::info!(run_id = %run.id, group = %run.group, action = %run.action, by = %run.requested_by, "Run created.");
        self.tx
            .send(Command::Start(Box::new(run.clone())))
            .map_err(|_| CreateRunError::Closed)?;
        Ok(run)
    }

    async fn ask(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<Run, CommandError>>) -> Command,
    ) -> Result<Run, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(command(reply))
            .map_err(|_| CommandError::Closed)?;
        rx.await.map_err(|_| CommandError::Closed)?
    }

    /// A run as stored.
    async fn stored(&self, id: RunId) -> Result<Run, CommandError> {
        self.store
            .load_run(id)
            .await
            .map_err(CommandError::from)?
            .ok_or(CommandError::NotFound(id))
    }

    /// The index of stage `name` of a stored run.
    async fn stage_of(&self, id: RunId, name: &str) -> Result<usize, CommandError> {
        self.stored(id)
            .await?
            .stage_index(name)
            .ok_or_else(|| CommandError::UnknownStage(name.to_string()))
    }

    /// Who an actor is in a group's eyes: one person across Slack, Discord and the API.
    fn person(&self, group: &str, actor: &Actor) -> String {
        let (platform, id) = match actor {
            Actor::Chat { platform, user } => (platform.as_str(), user.as_str()),
            Actor::Api(name) => ("api", name.as_str()),
            Actor::Terminal(login) => ("terminal", login.as_str()),
            _ => return actor.to_string(),
        };
        self.catalog
            .groups
            .get(group)
            .and_then(|g| g.person(platform, id))
            .map(str::to_string)
            .unwrap_or_else(|| actor.to_string())
    }

    /// A person's control over a run: the one way in for the API, chat and the command
    /// line. Veto and start now are an offer's, and are refused here.
    pub async fn control(
        &self,
        run: RunId,
        control: Control,
        actor: &Actor,
    ) -> Result<Run, CommandError> {
        match control {
            Control::Approve { stage } => self.approve(run, stage, actor).await,
            Control::Reject { reason } => self.reject(run, actor, reason).await,
            Control::Cancel { reason } => self.cancel(run, actor, reason).await,
            Control::Resume { force } => self.resume(run, actor, force).await,
            Control::RetryNow { stage } => self.retry_now(run, &stage, actor).await,
            Control::Skip { stage, reason } => self.skip(run, &stage, actor, reason).await,
            c @ (Control::Veto | Control::StartNow) => Err(Refusal::OfferOnly(c.word()).into()),
        }
    }

    async fn approve(
        &self,
        run: RunId,
        stage: Option<String>,
        actor: &Actor,
    ) -> Result<Run, CommandError> {
        let loaded = self.stored(run).await?;
        let stage = match stage {
            Some(name) => Some(
                loaded
                    .stage_index(&name)
                    .ok_or(CommandError::UnknownStage(name))?,
            ),
            None => None,
        };
        let input = Input::Approve {
            actor: actor.clone(),
            stage,
            person: self.person(&loaded.group, actor),
            requester: self.person(&loaded.group, &loaded.requested_by),
        };
        self.apply(run, input).await
    }

    /// Goes on from a failed or cancelled run: the stages that did not succeed run again.
    /// Refused if the run's workflow now plans differently, or (with agents elsewhere) no
    /// live agent serves a stage still to run, unless `force`; a forced resume goes on with
    /// the plan the run started with.
    async fn resume(&self, id: RunId, actor: &Actor, force: bool) -> Result<Run, CommandError> {
        let run = self.stored(id).await?;
        match run.state {
            RunState::Failed | RunState::Cancelled => {}
            RunState::Succeeded => return Err(Refusal::NothingToResume.into()),
            going => return Err(Refusal::NotStopped(going).into()),
        }
        let mut forced = Vec::new();
        if let Some(change) = self.plan_change(&run) {
            if !force {
                return Err(CommandError::WorkflowChanged(format!(
                    "{change} since run {id} started; resume with force to go on with the plan it started with"
                )));
            }
            forced.push(format!(
                "{change}; going on with the plan the run started with"
            ));
        }
        let unserved = self
            .unserved(&run.plan, |i| !run.stages[i].lets_dependents_go())
            .await
            .map_err(CommandError::from)?;
        if !unserved.is_empty() {
            if !force {
                return Err(CommandError::Unserved(refusal(&run, &unserved)));
            }
            forced.push(unserved_message(&run, &unserved));
        }
        let message = (!forced.is_empty()).then(|| format!("forced: {}", forced.join("; ")));
        let input = Input::Resume {
            actor: actor.clone(),
            message,
        };
        self.reopen(id, input).await
    }

    /// The stages a group runs for an action: its workflow's, or for a failback with no
    /// workflow, worked out from the group's last successful failover (whose id comes
    /// with it).
    pub async fn plan_for(
        &self,
        group: &str,
        action: Action,
        params: &Params,
        force: bool,
    ) -> Result<(Plan, Option<RunId>), CreateRunError> {
        match self.catalog.plan_for(group, action, params) {
            Err(PlanError::NoWorkflow { .. }) if action == Action::Failback => {}
            other => return Ok((other?, None)),
        }
        let (plan, from) = failback::work_out(&self.store, &self.catalog, group, force).await?;
        Ok((plan, Some(from)))
    }

    /// How the run's workflow, as the catalog has it now, differs from the plan the run
    /// started with; `None` if it plans the same.
    fn plan_change(&self, run: &Run) -> Option<String> {
        // A failback worked out from a failover keeps the plan it was worked out to.
        if run.workflow.starts_with(failback::PREFIX) {
            return None;
        }
        // Planned from the params it was asked with, so that a change to the workflow's
        // defaults or the group's params counts as a change too.
        let asked = run.overrides.as_ref().unwrap_or(&run.params);
        let now = match self.catalog.plan_for(&run.group, run.action, asked) {
            Ok(p) => p,
            Err(e) => return Some(format!("workflow `{}` no longer plans ({e})", run.workflow)),
        };
        if now.workflow != run.workflow {
            return Some(format!(
                "group `{}` now runs workflow `{}` for {}, not `{}`",
                run.group, now.workflow, run.action, run.workflow
            ));
        }
        if now.stages.len() != run.plan.len() {
            return Some(format!(
                "workflow `{}` has {} stages now, not {}",
                run.workflow,
                now.stages.len(),
                run.plan.len()
            ));
        }
        now.stages
            .iter()
            .zip(&run.plan)
            .find(|(a, b)| a != b)
            .map(|(_, was)| {
                format!(
                    "stage `{}` of workflow `{}` has changed",
                    was.name, run.workflow
                )
            })
    }

    /// Dispatches a stage waiting out its backoff now.
    async fn retry_now(&self, id: RunId, stage: &str, actor: &Actor) -> Result<Run, CommandError> {
        let stage = self.stage_of(id, stage).await?;
        self.apply(
            id,
            Input::RetryNow {
                actor: actor.clone(),
                stage,
            },
        )
        .await
    }

    /// Marks a failed stage skipped by a person, so that its dependents go on; a failed run
    /// is reopened for them.
    async fn skip(
        &self,
        id: RunId,
        stage: &str,
        actor: &Actor,
        reason: String,
    ) -> Result<Run, CommandError> {
        let stage = self.stage_of(id, stage).await?;
        let input = Input::Skip {
            actor: actor.clone(),
            stage,
            reason,
        };
        self.reopen(id, input).await
    }

    async fn reject(
        &self,
        run: RunId,
        actor: &Actor,
        reason: Option<String>,
    ) -> Result<Run, CommandError> {
        self.apply(
            run,
            Input::Reject {
                actor: actor.clone(),
                reason,
            },
        )
        .await
    }

    async fn cancel(
        &self,
        run: RunId,
        actor: &Actor,
        reason: Option<String>,
    ) -> Result<Run, CommandError> {
        self.apply(
            run,
            Input::Cancel {
                actor: actor.clone(),
                reason,
            },
        )
        .await
    }

    /// Applies an input that may bring a finished run back (resume, skip).
    async fn reopen(&self, run: RunId, input: Input) -> Result<Run, CommandError> {
        self.ask(|reply| Command::Reopen { run, input, reply })
            .await
    }

    async fn apply(&self, run: RunId, input: Input) -> Result<Run, CommandError> {
        self.ask(|reply| Command::Apply {
            run,
            input,
            reply: Some(reply),
        })
        .await
    }

    /// Agent progress read from the bus; `accepted` moves a stage to `running`.
    pub fn progress(&self, p: crate::bus::Progress) {
        let _ = self.tx.send(Command::Progress(p));
    }

    pub fn outcome(&self, o: crate::domain::LeaseOutcome) {
        let _ = self.tx.send(Command::Outcome(o));
    }

    /// The run as stored, which every replica agrees on.
    pub async fn run(&self, id: RunId) -> anyhow::Result<Option<Run>> {
        self.store.load_run(id).await
    }

    /// The run's audit log, oldest first.
    pub async fn events(&self, id: RunId) -> anyhow::Result<Vec<Audit>> {
        self.store.audit(id).await
    }

    /// A finished run's scorecard, beside the group's previous run and last drill of the
    /// same action; `None` while it runs.
    pub async fn recovery(
        &self,
        run: &Run,
    ) -> anyhow::Result<Option<crate::domain::scorecard::Recovery>> {
        let audit = self.store.audit(run.id).await?;
        let Some(card) = crate::domain::scorecard::score(run, &audit) else {
            return Ok(None);
        };
        let history = self.store.list_runs(Some(&run.group), 200).await?;
        let (previous, last_drill) = crate::domain::scorecard::Earlier::of(run, &history);
        let objectives = self
            .catalog
            .groups
            .get(&run.group)
            .and_then(|g| card.against(&g.objectives));
        Ok(Some(crate::domain::scorecard::Recovery {
            card,
            previous,
            last_drill,
            objectives,
        }))
    }

    /// The most recent runs first, optionally of one group.
    pub async fn runs(&self, group: Option<&str>, limit: i64) -> anyhow::Result<Vec<Run>> {
        self.store.list_runs(group, limit).await
    }

    pub async fn state_counts(&self) -> anyhow::Result<StateCounts> {
        let (runs, stages) = self.store.state_counts().await?;
        Ok(StateCounts { runs, stages })
    }

    /// The leases held now.
    pub async fn leases(&self) -> anyhow::Result<Vec<crate::store::HeldLease>> {
        self.store.held_leases().await
    }

    /// Recent alerts, newest first.
    pub async fn alerts(
        &self,
        filter: &crate::store::AlertFilter,
    ) -> anyhow::Result<Vec<crate::store::AlertRow>> {
        self.store.alerts(filter).await
    }

    /// How many distinct alerts a run has, and how many re-sends of them.
    pub async fn alert_count(&self, run: RunId) -> anyhow::Result<(i64, i64)> {
        self.store.count_alerts(run).await
    }

    /// Recent offers, newest first.
    pub async fn offers(&self, limit: i64) -> anyhow::Result<Vec<crate::domain::Offer>> {
        self.store.offers(limit).await
    }

    /// The most recent chat requests refused for want of permission.
    pub async fn refusals(&self, limit: i64) -> anyhow::Result<Vec<crate::store::RefusalRow>> {
        self.store.refusals(limit).await
    }

    /// Records a request refused for want of permission.
    pub async fn record_refusal(&self, r: &crate::store::Refusal<'_>) -> anyhow::Result<()> {
        self.store.record_refusal(r).await
    }

    /// Whether the store answers.
    pub async fn store_ready(&self) -> bool {
        self.store.ping().await
    }
}

/// The distinct kinds among `unserved`, in plan order.
fn kinds_of(unserved: &[(usize, String)]) -> Vec<String> {
    let mut kinds: Vec<String> = Vec::new();
    for (_, k) in unserved {
        if !kinds.contains(k) {
            kinds.push(k.clone());
        }
    }
    kinds
}

/// `no live agent serves kind `database` (stage `promote`)`, for each kind.
fn unserved_message(run: &Run, unserved: &[(usize, String)]) -> String {
    kinds_of(unserved)
        .iter()
        .map(|kind| {
            let stages: Vec<String> = unserved
                .iter()
                .filter(|(_, k)| k == kind)
                .map(|(i, _)| format!("`{}`", run.plan[*i].name))
                .collect();
            format!(
                "no live agent serves kind `{kind}` (stage{} {})",
                if stages.len() == 1 { "" } else { "s" },
                stages.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a run that needs missing agents is refused, and what to do.
fn refusal(run: &Run, unserved: &[(usize, String)]) -> String {
    format!(
        "{}; start an agent that serves it (`lifeboat agent --agents {}`), or ask again with `force` (API)",
        unserved_message(run, unserved),
        kinds_of(unserved).join(",")
    )
}

/// The audit record of a run started without every agent it needs.
fn overridden(run: &Run, unserved: &[(usize, String)], by: &Actor, at: clock::Millis) -> Audit {
    Audit {
        at,
        actor: by.clone(),
        kind: EventKind::PreflightOverridden,
        stage: None,
        attempt: None,
        message: Some(format!(
            "{}; started anyway (force)",
            unserved_message(run, unserved)
        )),
    }
}

/// A dry run's stages that no live agent serves fail before it begins, each with a failed
/// check saying so: what the rehearsal found. Stored with the run, so that whichever
/// replica starts it sees them. Returns their audit records.
fn unserved_checks(run: &mut Run, unserved: &[(usize, String)], now: clock::Millis) -> Vec<Audit> {
    unserved
        .iter()
        .map(|(i, kind)| {
            let detail = format!("no live agent serves kind `{kind}`");
            let message = format!("preflight: {detail}");
            run.stages[*i] = StageRun {
                state: StageState::Failed,
                started_at: Some(now),
                finished_at: Some(now),
                message: Some(message.clone()),
                report: Some(Report {
                    checks: vec![Check {
                        name: "agent available".into(),
                        ok: false,
                        detail,
                    }],
                    changes: Vec::new(),
                    ..Report::default()
                }),
                ..StageRun::default()
            };
            Audit {
                at: now,
                actor: Actor::System,
                kind: EventKind::Stage(StageState::Failed),
                stage: Some(run.plan[*i].name.clone()),
                attempt: Some(0),
                message: Some(message),
            }
        })
        .collect()
}

/// The engine's command channel, split so wiring can hand out senders before the engine
/// starts.
pub(crate) fn channel() -> (
    mpsc::UnboundedSender<Command>,
    mpsc::UnboundedReceiver<Command>,
) {
    mpsc::unbounded_channel()
}

#[cfg(test)]
mod machine_props;
#[cfg(test)]
mod tests;
