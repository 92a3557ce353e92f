//! The batch step without a store or a bus: what one transaction must hold.

use std::collections::HashMap;

use super::{Item, apply};
use crate::bus::{RunEvent, WorkRequest};
use crate::domain::{EventKind, Run, RunId, RunState, StageState, request_id};
use crate::orchestrator::machine::{Input, Refusal};
use crate::orchestrator::tests::{api, approve, at, fail, ok, petstore, run_of, stage};

fn item(run: &Run, input: Input) -> Item {
    Item {
        run: run.id,
        input,
        released_us: None,
    }
}

fn cache(runs: &[&Run]) -> HashMap<RunId, Run> {
    runs.iter().map(|r| (r.id, (*r).clone())).collect()
}

fn events(outbox: &[super::Outbound]) -> Vec<RunEvent> {
    outbox
        .iter()
        .filter(|o| o.envelope.topic == "lifeboat.events")
        .map(|o| serde_json::from_str(&o.envelope.payload).expect("an event"))
        .collect()
}

fn work(outbox: &[super::Outbound]) -> Vec<WorkRequest> {
    outbox
        .iter()
        .filter(|o| o.envelope.topic.starts_with("lifeboat.work."))
        .map(|o| serde_json::from_str(&o.envelope.payload).expect("a work request"))
        .collect()
}

#[test]
fn inputs_for_one_run_are_one_write_of_one_new_version() {
    let run = petstore();
    let mut runs = cache(&[&run]);
    let items = [item(&run, Input::Start), item(&run, ok(1, 1))];
    let changes = apply(&mut runs, &items, &at(0)).expect("apply");

    assert_eq!(changes.runs.len(), 1);
    let changed = &changes.runs[0];
    assert_eq!((changed.run, changed.from_version), (run.id, 0));
    let mut stages = changed.stages.clone();
    stages.sort_unstable();
    assert_eq!(stages, vec![0, 1, 2], "prescale, promote and demote moved");
    assert_eq!(runs[&run.id].version, 1, "one version for the whole batch");
    assert_eq!(runs[&run.id].state, RunState::Running);

    // Work first, in the order it was dispatched, then the events.
    let dispatched: Vec<(String, u32)> = work(&changes.outbox)
        .into_iter()
        .map(|w| (w.stage, w.attempt))
        .collect();
    assert_eq!(
        dispatched,
        vec![
            ("prescale".to_string(), 1),
            ("promote".to_string(), 1),
            ("demote".to_string(), 1)
        ]
    );
    let first_event = changes
        .outbox
        .iter()
        .position(|o| o.envelope.topic == "lifeboat.events")
        .expect("events");
    assert!(
        changes.outbox[first_event..]
            .iter()
            .all(|o| o.envelope.topic == "lifeboat.events")
    );
    // One event per audit record, numbered within the write that made version 1.
    let events = events(&changes.outbox);
    assert_eq!(events.len(), changes.audit.len());
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let expected: Vec<String> = (1..=events.len())
        .map(|n| format!("{}/1/{n}", run.id))
        .collect();
    assert_eq!(ids, expected);
    assert!(changes.refused.is_empty() && changes.missing.is_empty());
}

#[test]
fn a_refused_input_changes_nothing_and_the_rest_go_on() {
    let run = petstore();
    let other = run_of(vec![stage("only", "exec", &[])]);
    let mut runs = cache(&[&run, &other]);
    let items = [item(&run, approve("ops")), item(&other, Input::Start)];
    let changes = apply(&mut runs, &items, &at(0)).expect("apply");
    assert_eq!(changes.refused.len(), 1);
    assert_eq!(changes.refused[0].item, 0);
    assert_eq!(changes.refused[0].why, Refusal::NoApprovalPending);
    assert_eq!(runs[&run.id], run, "the refused run is untouched");
    assert_eq!(
        changes.runs.iter().map(|c| c.run).collect::<Vec<_>>(),
        vec![other.id]
    );
}

#[test]
fn an_input_for_a_run_not_in_memory_is_reported_missing() {
    let run = petstore();
    let mut runs = HashMap::new();
    let changes = apply(&mut runs, &[item(&run, Input::Start)], &at(0)).expect("apply");
    assert_eq!(changes.missing, vec![0]);
    assert!(changes.is_empty() && changes.outbox.is_empty());
}

#[test]
fn a_duplicate_outcome_writes_nothing() {
    let mut run = run_of(vec![stage("a", "exec", &[]), stage("b", "exec", &[0])]);
    let mut runs = cache(&[&run]);
    apply(&mut runs, &[item(&run, Input::Start)], &at(0)).expect("start");
    apply(&mut runs, &[item(&run, ok(0, 1))], &at(1)).expect("ok");
    run = runs[&run.id].clone();
    let changes = apply(&mut runs, &[item(&run, ok(0, 1))], &at(2)).expect("again");
    assert!(changes.is_empty() && changes.audit.is_empty() && changes.outbox.is_empty());
    assert_eq!(runs[&run.id], run);
}

#[test]
fn cancel_revokes_the_attempts_in_flight() {
    let run = petstore();
    let mut runs = cache(&[&run]);
    apply(&mut runs, &[item(&run, Input::Start)], &at(0)).expect("start");
    let cancel = Input::Cancel {
        actor: api("ops"),
        reason: None,
    };
    let changes = apply(&mut runs, &[item(&run, cancel)], &at(5)).expect("cancel");
    let revoked: Vec<(String, String, u32)> = changes
        .revocations
        .iter()
        .map(|r| (r.request_id.clone(), r.stage.clone(), r.attempt))
        .collect();
    assert_eq!(
        revoked,
        vec![
            (request_id(run.id, "prescale", 1), "prescale".into(), 1),
            (request_id(run.id, "promote", 1), "promote".into(), 1),
        ]
    );
    assert!(work(&changes.outbox).is_empty());
    assert!(
        events(&changes.outbox)
            .iter()
            .any(|e| e.kind == EventKind::Run(RunState::Cancelled))
    );
}

#[test]
fn a_dispatch_after_a_release_carries_the_release_time() {
    let run = run_of(vec![stage("a", "exec", &[]), stage("b", "exec", &[0])]);
    let mut runs = cache(&[&run]);
    apply(&mut runs, &[item(&run, Input::Start)], &at(0)).expect("start");
    let released = Item {
        run: run.id,
        input: ok(0, 1),
        released_us: Some(42),
    };
    let changes = apply(&mut runs, &[released], &at(1)).expect("ok");
    let timed: Vec<Option<i64>> = changes
        .outbox
        .iter()
        .filter(|o| o.envelope.topic == "lifeboat.work.exec")
        .map(|o| o.released_us)
        .collect();
    assert_eq!(timed, vec![Some(42)]);
    assert_eq!(runs[&run.id].stages[1].state, StageState::Dispatched);
    // A failure that will be retried sends nothing to an agent yet.
    let changes = apply(&mut runs, &[item(&run, fail(1, 1, true))], &at(2)).expect("fail");
    assert!(work(&changes.outbox).is_empty());
    assert_eq!(runs[&run.id].stages[1].state, StageState::Retrying);
}
