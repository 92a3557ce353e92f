//! A group's drills and runs over an audit period, newest first, with their outcomes,
//! recovery times and points, and whether each met the group's objectives.

use serde::{Deserialize, Serialize};

use crate::clock::{Millis, rfc3339};
use crate::domain::{RunId, RunState};
use crate::store::{RunFilter, Store};
use crate::workflow::Group;

/// The most runs a period lists: four drills a day for a year, and the runs between.
const MOST: i64 = 2_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Period {
    pub group: String,
    pub since: String,
    pub generated: String,
    pub drills: usize,
    /// Drills that succeeded with every check passing.
    pub drills_passed: usize,
    /// Real runs (not dry runs).
    pub real: usize,
    pub real_succeeded: usize,
    pub rows: Vec<PeriodRow>,
    /// More runs were made than a period lists (`MOST`): the oldest are left out.
    pub truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeriodRow {
    pub run: RunId,
    pub created: String,
    pub action: String,
    pub dry_run: bool,
    pub trigger: String,
    /// The run's state, with the checks that failed when it succeeded all the same.
    pub state: String,
    pub checks_failed: usize,
    pub rto_s: Option<f64>,
    pub rpo_s: Option<f64>,
    /// Every objective the group sets was met (`None`: it sets none, or unfinished).
    pub objectives_met: Option<bool>,
    pub workflow: String,
    pub workflow_hash: Option<String>,
}

pub async fn gather(
    store: &Store,
    group: &Group,
    since: Millis,
    now: Millis,
) -> anyhow::Result<Period> {
    let runs = store
        .find_runs(&RunFilter {
            group: Some(group.name.clone()),
            since: Some(since),
            limit: MOST + 1,
            ..RunFilter::default()
        })
        .await?;
    let truncated = runs.len() as i64 > MOST;
    let runs = &runs[..runs.len().min(MOST as usize)];
    let mut rows = Vec::with_capacity(runs.len());
    let (mut drills, mut drills_passed) = (0, 0);
    for run in runs {
        let audit = store.audit(run.id).await?;
        let card = crate::domain::scorecard::score(run, &audit);
        let met = card
            .as_ref()
            .and_then(|c| c.against(&group.objectives))
            .map(|o| o.rto_met != Some(false) && o.rpo_met != Some(false));
        let checks = crate::readiness::checks_of(run);
        if run.action == crate::workflow::Action::Drill {
            drills += 1;
            drills_passed += usize::from(crate::readiness::passed(run, &checks));
        }
        let checks_failed = checks.iter().filter(|c| !c.ok && c.name != "stage").count();
        let mut state = run.state.to_string();
        if checks_failed > 0 {
            state.push_str(&format!(
                " ({checks_failed} check{} failed)",
                if checks_failed == 1 { "" } else { "s" }
            ));
        }
        rows.push(PeriodRow {
            run: run.id,
            created: rfc3339(run.created_at),
            action: run.action.to_string(),
            dry_run: run.dry_run,
            trigger: run.requested_by.to_string(),
            state,
            checks_failed,
            rto_s: card.as_ref().map(|c| c.total_ms as f64 / 1000.0),
            rpo_s: card.as_ref().and_then(|c| c.rpo.as_ref()?.seconds),
            objectives_met: met,
            workflow: run.workflow.clone(),
            workflow_hash: store.run_versions(run.id).await?.and_then(|v| v.workflow),
        });
    }
    Ok(Period {
        group: group.name.clone(),
        since: rfc3339(since),
        generated: rfc3339(now),
        drills,
        drills_passed,
        real: runs.iter().filter(|r| !r.dry_run).count(),
        real_succeeded: runs
            .iter()
            .filter(|r| !r.dry_run && r.state == RunState::Succeeded)
            .count(),
        rows,
        truncated,
    })
}

impl Period {
    pub fn render(&self, format: super::Format) -> anyhow::Result<String> {
        Ok(match format {
            super::Format::Json => serde_json::to_string_pretty(self)?,
            super::Format::Markdown => super::markdown::period(self),
            super::Format::Html => super::html::period(self),
        })
    }
}
