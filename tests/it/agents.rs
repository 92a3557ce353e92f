//! Adding an agent: the toy of `tests/it/common/toy.rs` is one file, and one line registers it
//! with validation, planning and the runtime alike.

use crate::common;

use std::sync::Arc;

use common::toy::Toy;
use lifeboat::agents::Registry;
use lifeboat::app::Options;
use lifeboat::bus::WorkRequest;
use lifeboat::workflow::Catalog;

const TOY: &str = "\
name: shop
stages:
  speak:
    agent: toy
    spec: { word: hello, times: 2 }
";

#[tokio::test]
async fn a_registered_toy_agent_validates_leases_and_runs() {
    let registry = Registry::builtin().with::<Toy>();
    let t = common::spawn_with(
        &[("shop.yaml", TOY), ("groups.yaml", common::GROUPS)],
        &[],
        Options {
            registry,
            ..Options::default()
        },
    )
    .await;
    let mut work = t
        .app()
        .bus
        .subscribe("lifeboat.work.toy", "test")
        .await
        .expect("subscribe");
    let id = t.create(r#"{"group": "shop"}"#).await;
    let run = t.wait_state(&id, "succeeded").await;
    let speak = common::stage(&run, "speak");
    assert_eq!(speak["message"], "hello hello");
    assert_eq!(speak["agent"], "toy");
    let request: WorkRequest = serde_json::from_slice(
        &tokio::time::timeout(std::time::Duration::from_secs(5), work.next())
            .await
            .expect("a work request")
            .expect("the bus is open")
            .payload,
    )
    .expect("a work request");
    assert_eq!(request.resource, "toy:hello", "the toy's own lease key");
    t.shutdown().await;
}

#[test]
fn the_toy_check_is_located_and_unregistered_toys_are_unknown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = "name: shop\nstages:\n  speak:\n    agent: toy\n    spec: { word: \"  \" }\n";
    let wf = common::write_workflows(dir.path(), &[("shop.yaml", bad)]);
    let registered = Arc::new(Registry::builtin().with::<Toy>());
    let errors = Catalog::load(&wf, registered).expect_err("the toy rejects it");
    let lines: Vec<String> = errors
        .iter()
        .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
        .collect();
    assert_eq!(
        lines,
        vec!["5:19: stage `speak`: toy spec rejected at `word`: say a word"]
    );

    let wf = common::write_workflows(dir.path(), &[("shop.yaml", TOY)]);
    let errors = Catalog::load(&wf, Arc::new(Registry::builtin())).expect_err("unknown");
    assert!(
        errors[0].message.contains("unknown agent `toy`"),
        "{:?}",
        errors
    );
}

#[tokio::test]
async fn an_agent_that_panics_fails_its_stage_and_frees_the_resource() {
    let workflow = "name: shop\nstages:\n  speak:\n    agent: toy\n    spec: { word: boom, panic: true }\n  again:\n    agent: toy\n    after: []\n    spec: { word: boom }\n";
    let registry = Registry::builtin().with::<Toy>();
    let t = common::spawn_with(
        &[("shop.yaml", workflow), ("groups.yaml", common::GROUPS)],
        &[],
        Options {
            registry,
            ..Options::default()
        },
    )
    .await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    let run = t.wait_state(&id, "failed").await;
    let speak = common::stage(&run, "speak");
    assert_eq!(speak["attempts"], 1, "a bug is not retried: {run:#}");
    assert_eq!(
        speak["message"],
        "the toy agent failed unexpectedly: told to panic at boom"
    );
    // The panicking stage held `toy:boom`; the other stage took it once it was released.
    assert_eq!(common::stage(&run, "again")["state"], "succeeded");
    t.shutdown().await;
}

/// A panic's message may quote the spec as the agent read it: the secret in it is blanked,
/// as in anything else the agent says.
#[tokio::test]
async fn a_panic_that_quotes_a_secret_does_not_repeat_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("word");
    std::fs::write(&file, "s3cret-w0rd\n").expect("write");
    let workflow = format!(
        "name: shop\nstages:\n  speak:\n    agent: toy\n    spec: {{ word: '${{file:{}}}', panic: true }}\n",
        file.display()
    );
    let t = common::spawn_with(
        &[("shop.yaml", &workflow), ("groups.yaml", common::GROUPS)],
        &[],
        Options {
            registry: Registry::builtin().with::<Toy>(),
            ..Options::default()
        },
    )
    .await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    let run = t.wait_state(&id, "failed").await;
    assert_eq!(
        common::stage(&run, "speak")["message"],
        "the toy agent failed unexpectedly: told to panic at ***",
        "{run:#}"
    );
    assert!(!run.to_string().contains("s3cret-w0rd"), "{run:#}");
    t.shutdown().await;
}
