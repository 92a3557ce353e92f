//! The `rfc2136` dial provider against a real BIND 9 serving a zone that takes updates
//! signed with a TSIG key: the answer moves, a second run changes nothing, a dry run
//! changes nothing and says what would, an A-to-CNAME move leaves no conflict, and a wrong
//! key is a permanent, clearly worded failure.

use crate::common;

use std::path::Path;

use common::dns::{KEY_NAME, KEY_SECRET, PrivateBind};
use common::{TestApp, changes, stage};
use lifeboat::app::Options;

const WORKFLOW: &str = r#"
name: dns-failover
params: { to: region-a }
stages:
  dial:
    agent: dial
    spec: { endpoint: petstore.example.com, region: "${to}" }
    retry: { max_attempts: 2, initial_backoff: 50ms, max_backoff: 50ms }
"#;

const GROUPS: &str = "groups:\n  dns:\n    workflows: { failover: dns-failover }\n";

fn targets(dir: &Path, bind: &PrivateBind, secret: &str) -> String {
    let file = dir.join("tsig.secret");
    std::fs::write(&file, format!("{secret}\n")).expect("write");
    format!(
        r#"endpoints:
  petstore.example.com:
    provider: rfc2136
    server: "{}"
    zone: example.com.
    key: {{ name: {KEY_NAME}, algorithm: hmac-sha256, secret: "${{file:{}}}" }}
    ttl: 30
    regions:
      region-a: {{ A: [192.0.2.10, 192.0.2.11] }}
      region-b: {{ A: [198.51.100.10] }}
      region-c: {{ CNAME: [lb-c.example.net] }}
"#,
        bind.server(),
        file.display()
    )
}

async fn spawn(dir: &Path, bind: &PrivateBind, secret: &str) -> TestApp {
    common::spawn_configured(
        &[
            ("dns.yaml", WORKFLOW),
            ("groups.yaml", GROUPS),
            ("targets.yaml", &targets(dir, bind, secret)),
        ],
        &[],
        Options::default(),
        |_| {},
    )
    .await
}

#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_NAMED"]
async fn a_dial_moves_the_answer_once_and_a_dry_run_only_says_how() {
    let Some(bind) = PrivateBind::start("petstore IN A 198.51.100.10").await else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let t = spawn(scratch.path(), &bind, KEY_SECRET).await;

    let id = t.create(r#"{"group": "dns", "dry_run": true}"#).await;
    let run = t.wait_state(&id, "succeeded").await;
    let dial = stage(&run, "dial");
    assert_eq!(
        changes(dial),
        ["petstore.example.com A: 198.51.100.10 → 192.0.2.10, 192.0.2.11"],
        "{run:#}"
    );
    assert_eq!(dial["report"]["checks"][0]["name"], "zone answers");
    assert_eq!(dial["report"]["checks"][0]["ok"], true);
    assert_eq!(bind.dig("petstore.example.com", "A"), ["198.51.100.10"]);

    let id = t.create(r#"{"group": "dns"}"#).await;
    let run = t.wait_state(&id, "succeeded").await;
    assert_eq!(
        bind.dig("petstore.example.com", "A"),
        ["192.0.2.10", "192.0.2.11"]
    );
    let message = stage(&run, "dial")["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with(
            "petstore.example.com now answers 192.0.2.10, 192.0.2.11 (A) from region-a"
        ),
        "{message}"
    );

    let id = t.create(r#"{"group": "dns"}"#).await;
    let again = t.wait_state(&id, "succeeded").await;
    assert_eq!(
        stage(&again, "dial")["message"],
        "petstore.example.com already answers 192.0.2.10, 192.0.2.11 (A) from region-a; nothing to do"
    );
    assert!(changes(stage(&again, "dial")).is_empty());

    // To a region that answers with a CNAME: the A records go in the same update.
    let id = t
        .create(r#"{"group": "dns", "params": {"to": "region-c"}}"#)
        .await;
    let run = t.wait_state(&id, "succeeded").await;
    assert_eq!(
        changes(stage(&run, "dial")),
        [
            "petstore.example.com A: 192.0.2.10, 192.0.2.11 → nothing",
            "petstore.example.com CNAME: nothing → lb-c.example.net."
        ]
    );
    assert_eq!(
        bind.dig("petstore.example.com", "CNAME"),
        ["lb-c.example.net."]
    );
    t.shutdown().await;
}

#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_NAMED"]
async fn a_wrong_tsig_key_fails_for_good_and_changes_nothing() {
    let Some(bind) = PrivateBind::start("petstore IN A 198.51.100.10").await else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmc=";
    let t = spawn(scratch.path(), &bind, wrong).await;
    let id = t.create(r#"{"group": "dns"}"#).await;
    let run = t.wait_state(&id, "failed").await;
    let dial = stage(&run, "dial");
    assert_eq!(dial["attempts"], 1, "permanent: not retried: {run:#}");
    let message = dial["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&format!(
            "rejected the update's signature with TSIG key `{KEY_NAME}`: check the key's name, algorithm and secret"
        )),
        "{message}"
    );
    assert!(
        !message.contains(wrong),
        "the secret is never shown: {message}"
    );
    assert_eq!(bind.dig("petstore.example.com", "A"), ["198.51.100.10"]);
    t.shutdown().await;
}

/// A failback worked out from the failover moves the endpoint back only from what the
/// failover left it answering: after someone else moved it, the failback fails before it
/// changes anything, saying the estate drifted; with `force` it goes on, and the override
/// is in the audit.
#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_NAMED"]
async fn a_failback_from_the_record_refuses_dns_that_drifted_unless_forced() {
    let Some(bind) = PrivateBind::start("petstore IN A 198.51.100.10").await else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    // `other` moves the same endpoint behind the `dns` group's back.
    let groups = "groups:\n  dns:\n    workflows: { failover: dns-failover }\n  other:\n    workflows: { failover: dns-failover }\n";
    let t = common::spawn_configured(
        &[
            ("dns.yaml", WORKFLOW),
            ("groups.yaml", groups),
            ("targets.yaml", &targets(scratch.path(), &bind, KEY_SECRET)),
        ],
        &[],
        Options::default(),
        |_| {},
    )
    .await;
    let failover = t.create(r#"{"group": "dns"}"#).await;
    t.wait_state(&failover, "succeeded").await;
    let moved = t
        .create(r#"{"group": "other", "params": {"to": "region-c"}}"#)
        .await;
    t.wait_state(&moved, "succeeded").await;

    let id = t.create(r#"{"group": "dns", "action": "failback"}"#).await;
    let run = t.wait_state(&id, "failed").await;
    let back = stage(&run, "back-dial");
    assert_eq!(
        back["message"],
        "petstore.example.com A answers nothing, not 192.0.2.10, 192.0.2.11 as the failover left it: the estate has drifted since; fail back with force to move it anyway",
        "{run:#}"
    );
    assert!(changes(back).is_empty(), "nothing changed");
    assert_eq!(
        bind.dig("petstore.example.com", "CNAME"),
        ["lb-c.example.net."]
    );

    let id = t
        .create(r#"{"group": "dns", "action": "failback", "force": true}"#)
        .await;
    let run = t.wait_state(&id, "succeeded").await;
    assert_eq!(bind.dig("petstore.example.com", "A"), ["198.51.100.10"]);
    let overridden = run["events"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["kind"] == "drift.overridden");
    assert!(overridden, "the override is audited: {run:#}");
    t.shutdown().await;
}

/// The TTL a real server answers with, against the target's `ttl`: a record served with
/// 3600 s (raised since the plan was written) makes a drill's check fail and the group not
/// ready; the failover writes the records with the target's TTL, and the next drill passes.
#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_NAMED"]
async fn a_ttl_raised_over_the_targets_makes_the_group_not_ready() {
    let Some(bind) = PrivateBind::start("petstore 3600 IN A 198.51.100.10").await else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let t = spawn(scratch.path(), &bind, KEY_SECRET).await;
    let readiness = async || {
        let (status, body) = t.get("/api/v1/readiness").await;
        assert_eq!(status, 200, "{body}");
        body["groups"][0].clone()
    };

    let drill = t.create(r#"{"group": "dns", "action": "drill"}"#).await;
    let run = t.wait_state(&drill, "succeeded").await;
    assert!(
        stage(&run, "dial")["report"]["checks"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["name"] == "ttl" && c["ok"] == false)),
        "{run:#}"
    );
    let dns = readiness().await;
    assert_eq!(dns["ready"], false, "{dns:#}");
    let ttl = dns["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "ttl").cloned())
        .unwrap_or_default();
    assert_eq!(
        ttl["detail"], "3600s answered, over the ttl of 30s",
        "{dns:#}"
    );
    assert_eq!(bind.dig("petstore.example.com", "A"), ["198.51.100.10"]);

    let id = t.create(r#"{"group": "dns"}"#).await;
    t.wait_state(&id, "succeeded").await;
    let drill = t.create(r#"{"group": "dns", "action": "drill"}"#).await;
    t.wait_state(&drill, "succeeded").await;
    let dns = readiness().await;
    assert_eq!(
        dns["ready"], true,
        "the failover wrote them with 30 s: {dns:#}"
    );
    t.shutdown().await;
}
