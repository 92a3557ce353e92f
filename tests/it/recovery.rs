//! The narrowest crash window: an agent released its lease with success, and the process
//! died before the orchestrator applied it. On restart the outcome is found in the store,
//! the stage counts as done, and it is not run again.

use crate::common;

use lifeboat::app::{App, Options};
use lifeboat::config::Settings;
use lifeboat::domain::OutcomeKind;
use lifeboat::semaphore::Semaphore;
use lifeboat::store::{Release, Store};

const LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

#[tokio::test]
async fn a_success_released_before_a_crash_is_applied_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("ran.log");
    let gate = dir.path().join("go");
    let wf = format!(
        r#"
name: shop
stages:
  first:
    agent: exec
    spec: {{ command: [sh, -c, 'while [ ! -f "{gate}" ]; do sleep 0.05; done; echo first >> "{log}"'] }}
  second:
    agent: exec
    spec: {{ command: [sh, -c, 'echo second >> "{log}"'] }}
"#,
        gate = gate.display(),
        log = log.display()
    );
    let settings = Settings::embedded(
        format!("sqlite://{}", dir.path().join("db.sqlite").display()),
        common::write_workflows(
            dir.path(),
            &[("steps.yaml", &wf), ("groups.yaml", common::GROUPS)],
        ),
    );

    let app = App::start(&settings, Options::default())
        .await
        .expect("start");
    let run = common::start_failover(&app, "shop").await;
    let holder = app.instance.clone();
    let store = app.store.clone();
    let running = async {
        loop {
            let r = store.load_run(run.id).await.expect("load").expect("run");
            if r.stages[0].state == lifeboat::domain::StageState::Running {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(LIMIT, running)
        .await
        .expect("first stage starts");
    // The process "dies": its tasks stop, and the stage's command with them.
    app.shutdown().await;

    // What the agent did just before: released its lease with success.
    let store = Store::connect(settings.database_url.expose())
        .await
        .expect("store");
    let request = lifeboat::domain::request_id(run.id, "first", 1);
    let released = Semaphore::new(store.clone(), None)
        .release(Release {
            request_id: &request,
            holder: &holder,
            kind: OutcomeKind::Succeeded,
            retryable: false,
            message: Some("released before the crash".into()),
            report: None,
        })
        .await
        .expect("release");
    assert!(
        released.is_some(),
        "the lease was still held by the dead process"
    );
    store.close().await;

    let app = App::start(&settings, Options::default())
        .await
        .expect("restart");
    let done = common::finished(&app.store, run.id).await;
    assert_eq!(done.state, lifeboat::domain::RunState::Succeeded);
    assert_eq!(done.stages[0].attempts, 1, "first was not run again");
    assert_eq!(
        done.stages[0].message.as_deref(),
        Some("released before the crash")
    );
    assert_eq!(std::fs::read_to_string(&log).expect("log"), "second\n");
    app.shutdown().await;
}
