//! A finished dry run of the petstore shape, the same in every test that checks what goes
//! on the wire: `tests/fixtures/api-run.json`, `event-fixed.json` and `work-fixed.json`
//! were recorded from it before the types behind them were typed, and must stay so.

use std::time::Duration;

use super::{Actor, Audit, EventKind, Platform, Run, RunId, RunState, StageRun, StageState};
use crate::workflow::{Action, Params, PlannedStage, RetryPolicy};

fn stage(name: &str, agent: &str, after: Vec<usize>, approval: bool) -> PlannedStage {
    PlannedStage {
        name: name.into(),
        agent: agent.into(),
        after,
        spec: serde_json::json!({ "k": 1 }),
        resource: None,
        retry: RetryPolicy::default(),
        timeout: Duration::from_secs(60),
        approval,
        approvals: 1,
        budgets: Vec::new(),
    }
}

fn done(attempts: u32, started: i64, finished: i64) -> StageRun {
    StageRun {
        state: StageState::Succeeded,
        attempts,
        started_at: Some(started),
        finished_at: Some(finished),
        ..StageRun::default()
    }
}

pub fn slack(user: &str) -> Actor {
    Actor::Chat {
        platform: Platform::from_static("slack"),
        user: user.into(),
    }
}

pub fn run() -> Run {
    let mut params = Params::new();
    params.insert("to".into(), serde_json::json!("region-a"));
    let mut scale = done(2, 1_795_625_650_002, 1_795_625_652_000);
    scale.message = Some("done".into());
    let mut gate = done(0, 1_795_625_652_001, 1_795_625_652_001);
    gate.message = Some("approved by dry-run".into());
    gate.approved_by = Some(Actor::DryRun);
    let mut dial = done(1, 1_795_625_652_010, 1_795_625_659_500);
    dial.approved_by = Some(slack("U012ABC"));
    Run {
        id: "01a213a1-0776-769e-b4c5-9785c42f41c5"
            .parse::<RunId>()
            .expect("a run id"),
        group: "petstore".into(),
        action: Action::Failover,
        workflow: "petstore-failover".into(),
        dry_run: true,
        reason: Some("drill".into()),
        requested_by: Actor::Api("ops".into()),
        params,
        overrides: None,
        state: RunState::Succeeded,
        created_at: 1_795_625_650_000,
        started_at: Some(1_795_625_650_001),
        finished_at: Some(1_795_625_659_500),
        message: None,
        plan: vec![
            stage("scale", "capacity", vec![], false),
            stage("gate", "approval", vec![0], true),
            stage("dial", "dial", vec![1], true),
        ],
        stages: vec![scale, gate, dial],
        version: 9,
    }
}

pub fn audit() -> Vec<Audit> {
    let record = |at, actor, kind, stage: Option<&str>, attempt, message: Option<&str>| Audit {
        at,
        actor,
        kind,
        stage: stage.map(str::to_string),
        attempt,
        message: message.map(str::to_string),
    };
    vec![
        record(
            1_795_625_650_000,
            Actor::Api("ops".into()),
            EventKind::RunCreated,
            None,
            None,
            Some("drill"),
        ),
        record(
            1_795_625_650_002,
            Actor::Agent("agent:host:12".into()),
            EventKind::Stage(StageState::Retrying),
            Some("scale"),
            Some(1),
            Some("boom"),
        ),
        record(
            1_795_625_652_001,
            Actor::System,
            EventKind::ApprovalRequested,
            Some("dial"),
            Some(0),
            None,
        ),
        record(
            1_795_625_652_005,
            slack("U012ABC"),
            EventKind::StageApproved,
            Some("dial"),
            Some(0),
            None,
        ),
        record(
            1_795_625_659_500,
            Actor::System,
            EventKind::Run(RunState::Succeeded),
            None,
            None,
            None,
        ),
    ]
}
