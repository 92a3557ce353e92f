//! The state machine's invariants under random histories: small random plans (2 to 6
//! stages, some behind approval gates) fed random inputs, including stale and duplicated
//! lease outcomes, timers, people's decisions and redeliveries of earlier inputs in any
//! order, with every invariant checked after every step. The bus delivers at least once
//! and in no particular order, so the machine must hold up against any interleaving,
//! not only the ones the example tests think of.

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;

use super::backoff;
use super::machine::{Ctx, Input, Outcome, Refusal, Transition, apply};
use super::tests::run_of;
use crate::domain::{Actor, EventKind, Run, RunState, StageState};
use crate::workflow::{PlannedStage, RetryPolicy};

/// What stands in front of a stage's work.
#[derive(Clone, Copy, Debug)]
enum Gate {
    None,
    /// Work behind an approval.
    Gated,
    /// An approval stage: the approval is all of its work.
    ApprovalOnly,
}

#[derive(Clone, Debug)]
struct StageShape {
    /// Which earlier stages it waits for, by position: only earlier ones, so the plan is
    /// a DAG.
    after: Vec<bool>,
    gate: Gate,
    max_attempts: u32,
    /// 2 is four eyes.
    approvals: u8,
}

#[derive(Clone, Debug)]
struct Shape {
    stages: Vec<StageShape>,
    dry_run: bool,
}

fn shape() -> impl Strategy<Value = Shape> {
    let stage = (
        prop::collection::vec(any::<bool>(), 6),
        prop_oneof![
            3 => Just(Gate::None),
            1 => Just(Gate::Gated),
            1 => Just(Gate::ApprovalOnly),
        ],
        1u32..=3,
        prop_oneof![3 => Just(1u8), 1 => Just(2u8)],
    )
        .prop_map(|(after, gate, max_attempts, approvals)| StageShape {
            after,
            gate,
            max_attempts,
            approvals,
        });
    (
        prop::collection::vec(stage, 2..=6),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(stages, dry_run)| Shape { stages, dry_run })
}

fn run(shape: &Shape) -> Run {
    let plan: Vec<PlannedStage> = shape
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| PlannedStage {
            name: format!("s{i}"),
            agent: match s.gate {
                Gate::ApprovalOnly => "approval".into(),
                Gate::None | Gate::Gated => "database".into(),
            },
            after: (0..i).filter(|&d| s.after[d]).collect(),
            spec: serde_json::json!({}),
            resource: None,
            retry: RetryPolicy {
                max_attempts: s.max_attempts,
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(30),
            },
            timeout: Duration::from_secs(60),
            approval: !matches!(s.gate, Gate::None),
            approvals: s.approvals,
            budgets: Vec::new(),
        })
        .collect();
    let mut run = run_of(plan);
    run.dry_run = shape.dry_run;
    run
}

/// Which attempt an outcome or acceptance names, relative to the stage's current one.
#[derive(Clone, Copy, Debug)]
enum Attempt {
    Current,
    /// An earlier attempt's, arriving late.
    Stale(u32),
    /// One not started yet: a forgery, or a bug upstream.
    Ahead(u32),
}

#[derive(Clone, Copy, Debug)]
enum Lease {
    Succeeded,
    Retryable,
    Permanent,
    Expired,
    Revoked,
    /// A data-loss gate the agent raised; `true`: no loss allowed (two people).
    Held(bool),
}

/// A stage, chosen when the op is applied: with `live`, among those the op can act on
/// now (in flight, waiting out a backoff, failed, at an open gate), so that histories
/// get somewhere; otherwise any stage.
#[derive(Clone, Copy, Debug)]
struct Pick {
    at: Index,
    live: bool,
}

/// One step of a history, resolved into an `Input` against the run as it is then.
#[derive(Clone, Debug)]
enum Op {
    Start,
    Accepted {
        stage: Pick,
        attempt: Attempt,
    },
    Outcome {
        stage: Pick,
        attempt: Attempt,
        lease: Lease,
    },
    /// Time passes by this many milliseconds, then the timers are looked at.
    Tick(i64),
    Approve {
        stage: Option<Pick>,
        person: Index,
    },
    Reject,
    Cancel,
    Resume,
    RetryNow(Pick),
    Skip(Pick),
    /// The input delivered just before, delivered again.
    Again,
    /// Any input delivered before, delivered again now, after whatever followed it.
    Redeliver(Index),
}

const PEOPLE: [&str; 4] = ["alice", "bob", "carol", "test"];
const REQUESTER: &str = "test";

fn pick() -> impl Strategy<Value = Pick> {
    (any::<Index>(), prop::bool::weighted(0.85)).prop_map(|(at, live)| Pick { at, live })
}

fn attempt() -> impl Strategy<Value = Attempt> {
    prop_oneof![
        6 => Just(Attempt::Current),
        2 => (1u32..=3).prop_map(Attempt::Stale),
        1 => (1u32..=2).prop_map(Attempt::Ahead),
    ]
}

fn lease() -> impl Strategy<Value = Lease> {
    prop_oneof![
        5 => Just(Lease::Succeeded),
        2 => Just(Lease::Retryable),
        1 => Just(Lease::Permanent),
        1 => Just(Lease::Expired),
        1 => Just(Lease::Revoked),
        1 => any::<bool>().prop_map(Lease::Held),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Start),
        2 => (pick(), attempt()).prop_map(|(stage, attempt)| Op::Accepted { stage, attempt }),
        8 => (pick(), attempt(), lease()).prop_map(|(stage, attempt, lease)| Op::Outcome {
            stage,
            attempt,
            lease
        }),
        3 => prop::sample::select(&[0i64, 1, 999, 1_000, 2_000, 30_000, 61_000, 3_600_000][..])
            .prop_map(Op::Tick),
        3 => (prop::option::weighted(0.3, pick()), any::<Index>())
            .prop_map(|(stage, person)| Op::Approve { stage, person }),
        1 => Just(Op::Reject),
        1 => Just(Op::Cancel),
        2 => Just(Op::Resume),
        1 => pick().prop_map(Op::RetryNow),
        2 => pick().prop_map(Op::Skip),
        2 => Just(Op::Again),
        2 => any::<Index>().prop_map(Op::Redeliver),
    ]
}

/// The stage a pick names: among `live` ones when asked and there are any.
fn choose(run: &Run, pick: Pick, live: impl Fn(usize) -> bool) -> usize {
    let candidates: Vec<usize> = (0..run.stages.len()).filter(|&i| live(i)).collect();
    if pick.live && !candidates.is_empty() {
        *pick.at.get(&candidates)
    } else {
        pick.at.index(run.stages.len())
    }
}

fn numbered(run: &Run, stage: usize, attempt: Attempt) -> u32 {
    let current = run.stages[stage].attempts;
    match attempt {
        Attempt::Current => current,
        Attempt::Stale(back) => current.saturating_sub(back),
        Attempt::Ahead(on) => current + on,
    }
}

fn person(name: &str) -> Actor {
    Actor::Api(name.into())
}

/// The input an op stands for now; `None` when it is a redelivery with nothing before it.
fn input(op: &Op, run: &Run, now: &mut i64, delivered: &[Input]) -> Option<Input> {
    let in_flight = |i: usize| run.stages[i].state.in_flight();
    Some(match op {
        Op::Start => Input::Start,
        Op::Accepted { stage, attempt } => {
            let stage = choose(run, *stage, |i| {
                run.stages[i].state == StageState::Dispatched
            });
            Input::Accepted {
                stage,
                attempt: numbered(run, stage, *attempt),
                agent: Actor::Agent("agent-1".into()),
            }
        }
        Op::Outcome {
            stage,
            attempt,
            lease,
        } => {
            let stage = choose(run, *stage, in_flight);
            let outcome = match lease {
                Lease::Succeeded => Outcome::Succeeded { message: None },
                Lease::Retryable => Outcome::Failed {
                    retryable: true,
                    message: "try again".into(),
                },
                Lease::Permanent => Outcome::Failed {
                    retryable: false,
                    message: "never".into(),
                },
                Lease::Expired => Outcome::Expired,
                Lease::Revoked => Outcome::Revoked,
                Lease::Held(_) => Outcome::Held {
                    message: "promoting now loses about 4 s of writes (measured)".into(),
                },
            };
            let report = match lease {
                Lease::Held(no_loss) => Some(crate::domain::Report {
                    rpo: Some(crate::domain::RecoveryPoint {
                        seconds: Some(4.0),
                        bytes: None,
                        basis: crate::domain::Basis::Measured,
                        limit: Some(if *no_loss { 0.0 } else { 1.0 }),
                    }),
                    ..Default::default()
                }),
                _ => None,
            };
            Input::Outcome {
                stage,
                attempt: numbered(run, stage, *attempt),
                outcome,
                actor: Actor::Agent("agent-1".into()),
                report,
                // Outcomes of work that ended before its agent said it started.
                started: (!matches!(lease, Lease::Expired | Lease::Revoked)).then_some(*now),
            }
        }
        Op::Tick(ms) => {
            *now += ms;
            Input::Tick
        }
        Op::Approve { stage, person: who } => {
            let gates = run.open_gates();
            let name = *who.get(&PEOPLE);
            Input::Approve {
                actor: person(name),
                stage: stage.map(|p| choose(run, p, |i| gates.contains(&i))),
                person: name.into(),
                requester: REQUESTER.into(),
            }
        }
        Op::Reject => Input::Reject {
            actor: person("alice"),
            reason: Some("not now".into()),
        },
        Op::Cancel => Input::Cancel {
            actor: person("bob"),
            reason: None,
        },
        Op::Resume => Input::Resume {
            actor: person("carol"),
            message: None,
        },
        Op::RetryNow(p) => Input::RetryNow {
            actor: person("alice"),
            stage: choose(run, *p, |i| run.stages[i].state == StageState::Retrying),
        },
        Op::Skip(p) => Input::Skip {
            actor: person("bob"),
            stage: choose(run, *p, |i| {
                matches!(
                    run.stages[i].state,
                    StageState::Failed | StageState::Retrying
                )
            }),
            reason: "done by hand".into(),
        },
        Op::Again => delivered.last()?.clone(),
        Op::Redeliver(which) => {
            if delivered.is_empty() {
                return None;
            }
            which.get(delivered).clone()
        }
    })
}

/// What the history so far has seen.
struct Seen {
    /// Per stage: moves into `succeeded`, by watching the state.
    succeeded: Vec<u32>,
    /// Per stage: `stage.succeeded` audit records.
    audited: Vec<u32>,
}

fn check(
    before: &Run,
    after: &Run,
    input: &Input,
    result: &Result<Transition, Refusal>,
    seen: &mut Seen,
) -> Result<(), TestCaseError> {
    let t = match result {
        Ok(t) => t,
        Err(why) => {
            // `apply` promises that a refused input changes nothing.
            prop_assert_eq!(before, after, "refused ({}) yet the run changed", why);
            return Ok(());
        }
    };
    for (i, (was, is)) in before.stages.iter().zip(&after.stages).enumerate() {
        if was.state != StageState::Succeeded && is.state == StageState::Succeeded {
            seen.succeeded[i] += 1;
        }
        prop_assert!(
            seen.succeeded[i] <= 1,
            "stage s{} succeeded a second time",
            i
        );
        prop_assert!(
            is.attempts >= was.attempts,
            "stage s{}'s attempt went back from {} to {}",
            i,
            was.attempts,
            is.attempts
        );
    }
    for (i, s) in after.stages.iter().enumerate() {
        // Writes are given up only as the gate's people agreed.
        if s.state.in_flight() && s.hold.is_some() {
            prop_assert!(
                s.approved_by.is_some()
                    && s.approvals.len() >= usize::from(after.approvals_needed(i)),
                "stage s{} runs past its data-loss gate with {} of {} approvals",
                i,
                s.approvals.len(),
                after.approvals_needed(i)
            );
        }
    }
    for a in &t.audit {
        if a.kind != EventKind::Stage(StageState::Succeeded) {
            continue;
        }
        let i = a
            .stage
            .as_deref()
            .and_then(|name| after.stage_index(name))
            .ok_or_else(|| TestCaseError::fail("a stage.succeeded record names no stage"))?;
        seen.audited[i] += 1;
        prop_assert!(
            seen.audited[i] <= 1,
            "stage s{} recorded as succeeded a second time",
            i
        );
    }
    let reopens = matches!(input, Input::Resume { .. } | Input::Skip { .. });
    if before.state.is_final() && !reopens {
        prop_assert_eq!(
            after.state,
            before.state,
            "a finished run moved on without a resume or a skip"
        );
    }
    if after.state == RunState::Succeeded {
        for (i, s) in after.stages.iter().enumerate() {
            let done = s.state == StageState::Succeeded
                || (s.state == StageState::Skipped && s.skipped_by.is_some());
            prop_assert!(
                done,
                "the run succeeded while stage s{} is {} (skipped by {:?})",
                i,
                s.state,
                s.skipped_by
            );
        }
    }
    Ok(())
}

fn replay(shape: &Shape, start: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut run = run(shape);
    let mut now = 1_000_000;
    let mut delivered: Vec<Input> = Vec::new();
    let mut seen = Seen {
        succeeded: vec![0; run.stages.len()],
        audited: vec![0; run.stages.len()],
    };
    let start = start.then_some(Op::Start);
    for op in start.iter().chain(ops) {
        let Some(input) = input(op, &run, &mut now, &delivered) else {
            continue;
        };
        let before = run.clone();
        let ctx = Ctx {
            now,
            backoff: &backoff::exact,
        };
        let result = apply(&mut run, input.clone(), &ctx);
        check(&before, &run, &input, &result, &mut seen)?;
        delivered.push(input);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1024,
        // A failure prints its shortest history; nothing is written into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn invariants_hold_after_every_input(
        shape in shape(),
        start in prop::bool::weighted(0.9),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        replay(&shape, start, &ops)?;
    }
}
