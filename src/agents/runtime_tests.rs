//! Two agent processes that share a hostname and a pid (containers: each may be pid 1 on a
//! host named after the image) never run one attempt twice: their names differ.

use std::sync::Arc;
use std::time::Duration;

use super::Registry;
use super::runtime::Runtime;
use crate::app::{App, Options, instance_name_on};
use crate::config::Settings;
use crate::domain::{Actor, RunState};
use crate::orchestrator::NewRun;
use crate::semaphore::Semaphore;
use crate::workflow::Action;

const STAGES: [&str; 5] = ["a", "b", "c", "d", "e"];

#[tokio::test]
async fn agents_with_the_same_host_and_pid_run_each_attempt_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("ran.log");
    let workflows = dir.path().join("workflows");
    std::fs::create_dir_all(&workflows).expect("mkdir");
    let mut wf = String::from("name: shop\nstages:\n");
    for s in STAGES {
        wf.push_str(&format!(
            "  {s}:\n    agent: exec\n    spec: {{ command: [sh, -c, 'sleep 0.5; echo {s} >> {}'] }}\n",
            log.display()
        ));
    }
    std::fs::write(workflows.join("shop.yaml"), wf).expect("write");
    std::fs::write(
        workflows.join("groups.yaml"),
        "groups:\n  shop:\n    workflows: { failover: shop }\n",
    )
    .expect("write");
    let settings = Settings::embedded(
        format!("sqlite://{}", dir.path().join("t.db").display()),
        workflows,
    );
    let app = App::start(&settings, Options::default())
        .await
        .expect("the app starts");

    // A second agent process in all but name: same host, same pid, same kinds, on the same
    // bus and store, telling the same engine how its work ended.
    let host = super::heartbeat::host();
    let twin = instance_name_on("embedded", &host, std::process::id());
    assert_ne!(twin, app.instance);
    assert!(
        app.instance
            .starts_with(&format!("embedded:{host}:{}:", std::process::id()))
    );
    let engine = app.orchestrator.clone();
    let semaphore = Semaphore::new(
        app.store.clone(),
        Some(Arc::new(move |o| engine.outcome(o))),
    );
    let runtime = Runtime::new(app.bus.clone(), semaphore, twin);
    let registry = Registry::builtin();
    let env = registry.env(app.catalog.targets.clone());
    let mut consumers = Vec::new();
    for agent in registry.build(&["exec"], &env).expect("exec") {
        consumers.push(runtime.spawn(agent).await.expect("consume"));
    }

    let run = app
        .orchestrator
        .create(NewRun {
            group: "shop".into(),
            action: Action::Failover,
            dry_run: false,
            reason: None,
            params: Default::default(),
            requested_by: Actor::Terminal("test".into()),
            id: None,
            force: false,
        })
        .await
        .expect("a run");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let done = loop {
        let now = app
            .store
            .load_run(run.id)
            .await
            .expect("load")
            .expect("run");
        if now.state.is_final() {
            break now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run did not end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.state, RunState::Succeeded);
    let mut ran: Vec<String> = std::fs::read_to_string(&log)
        .expect("ran.log")
        .lines()
        .map(str::to_string)
        .collect();
    ran.sort();
    assert_eq!(ran, STAGES, "each stage ran exactly once");
    assert!(done.stages.iter().all(|s| s.attempts == 1));

    runtime.stop().await;
    for c in consumers {
        c.abort();
    }
    app.shutdown().await;
}
