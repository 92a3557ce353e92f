//! The evacuation coordinator, in every `serve`: at each tick it reads the evacuations
//! still going from the store, notes which groups' runs ended, starts the groups whose
//! dependencies are done, holds those behind a failure, and settles an evacuation once
//! nothing is left going. Each move is a compare-and-set in the store, and a group's run id
//! is chosen in the move that starts it, so that however many replicas tick, and whenever
//! one dies, each group's run is made once (`Orchestrator::create` with a chosen id finds a
//! run made already). The controls a person uses (resume, skip, abort) are here too.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::domain::evacuation::{
    Evacuation, EvacuationGroup, EvacuationState, GroupState, Step, steps,
};
use crate::domain::{Actor, Control, EvacuationId, RunId, RunState};
use crate::orchestrator::{NewRun, Orchestrator};
use crate::store::{GroupMove, Store};
use crate::workflow::{Action, Catalog, Params};

/// How often the evacuations going are read: a group starts within this of its
/// dependencies finishing.
pub const TICK: Duration = Duration::from_millis(200);

pub fn spawn(orchestrator: Orchestrator, store: Store) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = tick(&orchestrator, &store).await {
                tracing::warn!(error = %e, "Could not move the evacuations on; trying again.");
            }
            tokio::time::sleep(TICK).await;
        }
    })
}

/// Moves every evacuation going one step on.
pub async fn tick(orchestrator: &Orchestrator, store: &Store) -> anyhow::Result<()> {
    for id in store.going_evacuations().await? {
        advance(orchestrator, store, id).await?;
    }
    Ok(())
}

async fn advance(o: &Orchestrator, store: &Store, id: EvacuationId) -> anyhow::Result<()> {
    let Some(e) = store.evacuation(id).await? else {
        return Ok(());
    };
    let now = o.clock().now_ms();
    for (group, run, state) in store.evacuation_runs(id).await? {
        let (to, note) = match state {
            // Chosen, then the process stopped before the run was stored: made now.
            None => {
                start_run(o, store, &e, &group, run).await?;
                continue;
            }
            Some(RunState::Succeeded) => (GroupState::Succeeded, None),
            Some(s) if s.is_final() => (GroupState::Failed, Some(format!("run {run} {s}"))),
            Some(_) => continue,
        };
        store
            .move_evacuation_group(&GroupMove {
                evacuation: id,
                group: &group,
                from: GroupState::Started,
                to,
                run: None,
                note: note.as_deref(),
                at: now,
            })
            .await?;
    }
    let Some(e) = store.evacuation(id).await? else {
        return Ok(());
    };
    let catalog = o.catalog();
    let depends_on = |g: &str| {
        catalog
            .groups
            .get(g)
            .map(|g| g.depends_on.clone())
            .unwrap_or_default()
    };
    let moves = steps(&e.groups, &depends_on);
    for (group, step) in &moves {
        match step {
            Step::Start => {
                let run = RunId::new();
                let moved = store
                    .move_evacuation_group(&GroupMove {
                        evacuation: id,
                        group,
                        from: GroupState::Waiting,
                        to: GroupState::Started,
                        run: Some(run),
                        note: None,
                        at: now,
                    })
                    .await?;
                if moved {
                    start_run(o, store, &e, group, run).await?;
                }
            }
            Step::Hold { because } => {
                store
                    .move_evacuation_group(&GroupMove {
                        evacuation: id,
                        group,
                        from: GroupState::Waiting,
                        to: GroupState::Held,
                        run: None,
                        note: Some(&format!("held: {because}")),
                        at: now,
                    })
                    .await?;
            }
            Step::Release => {
                store
                    .move_evacuation_group(&GroupMove {
                        evacuation: id,
                        group,
                        from: GroupState::Held,
                        to: GroupState::Waiting,
                        run: None,
                        note: None,
                        at: now,
                    })
                    .await?;
            }
        }
    }
    if moves.is_empty()
        && let Some(outcome) = e.outcome()
        && store
            .settle_evacuation(id, EvacuationState::Going, outcome, Some(now))
            .await?
    {
        tracing::info!(evacuation = %id, state = %outcome, "Evacuation ended.");
    }
    Ok(())
}

/// Makes a started group's run under the id chosen for it; a run that cannot be made
/// fails the group, saying why.
async fn start_run(
    o: &Orchestrator,
    store: &Store,
    e: &Evacuation,
    group: &str,
    run: RunId,
) -> anyhow::Result<()> {
    let reason = match &e.reason {
        Some(r) => format!("evacuation {}: {r}", e.id),
        None => format!("evacuation {}", e.id),
    };
    let made = o
        .create(NewRun {
            group: group.to_string(),
            action: e.action,
            dry_run: e.dry_run,
            reason: Some(reason),
            params: Params::new(),
            requested_by: e.requested_by.clone(),
            id: Some(run),
            force: false,
        })
        .await;
    if let Err(why) = made {
        tracing::warn!(evacuation = %e.id, group, error = %why, "An evacuated group's run could not be made.");
        store
            .move_evacuation_group(&GroupMove {
                evacuation: e.id,
                group,
                from: GroupState::Started,
                to: GroupState::Failed,
                run: None,
                note: Some(&format!("its run could not start: {why}")),
                at: o.clock().now_ms(),
            })
            .await?;
    }
    Ok(())
}

/// Why an evacuation was not started; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("an evacuation says why: the reason is empty")]
    NoReason,
    #[error("an evacuation names at least one group")]
    NoGroups,
    #[error("unknown group `{group}` (groups: {known})")]
    UnknownGroup { group: String, known: String },
    #[error("group `{0}` has no {1} workflow")]
    NoWorkflow(String, Action),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// What an evacuation moves: every group, or these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Which {
    All,
    Groups(Vec<String>),
}

/// The groups `which` names, each once, in the order given, checked against the catalog:
/// each exists and has a workflow for `action`.
pub fn groups_of(
    catalog: &crate::workflow::Catalog,
    which: Which,
    action: Action,
) -> Result<Vec<String>, StartError> {
    let mut names: Vec<String> = match which {
        Which::All => catalog.groups.keys().cloned().collect(),
        Which::Groups(list) => list,
    };
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    if names.is_empty() {
        return Err(StartError::NoGroups);
    }
    for name in &names {
        let Some(g) = catalog.groups.get(name) else {
            return Err(StartError::UnknownGroup {
                group: name.clone(),
                known: catalog
                    .groups
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        // A failback without a workflow is worked out from the record.
        if g.workflow_for(action).is_none() && action != Action::Failback {
            return Err(StartError::NoWorkflow(name.clone(), action));
        }
    }
    Ok(names)
}

/// Stores a new evacuation of `groups` (checked by `groups_of`, and the caller allowed on
/// each), every group waiting; the coordinator starts them.
pub async fn start(
    o: &Orchestrator,
    store: &Store,
    groups: Vec<String>,
    action: Action,
    dry_run: bool,
    reason: &str,
    actor: &Actor,
) -> Result<Evacuation, StartError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(StartError::NoReason);
    }
    let now = o.clock().now_ms();
    let e = Evacuation {
        id: EvacuationId::new(),
        action,
        dry_run,
        reason: Some(reason.to_string()),
        requested_by: actor.clone(),
        state: EvacuationState::Going,
        created_at: now,
        finished_at: None,
        groups: groups
            .into_iter()
            .map(|group| EvacuationGroup {
                group,
                state: GroupState::Waiting,
                run: None,
                note: None,
                updated_at: now,
            })
            .collect(),
    };
    store.insert_evacuation(&e).await?;
    tracing::info!(evacuation = %e.id, groups = e.groups.len(), by = %actor, %action, "Evacuation started.");
    Ok(e)
}

/// The groups `group` depends on that move in `e` too: what it waits for there.
pub fn depends_within(catalog: &Catalog, e: &Evacuation, group: &str) -> Vec<String> {
    catalog.groups.get(group).map_or_else(Vec::new, |c| {
        c.depends_on
            .iter()
            .filter(|d| e.groups.iter().any(|g| &g.group == *d))
            .cloned()
            .collect()
    })
}

/// An evacuation in a few lines, for a terminal or a chat: its state and counts, and each
/// group not (yet) succeeded with its state and note.
pub fn summary(e: &Evacuation) -> String {
    let counts = e.counted();
    let mut out = format!(
        "evacuation {} ({}{}): {}; {}\n",
        e.id,
        e.action,
        if e.dry_run { ", dry run" } else { "" },
        e.state,
        counts.join(", ")
    );
    for g in e.groups.iter().filter(|g| g.state != GroupState::Succeeded) {
        out.push_str(&format!("  {}: {}", g.group, g.state));
        if let Some(note) = &g.note {
            out.push_str(&format!(" ({note})"));
        }
        out.push('\n');
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no evacuation {0}")]
    NotFound(EvacuationId),
    #[error("group `{0}` is not in this evacuation")]
    NoGroup(String),
    /// The group is not in a state the control applies to.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Run(#[from] crate::orchestrator::CommandError),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// A person's word on one group of an evacuation.
#[derive(Clone, Debug)]
pub enum GroupControl {
    /// A failed group goes on: its run resumed (or made again if it never started).
    Resume,
    /// A person gives up on the group, saying why; its dependents go on.
    Skip { reason: String },
}

async fn found(store: &Store, id: EvacuationId) -> Result<Evacuation, ControlError> {
    store
        .evacuation(id)
        .await?
        .ok_or(ControlError::NotFound(id))
}

/// Applies `control` to `group` of evacuation `id`, for `actor` (already allowed).
pub async fn control_group(
    o: &Orchestrator,
    store: &Store,
    id: EvacuationId,
    group: &str,
    control: GroupControl,
    actor: &Actor,
) -> Result<Evacuation, ControlError> {
    let e = found(store, id).await?;
    let g = e
        .groups
        .iter()
        .find(|g| g.group == group)
        .ok_or_else(|| ControlError::NoGroup(group.to_string()))?;
    let now = o.clock().now_ms();
    match control {
        GroupControl::Skip { reason } => {
            if !matches!(
                g.state,
                GroupState::Failed | GroupState::Held | GroupState::Waiting
            ) {
                return Err(ControlError::Conflict(format!(
                    "group `{group}` is {}: only a failed, held or waiting group is skipped",
                    g.state
                )));
            }
            let note = format!("skipped by {actor}: {reason}");
            let moved = store
                .move_evacuation_group(&GroupMove {
                    evacuation: id,
                    group,
                    from: g.state,
                    to: GroupState::Skipped,
                    run: None,
                    note: Some(&note),
                    at: now,
                })
                .await?;
            if !moved {
                return Err(ControlError::Conflict(format!(
                    "group `{group}` moved on meanwhile: look again"
                )));
            }
            tracing::info!(evacuation = %id, group, by = %actor, reason, "Evacuated group skipped.");
        }
        GroupControl::Resume => {
            if g.state != GroupState::Failed {
                return Err(ControlError::Conflict(format!(
                    "group `{group}` is {}: only a failed group is resumed",
                    g.state
                )));
            }
            let stored = match g.run {
                Some(run) => o.run(run).await?.map(|r| r.id),
                None => None,
            };
            let run = stored.unwrap_or_default();
            let moved = store
                .move_evacuation_group(&GroupMove {
                    evacuation: id,
                    group,
                    from: GroupState::Failed,
                    to: GroupState::Started,
                    run: Some(run),
                    note: Some(&format!("resumed by {actor}")),
                    at: now,
                })
                .await?;
            if !moved {
                return Err(ControlError::Conflict(format!(
                    "group `{group}` moved on meanwhile: look again"
                )));
            }
            match stored {
                Some(run) => {
                    o.control(run, Control::Resume { force: false }, actor)
                        .await?;
                }
                None => start_run(o, store, &e, group, run).await?,
            }
        }
    }
    // Settled already: it goes on again, and is settled anew once nothing is left going.
    for from in [EvacuationState::Failed, EvacuationState::Succeeded] {
        store
            .settle_evacuation(id, from, EvacuationState::Going, None)
            .await?;
    }
    found(store, id).await
}

/// Aborts what has not started: waiting and held groups never start. Runs going are left
/// to finish (cancel them one by one if they must stop).
pub async fn abort(
    o: &Orchestrator,
    store: &Store,
    id: EvacuationId,
    actor: &Actor,
    reason: Option<&str>,
) -> Result<Evacuation, ControlError> {
    let e = found(store, id).await?;
    if e.state != EvacuationState::Going {
        return Err(ControlError::Conflict(format!(
            "evacuation {id} is {} already",
            e.state
        )));
    }
    let now = o.clock().now_ms();
    let note = match reason {
        Some(r) => format!("aborted by {actor}: {r}"),
        None => format!("aborted by {actor}"),
    };
    for g in &e.groups {
        if matches!(g.state, GroupState::Waiting | GroupState::Held) {
            store
                .move_evacuation_group(&GroupMove {
                    evacuation: id,
                    group: &g.group,
                    from: g.state,
                    to: GroupState::Aborted,
                    run: None,
                    note: Some(&note),
                    at: now,
                })
                .await?;
        }
    }
    tracing::info!(evacuation = %id, by = %actor, "Evacuation aborted.");
    found(store, id).await
}
