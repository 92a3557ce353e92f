//! A group's readiness, from its last finished drill: ready when that drill succeeded and
//! every check its agents made passed. Each check keeps its stage, its words (value and
//! limit, as the provider wrote them) and whether it passed; a stage that failed is a check
//! that failed, saying why.

use serde::{Deserialize, Serialize};

use crate::clock::{Millis, ago, rfc3339, short_duration};
use crate::domain::{Run, RunId, RunState, StageState};
use crate::store::{RunFilter, Store};
use crate::workflow::{Action, Catalog, Group, Params, VersionPart, Versions};

/// How many of a group's latest drills (and failovers) are read for the last finished one:
/// readiness is read at every metrics scrape.
const LOOK_BACK: i64 = 5;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub group: String,
    /// `None`: never drilled, so nobody knows.
    pub ready: Option<bool>,
    pub checks: Vec<ReadinessCheck>,
    pub last_drill: Option<LastDrill>,
    /// When the last drill that passed every check ended (within the last few drills).
    #[serde(skip)]
    pub last_success: Option<Millis>,
    /// RFC 3339, when the group has a `drill:` schedule.
    pub next_drill: Option<String>,
    /// The schedule, in words.
    pub schedule: Option<String>,
    /// The group's recovery objectives, in seconds, when it sets any.
    pub objectives: Option<Targets>,
    pub forecast: Forecast,
    /// Each replica's lag as the last drill measured it before its promote.
    #[serde(default)]
    pub replica_lag: Vec<ReplicaLag>,
    /// Whether what the group would run is what last recovered it (read by `full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verified>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicaLag {
    pub stage: String,
    /// The database the stage names (its `cluster`), or the stage's name.
    pub target: String,
    pub seconds: f64,
}

/// Verified: the group's failover workflow, the templates it uses and the targets it names
/// hash as they did in its last successful real failover or failback of that workflow. A
/// drill proves readiness, not recovery, so only a real run counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    pub ok: bool,
    /// Why not, in words: "workflow petstore-failover changed 3 days ago", "never failed
    /// over".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The real run it is set against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// What hashes differently now, and since when this deployment has seen it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<Changed>,
}

impl Verified {
    /// "verified (unchanged since run …)", or "unverified: " and since what.
    pub fn words(&self) -> String {
        match (self.ok, &self.since, self.run) {
            (true, _, Some(run)) => format!("verified (unchanged since run {run})"),
            (true, _, None) => "verified".into(),
            (false, Some(since), _) => format!("unverified: {since}"),
            (false, None, _) => "unverified".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Changed {
    /// `workflow`, `templates` or `targets`.
    pub part: String,
    pub workflow: String,
    /// RFC 3339, when this deployment first saw it as it is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// An RTO and an RPO, in seconds; each may be unknown.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    pub rto_s: Option<f64>,
    pub rpo_s: Option<f64>,
}

/// What a failover now would take and lose: the RTO from the critical path of the group's
/// last successful real failover of the same version of what it runs now (workflow file,
/// templates and targets, by hash; `rto_from`), the RPO from the recovery point its last
/// drill measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    pub rto_s: Option<f64>,
    pub rto_from: Option<RunId>,
    pub rpo_s: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadinessCheck {
    pub stage: String,
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastDrill {
    pub run: RunId,
    pub at: String,
    pub ok: bool,
}

impl Readiness {
    /// In words, for a terminal or a chat: ready or not, the checks that failed with their
    /// values and limits, the last and the next drill.
    pub fn summary(&self) -> String {
        let word = match self.ready {
            Some(true) => "ready",
            Some(false) => "NOT READY",
            None => "never drilled",
        };
        let mut out = format!("{}: {word}", self.group);
        if let Some(last) = &self.last_drill {
            out.push_str(&format!(" (last drill {}, run {})", last.at, last.run));
        }
        out.push('\n');
        for c in self.checks.iter().filter(|c| !c.ok) {
            out.push_str(&format!("  ✗ {}: {}: {}\n", c.stage, c.name, c.detail));
        }
        let seconds = |s: Option<f64>| {
            s.map_or("unknown".to_string(), |s| {
                short_duration((s * 1000.0) as Millis)
            })
        };
        if self.objectives.is_some() || self.forecast.rto_s.is_some() {
            out.push_str(&format!(
                "  forecast: RTO {}, RPO {}\n",
                seconds(self.forecast.rto_s),
                seconds(self.forecast.rpo_s)
            ));
        }
        for lag in &self.replica_lag {
            out.push_str(&format!(
                "  replica lag: {} {}\n",
                lag.target,
                short_duration((lag.seconds * 1000.0) as Millis)
            ));
        }
        if let Some(v) = &self.verified {
            out.push_str(&format!("  {}\n", v.words()));
        }
        if let (Some(next), Some(schedule)) = (&self.next_drill, &self.schedule) {
            out.push_str(&format!("  next drill {next} ({schedule})\n"));
        }
        out
    }
}

/// The checks a finished drill makes of the group.
pub fn checks_of(run: &Run) -> Vec<ReadinessCheck> {
    let mut out = Vec::new();
    for (planned, stage) in run.plan.iter().zip(&run.stages) {
        if let Some(report) = &stage.report {
            out.extend(report.checks.iter().map(|c| ReadinessCheck {
                stage: planned.name.clone(),
                name: c.name.clone(),
                ok: c.ok,
                detail: c.detail.clone(),
            }));
        }
        if stage.state == StageState::Failed {
            out.push(ReadinessCheck {
                stage: planned.name.clone(),
                name: "stage".into(),
                ok: false,
                detail: stage
                    .message
                    .clone()
                    .unwrap_or_else(|| "failed".to_string()),
            });
        }
    }
    out
}

/// A finished drill passed: it succeeded and every check it made (`checks_of`) held.
pub fn passed(run: &Run, checks: &[ReadinessCheck]) -> bool {
    run.state == RunState::Succeeded && checks.iter().all(|c| c.ok)
}

/// `group`'s readiness now (`now` places the next scheduled drill).
pub async fn of_group(
    store: &Store,
    catalog: &Catalog,
    group: &Group,
    now: Millis,
) -> anyhow::Result<Readiness> {
    let drills = store
        .find_runs(&RunFilter {
            group: Some(group.name.clone()),
            action: Some(Action::Drill),
            limit: LOOK_BACK,
            ..RunFilter::default()
        })
        .await?;
    let last_success = drills
        .iter()
        .find(|r| passed(r, &checks_of(r)))
        .map(|r| r.finished_at.unwrap_or(r.created_at));
    let last = drills.into_iter().find(|r| r.state.is_final());
    let (ready, checks, last_drill): (Option<bool>, Vec<ReadinessCheck>, Option<LastDrill>) =
        match &last {
            None => (None, Vec::new(), None),
            Some(run) => {
                let checks = checks_of(run);
                let ok = passed(run, &checks);
                let at = run.finished_at.unwrap_or(run.created_at);
                (
                    Some(ok),
                    checks,
                    Some(LastDrill {
                        run: run.id,
                        at: rfc3339(at),
                        ok,
                    }),
                )
            }
        };
    let forecast = forecast(store, catalog, group, last.as_ref()).await?;
    let mut checks = checks;
    let mut ready = ready;
    let objectives = group.objectives;
    for (name, objective, expected) in [
        ("rto", objectives.rto, forecast.rto_s),
        ("rpo", objectives.rpo, forecast.rpo_s),
    ] {
        let (Some(objective), Some(expected)) = (objective, expected) else {
            continue;
        };
        let limit = objective.as_secs_f64();
        let ok = expected <= limit;
        let words = |s: f64| short_duration((s * 1000.0) as Millis);
        let detail = if ok {
            format!(
                "expected {} ≤ the objective {}",
                words(expected),
                words(limit)
            )
        } else {
            format!(
                "expected {}, over the objective {} by {}",
                words(expected),
                words(limit),
                words(expected - limit)
            )
        };
        checks.push(ReadinessCheck {
            stage: "objectives".into(),
            name: name.into(),
            ok,
            detail,
        });
        if !ok {
            ready = Some(false);
        }
    }
    Ok(Readiness {
        group: group.name.clone(),
        ready,
        checks,
        last_drill,
        last_success,
        next_drill: group
            .drill
            .as_ref()
            .and_then(|d| d.next_after(now))
            .map(rfc3339),
        schedule: group.drill.as_ref().map(|d| d.to_string()),
        objectives: (objectives.rto.is_some() || objectives.rpo.is_some()).then(|| Targets {
            rto_s: objectives.rto.map(|d| d.as_secs_f64()),
            rpo_s: objectives.rpo.map(|d| d.as_secs_f64()),
        }),
        replica_lag: last.as_ref().map(replica_lag).unwrap_or_default(),
        forecast,
        verified: None,
    })
}

/// `group`'s readiness with whether it is verified: for people (the API, chat, the
/// command line); the metrics read `of_group` alone.
pub async fn full(
    store: &Store,
    catalog: &Catalog,
    group: &Group,
    now: Millis,
) -> anyhow::Result<Readiness> {
    let mut r = of_group(store, catalog, group, now).await?;
    r.verified = Some(verified(store, catalog, group, now).await?);
    Ok(r)
}

/// The lag each database stage of a drill measured before it would promote (or, where a
/// provider measures no lag apart, the recovery point).
fn replica_lag(run: &Run) -> Vec<ReplicaLag> {
    run.plan
        .iter()
        .zip(&run.stages)
        .filter_map(|(planned, stage)| {
            let report = stage.report.as_ref()?;
            let seconds = report.lag_s.or_else(|| report.rpo.as_ref()?.seconds)?;
            Some(ReplicaLag {
                stage: planned.name.clone(),
                target: planned.spec["cluster"]
                    .as_str()
                    .unwrap_or(&planned.name)
                    .to_string(),
                seconds,
            })
        })
        .collect()
}

/// The versions a failover of `group` would run with now, and its workflow's name.
pub fn current_versions(catalog: &Catalog, group: &Group) -> Option<(String, Versions)> {
    let plan = catalog
        .plan_for(&group.name, Action::Failover, &Params::new())
        .ok()?;
    let versions = catalog.versions(&plan.workflow, &plan.stages);
    Some((plan.workflow, versions))
}

/// What `run` would use if asked again today, as it was asked (its action and params).
fn versions_now(catalog: &Catalog, run: &Run) -> Option<Versions> {
    let asked = run.overrides.as_ref().unwrap_or(&run.params);
    let plan = catalog.plan_for(&run.group, run.action, asked).ok()?;
    (plan.workflow == run.workflow).then(|| catalog.versions(&plan.workflow, &plan.stages))
}

/// Notes, for each group's failover, the hashes this deployment runs now, so that a change
/// is dated from when a replica first ran with it.
pub async fn note_versions(store: &Store, catalog: &Catalog, now: Millis) -> anyhow::Result<()> {
    for g in catalog.groups.values() {
        if let Some((workflow, versions)) = current_versions(catalog, g) {
            store.saw_versions(&workflow, &versions, now).await?;
        }
    }
    Ok(())
}

/// Whether `group` is verified, and since what it is not.
pub async fn verified(
    store: &Store,
    catalog: &Catalog,
    group: &Group,
    now: Millis,
) -> anyhow::Result<Verified> {
    let unverified = |since: String| Verified {
        ok: false,
        since: Some(since),
        run: None,
        at: None,
        changed: Vec::new(),
    };
    let Some((workflow, _)) = current_versions(catalog, group) else {
        return Ok(unverified("no failover workflow plans".into()));
    };
    let mut recoveries = Vec::new();
    for action in [Action::Failover, Action::Failback] {
        recoveries.extend(
            store
                .find_runs(&RunFilter {
                    group: Some(group.name.clone()),
                    action: Some(action),
                    state: Some(RunState::Succeeded),
                    limit: LOOK_BACK,
                    ..RunFilter::default()
                })
                .await?
                .into_iter()
                .filter(|r| !r.dry_run && r.workflow == workflow),
        );
    }
    let Some(last) = recoveries
        .into_iter()
        .max_by_key(|r| r.finished_at.unwrap_or(r.created_at))
    else {
        return Ok(unverified(format!(
            "never failed over with workflow {workflow}"
        )));
    };
    let at = last.finished_at.unwrap_or(last.created_at);
    let Some(then) = store.run_versions(last.id).await? else {
        return Ok(Verified {
            run: Some(last.id),
            at: Some(rfc3339(at)),
            ..unverified(format!(
                "run {} recovered it before what runs was recorded",
                last.id
            ))
        });
    };
    // Set against what that same run (its action, with the params it was asked with)
    // would use today.
    let Some(current) = versions_now(catalog, &last) else {
        return Ok(Verified {
            run: Some(last.id),
            at: Some(rfc3339(at)),
            ..unverified(format!(
                "workflow {workflow} no longer plans as run {} asked it",
                last.id
            ))
        });
    };
    let mut changed = Vec::new();
    let mut words = Vec::new();
    for part in then.differing(&current) {
        let seen = match current.get(part) {
            Some(hash) => store.first_seen(&workflow, part, hash).await?,
            None => None,
        };
        let what = match part {
            VersionPart::Workflow => format!("workflow {workflow}"),
            other => format!("the {} of workflow {workflow}", other.as_str()),
        };
        words.push(match seen {
            Some(seen) => format!("{what} changed {}", ago(now - seen)),
            None => format!("{what} changed since run {} ({})", last.id, rfc3339(at)),
        });
        changed.push(Changed {
            part: part.as_str().into(),
            workflow: workflow.clone(),
            at: seen.map(rfc3339),
        });
    }
    Ok(Verified {
        ok: changed.is_empty(),
        since: (!words.is_empty()).then(|| words.join("; ")),
        run: Some(last.id),
        at: Some(rfc3339(at)),
        changed,
    })
}

async fn forecast(
    store: &Store,
    catalog: &Catalog,
    group: &Group,
    last_drill: Option<&Run>,
) -> anyhow::Result<Forecast> {
    let current = current_versions(catalog, group).map(|(w, _)| w);
    let failovers = store
        .find_runs(&RunFilter {
            group: Some(group.name.clone()),
            action: Some(Action::Failover),
            state: Some(RunState::Succeeded),
            limit: LOOK_BACK,
            ..RunFilter::default()
        })
        .await?;
    // The same version: the same workflow file, templates and targets as it runs now.
    let mut real = None;
    for run in failovers {
        let Some(workflow) = &current else {
            break;
        };
        if run.dry_run || &run.workflow != workflow {
            continue;
        }
        let then = store.run_versions(run.id).await?;
        if then.is_some() && then == versions_now(catalog, &run) {
            real = Some(run);
            break;
        }
    }
    let (rto_s, rto_from) = match real {
        Some(run) => {
            let audit = store.audit(run.id).await?;
            let card = crate::domain::scorecard::score(&run, &audit);
            (
                card.map(|c| c.critical_path_ms as f64 / 1000.0),
                Some(run.id),
            )
        }
        None => (None, None),
    };
    let rpo_s = last_drill.and_then(|run| {
        run.stages
            .iter()
            .filter_map(|s| s.report.as_ref()?.rpo.as_ref()?.seconds)
            .reduce(f64::max)
    });
    Ok(Forecast {
        rto_s,
        rto_from,
        rpo_s,
    })
}
