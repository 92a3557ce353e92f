//! Failback worked out from the record, for a group with no failback workflow: the reverse
//! of what its last successful failover changed, in reverse dependency order.
//! - dial: back to the region whose records the endpoint answered before;
//! - capacity: back to the replicas it had before;
//! - database: a planned switchover with no data loss back to the writer the promote
//!   took over from (fenced, caught up with, promoted from), then the other side made a
//!   replica again. The old writer must have been re-protected since.
//!
//! Stages that changed nothing (or that no agent reverses: exec, http, wait, approval)
//! are left out; what waited on them waits on what they waited on.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;

use serde_json::{Value, json};

use super::CreateRunError;
use crate::agents::providers::records;
use crate::domain::{Run, RunId, RunState, StageState};
use crate::store::Store;
use crate::workflow::{Action, Catalog, Plan, PlannedStage, TargetKind, Targets};

/// How many of a group's latest runs are searched for the failover a failback reverses,
/// and for a re-protect since.
const LOOKBACK: i64 = 200;

/// The failback of `group` worked out from its last successful failover in `store`, and
/// that failover's id.
pub async fn work_out(
    store: &Store,
    catalog: &Catalog,
    group: &str,
    force: bool,
) -> Result<(Plan, RunId), CreateRunError> {
    let runs = store
        .list_runs(Some(group), LOOKBACK)
        .await
        .map_err(|e| CreateRunError::Store(e.into()))?;
    let failover =
        last_failover(&runs).ok_or_else(|| Unreversible::NoFailover(group.to_string()))?;
    let approvals = catalog.groups.get(group).map_or(1, |g| g.approvals);
    let mut stages = reverse(
        failover,
        &runs,
        &catalog.targets,
        &|agent, spec| catalog.resource_of(agent, spec),
        approvals,
        force,
    )?;
    for s in stages.iter_mut().filter(|s| s.has_work()) {
        s.budgets = catalog.budgets_of(&s.agent, &s.spec);
    }
    let plan = Plan {
        workflow: workflow_name(failover.id),
        params: failover.params.clone(),
        stages,
    };
    Ok((plan, failover.id))
}

/// The name a worked-out failback's run carries as its workflow.
pub fn workflow_name(from: RunId) -> String {
    format!("{PREFIX}{from}")
}

/// How a worked-out failback's workflow name begins.
pub const PREFIX: &str = "failback from run ";

/// Why a failback cannot be worked out: what to do instead is in the words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unreversible {
    #[error(
        "group `{0}` has no failback workflow and no successful failover to reverse: fail over first, or write a failback workflow"
    )]
    NoFailover(String),
    #[error(
        "database `{database}` is not re-protected since run {run} failed it over: make it a replica of `{writer}` first (`/dr reprotect {group}`, or a `role: replica` stage)"
    )]
    NotReprotected {
        database: String,
        writer: String,
        group: String,
        run: RunId,
    },
    #[error("stage `{stage}` of run {run} cannot be reversed: {why}; write a failback workflow")]
    Stage {
        stage: String,
        run: RunId,
        why: String,
    },
}

/// The group's last successful real failover among `runs` (newest first).
pub fn last_failover(runs: &[Run]) -> Option<&Run> {
    runs.iter()
        .find(|r| r.action == Action::Failover && r.state == RunState::Succeeded && !r.dry_run)
}

/// One reversed step, before it is given its place in the plan.
struct Step {
    name: String,
    agent: String,
    spec: Value,
    /// The failover stage it reverses.
    of: usize,
    /// Steps of the same stage that run before it.
    after_own: Vec<usize>,
}

/// The failback of `failover`. `later` are the group's runs since (any order), where a
/// re-protect may have happened; `resource` gives a spec's lease key. Unless `force`, a
/// dial back expects the endpoint to answer what the failover left, and refuses drift.
pub fn reverse(
    failover: &Run,
    later: &[Run],
    targets: &Targets,
    resource: &dyn Fn(&str, &Value) -> Option<String>,
    approvals: u8,
    force: bool,
) -> Result<Vec<PlannedStage>, Unreversible> {
    let unreversible = |i: usize, why: String| Unreversible::Stage {
        stage: failover.plan[i].name.clone(),
        run: failover.id,
        why,
    };
    let mut steps: Vec<Step> = Vec::new();
    for (i, (p, s)) in failover.plan.iter().zip(&failover.stages).enumerate() {
        if s.state != StageState::Succeeded {
            continue;
        }
        let changes = s
            .report
            .as_ref()
            .map(|r| r.changes.as_slice())
            .unwrap_or(&[]);
        match (p.agent.as_str(), p.spec["role"].as_str()) {
            ("dial", _) if !changes.is_empty() => {
                let endpoint = p.spec["endpoint"].as_str().unwrap_or_default();
                let region = region_before(targets, endpoint, changes)
                    .map_err(|why| unreversible(i, why))?;
                let mut spec = p.spec.clone();
                spec["region"] = json!(region);
                if !force {
                    // Moved back only from what the failover left it answering.
                    let left: serde_json::Map<String, Value> = changes
                        .iter()
                        .map(|c| {
                            let kind = c.target.rsplit(' ').next().unwrap_or_default();
                            (kind.to_string(), json!(c.to))
                        })
                        .collect();
                    spec["expect"] = Value::Object(left);
                }
                steps.push(Step {
                    name: format!("back-{}", p.name),
                    agent: p.agent.clone(),
                    spec,
                    of: i,
                    after_own: Vec::new(),
                });
            }
            ("capacity", _) if !changes.is_empty() => {
                let before = changes
                    .iter()
                    .find(|c| {
                        [" replicas", "minReplicas", " desired capacity"]
                            .iter()
                            .any(|end| c.target.ends_with(end))
                    })
                    .map(|c| c.from.clone())
                    .unwrap_or_default();
                let replicas: u32 = before.trim().parse().map_err(|_| {
                    unreversible(
                        i,
                        format!("its replicas before are not recorded (`{before}`)"),
                    )
                })?;
                let mut spec = p.spec.clone();
                spec["replicas"] = json!(replicas);
                steps.push(Step {
                    name: format!("back-{}", p.name),
                    agent: p.agent.clone(),
                    spec,
                    of: i,
                    after_own: Vec::new(),
                });
            }
            ("database", Some("writer")) if !changes.is_empty() => {
                let promoted = p.spec["cluster"].as_str().unwrap_or_default().to_string();
                let Some(old) = writer_replaced(failover, i) else {
                    return Err(unreversible(
                        i,
                        format!(
                            "which writer `{promoted}` took over from is not recorded: give the promote `from:`"
                        ),
                    ));
                };
                if !reprotected(failover, later, &old, &promoted) {
                    return Err(Unreversible::NotReprotected {
                        database: old,
                        writer: promoted,
                        group: failover.group.clone(),
                        run: failover.id,
                    });
                }
                let first = steps.len();
                steps.push(Step {
                    name: format!("back-{}", p.name),
                    agent: p.agent.clone(),
                    spec: json!({ "cluster": old, "role": "writer", "from": promoted, "switchover": true }),
                    of: i,
                    after_own: Vec::new(),
                });
                steps.push(Step {
                    name: format!("reprotect-{promoted}"),
                    agent: p.agent.clone(),
                    spec: json!({ "cluster": promoted, "role": "replica", "source": old }),
                    of: i,
                    after_own: vec![first],
                });
            }
            _ => {}
        }
    }
    Ok(place(failover, steps, resource, approvals))
}

/// The region of endpoint `name` whose records are the `from` side of every change.
fn region_before(
    targets: &Targets,
    name: &str,
    changes: &[crate::domain::Change],
) -> Result<String, String> {
    let target = targets.get(TargetKind::Endpoint, name)?;
    let regions: records::Regions =
        serde_json::from_value(target.fields["regions"].clone()).unwrap_or_default();
    if regions.is_empty() {
        return Err(format!(
            "endpoint `{name}` lists no regions in targets.yaml, so the records it answered before name none"
        ));
    }
    let matches = |sets: &IndexMap<records::RecordKind, Vec<String>>| {
        changes.iter().all(|c| {
            let kind = c.target.rsplit(' ').next().unwrap_or_default();
            let listed = sets
                .iter()
                .find(|(k, _)| k.to_string() == kind)
                .map(|(_, v)| v.join(", "))
                .unwrap_or_default();
            records::same_values(&listed, &c.from)
        })
    };
    let mut found: Vec<&String> = regions
        .iter()
        .filter(|(_, sets)| matches(sets))
        .map(|(r, _)| r)
        .collect();
    found.sort();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "endpoint `{name}` answered {} before, which no region of it lists",
            changes
                .iter()
                .map(|c| c.from.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )),
        many => Err(format!(
            "endpoint `{name}`'s records before fit several regions ({})",
            many.iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The writer promote stage `i` took over from: its `from`, or the database a demote in
/// the same run fenced.
fn writer_replaced(run: &Run, i: usize) -> Option<String> {
    if let Some(from) = run.plan[i].spec["from"].as_str() {
        return Some(from.to_string());
    }
    let promoted = run.plan[i].spec["cluster"].as_str()?;
    run.plan
        .iter()
        .filter(|p| p.agent == "database" && p.spec["role"] == "reader")
        .filter_map(|p| p.spec["cluster"].as_str())
        .find(|c| *c != promoted)
        .map(str::to_string)
}

/// Whether `old` was made a replica of `writer` by the failover itself or a real run since.
fn reprotected(failover: &Run, later: &[Run], old: &str, writer: &str) -> bool {
    std::iter::once(failover)
        .chain(
            later
                .iter()
                .filter(|r| r.id > failover.id && !r.dry_run && r.group == failover.group),
        )
        .any(|r| {
            r.plan.iter().zip(&r.stages).any(|(p, s)| {
                s.state == StageState::Succeeded
                    && p.agent == "database"
                    && p.spec["role"] == "replica"
                    && p.spec["cluster"] == old
                    && p.spec["source"] == writer
            })
        })
}

/// The steps as planned stages, in reverse dependency order: a step of stage `s` waits for
/// the steps of every stage that waited on `s` in the failover (or, where such a stage has
/// no step, for what that stage's dependents reverse to).
fn place(
    failover: &Run,
    steps: Vec<Step>,
    resource: &dyn Fn(&str, &Value) -> Option<String>,
    approvals: u8,
) -> Vec<PlannedStage> {
    let n = failover.plan.len();
    // Who waited on each failover stage.
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (j, p) in failover.plan.iter().enumerate() {
        for &d in &p.after {
            if d < n {
                dependents[d].push(j);
            }
        }
    }
    let steps_of = |i: usize| -> Vec<usize> {
        steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.of == i)
            .map(|(k, _)| k)
            .collect()
    };
    // The last steps of the stages that must be reversed before `i` is.
    fn before(
        i: usize,
        dependents: &[Vec<usize>],
        steps_of: &dyn Fn(usize) -> Vec<usize>,
        seen: &mut Vec<bool>,
        out: &mut BTreeSet<usize>,
    ) {
        for &j in &dependents[i] {
            if std::mem::replace(&mut seen[j], true) {
                continue;
            }
            let own = steps_of(j);
            match own.last() {
                Some(&last) => {
                    out.insert(last);
                }
                None => before(j, dependents, steps_of, seen, out),
            }
        }
    }
    let mut waits: Vec<BTreeSet<usize>> = Vec::with_capacity(steps.len());
    for step in &steps {
        let mut out: BTreeSet<usize> = step.after_own.iter().copied().collect();
        if step.after_own.is_empty() {
            let mut seen = vec![false; n];
            before(step.of, &dependents, &steps_of, &mut seen, &mut out);
        }
        waits.push(out);
    }
    // Kahn's order over the steps' waits, so that each waits only on stages before it.
    let mut order: Vec<usize> = Vec::with_capacity(steps.len());
    let mut placed = vec![false; steps.len()];
    while order.len() < steps.len() {
        let Some(next) = (0..steps.len())
            .rev()
            .find(|&k| !placed[k] && waits[k].iter().all(|&w| placed[w]))
        else {
            break; // a cycle cannot arise from a DAG reversed; stop rather than loop
        };
        placed[next] = true;
        order.push(next);
    }
    let position: HashMap<usize, usize> = order.iter().enumerate().map(|(p, &k)| (k, p)).collect();
    order
        .iter()
        .map(|&k| {
            let step = &steps[k];
            let was = &failover.plan[step.of];
            PlannedStage {
                name: step.name.clone(),
                agent: step.agent.clone(),
                after: waits[k]
                    .iter()
                    .filter_map(|w| position.get(w).copied())
                    .collect(),
                resource: resource(&step.agent, &step.spec),
                spec: step.spec.clone(),
                retry: was.retry,
                timeout: was.timeout,
                approval: was.approval,
                approvals,
                budgets: Vec::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Change, Report, fixture};

    /// The fixture's shape as a real failover: scale (capacity), a gate, then a promote.
    fn failover(scale_from: &str) -> Run {
        let mut run = fixture::run();
        run.dry_run = false;
        run.plan[0].spec = json!({ "cluster": "k8s-a", "namespace": "shop", "replicas": 6 });
        run.stages[0].report = Some(Report {
            changes: vec![Change {
                target: "k8s-a/shop/all workloads replicas".into(),
                from: scale_from.into(),
                to: "6".into(),
            }],
            ..Report::default()
        });
        run.plan[2].name = "promote".into();
        run.plan[2].agent = "database".into();
        run.plan[2].spec = json!({ "cluster": "db-a", "role": "writer", "from": "db-b" });
        run.stages[2].report = Some(Report {
            changes: vec![Change {
                target: "db-a".into(),
                from: "replica".into(),
                to: "writer".into(),
            }],
            ..Report::default()
        });
        run
    }

    fn reprotected(after: &Run) -> Run {
        let mut later = fixture::run();
        later.id = RunId::new();
        later.dry_run = false;
        later.plan.truncate(1);
        later.stages.truncate(1);
        later.plan[0].agent = "database".into();
        later.plan[0].spec = json!({ "cluster": "db-b", "role": "replica", "source": "db-a" });
        assert!(later.id > after.id);
        later
    }

    fn none(_: &str, _: &Value) -> Option<String> {
        None
    }

    #[test]
    fn a_failover_reverses_to_a_switchover_back_then_the_capacity_it_had() {
        let run = failover("2");
        let later = [reprotected(&run)];
        let stages = reverse(&run, &later, &Targets::default(), &none, 2, false).expect("reversed");
        let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["back-promote", "reprotect-db-a", "back-scale"]);
        let back = &stages[0];
        assert_eq!(
            back.spec,
            json!({ "cluster": "db-b", "role": "writer", "from": "db-a", "switchover": true })
        );
        assert!(back.approval, "the gate the promote had is kept");
        assert_eq!(back.approvals, 2);
        assert_eq!(stages[1].after, [0], "re-protected once switched over");
        assert_eq!(stages[2].spec["replicas"], 2);
        assert_eq!(
            stages[2].after,
            [1],
            "scaled back once the database is back"
        );
    }

    #[test]
    fn what_cannot_be_reversed_is_refused_with_why() {
        let run = failover("2");
        assert_eq!(
            reverse(&run, &[], &Targets::default(), &none, 1, false).expect_err("not re-protected"),
            Unreversible::NotReprotected {
                database: "db-b".into(),
                writer: "db-a".into(),
                group: "petstore".into(),
                run: run.id,
            }
        );
        let run = failover("current");
        let later = [reprotected(&run)];
        let refused =
            reverse(&run, &later, &Targets::default(), &none, 1, false).expect_err("capacity");
        assert!(
            refused
                .to_string()
                .contains("its replicas before are not recorded (`current`)"),
            "{refused}"
        );
        let mut run = failover("2");
        run.plan[2].spec = json!({ "cluster": "db-a", "role": "writer" });
        let refused =
            reverse(&run, &later, &Targets::default(), &none, 1, false).expect_err("no from");
        assert!(
            refused.to_string().contains("give the promote `from:`"),
            "{refused}"
        );
        assert!(
            last_failover(&[fixture::run()]).is_none(),
            "a dry run reverses nothing"
        );
    }
}
