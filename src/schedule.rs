//! Scheduled drills: each group with a `drill:` schedule has its failover drilled (a dry
//! run through the real agents, gates passing by themselves) at every scheduled time. A
//! time is taken through the store, so that of several replicas one drills it. A drill is
//! skipped, and the store says why, while the group has a real run going or a dry run
//! still going; times missed while no replica was up are not made up.

use std::time::Duration;

use indexmap::IndexMap;
use tokio::task::JoinHandle;

use crate::clock::Millis;
use crate::domain::Actor;
use crate::orchestrator::Orchestrator;
use crate::store::Store;
use crate::trigger::{self, Trigger};
use crate::workflow::{Action, DrillSchedule};

/// The longest it sleeps at once, so that a clock set forward is noticed.
const NAP: Duration = Duration::from_secs(60);

pub fn spawn(orchestrator: Orchestrator, store: Store) -> Option<JoinHandle<()>> {
    let schedules: IndexMap<String, DrillSchedule> = orchestrator
        .catalog()
        .groups
        .values()
        .filter_map(|g| Some((g.name.clone(), g.drill.clone()?)))
        .collect();
    if schedules.is_empty() {
        return None;
    }
    Some(tokio::spawn(run(orchestrator, store, schedules)))
}

async fn run(orchestrator: Orchestrator, store: Store, schedules: IndexMap<String, DrillSchedule>) {
    let clock = orchestrator.clock().clone();
    let started = clock.now_ms();
    let mut due: IndexMap<String, Millis> = schedules
        .iter()
        .filter_map(|(g, s)| Some((g.clone(), s.next_after(started)?)))
        .collect();
    loop {
        let Some(&soonest) = due.values().min() else {
            return;
        };
        let now = clock.now_ms();
        if soonest > now {
            let wait = Duration::from_millis(u64::try_from(soonest - now).unwrap_or(0));
            tokio::time::sleep(wait.min(NAP)).await;
            continue;
        }
        let now_due: Vec<(String, Millis)> = due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(g, at)| (g.clone(), *at))
            .collect();
        for (group, at) in now_due {
            drill(&orchestrator, &store, &group, at, &schedules[&group]).await;
            // Behind by more than one time (a stalled process): the next from now, not
            // every one missed.
            match schedules[&group].next_after(at.max(now)) {
                Some(next) => due.insert(group, next),
                None => due.shift_remove(&group),
            };
        }
    }
}

/// Drills `group` for its time `at`, if this replica takes that time.
async fn drill(
    orchestrator: &Orchestrator,
    store: &Store,
    group: &str,
    at: Millis,
    schedule: &DrillSchedule,
) {
    match store.claim_drill(group, at).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(group, error = %e, "Could not take a scheduled drill; the next time will try again.");
            return;
        }
    }
    let (run, skipped) = match busy(store, group).await {
        Ok(Some(why)) => (None, Some(why)),
        Ok(None) => {
            let trigger = Trigger {
                dry_run: true,
                reason: Some(format!("scheduled drill ({schedule})")),
                ..Trigger::new(Actor::Schedule, group, Action::Drill)
            };
            match trigger::start(orchestrator, trigger).await {
                Ok(run) => (Some(run.id), None),
                Err(e) => (None, Some(format!("the drill did not start: {e}"))),
            }
        }
        Err(e) => (None, Some(format!("the store did not answer: {e}"))),
    };
    match (&run, &skipped) {
        (Some(id), _) => tracing::info!(group, run_id = %id, "Started a scheduled drill."),
        (None, Some(why)) => tracing::info!(group, reason = %why, "Skipped a scheduled drill."),
        (None, None) => {}
    }
    if let Err(e) = store.drill_done(group, at, run, skipped.as_deref()).await {
        tracing::warn!(group, error = %e, "Could not record a scheduled drill.");
    }
}

/// Why the group should not be drilled now: a real run of it going, or a dry run.
async fn busy(store: &Store, group: &str) -> anyhow::Result<Option<String>> {
    let unfinished = store.unfinished_of(group).await?;
    if let Some((id, _)) = unfinished.iter().find(|(_, dry)| !dry) {
        return Ok(Some(format!("a real run of the group is going ({id})")));
    }
    Ok(unfinished
        .first()
        .map(|(id, _)| format!("a dry run of the group is still going ({id})")))
}
