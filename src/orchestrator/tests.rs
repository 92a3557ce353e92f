//! The state machine without a store or a bus: ordering, retries, gates, cancel, timeouts.

use std::time::Duration;

use super::machine::{Ctx, Effect, Input, Outcome, Refusal, apply};
use crate::domain::{Actor, EventKind, Run, RunId, RunState, StageRun, StageState};
use crate::workflow::{Action, PlannedStage, RetryPolicy};

pub(super) fn api(name: &str) -> Actor {
    Actor::Api(name.into())
}

pub(super) fn agent() -> Actor {
    Actor::Agent("a".into())
}

pub(super) fn stage(name: &str, agent: &str, after: &[usize]) -> PlannedStage {
    PlannedStage {
        name: name.into(),
        agent: agent.into(),
        after: after.to_vec(),
        spec: serde_json::json!({}),
        resource: None,
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        },
        timeout: Duration::from_secs(60),
        approval: agent == "approval",
    }
}

/// prescale ∥ promote → demote → dial (gated), the petstore shape.
pub(super) fn petstore() -> Run {
    let mut plan = vec![
        stage("prescale", "capacity", &[]),
        stage("promote", "database", &[]),
        stage("demote", "database", &[1]),
        stage("dial", "dial", &[0, 2]),
    ];
    plan[3].approval = true;
    run_of(plan)
}

pub(super) fn run_of(plan: Vec<PlannedStage>) -> Run {
    Run {
        id: RunId::new(),
        group: "petstore".into(),
        action: Action::Failover,
        workflow: "petstore-failover".into(),
        dry_run: false,
        reason: None,
        requested_by: api("test"),
        params: Default::default(),
        state: RunState::Pending,
        created_at: 0,
        started_at: None,
        finished_at: None,
        message: None,
        stages: vec![StageRun::default(); plan.len()],
        plan,
        version: 0,
    }
}

fn exact(p: &RetryPolicy, n: u32) -> Duration {
    super::backoff::exact(p, n)
}

pub(super) fn at(now: i64) -> Ctx<'static> {
    Ctx {
        now,
        backoff: &exact,
    }
}

pub(super) fn ok(stage: usize, attempt: u32) -> Input {
    Input::Outcome {
        stage,
        attempt,
        outcome: Outcome::Succeeded { message: None },
        actor: agent(),
        report: None,
    }
}

pub(super) fn fail(stage: usize, attempt: u32, retryable: bool) -> Input {
    Input::Outcome {
        stage,
        attempt,
        outcome: Outcome::Failed {
            retryable,
            message: "boom".into(),
        },
        actor: agent(),
        report: None,
    }
}

fn dispatched(effects: &[Effect]) -> Vec<usize> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Dispatch { stage } => Some(*stage),
            _ => None,
        })
        .collect()
}

fn states(run: &Run) -> Vec<StageState> {
    run.stages.iter().map(|s| s.state).collect()
}

#[test]
fn independent_stages_start_together_and_dependents_wait() {
    let mut run = petstore();
    let t = apply(&mut run, Input::Start, &at(0)).expect("start");
    assert_eq!(dispatched(&t.effects), vec![0, 1]);
    assert_eq!(run.state, RunState::Running);
    assert_eq!(
        states(&run)[2..],
        [StageState::Pending, StageState::Pending]
    );

    let t = apply(&mut run, ok(1, 1), &at(10)).expect("promote done");
    assert_eq!(
        dispatched(&t.effects),
        vec![2],
        "demote waits only for promote"
    );
    let t = apply(&mut run, ok(2, 1), &at(20)).expect("demote done");
    assert!(
        dispatched(&t.effects).is_empty(),
        "dial still waits for prescale"
    );
    let t = apply(&mut run, ok(0, 1), &at(30)).expect("prescale done");
    assert!(dispatched(&t.effects).is_empty(), "dial is gated");
    assert_eq!(run.state, RunState::AwaitingApproval);
    assert_eq!(run.stages[3].state, StageState::Ready);
    assert!(
        t.audit
            .iter()
            .any(|a| a.kind == EventKind::ApprovalRequested)
    );
}

#[test]
fn approval_dispatches_the_gate_and_the_run_succeeds() {
    let mut run = petstore();
    apply(&mut run, Input::Start, &at(0)).expect("start");
    for (s, t) in [(0, 1), (1, 2), (2, 3)] {
        apply(&mut run, ok(s, 1), &at(t)).expect("ok");
    }
    let t = apply(
        &mut run,
        Input::Approve {
            actor: api("ops"),
            stage: None,
        },
        &at(5),
    )
    .expect("approve");
    assert_eq!(dispatched(&t.effects), vec![3]);
    assert_eq!(run.stages[3].approved_by, Some(api("ops")));
    assert!(
        t.audit
            .iter()
            .any(|a| a.kind == EventKind::StageApproved && a.actor == api("ops"))
    );
    apply(&mut run, ok(3, 1), &at(9)).expect("dial done");
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(run.finished_at, Some(9));
    assert_eq!(
        apply(
            &mut run,
            Input::Approve {
                actor: api("x"),
                stage: None
            },
            &at(10)
        )
        .err(),
        Some(Refusal::Finished(RunState::Succeeded))
    );
}

#[test]
fn approve_without_an_open_gate_is_refused_and_changes_nothing() {
    let mut run = petstore();
    apply(&mut run, Input::Start, &at(0)).expect("start");
    let before = run.clone();
    assert_eq!(
        apply(
            &mut run,
            Input::Approve {
                actor: api("x"),
                stage: None
            },
            &at(1)
        )
        .err(),
        Some(Refusal::NoApprovalPending)
    );
    assert_eq!(run, before);
}

#[test]
fn retryable_failure_waits_out_the_backoff_then_dispatches_the_next_attempt() {
    let mut run = run_of(vec![stage("only", "exec", &[])]);
    apply(&mut run, Input::Start, &at(0)).expect("start");
    let t = apply(&mut run, fail(0, 1, true), &at(100)).expect("fail");
    assert!(t.effects.is_empty());
    assert_eq!(run.stages[0].state, StageState::Retrying);
    assert_eq!(run.stages[0].retry_at, Some(1100), "1s initial backoff");
    assert_eq!(run.next_wake(), Some(1100));

    let t = apply(&mut run, Input::Tick, &at(1099)).expect("early tick");
    assert!(t.is_empty(), "nothing is due yet");
    let t = apply(&mut run, Input::Tick, &at(1100)).expect("tick");
    assert_eq!(dispatched(&t.effects), vec![0]);
    assert_eq!(run.stages[0].attempts, 2);

    apply(&mut run, fail(0, 2, true), &at(1200)).expect("fail again");
    assert_eq!(run.stages[0].retry_at, Some(3200), "backoff doubles");
    apply(&mut run, Input::Tick, &at(3200)).expect("tick");
    apply(&mut run, fail(0, 3, true), &at(3300)).expect("third failure");
    assert_eq!(
        run.stages[0].state,
        StageState::Failed,
        "3 attempts is the limit"
    );
    assert_eq!(run.state, RunState::Failed);
    assert!(
        run.message
            .as_deref()
            .unwrap_or("")
            .contains("attempt 3 of 3"),
        "{:?}",
        run.message
    );
}

#[test]
fn permanent_failure_is_not_retried_dependents_skip_and_running_stages_finish() {
    let mut run = petstore();
    apply(&mut run, Input::Start, &at(0)).expect("start");
    apply(&mut run, fail(1, 1, false), &at(10)).expect("promote fails for good");
    assert_eq!(run.stages[1].state, StageState::Failed);
    assert_eq!(run.stages[1].attempts, 1);
    assert_eq!(
        states(&run)[2..],
        [StageState::Skipped, StageState::Skipped]
    );
    assert_eq!(run.state, RunState::Running, "prescale is still running");
    apply(&mut run, ok(0, 1), &at(20)).expect("prescale finishes");
    assert_eq!(run.stages[0].state, StageState::Succeeded);
    assert_eq!(run.state, RunState::Failed);
    assert!(
        run.message
            .as_deref()
            .unwrap_or("")
            .starts_with("stage `promote` failed")
    );
}

#[test]
fn duplicate_and_stale_outcomes_change_nothing() {
    let mut run = run_of(vec![stage("a", "exec", &[]), stage("b", "exec", &[0])]);
    apply(&mut run, Input::Start, &at(0)).expect("start");
    apply(&mut run, ok(0, 1), &at(1)).expect("ok");
    let before = run.clone();
    let t = apply(&mut run, ok(0, 1), &at(2)).expect("duplicate");
    assert!(t.is_empty());
    assert_eq!(run, before);
    let t = apply(&mut run, fail(1, 7, true), &at(3)).expect("stale attempt");
    assert!(t.is_empty());
}

#[test]
fn expired_lease_is_a_retryable_failure() {
    let mut run = run_of(vec![stage("a", "exec", &[])]);
    apply(&mut run, Input::Start, &at(0)).expect("start");
    apply(
        &mut run,
        Input::Outcome {
            stage: 0,
            attempt: 1,
            outcome: Outcome::Expired,
            actor: Actor::System,
            report: None,
        },
        &at(5),
    )
    .expect("expired");
    assert_eq!(run.stages[0].state, StageState::Retrying);
    assert!(
        run.stages[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("lease expired")
    );
}

#[test]
fn a_timed_out_attempt_is_revoked_and_retried() {
    let mut run = run_of(vec![stage("a", "exec", &[])]);
    apply(&mut run, Input::Start, &at(0)).expect("start");
    assert_eq!(run.stages[0].deadline, Some(60_000));
    let t = apply(&mut run, Input::Tick, &at(60_000)).expect("deadline");
    assert!(t.effects.iter().any(|e| matches!(
        e,
        Effect::Revoke {
            stage: 0,
            attempt: 1,
            ..
        }
    )));
    assert_eq!(run.stages[0].state, StageState::Retrying);
    assert!(
        run.stages[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("timed out after 1m")
    );
}

#[test]
fn cancel_revokes_work_in_flight_and_ends_the_run() {
    let mut run = petstore();
    apply(&mut run, Input::Start, &at(0)).expect("start");
    let t = apply(
        &mut run,
        Input::Cancel {
            actor: api("ops"),
            reason: Some("false alarm".into()),
        },
        &at(3),
    )
    .expect("cancel");
    let revoked: Vec<usize> = t
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Revoke { stage, .. } => Some(*stage),
            _ => None,
        })
        .collect();
    assert_eq!(revoked, vec![0, 1]);
    assert!(run.stages.iter().all(|s| s.state == StageState::Cancelled));
    assert_eq!(run.state, RunState::Cancelled);
    assert_eq!(
        run.message.as_deref(),
        Some("cancelled by api:ops: false alarm")
    );
    // A late outcome of a revoked attempt is ignored.
    assert!(apply(&mut run, ok(0, 1), &at(4)).expect("late").is_empty());
}

#[test]
fn reject_cancels_the_run() {
    let mut run = run_of(vec![
        stage("gate", "approval", &[]),
        stage("after", "exec", &[0]),
    ]);
    apply(&mut run, Input::Start, &at(0)).expect("start");
    assert_eq!(run.state, RunState::AwaitingApproval);
    apply(
        &mut run,
        Input::Reject {
            actor: Actor::Chat {
                platform: crate::domain::Platform::Slack,
                user: "U1".into(),
            },
            reason: None,
        },
        &at(1),
    )
    .expect("reject");
    assert_eq!(run.state, RunState::Cancelled);
    assert_eq!(run.message.as_deref(), Some("rejected by slack:U1"));
}

#[test]
fn an_approval_stage_succeeds_on_approval_without_dispatch() {
    let mut run = run_of(vec![
        stage("gate", "approval", &[]),
        stage("after", "exec", &[0]),
    ]);
    apply(&mut run, Input::Start, &at(0)).expect("start");
    let t = apply(
        &mut run,
        Input::Approve {
            actor: api("ops"),
            stage: Some(0),
        },
        &at(1),
    )
    .expect("approve");
    assert_eq!(
        dispatched(&t.effects),
        vec![1],
        "only the stage after the gate is sent to an agent"
    );
    assert_eq!(run.stages[0].state, StageState::Succeeded);
}

#[test]
fn a_dry_run_passes_its_gates_by_itself() {
    let mut run = petstore();
    run.dry_run = true;
    apply(&mut run, Input::Start, &at(0)).expect("start");
    for (s, t) in [(0, 1), (1, 2), (2, 3)] {
        apply(&mut run, ok(s, 1), &at(t)).expect("ok");
    }
    assert_eq!(run.stages[3].state, StageState::Dispatched);
    assert_eq!(run.stages[3].approved_by, Some(Actor::DryRun));
    assert_eq!(run.resource(3), format!("dry-run:stage:{}/dial", run.id));
}

#[test]
fn a_retry_keeps_the_changes_an_earlier_attempt_made() {
    use crate::domain::{Change, Check, Report};
    let change = |to: &str| Change {
        target: "db".into(),
        from: "replica".into(),
        to: to.into(),
    };
    let outcome = |attempt, outcome, report| Input::Outcome {
        stage: 0,
        attempt,
        outcome,
        actor: agent(),
        report: Some(report),
    };
    let mut run = run_of(vec![stage("only", "database", &[])]);
    apply(&mut run, Input::Start, &at(0)).expect("start");
    let first = Report {
        checks: vec![],
        changes: vec![change("writer")],
    };
    let failed = Outcome::Failed {
        retryable: true,
        message: "timed out waiting".into(),
    };
    apply(&mut run, outcome(1, failed, first), &at(100)).expect("fail");
    apply(&mut run, Input::Tick, &at(1100)).expect("tick");
    let second = Report {
        checks: vec![Check {
            name: "role".into(),
            ok: true,
            detail: "already the writer".into(),
        }],
        changes: vec![],
    };
    let done = Outcome::Succeeded { message: None };
    apply(&mut run, outcome(2, done, second), &at(1200)).expect("succeed");
    let report = run.stages[0].report.clone().expect("a report");
    assert_eq!(
        report.changes,
        vec![change("writer")],
        "attempt 1's change stays"
    );
    assert_eq!(
        report.checks.len(),
        1,
        "the checks are the latest attempt's"
    );
}
