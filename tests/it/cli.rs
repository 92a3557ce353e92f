//! The command line: `run` exits 0 on success and 1 on failure, a run's gate is refused
//! without a terminal or `--yes`, and `demo` works with no setup at all.

use std::path::Path;
use std::process::{Command, Output};

fn lifeboat(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .current_dir(cwd)
        .env("LIFEBOAT_WORKFLOWS", cwd.join("workflows"))
        .env(
            "LIFEBOAT_DATABASE_URL",
            format!("sqlite://{}", cwd.join("cli.db").display()),
        )
        .env_remove("LIFEBOAT_CONFIG")
        .env_remove("LIFEBOAT_KAFKA_BROKERS")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("lifeboat runs")
}

fn setup(workflow: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("workflows")).expect("mkdir");
    std::fs::write(dir.path().join("workflows/shop.yaml"), workflow).expect("write");
    std::fs::write(
        dir.path().join("workflows/groups.yaml"),
        "groups:\n  shop:\n    workflows: { failover: shop }\n",
    )
    .expect("write");
    dir
}

const GATED: &str =
    "name: shop\nstages:\n  a: { agent: noop }\n  b: { agent: noop, approval: required }\n";

#[test]
fn run_exits_zero_on_success_and_prints_the_summary() {
    let dir = setup(GATED);
    let out = lifeboat(dir.path(), &["run", "shop", "--yes"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Run failover of `shop` succeeded"),
        "{stdout}"
    );
    assert!(stdout.contains("total recovery time:"), "{stdout}");
    assert!(stdout.contains("approving as cli:"), "{stdout}");
}

#[test]
fn run_yes_on_a_four_eyes_group_ends_the_run_saying_why() {
    let dir = setup(GATED);
    std::fs::write(
        dir.path().join("workflows/groups.yaml"),
        "groups:\n  shop:\n    workflows: { failover: shop }\n    approvals: 2\n",
    )
    .expect("write");
    let out = lifeboat(dir.path(), &["run", "shop", "--yes"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("the requester may not approve their own run: this group needs 2 other people; approve through `lifeboat serve`"),
        "{stdout}"
    );
}

#[test]
fn run_without_an_approver_is_rejected_and_exits_one() {
    let dir = setup(GATED);
    let out = lifeboat(dir.path(), &["run", "shop"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("cancelled: rejected by lifeboat: approval needed, and no terminal to ask on (pass --yes)"), "{stdout}");
}

#[test]
fn run_exits_one_when_a_stage_fails_and_two_on_bad_usage() {
    let dir = setup(
        "name: shop\nstages:\n  a:\n    agent: exec\n    spec: { command: [\"false\"] }\n    retry: { max_attempts: 1 }\n",
    );
    let out = lifeboat(dir.path(), &["run", "shop"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("stage `a` failed: exit code 1"));

    let out = lifeboat(dir.path(), &["run", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown group `nope`"));
    let out = lifeboat(dir.path(), &["plan", "shop", "--action", "sideways"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn demo_runs_with_no_setup() {
    // An empty directory: no workflows, no database, no configuration.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .arg("demo")
        .current_dir(dir.path())
        .env_remove("LIFEBOAT_WORKFLOWS")
        .env_remove("LIFEBOAT_DATABASE_URL")
        .env_remove("LIFEBOAT_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "> /dr failover petstore",
        "promote-database  stage.retrying: simulated: transient failure",
        "approval requested for `dial`; approving as cli:demo",
        "Run failover of `petstore` succeeded",
        "total recovery time:",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("list").count(),
        0,
        "the demo leaves nothing behind"
    );
}

/// `demo --keep` says where its console is, serves it with the demo's run on it, and stops
/// when Enter is pressed.
#[test]
fn demo_keeps_serving_the_console_until_enter() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["demo", "--keep"])
        .current_dir(dir.path())
        .env_remove("LIFEBOAT_WORKFLOWS")
        .env_remove("LIFEBOAT_DATABASE_URL")
        .env_remove("LIFEBOAT_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("demo starts");
    let stdout = demo.stdout.take().expect("its output");
    let mut said = Vec::new();
    let console = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            said.push(line.clone());
            line.strip_prefix("Still serving: the console at ")
                .and_then(|rest| rest.split_whitespace().next())
                .map(|url| url.trim_end_matches('.').to_string())
        })
        .unwrap_or_else(|| panic!("no console URL in:\n{}", said.join("\n")));
    assert!(
        said.iter().any(|l| l.starts_with("Console: http://")),
        "the console's URL is printed when the service is up"
    );
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let page = runtime.block_on(async {
        reqwest::get(&console)
            .await
            .expect("the console answers")
            .text()
            .await
            .expect("a page")
    });
    assert!(
        page.contains("petstore") && page.contains("succeeded"),
        "{page}"
    );
    let mut stdin = demo.stdin.take().expect("its input");
    stdin.write_all(b"\n").expect("Enter");
    drop(stdin);
    let status = demo.wait().expect("the demo ends");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn routes_test_says_what_each_alert_would_do_and_starts_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = lifeboat_in(
        dir.path(),
        repo,
        &repo.join("alertmanager/examples/region-down.json"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 alertmanager alerts"), "{stdout}");
    assert!(
        stdout.contains("route `petstore-region-down`: failover of `petstore`")
            && stdout.contains("counts down 2m in chat (Veto / Start now)"),
        "{stdout}"
    );
    assert!(stdout.contains("2. DiskFilling"), "{stdout}");
    assert!(stdout.contains("no route takes it"), "{stdout}");
    assert!(
        !dir.path().join("lifeboat.db").exists(),
        "no store is opened"
    );

    // PagerDuty's shape is told apart; a body that is not JSON says where.
    let pd = dir.path().join("pd.json");
    std::fs::write(
        &pd,
        r#"{"event":{"id":"E1","event_type":"incident.triggered","data":{"id":"P1","title":"Region b down","service":{"summary":"petstore-api"},"priority":{"summary":"P1"},"urgency":"high"}}}"#,
    )
    .expect("write");
    let out = lifeboat_in(dir.path(), repo, &pd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 pagerduty alert"), "{stdout}");
    assert!(stdout.contains("route `petstore-pagerduty-p1`"), "{stdout}");
    assert!(
        stdout.contains("asks in chat (Approve / Reject)"),
        "{stdout}"
    );
    // A generic source's body, recognised by the pointers routes.yaml gives it.
    let dd = dir.path().join("datadog.json");
    std::fs::write(
        &dd,
        r#"{"alert_id":"7311","title":"[Triggered] petstore p99","alert_transition":"Triggered","tags":"env:prod,service:petstore-api","body":"p99 2.4s"}"#,
    )
    .expect("write");
    let out = lifeboat_in(dir.path(), repo, &dd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 datadog alert"), "{stdout}");
    assert!(stdout.contains("route `petstore-datadog`"), "{stdout}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"version\": \"4\",\n \"alerts\": [}").expect("write");
    let out = lifeboat_in(dir.path(), repo, &bad);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.json:2:13: not JSON"), "{stderr}");
}

fn lifeboat_in(cwd: &Path, repo: &Path, file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["routes", "test"])
        .arg(file)
        .current_dir(cwd)
        .env("LIFEBOAT_WORKFLOWS", repo.join("workflows"))
        .env_remove("LIFEBOAT_CONFIG")
        .output()
        .expect("lifeboat runs")
}

/// `kafka_properties` in a settings file: librdkafka properties pass, a secret or a setting
/// that has its own variable is refused with the file and the key named, before anything
/// starts.
#[test]
fn settings_files_may_not_hold_kafka_secrets() {
    let dir = setup("name: shop\nstages:\n  a: { agent: noop }\n");
    let config = dir.path().join("lifeboat.yaml");
    let with = |properties: &str| {
        std::fs::write(&config, format!("kafka_properties:\n{properties}")).expect("write");
        lifeboat(
            dir.path(),
            &["validate", "--config", config.to_str().expect("utf-8")],
        )
    };
    let out = with("  client.id: lifeboat-eu\n  socket.keepalive.enable: true\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (line, said) in [
        ("  sasl.password: hunter2-secret\n", "holds a secret"),
        ("  ssl.key.password: hunter2-secret\n", "holds a secret"),
        (
            "  security.protocol: SASL_SSL\n",
            "LIFEBOAT_KAFKA_SECURITY_PROTOCOL",
        ),
    ] {
        let out = with(line);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{line}: {stderr}");
        assert!(
            stderr.contains("lifeboat.yaml: kafka_properties."),
            "{stderr}"
        );
        assert!(stderr.contains(said), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}
