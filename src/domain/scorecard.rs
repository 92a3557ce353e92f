//! A finished run's recovery-time scorecard: the total, the critical path (the longest
//! chain of stages, each waiting on the one before it), Lifeboat's own overhead (the total
//! minus that path), and the time spent waiting on people at approval gates.

use serde::Serialize;

use super::event::{Audit, EventKind};
use super::report::RecoveryPoint;
use super::run::Run;
use crate::clock::Millis;
use crate::workflow::Objectives;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scorecard {
    pub total_ms: i64,
    pub critical_path: Vec<String>,
    pub critical_path_ms: i64,
    /// Total minus the critical path: dispatch, retries' backoff, Lifeboat's own work.
    pub overhead_ms: i64,
    pub waiting_on_people_ms: i64,
    /// Time stages waited for a budget (`limits:`) before their work began, summed.
    #[serde(skip_serializing_if = "is_zero")]
    pub waiting_for_budget_ms: i64,
    pub stages: Vec<StageTime>,
    /// The writes the run's promotes lost (the largest, when it promoted several).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpo: Option<RecoveryPoint>,
}

fn is_zero(ms: &i64) -> bool {
    *ms == 0
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageTime {
    pub name: String,
    /// From the stage's start (its gate's opening, for a gated stage) to its end.
    pub ms: i64,
    pub waiting_on_people_ms: i64,
    pub on_critical_path: bool,
}

/// A scorecard beside the group's previous run and last drill of the same action, and
/// against the group's objectives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recovery {
    pub card: Scorecard,
    pub previous: Option<Earlier>,
    pub last_drill: Option<Earlier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objectives: Option<ObjectivesMet>,
}

/// A run's recovery time and point set against its group's objectives.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ObjectivesMet {
    pub rto_s: Option<f64>,
    pub rpo_s: Option<f64>,
    pub rto_met: Option<bool>,
    /// `None` also when the run measured no recovery point.
    pub rpo_met: Option<bool>,
}

impl Scorecard {
    /// Set against `objectives`; `None` when the group sets none.
    pub fn against(&self, objectives: &Objectives) -> Option<ObjectivesMet> {
        if objectives.rto.is_none() && objectives.rpo.is_none() {
            return None;
        }
        let rto_s = self.total_ms as f64 / 1000.0;
        let rpo_s = self.rpo.as_ref().and_then(|r| r.seconds);
        Some(ObjectivesMet {
            rto_s: objectives.rto.map(|d| d.as_secs_f64()),
            rpo_s: objectives.rpo.map(|d| d.as_secs_f64()),
            rto_met: objectives.rto.map(|d| rto_s <= d.as_secs_f64()),
            rpo_met: objectives
                .rpo
                .and_then(|d| rpo_s.map(|r| r <= d.as_secs_f64())),
        })
    }
}

/// An earlier run of the same group and action, and its total recovery time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Earlier {
    pub run: super::RunId,
    pub total_ms: i64,
}

impl Earlier {
    /// The earlier finished runs of `run`'s group and action among `runs` (newest first):
    /// the previous real one and the last drill.
    pub fn of(run: &Run, runs: &[Run]) -> (Option<Earlier>, Option<Earlier>) {
        let earlier = |dry_run: bool| {
            runs.iter()
                .filter(|r| {
                    r.id < run.id
                        && r.action == run.action
                        && r.dry_run == dry_run
                        && r.group == run.group
                })
                .find_map(|r| {
                    Some(Earlier {
                        run: r.id,
                        total_ms: (r.finished_at? - r.created_at).max(0),
                    })
                })
        };
        (earlier(false), earlier(true))
    }
}

impl Recovery {
    /// The scorecard as lines of plain text, as the terminal and the chat card show it.
    pub fn lines(&self) -> Vec<String> {
        use crate::clock::short_duration;
        let c = &self.card;
        let mut out = vec![
            format!(
                "critical path: {} ({})",
                c.critical_path.join(" → "),
                short_duration(c.critical_path_ms)
            ),
            format!("Lifeboat's overhead: {}", short_duration(c.overhead_ms)),
            format!(
                "waiting on people: {}",
                short_duration(c.waiting_on_people_ms)
            ),
        ];
        if c.waiting_for_budget_ms > 0 {
            out.push(format!(
                "waiting for budget: {}",
                short_duration(c.waiting_for_budget_ms)
            ));
        }
        if let Some(rpo) = &c.rpo {
            out.push(format!("recovery point: {}", rpo.loss()));
        }
        if let Some(o) = &self.objectives {
            let seconds = |s: f64| short_duration((s * 1000.0) as i64);
            let mark = |met: bool| if met { "✓ met" } else { "✗ missed" };
            if let (Some(limit), Some(met)) = (o.rto_s, o.rto_met) {
                out.push(format!(
                    "RTO objective {}: {} ({})",
                    seconds(limit),
                    mark(met),
                    short_duration(c.total_ms)
                ));
            }
            if let Some(limit) = o.rpo_s {
                out.push(match o.rpo_met {
                    Some(met) => format!("RPO objective {}: {}", seconds(limit), mark(met)),
                    None => format!("RPO objective {}: not measured", seconds(limit)),
                });
            }
        }
        for (what, earlier) in [
            ("previous run", &self.previous),
            ("last drill", &self.last_drill),
        ] {
            if let Some(e) = earlier {
                let diff = c.total_ms - e.total_ms;
                out.push(format!(
                    "{what}: {} ({}{} now)",
                    short_duration(e.total_ms),
                    if diff >= 0 { "+" } else { "-" },
                    short_duration(diff.abs()),
                ));
            }
        }
        out
    }
}

/// The scorecard of a finished run; `None` while it runs. `audit` is the run's own log,
/// from which the gates' waits are read.
pub fn score(run: &Run, audit: &[Audit]) -> Option<Scorecard> {
    let end = run.finished_at?;
    let total_ms = (end - run.created_at).max(0);
    let n = run.plan.len();
    let mut gate_opened: Vec<Option<Millis>> = vec![None; n];
    let mut people: Vec<i64> = vec![0; n];
    for a in audit {
        let Some(i) = a.stage.as_deref().and_then(|s| run.stage_index(s)) else {
            continue;
        };
        match a.kind {
            EventKind::ApprovalRequested => gate_opened[i] = Some(a.at),
            EventKind::StageApproved | EventKind::StageRejected => {
                if let Some(open) = gate_opened[i] {
                    people[i] += (a.at - open).max(0);
                }
            }
            _ => {}
        }
    }
    let span: Vec<i64> = (0..n)
        .map(|i| {
            let s = &run.stages[i];
            // A gate its agent raised opened after the stage began.
            let begin = match (gate_opened[i], s.started_at) {
                (Some(g), Some(st)) => Some(g.min(st)),
                (g, st) => g.or(st),
            };
            match (begin, s.finished_at) {
                (Some(b), Some(f)) => (f - b).max(0),
                _ => 0,
            }
        })
        .collect();
    // Longest chain ending at each stage, over the plan's `after` edges (a DAG: validated).
    let mut best: Vec<Option<(i64, Option<usize>)>> = vec![None; n];
    fn longest(
        i: usize,
        run: &Run,
        span: &[i64],
        best: &mut Vec<Option<(i64, Option<usize>)>>,
    ) -> i64 {
        if let Some((v, _)) = best[i] {
            return v;
        }
        let mut before: Option<(i64, usize)> = None;
        for &j in &run.plan[i].after {
            let v = longest(j, run, span, best);
            if before.is_none_or(|(b, _)| v > b) {
                before = Some((v, j));
            }
        }
        let v = span[i] + before.map_or(0, |(b, _)| b);
        best[i] = Some((v, before.map(|(_, j)| j)));
        v
    }
    let mut last: Option<(i64, usize)> = None;
    for i in 0..n {
        let v = longest(i, run, &span, &mut best);
        if last.is_none_or(|(b, _)| v > b) {
            last = Some((v, i));
        }
    }
    let mut path = Vec::new();
    let mut at = last.map(|(_, i)| i);
    while let Some(i) = at {
        path.push(i);
        at = best[i].and_then(|(_, prev)| prev);
    }
    path.reverse();
    let critical_path_ms = last.map_or(0, |(v, _)| v);
    Some(Scorecard {
        total_ms,
        critical_path: path.iter().map(|&i| run.plan[i].name.clone()).collect(),
        critical_path_ms,
        overhead_ms: (total_ms - critical_path_ms).max(0),
        waiting_on_people_ms: people.iter().sum(),
        waiting_for_budget_ms: run
            .stages
            .iter()
            .filter_map(|s| s.report.as_ref()?.budget_wait_s)
            .map(|s| (s * 1000.0) as i64)
            .sum(),
        stages: (0..n)
            .map(|i| StageTime {
                name: run.plan[i].name.clone(),
                ms: span[i],
                waiting_on_people_ms: people[i],
                on_critical_path: path.contains(&i),
            })
            .collect(),
        rpo: run
            .stages
            .iter()
            .filter_map(|s| s.report.as_ref()?.rpo.clone())
            .max_by(|a, b| {
                let key = |r: &RecoveryPoint| (r.seconds.unwrap_or(f64::INFINITY), r.bytes);
                key(a)
                    .partial_cmp(&key(b))
                    .unwrap_or(std::cmp::Ordering::Equal)
            }),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{Actor, RunId, RunState, StageRun, StageState};
    use crate::workflow::{Action, Params, PlannedStage, RetryPolicy};

    fn planned(name: &str, after: Vec<usize>, approval: bool) -> PlannedStage {
        PlannedStage {
            name: name.into(),
            agent: "noop".into(),
            after,
            spec: serde_json::json!({}),
            resource: None,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(60),
            approval,
            approvals: 1,
            budgets: Vec::new(),
        }
    }

    fn ran(started: i64, finished: i64) -> StageRun {
        StageRun {
            state: StageState::Succeeded,
            attempts: 1,
            started_at: Some(started),
            finished_at: Some(finished),
            ..StageRun::default()
        }
    }

    fn gate(kind: EventKind, at: i64) -> Audit {
        Audit {
            at,
            actor: Actor::System,
            kind,
            stage: Some("dial".into()),
            attempt: Some(0),
            message: None,
        }
    }

    #[test]
    fn the_critical_path_is_the_longest_chain_and_the_rest_is_overhead() {
        // prescale 2 s, then promote (1 s) and migrate (5 s) side by side, then a dial
        // behind a gate a person took 2 s to pass, which then ran 1 s.
        let run = Run {
            id: RunId::new(),
            group: "shop".into(),
            action: Action::Failover,
            workflow: "shop".into(),
            dry_run: false,
            reason: None,
            requested_by: Actor::System,
            params: Params::new(),
            overrides: None,
            state: RunState::Succeeded,
            created_at: 0,
            started_at: Some(0),
            finished_at: Some(10_500),
            message: None,
            plan: vec![
                planned("prescale", vec![], false),
                planned("promote", vec![0], false),
                planned("migrate", vec![0], false),
                planned("dial", vec![1, 2], true),
            ],
            stages: vec![
                ran(0, 2_000),
                ran(2_000, 3_000),
                ran(2_000, 7_000),
                ran(9_000, 10_000),
            ],
            version: 1,
        };
        let audit = [
            gate(EventKind::ApprovalRequested, 7_000),
            gate(EventKind::StageApproved, 9_000),
        ];
        let card = score(&run, &audit).expect("a finished run");
        assert_eq!(card.total_ms, 10_500);
        assert_eq!(card.critical_path, ["prescale", "migrate", "dial"]);
        assert_eq!(card.critical_path_ms, 2_000 + 5_000 + 3_000);
        assert_eq!(card.overhead_ms, 500);
        assert_eq!(card.waiting_on_people_ms, 2_000);
        let on: Vec<bool> = card.stages.iter().map(|s| s.on_critical_path).collect();
        assert_eq!(on, [true, false, true, true]);

        let mut running = run.clone();
        running.finished_at = None;
        assert!(
            score(&running, &audit).is_none(),
            "no scorecard before the end"
        );

        // Against objectives: 10.5 s within an RTO of 15 s; no recovery point measured.
        let objectives = Objectives {
            rto: Some(std::time::Duration::from_secs(15)),
            rpo: Some(std::time::Duration::from_secs(30)),
        };
        let met = card.against(&objectives).expect("objectives set");
        assert_eq!(met.rto_met, Some(true));
        assert_eq!(met.rpo_met, None);
        assert_eq!(card.against(&Objectives::default()), None);
        let lines = Recovery {
            card: card.clone(),
            previous: None,
            last_drill: None,
            objectives: card.against(&Objectives {
                rto: Some(std::time::Duration::from_secs(10)),
                ..objectives
            }),
        }
        .lines();
        assert!(
            lines.contains(&"RTO objective 10.0s: ✗ missed (10.5s)".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"RPO objective 30.0s: not measured".to_string()),
            "{lines:?}"
        );
    }
}
