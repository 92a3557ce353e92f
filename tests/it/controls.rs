//! Operator controls through the API and the command line: resume, retry now, skip,
//! four eyes, and the agent preflight on the Kafka bus.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{FIXABLE, put_fix, spawn, stage};
use serde_json::{Value, json};

/// The app on `workflow` (with a `dir` param), and a run of it working in `dir`.
async fn run_in(dir: &Path, workflow: &str) -> (common::TestApp, String) {
    let t = spawn(
        &[("shop.yaml", workflow), ("groups.yaml", common::GROUPS)],
        &[],
    )
    .await;
    let id = t.create(&run_body(dir)).await;
    (t, id)
}

fn run_body(dir: &Path) -> String {
    json!({ "group": "shop", "params": { "dir": dir } }).to_string()
}

fn lines(dir: &Path, file: &str) -> usize {
    std::fs::read_to_string(dir.join(file))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn events<'a>(run: &'a Value, kind: &str) -> Vec<&'a Value> {
    run["events"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["kind"] == kind).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn resume_after_a_permanent_failure_runs_the_fixed_stage_and_not_the_succeeded_one() {
    let scratch = tempfile::tempdir().expect("scratch");
    let t = spawn(
        &[("shop.yaml", FIXABLE), ("groups.yaml", common::GROUPS)],
        &[("ops", "ops-token-0123456789")],
    )
    .await;
    let id = t.create(&run_body(scratch.path())).await;
    let failed = t.wait_state(&id, "failed").await;
    assert_eq!(stage(&failed, "fixed")["state"], "failed", "{failed:#}");
    assert_eq!(
        stage(&failed, "fixed")["attempts"],
        1,
        "a permanent failure is not retried"
    );
    assert_eq!(stage(&failed, "last")["state"], "skipped");

    // Nothing to resume yet for a run that does not exist, or with a bad body.
    let (status, _) = t
        .post(
            "/api/v1/runs/01a213a1-0776-769e-b4c5-9785c42f41c5/resume",
            "{}",
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = t
        .post(&format!("/api/v1/runs/{id}/resume"), r#"{"forse": true}"#)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        t.get(&format!("/api/v1/runs/{id}")).await.1["state"],
        "failed"
    );

    put_fix(scratch.path());
    let (status, resumed) = t.post(&format!("/api/v1/runs/{id}/resume"), "").await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["id"], id.as_str(), "the run keeps its id");
    let done = t.wait_state(&id, "succeeded").await;
    assert_eq!(
        lines(scratch.path(), "first.log"),
        1,
        "the succeeded stage did not run again"
    );
    assert_eq!(lines(scratch.path(), "fixed.log"), 1);
    assert_eq!(lines(scratch.path(), "last.log"), 1);
    assert_eq!(stage(&done, "first")["attempts"], 1);
    assert_eq!(
        stage(&done, "fixed")["attempts"],
        2,
        "attempt numbers keep counting"
    );
    let resumed = events(&done, "run.resumed");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0]["actor"], "api:ops");

    // A run that succeeded has nothing to resume.
    let (status, body) = t.post(&format!("/api/v1/runs/{id}/resume"), "").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("nothing to resume"),
        "{body}"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn a_resume_is_refused_while_the_group_has_another_active_run() {
    let scratch = tempfile::tempdir().expect("scratch");
    let wf = r#"
name: shop
params: { dir: "" }
stages:
  fixed:
    agent: exec
    spec: { command: [./fix.sh], workdir: "${dir}" }
  slow:
    agent: capacity
    after: [fixed]
    spec: { cluster: k, namespace: n, replicas: 2, duration: 1s }
"#;
    let (t, first) = run_in(scratch.path(), wf).await;
    t.wait_state(&first, "failed").await;
    put_fix(scratch.path());
    let second = t.create(&run_body(scratch.path())).await;
    t.wait_for(&second, "`slow` to run", |r| {
        stage(r, "slow")["state"] == "running"
    })
    .await;
    let (status, body) = t.post(&format!("/api/v1/runs/{first}/resume"), "").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains(&second),
        "names the active run: {body}"
    );
    assert_eq!(
        t.get(&format!("/api/v1/runs/{first}")).await.1["state"],
        "failed"
    );
    t.wait_state(&second, "succeeded").await;
    let (status, body) = t.post(&format!("/api/v1/runs/{first}/resume"), "").await;
    assert_eq!(status, 200, "{body}");
    t.wait_state(&first, "succeeded").await;
    t.shutdown().await;
}

#[tokio::test]
async fn retry_now_cuts_a_30s_backoff_short() {
    let scratch = tempfile::tempdir().expect("scratch");
    let wf = r#"
name: shop
params: { dir: "" }
stages:
  flaky:
    agent: exec
    spec:
      command: [sh, -c, 'test -f once || { touch once; exit 1; }']
      workdir: "${dir}"
    retry: { max_attempts: 3, initial_backoff: 30s, max_backoff: 30s }
"#;
    let (t, id) = run_in(scratch.path(), wf).await;
    let waiting = t
        .wait_for(&id, "the backoff", |r| {
            stage(r, "flaky")["state"] == "retrying"
        })
        .await;
    let retry_at = stage(&waiting, "flaky")["retry_at"]
        .as_str()
        .expect("a retry time")
        .to_string();

    let (status, body) = t
        .post(&format!("/api/v1/runs/{id}/stages/nope/retry"), "")
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = t
        .post(&format!("/api/v1/runs/{id}/stages/flaky/retry"), "")
        .await;
    assert_eq!(status, 200, "{body}");
    let done = t.wait_state(&id, "succeeded").await;
    let dispatched = events(&done, "stage.dispatched");
    let second = dispatched
        .iter()
        .find(|e| e["attempt"] == 2)
        .expect("a second attempt");
    assert_eq!(second["actor"], "api:local", "{done:#}");
    let at = second["at"].as_str().expect("when");
    assert!(
        at < retry_at.as_str(),
        "attempt 2 went out at {at}, before its backoff ended at {retry_at}"
    );
    // Nothing waits now: a second press is refused.
    let (status, body) = t
        .post(&format!("/api/v1/runs/{id}/stages/flaky/retry"), "")
        .await;
    assert_eq!(status, 409, "{body}");
    t.shutdown().await;
}

#[tokio::test]
async fn skip_lets_dependents_run_and_is_refused_where_it_does_not_apply() {
    let scratch = tempfile::tempdir().expect("scratch");
    let (t, id) = run_in(scratch.path(), FIXABLE).await;
    t.wait_state(&id, "failed").await;

    for (path, body, want) in [
        ("fixed/skip", "{}", 400),
        ("fixed/skip", r#"{"reason": "  "}"#, 400),
        ("fixed/skip", "not json", 400),
        ("first/skip", r#"{"reason": "x"}"#, 409),
        ("ghost/skip", r#"{"reason": "x"}"#, 404),
    ] {
        let (status, answer) = t
            .post(&format!("/api/v1/runs/{id}/stages/{path}"), body)
            .await;
        assert_eq!(status, want, "{path} {body}: {answer}");
    }
    assert_eq!(
        t.get(&format!("/api/v1/runs/{id}")).await.1["state"],
        "failed"
    );

    let (status, body) = t
        .post(
            &format!("/api/v1/runs/{id}/stages/fixed/skip"),
            r#"{"reason": "done by hand in the console"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let done = t.wait_state(&id, "succeeded").await;
    let fixed = stage(&done, "fixed");
    assert_eq!(fixed["state"], "skipped");
    assert_eq!(fixed["skipped_by"], "api:local");
    assert_eq!(
        fixed["message"],
        "skipped by api:local: done by hand in the console"
    );
    assert_eq!(stage(&done, "last")["state"], "succeeded");
    assert_eq!(lines(scratch.path(), "first.log"), 1);
    assert_eq!(lines(scratch.path(), "last.log"), 1);
    t.shutdown().await;
}

const GATED: &str = "\
name: shop
stages:
  dial:
    agent: dial
    approval: required
    spec: { endpoint: shop.example.com, region: region-a, duration: 50ms }
";

const FOUR_EYES: &str = "\
groups:
  shop:
    workflows: { failover: shop }
    approvals: 2
    people:
      alice: { api: alice, slack: U1 }
      bob: { api: bob }
";

#[tokio::test]
async fn four_eyes_refuses_the_requester_and_one_person_twice() {
    let t = spawn(
        &[("shop.yaml", GATED), ("groups.yaml", FOUR_EYES)],
        &[
            ("alice", "alice-token-0123456789"),
            ("bob", "bob-token-0123456789"),
            ("carol", "carol-token-0123456789"),
        ],
    )
    .await;
    // Alice asks for the run.
    let id = t.create(r#"{"group": "shop"}"#).await;
    let run = t.wait_state(&id, "awaiting_approval").await;
    assert_eq!(stage(&run, "dial")["approvals_needed"], 2);
    let path = format!("/api/v1/runs/{id}/approve");
    let approve = async |token: &str| t.post_as(token, &path, &json!({})).await;
    let (status, body) = approve("alice-token-0123456789").await;
    assert_eq!(status, 403, "the requester: {body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("requester"),
        "{body}"
    );
    let (status, body) = approve("bob-token-0123456789").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "awaiting_approval", "one of two: {body}");
    let (status, body) = approve("bob-token-0123456789").await;
    assert_eq!(status, 403, "the same person twice: {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("`bob` has approved"),
        "{body}"
    );
    let (status, body) = approve("carol-token-0123456789").await;
    assert_eq!(status, 200, "{body}");
    let done = t.wait_state(&id, "succeeded").await;
    let dial = stage(&done, "dial");
    let people: Vec<&str> = dial["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .filter_map(|a| a["person"].as_str())
        .collect();
    assert_eq!(people, ["bob", "api:carol"]);
    assert_eq!(dial["approved_by"], "api:carol");
    let approved = events(&done, "stage.approved");
    assert_eq!(approved.len(), 2);
    assert_eq!(approved[0]["message"], "1 of 2 approvals");
    t.shutdown().await;
}

/// `lifeboat resume`, `skip`, `retry`, `abort` and `agents` against a running service.
fn cli(dir: &Path, port: u16, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .env("LIFEBOAT_SERVER", format!("http://127.0.0.1:{port}"))
        .env("LIFEBOAT_API_TOKEN", "ops-token-0123456789")
        .env_remove("LIFEBOAT_CONFIG")
        .current_dir(dir)
        .output()
        .expect("run lifeboat");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The run once it has ended, read with the service's token.
async fn finished(client: &reqwest::Client, base: &str, id: &str) -> Value {
    common::until("the run to end", Duration::from_secs(30), async || {
        let url = format!("{base}/api/v1/runs/{id}");
        let run = common::get_json(client, &url, Some("ops-token-0123456789")).await?;
        run["finished_at"].is_string().then_some(run)
    })
    .await
}

#[tokio::test]
async fn the_command_line_resumes_and_a_changed_workflow_needs_force() {
    let dir = tempfile::tempdir().expect("dir");
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).expect("scratch");
    common::write_workflows(
        dir.path(),
        &[("shop.yaml", FIXABLE), ("groups.yaml", common::GROUPS)],
    );
    let env = [("LIFEBOAT_API_TOKENS", "ops:ops-token-0123456789")];
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let server = common::serve(dir.path(), port, &env);
    common::until_ready(&client, &base).await;

    let (code, out, _) = cli(dir.path(), port, &["agents"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("live embedded:") && out.contains("exec"),
        "the in-process agents announce themselves: {out}"
    );

    let created: Value = client
        .post(format!("{base}/api/v1/runs"))
        .bearer_auth("ops-token-0123456789")
        .json(&json!({ "group": "shop", "params": { "dir": scratch } }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    let failed = finished(&client, &base, &id).await;
    assert_eq!(failed["state"], "failed");

    // The workflow changes under the failed run, and the service restarts on it.
    drop(server);
    let changed = FIXABLE.replace("echo ran >> last.log", "echo ran twice >> last.log");
    common::write_workflows(dir.path(), &[("shop.yaml", changed.as_str())]);
    let _server = common::serve(dir.path(), port, &env);
    common::until_ready(&client, &base).await;
    put_fix(&scratch);

    let (code, _, err) = cli(dir.path(), port, &["resume", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("stage `last` of workflow `shop` has changed") && err.contains("force"),
        "{err}"
    );
    let (code, out, err) = cli(dir.path(), port, &["resume", &id, "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("run {id}")), "{out}");
    let done = finished(&client, &base, &id).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let resumed = events(&done, "run.resumed");
    assert_eq!(resumed[0]["actor"], "api:ops");
    assert!(
        resumed[0]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("forced:"),
        "{done:#}"
    );
    // The run kept the plan it started with.
    assert_eq!(
        std::fs::read_to_string(scratch.join("last.log")).expect("last.log"),
        "ran\n"
    );

    let (code, _, err) = cli(dir.path(), port, &["skip", &id, "first", "--reason", "x"]);
    assert_eq!(code, 1, "a succeeded stage: {err}");
    let (code, _, err) = cli(dir.path(), port, &["abort", &id]);
    assert_eq!(code, 1, "a finished run: {err}");
    assert!(err.contains("already succeeded"), "{err}");
}

/// On the Kafka bus with no agent process, a run is refused naming the missing kind; a
/// dry run reports it as a failed check; `force` starts it anyway, audited; once an agent
/// is up, runs pass.
#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL, LIFEBOAT_TEST_KAFKA_BROKERS"]
async fn the_preflight_refuses_a_run_no_live_agent_can_serve() {
    let Some(brokers) = common::kafka_brokers() else {
        return;
    };
    let Some((db, db_name)) = common::fresh_postgres().await else {
        return;
    };
    let mut cluster = common::cluster::Cluster::new(&brokers, &db, &[("one", 0)]);
    let (_serve, base) = cluster.serve("serve").await;
    let client = cluster.client.clone();
    let runs = format!("{base}/api/v1/runs");
    let post = async |body: Value| common::post_json(&client, &runs, None, &body).await;
    let (status, body) = post(json!({ "group": "shop" })).await;
    assert_eq!(status, 409, "{body}");
    let error = body["error"].as_str().unwrap_or("");
    assert!(
        error.contains("no live agent serves kind `exec` (stage `one`)"),
        "{error}"
    );

    let (status, dry) = post(json!({ "group": "shop", "dry_run": true })).await;
    assert_eq!(status, 201, "{dry}");
    let dry_id = dry["id"].as_str().expect("id").to_string();
    let dry = cluster
        .finished(&base, &dry_id, Duration::from_secs(30))
        .await;
    assert_eq!(dry["state"], "failed", "{dry:#}");
    let check = &stage(&dry, "one")["report"]["checks"][0];
    assert_eq!(check["name"], "agent available");
    assert_eq!(check["ok"], false);
    assert_eq!(check["detail"], "no live agent serves kind `exec`");

    let (status, forced) = post(json!({ "group": "shop", "force": true })).await;
    assert_eq!(status, 201, "{forced}");
    let forced_id = forced["id"].as_str().expect("id").to_string();

    let _agent = cluster.agent("agent-1");
    let agents = common::until(
        "the agent's heartbeat",
        Duration::from_secs(30),
        async || {
            let url = format!("{base}/api/v1/agents");
            let listed = common::get_json(&client, &url, None).await?;
            let live = listed["agents"]
                .as_array()?
                .iter()
                .find(|a| {
                    a["live"] == true
                        && a["instance"]
                            .as_str()
                            .is_some_and(|i| i.starts_with("agent:"))
                })?
                .clone();
            Some(live)
        },
    )
    .await;
    assert_eq!(agents["kinds"], json!(["exec"]));
    assert_eq!(agents["version"], env!("CARGO_PKG_VERSION"));
    assert!(agents["host"].is_string() && agents["last_seen"].is_string());
    assert!(agents["in_flight"].is_u64());

    let forced = cluster
        .finished(&base, &forced_id, Duration::from_secs(60))
        .await;
    assert_eq!(
        forced["state"],
        "succeeded",
        "{forced:#}\n{}",
        cluster.logs()
    );
    let overridden = events(&forced, "preflight.overridden");
    assert_eq!(overridden.len(), 1, "{forced:#}");
    assert!(
        overridden[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("started anyway (force)")
    );

    let (status, body) = post(json!({ "group": "shop" })).await;
    assert_eq!(status, 201, "passes once an agent is live: {body}");
    let id = body["id"].as_str().expect("id").to_string();
    let done = cluster.finished(&base, &id, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "succeeded", "{}", cluster.logs());
    common::drop_postgres(&db_name).await;
}

/// A word that is no control answers 404 and changes nothing; it never falls through to a
/// cancel. `abort` is cancel's other word, and an offer's controls are refused on a run.
#[tokio::test]
async fn a_word_that_is_no_control_changes_nothing() {
    let (t, id) = common::holding_run().await;
    for (path, status) in [
        (format!("/api/v1/runs/{id}/frobnicate"), 404),
        (format!("/api/v1/runs/{id}/Cancel"), 404),
        (format!("/api/v1/runs/{id}/stages/hold/cancel"), 404),
        (format!("/api/v1/runs/{id}/stages/hold/frobnicate"), 404),
        (format!("/api/v1/runs/{id}/veto"), 404),
        (format!("/api/v1/offers/{id}/cancel"), 404),
    ] {
        let (got, body) = t.post(&path, r#"{"reason": "x"}"#).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
        let (_, run) = t.get(&format!("/api/v1/runs/{id}")).await;
        assert_eq!(run["state"], "running", "{path} changed the run: {run}");
    }
    let (status, body) = t
        .post(
            &format!("/api/v1/runs/{id}/abort"),
            r#"{"reason": "drill over"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    t.wait_state(&id, "cancelled").await;
    t.shutdown().await;
}
