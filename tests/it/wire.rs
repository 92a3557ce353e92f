//! What travels on the bus stays byte-for-byte what it was: messages recorded from a real
//! run (`tests/fixtures/*.jsonl`) before their kinds and actors were typed decode into the
//! typed messages and encode back to the same bytes.

use lifeboat::bus::{Progress, ProgressKind, RunEvent, WorkRequest};
use lifeboat::domain::{Actor, EventKind, Platform, RunState, StageState};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: DeserializeOwned + Serialize>(recorded: &str) -> Vec<T> {
    recorded
        .lines()
        .map(|line| {
            let typed: T = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a recorded message decodes: {e}\n{line}"));
            assert_eq!(serde_json::to_string(&typed).expect("encodes"), line);
            typed
        })
        .collect()
}

#[test]
fn recorded_run_events_decode_typed_and_encode_back_unchanged() {
    let events: Vec<RunEvent> = round_trip(include_str!("../fixtures/events.jsonl"));
    assert_eq!(events.len(), 20);
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    for expected in [
        EventKind::Run(RunState::Running),
        EventKind::Stage(StageState::Retrying),
        EventKind::ApprovalRequested,
        EventKind::StageApproved,
        EventKind::Run(RunState::Succeeded),
    ] {
        assert!(kinds.contains(&expected), "{expected} in {kinds:?}");
    }
    let approved = events
        .iter()
        .find(|e| e.kind == EventKind::StageApproved)
        .expect("an approval");
    assert_eq!(
        approved.actor,
        Actor::Chat {
            platform: Platform::from_static("slack"),
            user: "U1".into()
        }
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.actor, Actor::Agent(i) if i.starts_with("embedded:")))
    );
    assert!(events.last().is_some_and(|e| e.kind.ends_run()));
}

#[test]
fn recorded_progress_and_work_requests_encode_back_unchanged() {
    let progress: Vec<Progress> = round_trip(include_str!("../fixtures/progress.jsonl"));
    assert!(
        progress
            .iter()
            .any(|p| p.kind == ProgressKind::Failed && p.retryable == Some(true))
    );
    let work: Vec<WorkRequest> = round_trip(include_str!("../fixtures/work.jsonl"));
    assert_eq!(
        work.iter().map(|w| w.attempt).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[test]
fn an_event_of_an_unknown_kind_is_refused_with_its_name() {
    let line = include_str!("../fixtures/events.jsonl")
        .lines()
        .next()
        .expect("an event")
        .replace("run.running", "run.exploded");
    let err = serde_json::from_str::<RunEvent>(&line).expect_err("unknown kind");
    assert!(err.to_string().contains("run.exploded"), "{err}");
}
