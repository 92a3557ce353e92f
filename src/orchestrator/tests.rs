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
        approvals: 1,
        budgets: Vec::new(),
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
        overrides: None,
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

/// An approval by an API token, which is its own person.
pub(super) fn approve(name: &str) -> Input {
    approve_as(api(name), name)
}

fn approve_as(actor: Actor, person: &str) -> Input {
    Input::Approve {
        actor,
        stage: None,
        person: person.into(),
        requester: "test".into(),
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
        started: None,
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
        started: None,
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

/// Attempt 1 of stage 0 succeeded; its holder took the lease at `started`.
fn ended_after(started: i64) -> Input {
    Input::Outcome {
        stage: 0,
        attempt: 1,
        outcome: Outcome::Succeeded { message: None },
        actor: agent(),
        report: None,
        started: Some(started),
    }
}

#[test]
fn work_that_ended_before_it_said_it_started_has_its_start_recorded_with_its_end() {
    let started = || {
        let mut run = run_of(vec![stage("a", "exec", &[])]);
        apply(&mut run, Input::Start, &at(0)).expect("start");
        run
    };
    let mut run = started();
    let t = apply(&mut run, ended_after(7), &at(9)).expect("ended");
    let seen: Vec<(EventKind, i64, &Actor)> =
        t.audit.iter().map(|a| (a.kind, a.at, &a.actor)).collect();
    assert_eq!(
        &seen[..2],
        &[
            (EventKind::Stage(StageState::Running), 7, &agent()),
            (EventKind::Stage(StageState::Succeeded), 9, &agent()),
        ]
    );
    assert_eq!(run.state, RunState::Succeeded);
    // A start said already is not recorded again.
    let mut run = started();
    let accepted = Input::Accepted {
        stage: 0,
        attempt: 1,
        agent: agent(),
    };
    apply(&mut run, accepted, &at(3)).expect("accepted");
    let t = apply(&mut run, ended_after(2), &at(9)).expect("ended");
    let running = |t: &super::machine::Transition| {
        t.audit
            .iter()
            .filter(|a| a.kind == EventKind::Stage(StageState::Running))
            .count()
    };
    assert_eq!(running(&t), 0);
    assert_eq!(run.state, RunState::Succeeded);
    // A start by a clock ahead of the orchestrator's is recorded as now.
    let mut run = started();
    let t = apply(&mut run, ended_after(50), &at(9)).expect("ended");
    assert_eq!(running(&t), 1);
    assert_eq!(
        (t.audit[0].kind, t.audit[0].at),
        (EventKind::Stage(StageState::Running), 9)
    );
}

#[test]
fn approval_dispatches_the_gate_and_the_run_succeeds() {
    let mut run = petstore();
    apply(&mut run, Input::Start, &at(0)).expect("start");
    for (s, t) in [(0, 1), (1, 2), (2, 3)] {
        apply(&mut run, ok(s, 1), &at(t)).expect("ok");
    }
    let t = apply(&mut run, approve("ops"), &at(5)).expect("approve");
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
        apply(&mut run, approve("x"), &at(10)).err(),
        Some(Refusal::Finished(RunState::Succeeded))
    );
}

#[test]
fn approve_without_an_open_gate_is_refused_and_changes_nothing() {
    let mut run = petstore();
    apply(&mut run, Input::Start, &at(0)).expect("start");
    let before = run.clone();
    assert_eq!(
        apply(&mut run, approve("x"), &at(1)).err(),
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
            started: None,
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
fn a_wait_for_budget_holds_the_deadline_off_and_the_work_gets_its_whole_timeout() {
    let mut run = run_of(vec![stage("a", "exec", &[])]);
    apply(&mut run, Input::Start, &at(0)).expect("start");
    let waiting = |message: &str| Input::Waiting {
        stage: 0,
        attempt: 1,
        message: message.into(),
    };
    // Said at 50 s, and again at 100 s: the 60 s timeout has not run out at 110 s.
    apply(
        &mut run,
        waiting("waiting for budget (rds 5/5)"),
        &at(50_000),
    )
    .expect("wait");
    assert_eq!(run.stages[0].deadline, Some(110_000));
    apply(
        &mut run,
        waiting("waiting for budget (rds 5/5)"),
        &at(100_000),
    )
    .expect("wait");
    apply(&mut run, Input::Tick, &at(110_000)).expect("tick");
    assert_eq!(run.stages[0].state, StageState::Dispatched);
    assert_eq!(
        run.stages[0].message.as_deref(),
        Some("waiting for budget (rds 5/5)")
    );
    // Anything else an agent says holds nothing off.
    apply(&mut run, waiting("almost done"), &at(150_000)).expect("not a wait");
    assert_eq!(run.stages[0].deadline, Some(160_000));
    // Taken at 155 s: the work has its whole minute from then.
    let accepted = Input::Accepted {
        stage: 0,
        attempt: 1,
        agent: agent(),
    };
    apply(&mut run, accepted, &at(155_000)).expect("accepted");
    assert_eq!(run.stages[0].state, StageState::Running);
    assert_eq!(run.stages[0].deadline, Some(215_000));
    assert_eq!(run.stages[0].message, None);
    // A wait said for a running attempt changes nothing.
    apply(
        &mut run,
        waiting("waiting for budget (rds 5/5)"),
        &at(160_000),
    )
    .expect("late");
    assert_eq!(run.stages[0].deadline, Some(215_000));
    // And an agent that stops saying it waits is timed out like any.
    let mut run = run_of(vec![stage("a", "exec", &[])]);
    apply(&mut run, Input::Start, &at(0)).expect("start");
    apply(
        &mut run,
        waiting("waiting for budget (rds 5/5)"),
        &at(10_000),
    )
    .expect("wait");
    apply(&mut run, Input::Tick, &at(70_000)).expect("deadline");
    assert_eq!(run.stages[0].state, StageState::Retrying);
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
                platform: crate::domain::Platform::from_static("slack"),
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
            person: "ops".into(),
            requester: "test".into(),
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
        started: None,
    };
    let mut run = run_of(vec![stage("only", "database", &[])]);
    apply(&mut run, Input::Start, &at(0)).expect("start");
    let first = Report {
        checks: vec![],
        changes: vec![change("writer")],
        ..Report::default()
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
        ..Report::default()
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

/// a → b → c, where b fails for good: the run fails and c is skipped for it.
fn failed_chain() -> Run {
    let run = chain_with_b_failing(false);
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.stages[2].state, StageState::Skipped);
    run
}

/// a → b → c with b waiting out its backoff after a retryable failure.
fn failed_chain_with_retry() -> Run {
    let run = chain_with_b_failing(true);
    assert_eq!(run.stages[1].state, StageState::Retrying);
    run
}

fn chain_with_b_failing(retryable: bool) -> Run {
    let mut run = run_of(vec![
        stage("a", "exec", &[]),
        stage("b", "exec", &[0]),
        stage("c", "exec", &[1]),
    ]);
    apply(&mut run, Input::Start, &at(0)).expect("applied");
    apply(&mut run, ok(0, 1), &at(1)).expect("applied");
    apply(&mut run, fail(1, 1, retryable), &at(2)).expect("applied");
    run
}

#[test]
fn resume_plans_again_what_did_not_succeed_and_keeps_counting_attempts() {
    let mut run = failed_chain();
    let t = apply(
        &mut run,
        Input::Resume {
            actor: api("ops"),
            message: None,
        },
        &at(10),
    )
    .expect("applied");
    assert_eq!(run.state, RunState::Running);
    assert_eq!(run.finished_at, None);
    // Only the failed stage goes out again; the succeeded one stays done.
    assert_eq!(dispatched(&t.effects), vec![1]);
    assert_eq!(run.stages[0].state, StageState::Succeeded);
    assert_eq!(run.stages[0].attempts, 1);
    assert_eq!(
        run.stages[1].attempts, 2,
        "a new attempt number, never a reused one"
    );
    assert_eq!(run.stages[2].state, StageState::Pending);
    assert!(
        t.audit
            .iter()
            .any(|a| a.kind == EventKind::RunResumed && a.actor == api("ops"))
    );
    // A fresh budget: three more attempts before the stage fails for good.
    apply(&mut run, fail(1, 2, true), &at(11)).expect("applied");
    assert_eq!(run.stages[1].state, StageState::Retrying);
    apply(&mut run, Input::Tick, &at(100_000)).expect("applied");
    apply(&mut run, fail(1, 3, true), &at(100_001)).expect("applied");
    assert_eq!(run.stages[1].state, StageState::Retrying);
    apply(&mut run, Input::Tick, &at(200_000)).expect("applied");
    apply(&mut run, ok(1, 4), &at(200_001)).expect("applied");
    apply(&mut run, ok(2, 1), &at(200_002)).expect("applied");
    assert_eq!(run.state, RunState::Succeeded);
}

#[test]
fn resume_is_refused_for_a_run_that_succeeded_or_still_runs() {
    let mut run = failed_chain();
    let resume = || Input::Resume {
        actor: api("ops"),
        message: None,
    };
    apply(&mut run, resume(), &at(10)).expect("applied");
    assert_eq!(
        apply(&mut run, resume(), &at(11)).expect_err("refused"),
        Refusal::NotStopped(RunState::Running)
    );
    apply(&mut run, ok(1, 2), &at(12)).expect("applied");
    apply(&mut run, ok(2, 1), &at(13)).expect("applied");
    let before = run.clone();
    assert_eq!(
        apply(&mut run, resume(), &at(14)).expect_err("refused"),
        Refusal::NothingToResume
    );
    assert_eq!(run, before);
}

#[test]
fn a_cancelled_run_resumes_its_cancelled_stages() {
    let mut run = petstore();
    apply(&mut run, Input::Start, &at(0)).expect("applied");
    apply(
        &mut run,
        Input::Cancel {
            actor: api("ops"),
            reason: None,
        },
        &at(1),
    )
    .expect("applied");
    let t = apply(
        &mut run,
        Input::Resume {
            actor: api("ops"),
            message: None,
        },
        &at(2),
    )
    .expect("applied");
    assert_eq!(run.state, RunState::Running);
    assert_eq!(dispatched(&t.effects), vec![0, 1]);
    assert_eq!(run.stages[0].attempts, 2);
}

#[test]
fn retry_now_dispatches_a_stage_in_backoff_at_once() {
    let mut run = failed_chain_with_retry();
    let t = apply(
        &mut run,
        Input::RetryNow {
            actor: api("ops"),
            stage: 1,
        },
        &at(3),
    )
    .expect("applied");
    assert_eq!(dispatched(&t.effects), vec![1]);
    assert_eq!(run.stages[1].attempts, 2);
    assert!(
        t.audit
            .iter()
            .any(|a| a.kind == EventKind::Stage(StageState::Dispatched) && a.actor == api("ops"))
    );
    // Now it is not waiting: a second press is refused.
    assert_eq!(
        apply(
            &mut run,
            Input::RetryNow {
                actor: api("ops"),
                stage: 1,
            },
            &at(4),
        )
        .expect_err("refused"),
        Refusal::NotRetrying("b".into(), StageState::Dispatched)
    );
}

#[test]
fn skipping_a_failed_stage_reopens_the_run_for_its_dependents() {
    let mut run = failed_chain();
    assert_eq!(
        apply(
            &mut run,
            Input::Skip {
                actor: api("ops"),
                stage: 0,
                reason: "x".into(),
            },
            &at(5),
        )
        .expect_err("refused"),
        Refusal::NotFailed("a".into(), StageState::Succeeded)
    );
    let t = apply(
        &mut run,
        Input::Skip {
            actor: api("ops"),
            stage: 1,
            reason: "done by hand".into(),
        },
        &at(10),
    )
    .expect("applied");
    assert_eq!(run.stages[1].state, StageState::Skipped);
    assert_eq!(run.stages[1].skipped_by, Some(api("ops")));
    assert_eq!(
        run.stages[1].message.as_deref(),
        Some("skipped by api:ops: done by hand")
    );
    assert_eq!(run.state, RunState::Running);
    assert_eq!(dispatched(&t.effects), vec![2]);
    apply(&mut run, ok(2, 1), &at(11)).expect("applied");
    assert_eq!(run.state, RunState::Succeeded);
    // A resume later would not run the skipped stage again.
    assert_eq!(run.stages[1].attempts, 1);
}

#[test]
fn four_eyes_needs_two_people_neither_the_requester() {
    let mut run = petstore();
    run.plan[3].approvals = 2;
    apply(&mut run, Input::Start, &at(0)).expect("applied");
    for (i, n) in [(0, 1), (1, 1), (2, 1)] {
        apply(&mut run, ok(i, n), &at(1)).expect("applied");
    }
    assert_eq!(run.open_gates(), vec![3]);
    let before = run.clone();
    assert_eq!(
        apply(&mut run, approve_as(api("test"), "test"), &at(2)).expect_err("refused"),
        Refusal::OwnRun(2)
    );
    assert_eq!(run, before, "a refusal changes nothing");
    // Alice on Slack, then Alice on Discord: one person, counted once.
    let alice_slack = Actor::Chat {
        platform: crate::domain::Platform::from_static("slack"),
        user: "U1".into(),
    };
    let alice_discord = Actor::Chat {
        platform: crate::domain::Platform::from_static("discord"),
        user: "42".into(),
    };
    let t = apply(&mut run, approve_as(alice_slack, "alice"), &at(3)).expect("applied");
    assert!(t.effects.is_empty(), "one approval of two opens nothing");
    assert_eq!(run.open_gates(), vec![3]);
    assert_eq!(run.stages[3].approvals.len(), 1);
    assert_eq!(
        apply(&mut run, approve_as(alice_discord, "alice"), &at(4)).expect_err("refused"),
        Refusal::AlreadyApproved("alice".into())
    );
    let t = apply(&mut run, approve_as(api("bob"), "bob"), &at(5)).expect("applied");
    assert_eq!(dispatched(&t.effects), vec![3]);
    assert_eq!(run.stages[3].approved_by, Some(api("bob")));
    let who: Vec<&str> = run.stages[3]
        .approvals
        .iter()
        .map(|a| a.person.as_str())
        .collect();
    assert_eq!(who, ["alice", "bob"]);
}

#[test]
fn with_one_approval_the_requester_may_approve() {
    let mut run = petstore();
    apply(&mut run, Input::Start, &at(0)).expect("applied");
    for (i, n) in [(0, 1), (1, 1), (2, 1)] {
        apply(&mut run, ok(i, n), &at(1)).expect("applied");
    }
    let t = apply(&mut run, approve_as(api("test"), "test"), &at(2)).expect("applied");
    assert_eq!(dispatched(&t.effects), vec![3]);
}

#[test]
fn a_resumed_gate_asks_for_its_approvals_again() {
    let mut run = petstore();
    run.plan[3].approvals = 2;
    apply(&mut run, Input::Start, &at(0)).expect("start");
    for (i, n) in [(0, 1), (1, 1), (2, 1)] {
        apply(&mut run, ok(i, n), &at(1)).expect("done");
    }
    apply(&mut run, approve("alice"), &at(2)).expect("one of two");
    apply(
        &mut run,
        Input::Reject {
            actor: api("bob"),
            reason: None,
        },
        &at(3),
    )
    .expect("rejected");
    assert_eq!(run.state, RunState::Cancelled);
    apply(
        &mut run,
        Input::Resume {
            actor: api("ops"),
            message: None,
        },
        &at(4),
    )
    .expect("resumed");
    assert_eq!(run.open_gates(), vec![3]);
    assert!(
        run.stages[3].approvals.is_empty(),
        "the earlier yes no longer counts"
    );
    let t = apply(&mut run, approve("carol"), &at(5)).expect("one of two again");
    assert!(t.effects.is_empty());
}

/// The promote's agent measured more loss than the stage allows and stopped.
fn held(stage: usize, attempt: u32, limit: f64) -> Input {
    Input::Outcome {
        stage,
        attempt,
        outcome: Outcome::Held {
            message: "promoting db-a now loses about 42 s / 18 MB of writes (measured)".into(),
        },
        actor: agent(),
        report: Some(crate::domain::Report {
            rpo: Some(crate::domain::RecoveryPoint {
                seconds: Some(42.0),
                bytes: Some(18_000_000),
                basis: crate::domain::Basis::Measured,
                limit: Some(limit),
            }),
            ..Default::default()
        }),
        started: None,
    }
}

#[test]
fn a_data_loss_gate_waits_for_a_person_and_approving_promotes_accepting_it() {
    let mut run = petstore();
    apply(&mut run, Input::Start, &at(0)).expect("applied");
    apply(&mut run, held(1, 1, 5.0), &at(1)).expect("applied");
    assert_eq!(run.stages[1].state, StageState::Ready);
    assert_eq!(run.state, RunState::AwaitingApproval);
    assert_eq!(run.open_gates(), vec![1]);
    assert_eq!(
        run.stages[1].message.as_deref(),
        Some(
            "waiting for approval: promoting db-a now loses about 42 s / 18 MB of writes (measured)"
        )
    );
    let now = crate::bus::WorkRequest::for_stage(&run, 1, 1);
    assert!(!now.accept_data_loss, "held, not yet approved");
    // A duplicate of the held outcome changes nothing.
    let before = run.clone();
    apply(&mut run, held(1, 1, 5.0), &at(2)).expect("applied");
    assert_eq!(run, before);

    let t = apply(&mut run, approve("ops"), &at(3)).expect("applied");
    assert_eq!(dispatched(&t.effects), vec![1]);
    assert_eq!(run.stages[1].attempts, 2);
    assert_eq!(run.state, RunState::Running);
    let again = crate::bus::WorkRequest::for_stage(&run, 1, 3);
    assert!(
        again.accept_data_loss,
        "the approved attempt may lose what was shown"
    );
    apply(&mut run, ok(1, 2), &at(4)).expect("applied");
    assert_eq!(run.stages[1].state, StageState::Succeeded);
}

#[test]
fn rejecting_a_data_loss_gate_fails_the_stage_and_the_run() {
    let mut run = petstore();
    apply(&mut run, Input::Start, &at(0)).expect("applied");
    apply(&mut run, held(1, 1, 5.0), &at(1)).expect("applied");
    let reject = Input::Reject {
        actor: api("ops"),
        reason: Some("too much".into()),
    };
    apply(&mut run, reject, &at(2)).expect("applied");
    assert_eq!(run.stages[1].state, StageState::Failed);
    assert_eq!(
        run.stages[1].message.as_deref(),
        Some(
            "rejected by api:ops: too much; promoting db-a now loses about 42 s / 18 MB of writes (measured)"
        )
    );
    // prescale is still in flight: the run fails once it ends.
    assert_eq!(run.stages[0].state, StageState::Dispatched);
    apply(&mut run, ok(0, 1), &at(3)).expect("applied");
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(
        run.stages[1].attempts, 1,
        "a rejected promote is not tried again"
    );
}

#[test]
fn a_gate_on_no_loss_at_all_takes_two_people_and_a_resume_asks_again() {
    let mut run = petstore();
    apply(&mut run, Input::Start, &at(0)).expect("applied");
    apply(&mut run, held(1, 1, 0.0), &at(1)).expect("applied");
    assert_eq!(run.approvals_needed(1), 2);
    assert_eq!(
        apply(&mut run, approve_as(api("test"), "test"), &at(2)).expect_err("refused"),
        Refusal::OwnRun(2)
    );
    let t = apply(&mut run, approve("alice"), &at(3)).expect("applied");
    assert!(dispatched(&t.effects).is_empty(), "one of two");
    let reject = Input::Reject {
        actor: api("bob"),
        reason: None,
    };
    apply(&mut run, reject, &at(4)).expect("applied");
    apply(&mut run, ok(0, 1), &at(5)).expect("applied");
    assert_eq!(run.state, RunState::Failed);
    let resume = Input::Resume {
        actor: api("ops"),
        message: None,
    };
    let t = apply(&mut run, resume, &at(6)).expect("applied");
    assert_eq!(
        dispatched(&t.effects),
        vec![1],
        "measured again, not let through"
    );
    assert_eq!(run.stages[1].hold, None);
    assert!(run.stages[1].approvals.is_empty());
    assert!(!crate::bus::WorkRequest::for_stage(&run, 1, 6).accept_data_loss);
}
