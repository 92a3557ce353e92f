//! Slack, end to end against a loopback stand-in of its Web API: `/dr` with real request
//! signing, the incident channel, the live card, buttons, refusals, rate limits.

use crate::common;

use std::time::Duration;

use common::crash::{CrashAfter, Victim, died};
use common::slack::{Call, SIGNING_SECRET, Script, SlackStandIn, Tamper, post_form, press, shown};
use common::{TestApp, stage};
use lifeboat::app::Options;
use lifeboat::chat::slack::SlackSettings;
use lifeboat::secret::SecretString;
use serde_json::Value;

const SHOP: &str = "\
name: shop
stages:
  scale:
    agent: capacity
    spec: { cluster: k8s, namespace: shop, replicas: 2, duration: 200ms, fail_attempts: 1 }
    retry: { initial_backoff: 50ms, max_backoff: 50ms }
  dial:
    agent: dial
    approval: required
    spec: { endpoint: shop.example.com, region: a, duration: 100ms }
";

const GROUPS: &str = "\
groups:
  shop:
    workflows: { failover: shop }
    channel: CSTANDING
    owners: { slack: [UOWNER] }
    allow: { slack_users: [U1], slack_groups: [S0SRE] }
  open:
    workflows: { failover: shop }
";

fn slack(standin: &SlackStandIn, scale: f64) -> SlackSettings {
    SlackSettings {
        bot_token: SecretString::from("xoxb-test-token"),
        signing_secret: Some(SecretString::from(SIGNING_SECRET)),
        app_token: None,
        api_url: standin.api_url(),
        tier_scale: scale,
        team_ids: Vec::new(),
    }
}

async fn app(standin: &SlackStandIn, files: &[(&str, &str)]) -> TestApp {
    let settings = slack(standin, 20.0);
    common::spawn_configured(files, &[], Options::default(), move |s| {
        s.chat.set(settings)
    })
    .await
}

async fn shop(standin: &SlackStandIn) -> TestApp {
    app(standin, &[("shop.yaml", SHOP), ("groups.yaml", GROUPS)]).await
}

async fn slash(t: &TestApp, standin: &SlackStandIn, user: &str, text: &str) -> (u16, Value) {
    let (status, ack, _) = slash_with_hook(t, standin, user, text).await;
    (status, ack)
}

/// `/dr TEXT` from `user`: the HTTP answer, and the `response_url` the outcome goes to.
async fn slash_with_hook(
    t: &TestApp,
    standin: &SlackStandIn,
    user: &str,
    text: &str,
) -> (u16, Value, String) {
    let hook = standin.hook(&format!("cmd-{}", uuid::Uuid::now_v7().simple()));
    let trigger = common::fresh_id();
    let (status, ack) = post_form(
        t,
        "/slack/commands",
        &[
            ("team_id", "T1"),
            ("channel_id", "CREQ"),
            ("user_id", user),
            ("command", "/dr"),
            ("text", text),
            ("response_url", &hook),
            ("trigger_id", &trigger),
        ],
        |_, _, _| {},
    )
    .await;
    (status, ack, hook)
}

fn run_id_in(text: &str) -> String {
    text.split('`')
        .find(|w| w.len() == 36 && w.matches('-').count() == 4)
        .unwrap_or_else(|| panic!("no run id in {text}"))
        .to_string()
}

/// The card calls (its post and its edits) in a channel.
fn card_calls(standin: &SlackStandIn, channel: &str) -> Vec<Call> {
    standin
        .all_calls()
        .into_iter()
        .filter(|c| {
            (c.method == "chat.postMessage" || c.method == "chat.update")
                && c.body["channel"] == channel
                && c.body["blocks"].is_array()
        })
        .collect()
}

#[tokio::test]
async fn a_signed_slash_command_runs_a_failover_into_its_incident_channel() {
    let standin = SlackStandIn::start(Script::default()).await;
    let t = shop(&standin).await;

    let (status, ack) = slash(
        &t,
        &standin,
        "U1",
        "failover shop --reason region b is down",
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["response_type"], "ephemeral");
    assert!(
        ack["text"]
            .as_str()
            .unwrap_or("")
            .contains("Starting failover of `shop`"),
        "{ack}"
    );

    let started = standin
        .until("the outcome on response_url", |s| {
            s.hooks().into_iter().find(|h| {
                h["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("started failover"))
            })
        })
        .await;
    assert_eq!(started["response_type"], "in_channel");
    let id = run_id_in(started["text"].as_str().unwrap_or(""));

    // The incident channel, with the requester and the group's owner invited.
    let created = standin
        .until("an incident channel", |s| {
            s.calls("conversations.create").first().cloned()
        })
        .await;
    let name = created.body["name"].as_str().unwrap_or("");
    assert!(name.starts_with("dr-shop-failover-"), "{name}");
    let invited = standin
        .until("the invitations", |s| {
            s.calls("conversations.invite").first().cloned()
        })
        .await;
    assert_eq!(invited.body["channel"], "CINC1");
    assert_eq!(invited.body["users"], serde_json::json!(["U1", "UOWNER"]));

    // The gate: the card offers Approve, and U1 presses it.
    t.wait_state(&id, "awaiting_approval").await;
    standin
        .until("Approve on the card", |s| {
            card_calls(s, "CINC1")
                .last()
                .filter(|c| shown(c).contains("\"Approve\""))
                .cloned()
        })
        .await;
    let (status, _) = press(&t, &standin, "U1", "approve", &id).await;
    assert_eq!(status, 200);
    let run = t.wait_state(&id, "succeeded").await;
    assert_eq!(stage(&run, "dial")["approved_by"], "slack:U1");
    assert_eq!(run["requested_by"], "slack:U1");
    assert_eq!(run["reason"], "region b is down");

    // One card, edited in place, ending on the final state with who approved.
    let cards = standin
        .until("the card's final state", |s| {
            let cards = card_calls(s, "CINC1");
            cards
                .last()
                .filter(|c| {
                    shown(c).contains("succeeded") && shown(c).contains("Total recovery time")
                })
                .map(|_| cards.clone())
        })
        .await;
    let posts: Vec<&Call> = cards
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .collect();
    assert_eq!(posts.len(), 1, "the card is posted once");
    assert!(cards.len() > 1, "and edited after");
    let last = shown(cards.last().expect("a card"));
    assert!(last.contains("<@U1> approved `dial`"), "{last}");
    assert!(
        !last.contains("retried"),
        "the dispatch after an approval is no retry: {last}"
    );
    assert!(
        !last.contains("\"Cancel\""),
        "no buttons once the run has ended: {last}"
    );
    let ts = standin
        .calls("chat.postMessage")
        .into_iter()
        .find(|c| c.body["channel"] == "CINC1" && c.body["blocks"].is_array())
        .map(|c| c.body["channel"].clone());
    assert!(ts.is_some());
    assert!(
        cards
            .iter()
            .filter(|c| c.method == "chat.update")
            .all(|c| c.body["ts"] == "1700000000.000001"),
        "every edit is of the one card"
    );

    // Thread replies: the retry, the gate, the approval, and the summary with durations.
    let thread: Vec<String> = standin
        .until("the summary", |s| {
            let replies: Vec<String> = s
                .calls("chat.postMessage")
                .iter()
                .filter(|c| c.body["thread_ts"] == "1700000000.000001")
                .map(|c| c.body["text"].as_str().unwrap_or("").to_string())
                .collect();
            replies
                .iter()
                .any(|r| r.contains("Total recovery time"))
                .then_some(replies)
        })
        .await;
    for expected in [
        "`scale` attempt 1 failed",
        "`dial` waits for approval",
        "<@U1> approved `dial`",
        "`scale` succeeded in",
        "Total recovery time",
    ] {
        assert!(
            thread.iter().any(|r| r.contains(expected)),
            "no {expected:?} in {thread:#?}"
        );
    }
    // The requester's channel and the group's standing channel are told where it is.
    for channel in ["CREQ", "CSTANDING"] {
        let told = standin.calls("chat.postMessage").into_iter().any(|c| {
            c.body["channel"] == channel
                && c.body["text"].as_str().unwrap_or("").contains("<#CINC1>")
        });
        assert!(told, "{channel} hears of the incident");
    }
    t.shutdown().await;
}

#[tokio::test]
async fn a_request_that_fails_verification_gets_401_and_starts_nothing() {
    let standin = SlackStandIn::start(Script::default()).await;
    let t = shop(&standin).await;
    let fields = [
        ("team_id", "T1"),
        ("channel_id", "CREQ"),
        ("user_id", "U1"),
        ("command", "/dr"),
        ("text", "failover shop"),
        ("response_url", "http://127.0.0.1:1/nowhere"),
        ("trigger_id", "1.2.3"),
    ];
    let cases: [(&str, Box<Tamper>); 4] = [
        (
            "a wrong signature",
            Box::new(|_, _, sig| *sig = format!("v0={}", "0".repeat(64))),
        ),
        (
            "a stale timestamp",
            Box::new(|body, ts, sig| {
                let old = common::slack::now_secs() - 600;
                *ts = old.to_string();
                *sig = lifeboat::chat::slack::verify::sign(
                    SIGNING_SECRET.as_bytes(),
                    old,
                    body.as_bytes(),
                );
            }),
        ),
        (
            "a tampered body",
            Box::new(|body, _, _| *body = body.replace("U1", "U2")),
        ),
        ("no signature", Box::new(|_, _, sig| sig.clear())),
    ];
    for (what, tamper) in cases {
        let (status, body) = post_form(&t, "/slack/commands", &fields, tamper).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(body["error"].is_string(), "{what}: {body}");
    }
    let (status, _) = post_form(
        &t,
        "/slack/interactions",
        &[("payload", "{}")],
        |_, _, sig| *sig = format!("v0={}", "1".repeat(64)),
    )
    .await;
    assert_eq!(status, 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, runs) = t.get("/api/v1/runs").await;
    assert_eq!(runs["runs"], serde_json::json!([]), "nothing started");
    assert!(standin.all_calls().is_empty(), "and nothing was said");
    t.shutdown().await;
}

#[tokio::test]
async fn unknown_commands_get_usage_and_refusals_are_said_and_recorded() {
    let standin = SlackStandIn::start(Script {
        usergroups: [("S0SRE".to_string(), vec!["U7".to_string()])].into(),
        ..Script::default()
    })
    .await;
    let t = shop(&standin).await;

    let (status, reply) = slash(&t, &standin, "U1", "explode shop").await;
    assert_eq!(status, 200);
    assert_eq!(reply["response_type"], "ephemeral");
    let text = reply["text"].as_str().unwrap_or("");
    assert!(
        text.contains("unknown command `explode`") && text.contains("usage: /dr"),
        "{text}"
    );
    let (_, reply) = slash(&t, &standin, "U1", "failover nope").await;
    assert!(
        reply["text"].as_str().unwrap_or("").contains("Starting"),
        "{reply}"
    );
    let unknown = standin
        .until("the unknown group's answer", |s| s.hooks().last().cloned())
        .await;
    assert!(
        unknown["text"]
            .as_str()
            .unwrap_or("")
            .contains("Unknown group `nope`"),
        "{unknown}"
    );

    // Not on the list, not in the user group: refused, plainly, and recorded.
    let before = standin.hooks().len();
    slash(&t, &standin, "U9", "failover shop").await;
    let refused = standin
        .until("the refusal", |s| s.hooks().get(before).cloned())
        .await;
    assert_eq!(refused["response_type"], "ephemeral");
    let said = refused["text"].as_str().unwrap_or("");
    assert!(
        said.contains("<@U9> may not do that") && said.contains("group `shop`"),
        "{said}"
    );
    let refusals = t.app().store.refusals(10).await.expect("refusals");
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].actor, "slack:U9");
    assert_eq!(refusals[0].request, "failover shop");

    // A group without `allow` cannot be run from chat, and the reply says how to fix it.
    let before = standin.hooks().len();
    slash(&t, &standin, "U1", "failover open").await;
    let closed = standin
        .until("the closed group's answer", |s| {
            s.hooks().get(before).cloned()
        })
        .await;
    let said = closed["text"].as_str().unwrap_or("");
    assert!(
        said.contains("cannot be run from Slack") && said.contains("slack_users"),
        "{said}"
    );

    // In the allowed user group: let in.
    let before = standin.hooks().len();
    slash(&t, &standin, "U7", "failover shop --dry-run").await;
    let started = standin
        .until("the user group member's run", |s| {
            s.hooks().get(before).cloned()
        })
        .await;
    assert!(
        started["text"]
            .as_str()
            .unwrap_or("")
            .contains("<@U7> started failover (dry run)"),
        "{started}"
    );
    assert_eq!(standin.calls("usergroups.users.list").len(), 1);
    let (_, runs) = t.get("/api/v1/runs").await;
    assert_eq!(
        runs["runs"].as_array().map(Vec::len),
        Some(1),
        "only the allowed run"
    );
    t.shutdown().await;
}

const GATED: &str = "\
name: shop
stages:
  dial:
    agent: dial
    approval: required
    spec: { endpoint: shop.example.com, region: a, duration: 50ms }
";

#[tokio::test]
async fn buttons_approve_and_reject_for_those_allowed_only() {
    let standin = SlackStandIn::start(Script::default()).await;
    let t = app(&standin, &[("shop.yaml", GATED), ("groups.yaml", GROUPS)]).await;

    let id = t.create(r#"{"group": "shop"}"#).await;
    t.wait_state(&id, "awaiting_approval").await;
    // Someone not allowed: a plain refusal, to them alone, and nothing moves.
    let (status, hook) = press(&t, &standin, "U9", "approve", &id).await;
    assert_eq!(status, 200);
    let refused = standin.answer_at(&hook).await;
    assert_eq!(refused["response_type"], "ephemeral");
    assert_eq!(refused["replace_original"], false);
    assert!(
        refused["text"]
            .as_str()
            .unwrap_or("")
            .contains("<@U9> may not do that"),
        "{refused}"
    );
    let (_, run) = t.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(run["state"], "awaiting_approval");
    let (status, refusals) = t.get("/api/v1/refusals").await;
    assert_eq!(status, 200, "{refusals}");
    let refusal = &refusals["refusals"][0];
    assert_eq!(refusal["request"], format!("approve {id}"));
    assert_eq!(refusal["run_id"], id.as_str());
    assert_eq!(refusal["actor"], "slack:U9");
    assert_eq!(refusal["group"], "shop");

    let (_, hook) = press(&t, &standin, "U1", "approve", &id).await;
    let approved = standin.answer_at(&hook).await;
    assert!(
        approved["text"]
            .as_str()
            .unwrap_or("")
            .contains("<@U1> approved"),
        "{approved}"
    );
    t.wait_state(&id, "succeeded").await;

    // The next run is rejected from its card: cancelled, and the card says by whom.
    let id = t.create(r#"{"group": "shop"}"#).await;
    standin
        .until("the second card's Reject", |s| {
            card_calls(s, "CINC2")
                .last()
                .filter(|c| shown(c).contains("\"Reject\""))
                .cloned()
        })
        .await;
    // Rejecting takes the same permission as approving.
    let (_, hook) = press(&t, &standin, "U9", "reject", &id).await;
    let refused = standin.answer_at(&hook).await;
    assert!(
        refused["text"]
            .as_str()
            .unwrap_or("")
            .contains("<@U9> may not do that"),
        "{refused}"
    );
    let (_, run) = t.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(run["state"], "awaiting_approval");
    let (_, refusals) = t.get("/api/v1/refusals?limit=1").await;
    assert_eq!(refusals["refusals"][0]["request"], format!("reject {id}"));
    assert_eq!(refusals["refusals"].as_array().map(Vec::len), Some(1));
    let (status, bad) = t.get("/api/v1/refusals?limit=many").await;
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["error"].as_str().is_some_and(|e| e.contains("limit")),
        "{bad}"
    );
    press(&t, &standin, "U1", "reject", &id).await;
    let run = t.wait_state(&id, "cancelled").await;
    assert_eq!(run["message"], "rejected by slack:U1");
    standin
        .until("the rejected card", |s| {
            card_calls(s, "CINC2")
                .into_iter()
                .last()
                .filter(|c| c.method == "chat.update")
                .filter(|c| {
                    shown(c).contains("<@U1> rejected `dial`") && shown(c).contains("cancelled")
                })
        })
        .await;
    // A press on a finished run: said plainly.
    let (_, hook) = press(&t, &standin, "U1", "approve", &id).await;
    let late = standin.answer_at(&hook).await;
    assert!(
        late["text"]
            .as_str()
            .unwrap_or("")
            .contains("run is already cancelled"),
        "{late}"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn a_429_is_waited_out_and_the_card_still_ends_on_the_final_state() {
    let standin = SlackStandIn::start(Script {
        rate_limit_updates: 2,
        ..Script::default()
    })
    .await;
    let wf = "name: shop\nstages:\n  a: { agent: noop }\n  b: { agent: dial, spec: { endpoint: e, region: a, duration: 300ms } }\n  c: { agent: noop }\n";
    let t = app(&standin, &[("shop.yaml", wf), ("groups.yaml", GROUPS)]).await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    t.wait_state(&id, "succeeded").await;
    let last = standin
        .until("the final card after the 429s", |s| {
            card_calls(s, "CINC1")
                .last()
                .filter(|c| {
                    shown(c).contains("succeeded") && shown(c).contains("Total recovery time")
                })
                .cloned()
        })
        .await;
    assert_eq!(standin.rate_limited(), 2, "Slack said 429 twice");
    assert!(shown(&last).contains("✅ `c`"), "{}", shown(&last));
    t.shutdown().await;
}

#[tokio::test]
async fn a_hundred_runs_ending_together_keep_to_the_tiers_and_every_card_ends_final() {
    const RUNS: usize = 100;
    const SCALE: f64 = 20.0;
    let standin = SlackStandIn::start(Script::default()).await;
    let mut groups = String::from("groups:\n");
    for i in 0..RUNS {
        groups.push_str(&format!("  g{i}:\n    workflows: {{ failover: shop }}\n"));
    }
    let wf = "name: shop\nstages:\n  a: { agent: noop }\n  b: { agent: noop }\n";
    let t = app(&standin, &[("shop.yaml", wf), ("groups.yaml", &groups)]).await;
    let mut ids = Vec::new();
    for i in 0..RUNS {
        ids.push(t.create(&format!(r#"{{"group": "g{i}"}}"#)).await);
    }
    for id in &ids {
        t.wait_state(id, "succeeded").await;
    }
    // Every card ends on its run's final state.
    let channels = standin
        .until("every card's final state", |s| {
            let created = s.calls("conversations.create");
            if created.len() < RUNS {
                return None;
            }
            let mut finals = 0;
            for i in 1..=RUNS {
                let channel = format!("CINC{i}");
                if card_calls(s, &channel)
                    .last()
                    .is_some_and(|c| shown(c).contains("succeeded"))
                {
                    finals += 1;
                }
            }
            (finals == RUNS).then_some(created.len())
        })
        .await;
    assert_eq!(channels, RUNS, "one incident channel a run");
    // No two calls of a method closer together than its tier allows (10% for timer slack).
    for (method, per_minute) in [("chat.update", 50.0), ("conversations.create", 20.0)] {
        let at: Vec<_> = standin.calls(method).iter().map(|c| c.at).collect();
        let least = Duration::from_secs_f64(60.0 / (per_minute * SCALE) * 0.9);
        for pair in at.windows(2) {
            let gap = pair[1].duration_since(pair[0]);
            assert!(
                gap >= least,
                "{method} calls {gap:?} apart, under {least:?}"
            );
        }
    }
    t.shutdown().await;
}

/// `lifeboat serve` on this directory's database and workflows, talking to the stand-in.
fn serve(dir: &std::path::Path, standin: &SlackStandIn, port: u16) -> common::Proc {
    common::serve(
        dir,
        port,
        &[
            ("SLACK_BOT_TOKEN", "xoxb-test-token"),
            ("SLACK_SIGNING_SECRET", SIGNING_SECRET),
            ("SLACK_API_URL", &standin.api_url()),
            ("LIFEBOAT_SLACK_TIER_SCALE", "20"),
        ],
    )
}

#[tokio::test]
async fn a_killed_service_edits_the_same_card_after_restart_and_posts_nothing_twice() {
    let standin = SlackStandIn::start(Script::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wf = "name: shop\nstages:\n  a: { agent: noop }\n  slow: { agent: exec, spec: { command: [sleep, '3'] } }\n  c: { agent: noop }\n";
    common::write_workflows(dir.path(), &[("shop.yaml", wf), ("groups.yaml", GROUPS)]);
    let client = reqwest::Client::new();

    let port = common::free_port();
    let mut first = serve(dir.path(), &standin, port);
    let base = format!("http://127.0.0.1:{port}");
    common::until_ready(&client, &base).await;
    let id = common::create_run_at(&client, &base, "shop").await;
    // Killed once the card is up and `slow` runs.
    standin
        .until("the card showing `slow` running", |s| {
            card_calls(s, "CINC1")
                .last()
                .filter(|c| shown(c).contains("▶️ `slow`"))
                .cloned()
        })
        .await;
    first.0.kill().expect("kill -9");
    let _ = first.0.wait();

    let port = common::free_port();
    let _second = serve(dir.path(), &standin, port);
    let base = format!("http://127.0.0.1:{port}");
    common::until_ready(&client, &base).await;
    common::until(
        "the run to succeed after the restart",
        Duration::from_secs(60),
        async || {
            let url = format!("{base}/api/v1/runs/{id}");
            let run = common::get_json(&client, &url, None).await?;
            (run["state"] == "succeeded").then_some(())
        },
    )
    .await;
    let cards = standin
        .until("the card's final state", |s| {
            let cards = card_calls(s, "CINC1");
            cards
                .last()
                .filter(|c| shown(c).contains("Total recovery time"))
                .map(|_| cards.clone())
        })
        .await;
    assert_eq!(
        standin.calls("conversations.create").len(),
        1,
        "one incident channel"
    );
    let posts: Vec<&Call> = cards
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .collect();
    assert_eq!(posts.len(), 1, "the card is posted once");
    assert!(
        cards
            .iter()
            .filter(|c| c.method == "chat.update")
            .all(|c| c.body["ts"] == "1700000000.000001"),
        "the restarted service edits the same card"
    );
    let summary = standin
        .until("the summary", |s| {
            s.calls("chat.postMessage").into_iter().find(|c| {
                c.body["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("Total recovery time")
            })
        })
        .await;
    assert_eq!(summary.body["thread_ts"], "1700000000.000001");
    let mut said: Vec<String> = standin
        .calls("chat.postMessage")
        .iter()
        .filter(|c| !c.body["blocks"].is_array())
        .map(|c| format!("{} {}", c.body["channel"], c.body["text"]))
        .collect();
    let all = said.len();
    said.sort();
    said.dedup();
    assert_eq!(said.len(), all, "no message is posted twice: {said:#?}");
}

#[tokio::test]
async fn socket_mode_takes_commands_and_presses_over_the_socket() {
    let standin = SlackStandIn::start(Script::default()).await;
    let socket = common::slack::SocketStandIn::start(&standin).await;
    let mut settings = slack(&standin, 20.0);
    settings.app_token = Some(SecretString::from("xapp-test-token"));
    settings.signing_secret = None;
    let t = common::spawn_configured(
        &[("shop.yaml", GATED), ("groups.yaml", GROUPS)],
        &[],
        Options::default(),
        move |s| s.chat.set(settings),
    )
    .await;
    common::until(
        "Socket Mode to connect",
        Duration::from_secs(30),
        async || (socket.connections() > 0).then_some(()),
    )
    .await;
    // Over HTTP nothing is taken: there is no signing secret to check it with.
    let (status, _) = slash(&t, &standin, "U1", "runs").await;
    assert_eq!(status, 401);

    let hook = standin.hook("socket-command");
    socket.send(&serde_json::json!({
        "envelope_id": "env-1",
        "type": "slash_commands",
        "accepts_response_payload": true,
        "payload": {
            "team_id": "T1", "team_domain": "shop", "channel_id": "CREQ", "channel_name": "ops",
            "user_id": "U1", "user_name": "one", "command": "/dr", "text": "failover shop",
            "response_url": hook, "trigger_id": "socket-1", "api_app_id": "A1"
        }
    }));
    let ack = common::until(
        "the command's acknowledgement",
        Duration::from_secs(30),
        async || socket.ack("env-1"),
    )
    .await;
    assert!(
        ack["payload"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("Starting failover of `shop`"),
        "{ack}"
    );
    let started = standin.answer_at(&hook).await;
    let id = run_id_in(started["text"].as_str().unwrap_or(""));
    t.wait_state(&id, "awaiting_approval").await;

    socket.send(&serde_json::json!({
        "envelope_id": "env-2",
        "type": "interactive",
        "accepts_response_payload": false,
        "payload": {
            "type": "block_actions",
            "user": { "id": "U1", "username": "one", "team_id": "T1" },
            "team": { "id": "T1", "domain": "shop" },
            "api_app_id": "A1",
            "container": { "type": "message", "message_ts": "1700000000.000001", "channel_id": "CINC1", "is_ephemeral": false },
            "trigger_id": "socket-2",
            "channel": { "id": "CINC1", "name": "incident" },
            "response_url": standin.hook("socket-press"),
            "actions": [{ "type": "button", "action_id": "approve", "block_id": format!("run:{id}"), "value": id, "action_ts": "1700000001.0" }]
        }
    }));
    common::until(
        "the press's acknowledgement",
        Duration::from_secs(30),
        async || socket.ack("env-2"),
    )
    .await;
    let run = t.wait_state(&id, "succeeded").await;
    assert_eq!(stage(&run, "dial")["approved_by"], "slack:U1");
    let opened = standin.calls("apps.connections.open");
    assert_eq!(opened[0].body["authorization"], "Bearer xapp-test-token");
    t.shutdown().await;
}

#[tokio::test]
async fn a_taken_channel_name_gets_the_next_number_then_the_run_id() {
    let standin = SlackStandIn::start(Script {
        refuse_names: 10,
        ..Script::default()
    })
    .await;
    let t = shop(&standin).await;
    slash(&t, &standin, "U1", "failover shop --dry-run").await;
    let started = standin
        .until("the run", |s| {
            s.hooks().into_iter().find(|h| {
                h["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("started failover"))
            })
        })
        .await;
    let id = run_id_in(started["text"].as_str().unwrap_or(""));
    let tried: Vec<String> = standin
        .until("a channel that is not taken", |s| {
            let creates = s.calls("conversations.create");
            (creates.len() == 11).then(|| {
                creates
                    .iter()
                    .map(|c| c.body["name"].as_str().unwrap_or("").to_string())
                    .collect()
            })
        })
        .await;
    let base = &tried[0];
    assert!(base.starts_with("dr-shop-failover-"), "{base}");
    for (n, name) in tried.iter().enumerate().take(10).skip(1) {
        assert_eq!(name, &format!("{base}-{}", n + 1));
    }
    assert_eq!(tried[10], format!("dr-{}", id.replace('-', "")));
    // The card goes into the channel finally made, and nothing else is created.
    standin
        .until("the card", |s| card_calls(s, "CINC1").first().cloned())
        .await;
    t.wait_state(&id, "succeeded").await;
    standin
        .until("the final card", |s| {
            card_calls(s, "CINC1")
                .last()
                .filter(|c| shown(c).contains("Total recovery time"))
                .cloned()
        })
        .await;
    assert_eq!(standin.calls("conversations.create").len(), 11);
    t.shutdown().await;
}

#[tokio::test]
async fn locks_lists_the_leases_held_now() {
    const SLOW: &str = "\
name: shop
stages:
  scale:
    agent: capacity
    spec: { cluster: k8s, namespace: shop, replicas: 2, duration: 30s }
";
    let standin = SlackStandIn::start(Script::default()).await;
    let t = app(&standin, &[("shop.yaml", SLOW), ("groups.yaml", GROUPS)]).await;
    let (_, none) = slash(&t, &standin, "U1", "locks").await;
    assert_eq!(none["text"], "No leases are held.");

    let id = t.create(r#"{"group": "shop"}"#).await;
    t.wait_for(&id, "scale to run", |r| {
        stage(r, "scale")["state"] == "running"
    })
    .await;
    let held = loop {
        let (_, leases) = t.get("/api/v1/leases").await;
        if leases["leases"].as_array().is_some_and(|l| !l.is_empty()) {
            break leases;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let lease = &held["leases"][0];
    assert_eq!(lease["resource"], "capacity:k8s/shop");
    assert_eq!(lease["run_id"], id.as_str());
    assert_eq!(lease["stage"], "scale");

    // Someone a group allows may look; `locks` changes nothing.
    let (status, reply) = slash(&t, &standin, "U1", "locks").await;
    assert_eq!(status, 200);
    assert_eq!(reply["response_type"], "ephemeral");
    let said = reply["text"].as_str().unwrap_or("");
    assert!(
        said.contains(&format!("`capacity:k8s/shop` held for `scale` of `{id}`")),
        "{said}"
    );
    assert!(
        t.app()
            .store
            .refusals(10)
            .await
            .expect("refusals")
            .is_empty()
    );

    // Anyone else in the workspace is refused every read, as for acting, and it is
    // recorded: which runs there are and what they hold is not theirs to see.
    for read in [
        "locks",
        "status",
        &format!("status {id}"),
        "status shop",
        "runs",
        "groups",
        "plan shop",
        "agents",
        "readiness",
    ] {
        let (status, reply) = slash(&t, &standin, "U9", read).await;
        assert_eq!(status, 200);
        let said = reply["text"].as_str().unwrap_or("");
        assert!(
            said.contains("may not do that") && !said.contains(&id) && !said.contains("k8s"),
            "{read}: {said}"
        );
    }
    let refusals = t.app().store.refusals(50).await.expect("refusals");
    assert_eq!(refusals.len(), 9, "{refusals:?}");
    // Readiness, for those a group allows: what the last drill found, here nothing yet.
    let (_, ready) = slash(&t, &standin, "U1", "readiness shop").await;
    let said = ready["text"].as_str().unwrap_or("");
    assert!(said.contains("shop: never drilled"), "{said}");
    // `groups` says whether each is verified: this one has never finished a failover.
    let (_, groups) = slash(&t, &standin, "U1", "groups").await;
    let said = groups["text"].as_str().unwrap_or("");
    assert!(
        said.contains("`shop` (") && said.contains("unverified: never failed over with workflow"),
        "{said}"
    );
    let (_, unknown) = slash(&t, &standin, "U1", "readiness nope").await;
    assert!(
        unknown["text"]
            .as_str()
            .is_some_and(|t| t.contains("Unknown group `nope`")),
        "{unknown}"
    );
    assert!(
        refusals.iter().all(|r| r.actor == "slack:U9"),
        "{refusals:?}"
    );
    // `help` is for everyone.
    let (_, help) = slash(&t, &standin, "U9", "help").await;
    assert!(
        help["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("usage:")),
        "{help}"
    );
    t.shutdown().await;
}

/// `/dr TEXT` from `user`, and the answer it gets on its `response_url`.
async fn ask(t: &TestApp, standin: &SlackStandIn, user: &str, text: &str) -> Value {
    let (_, _, hook) = slash_with_hook(t, standin, user, text).await;
    standin.answer_at(&hook).await
}

fn said(answer: &Value) -> &str {
    answer["text"].as_str().unwrap_or("")
}

#[tokio::test]
async fn skip_asks_for_a_reason_first_and_resume_goes_on_from_the_card() {
    let scratch = tempfile::tempdir().expect("scratch");
    let groups = format!(
        "groups:\n  shop:\n    workflows: {{ failover: shop }}\n    params: {{ dir: \"{}\" }}\n    allow: {{ slack_users: [U1] }}\n",
        scratch.path().display()
    );
    let standin = SlackStandIn::start(Script::default()).await;
    let t = app(
        &standin,
        &[("shop.yaml", common::FIXABLE), ("groups.yaml", &groups)],
    )
    .await;
    let lines = |file: &str| {
        std::fs::read_to_string(scratch.path().join(file))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };

    let started = ask(&t, &standin, "U1", "failover shop").await;
    let id = run_id_in(said(&started));
    t.wait_state(&id, "failed").await;
    let card = standin
        .until("Skip on the failed run's card", |s| {
            card_calls(s, "CINC1")
                .last()
                .filter(|c| shown(c).contains("Skip: fixed"))
                .cloned()
        })
        .await;
    let shown_card = shown(&card);
    assert!(shown_card.contains("\"Resume\""), "{shown_card}");
    assert!(
        shown_card.contains(&format!("\"value\":\"{id}/fixed\"")),
        "{shown_card}"
    );

    // The button asks; it skips nothing by itself. Someone not allowed is refused.
    let (_, hook) = press(&t, &standin, "U9", "skip", &format!("{id}/fixed")).await;
    assert!(said(&standin.answer_at(&hook).await).contains("<@U9> may not do that"));
    let (_, hook) = press(&t, &standin, "U1", "skip", &format!("{id}/fixed")).await;
    let asked = standin.answer_at(&hook).await;
    assert_eq!(asked["response_type"], "ephemeral");
    assert!(
        said(&asked).contains(&format!(
            "To confirm, say why: `/dr skip {id} fixed REASON`"
        )) && said(&asked).contains("`last` will run without it"),
        "{asked}"
    );
    assert_eq!(
        t.get(&format!("/api/v1/runs/{id}")).await.1["state"],
        "failed"
    );

    let skipped = ask(&t, &standin, "U1", &format!("skip {id} fixed done by hand")).await;
    assert!(
        said(&skipped).contains("<@U1> skipped `fixed` (done by hand)"),
        "{skipped}"
    );
    let done = t.wait_state(&id, "succeeded").await;
    assert_eq!(stage(&done, "fixed")["skipped_by"], "slack:U1");
    assert_eq!((lines("first.log"), lines("last.log")), (1, 1));
    let last = standin
        .until("the final card", |s| {
            card_calls(s, "CINC1")
                .last()
                .filter(|c| {
                    let c = shown(c);
                    c.contains("Failover of shop: succeeded") && c.contains("critical path:")
                })
                .cloned()
        })
        .await;
    let last = shown(&last);
    assert!(last.contains("<@U1> skipped `fixed`"), "{last}");
    assert!(last.contains("Lifeboat's overhead:"), "{last}");
    assert!(
        !last.contains("\"Resume\""),
        "a succeeded run has nothing to resume"
    );

    // A second run fails the same way; the fix goes in, and Resume finishes it.
    let started = ask(&t, &standin, "U1", "failover shop").await;
    let second = run_id_in(said(&started));
    t.wait_state(&second, "failed").await;
    common::put_fix(scratch.path());
    let (_, hook) = press(&t, &standin, "U1", "resume", &second).await;
    assert!(
        said(&standin.answer_at(&hook).await).contains("<@U1> resumed failover of `shop`"),
        "resumed from the card"
    );
    let done = t.wait_state(&second, "succeeded").await;
    assert_eq!(stage(&done, "first")["attempts"], 1, "{done:#}");
    assert_eq!(stage(&done, "fixed")["attempts"], 2);
    assert_eq!(lines("first.log"), 2, "once per run, never again on resume");
    t.shutdown().await;
}

#[tokio::test]
async fn four_eyes_counts_a_person_once_across_slack_and_the_api() {
    let groups = "\
groups:
  shop:
    workflows: { failover: shop }
    allow: { slack_users: [U1, U2] }
    approvals: 2
    people:
      alice: { slack: U1, api: alice }
";
    let standin = SlackStandIn::start(Script::default()).await;
    let settings = slack(&standin, 20.0);
    let t = common::spawn_configured(
        &[("shop.yaml", GATED), ("groups.yaml", groups)],
        &[
            ("alice", "alice-token-0123456789"),
            ("bob", "bob-token-0123456789"),
        ],
        Options::default(),
        move |s| s.chat.set(settings),
    )
    .await;
    let api_approve = async |token: &str, id: &str| {
        let path = format!("/api/v1/runs/{id}/approve");
        t.post_as(token, &path, &serde_json::json!({})).await
    };

    let started = ask(&t, &standin, "U2", "failover shop").await;
    let id = run_id_in(said(&started));
    t.wait_state(&id, "awaiting_approval").await;

    let (_, hook) = press(&t, &standin, "U2", "approve", &id).await;
    let refused = standin.answer_at(&hook).await;
    assert!(
        said(&refused).contains("the requester may not approve their own run"),
        "{refused}"
    );
    let (_, hook) = press(&t, &standin, "U1", "approve", &id).await;
    assert!(said(&standin.answer_at(&hook).await).contains("<@U1> approved"));
    assert_eq!(
        t.get(&format!("/api/v1/runs/{id}")).await.1["state"],
        "awaiting_approval"
    );
    standin
        .until("the card's count of approvals", |s| {
            card_calls(s, "CINC1")
                .last()
                .filter(|c| {
                    let c = shown(c);
                    c.contains("1 of 2 approvals") && c.contains("<@U1> approved `dial`")
                })
                .cloned()
        })
        .await;

    // Alice again, through her API token and then in Slack: still one person.
    let (status, body) = api_approve("alice-token-0123456789", &id).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("`alice` has approved this gate already"),
        "{body}"
    );
    let (_, hook) = press(&t, &standin, "U1", "approve", &id).await;
    assert!(
        said(&standin.answer_at(&hook).await).contains("`alice` has approved this gate already")
    );

    let (status, body) = api_approve("bob-token-0123456789", &id).await;
    assert_eq!(status, 200, "{body}");
    let done = t.wait_state(&id, "succeeded").await;
    assert_eq!(stage(&done, "dial")["approved_by"], "api:bob");
    t.shutdown().await;
}

/// A slash command as Slack sends it, from `team`, with this `trigger_id` and
/// `response_url`: the acknowledgement.
async fn command_as(t: &TestApp, team: &str, trigger: &str, hook: &str, text: &str) -> Value {
    let (status, ack) = post_form(
        t,
        "/slack/commands",
        &[
            ("team_id", team),
            ("channel_id", "CREQ"),
            ("user_id", "U1"),
            ("command", "/dr"),
            ("text", text),
            ("response_url", hook),
            ("trigger_id", trigger),
        ],
        |_, _, _| {},
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    ack
}

/// A press of `action` on run `run` by U1, from `team`, with this `trigger_id`.
async fn press_as(t: &TestApp, team: &str, trigger: &str, hook: &str, action: &str, run: &str) {
    let payload = serde_json::json!({
        "type": "block_actions",
        "user": { "id": "U1", "username": "one", "team_id": team },
        "team": { "id": team, "domain": "shop" },
        "api_app_id": "A1",
        "container": { "type": "message", "message_ts": "1700000000.000001", "channel_id": "CINC1", "is_ephemeral": false },
        "trigger_id": trigger,
        "channel": { "id": "CINC1", "name": "incident" },
        "response_url": hook,
        "actions": [{ "type": "button", "action_id": action, "block_id": format!("run:{run}"), "value": run, "action_ts": "1700000001.0" }]
    });
    let (status, _) = post_form(
        t,
        "/slack/interactions",
        &[("payload", &payload.to_string())],
        |_, _, _| {},
    )
    .await;
    assert_eq!(status, 200);
}

/// A command or press delivered again (its `trigger_id` seen before, each copy validly
/// signed) is answered as before and starts and decides nothing; one from a workspace
/// `SLACK_TEAM_IDS` does not name is refused in a reply to its sender alone, and recorded;
/// a payload with no user (another app's view submission) is taken and does nothing.
#[tokio::test]
async fn replays_and_other_workspaces_start_and_decide_nothing() {
    let standin = SlackStandIn::start(Script::default()).await;
    let mut settings = slack(&standin, 20.0);
    settings.team_ids = vec!["T1".into(), "T3".into()];
    let t = common::spawn_configured(
        &[("shop.yaml", GATED), ("groups.yaml", GROUPS)],
        &[],
        Options::default(),
        move |s| s.chat.set(settings),
    )
    .await;

    // The command twice: the same acknowledgement, one run, and no answer to the copy.
    let (first, copy) = (standin.hook("first"), standin.hook("copy"));
    let ack = command_as(&t, "T1", "TRIG-1", &first, "failover shop").await;
    let again = command_as(&t, "T1", "TRIG-1", &copy, "failover shop").await;
    assert_eq!(ack, again);
    let started = standin.answer_at(&first).await;
    let id = run_id_in(started["text"].as_str().unwrap_or(""));
    t.wait_state(&id, "awaiting_approval").await;

    // Another workspace: refused to its sender, recorded, nothing started or decided.
    let ack = command_as(
        &t,
        "T2",
        &common::fresh_id(),
        &standin.hook("other"),
        "runs",
    )
    .await;
    let said = ack["text"].as_str().unwrap_or("");
    assert_eq!(ack["response_type"], "ephemeral");
    assert!(
        said.contains("does not serve this Slack workspace (T2)"),
        "{said}"
    );
    let other = standin.hook("other-press");
    press_as(&t, "T2", &common::fresh_id(), &other, "reject", &id).await;
    let refused = standin.answer_at(&other).await;
    assert!(
        refused["text"]
            .as_str()
            .is_some_and(|s| s.contains("does not serve this Slack workspace")),
        "{refused}"
    );
    let (_, run) = t.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(run["state"], "awaiting_approval");

    // The press twice: approved once; the copy gets no answer.
    let (pressed, copied) = (standin.hook("pressed"), standin.hook("copied"));
    press_as(&t, "T1", "TRIG-2", &pressed, "approve", &id).await;
    let approved = standin.answer_at(&pressed).await;
    assert!(
        approved["text"]
            .as_str()
            .is_some_and(|s| s.contains("<@U1> approved")),
        "{approved}"
    );
    press_as(&t, "T1", "TRIG-2", &copied, "reject", &id).await;
    t.wait_state(&id, "succeeded").await;

    // A payload with no user at all.
    let (status, _) = post_form(
        &t,
        "/slack/interactions",
        &[(
            "payload",
            &serde_json::json!({ "type": "view_submission", "team": { "id": "T1" }, "view": { "id": "V1" } })
                .to_string(),
        )],
        |_, _, _| {},
    )
    .await;
    assert_eq!(status, 200);

    // A fresh command is the barrier: by its answer, the copies have had their chance.
    let last = standin.hook("last");
    command_as(&t, "T3", &common::fresh_id(), &last, "failover shop").await;
    standin.answer_at(&last).await;
    assert!(
        standin.hooks_at("copy").is_empty(),
        "{:?}",
        standin.hooks_at("copy")
    );
    assert!(
        standin.hooks_at("copied").is_empty(),
        "{:?}",
        standin.hooks_at("copied")
    );
    let (_, runs) = t.get("/api/v1/runs").await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(2), "{runs}");
    let refusals = t.app().store.refusals(10).await.expect("refusals");
    assert_eq!(
        refusals
            .iter()
            .map(|r| r.request.as_str())
            .collect::<Vec<_>>(),
        ["press", "runs"],
        "{refusals:?}"
    );
    t.shutdown().await;
}

/// The service dies after Slack made the incident channel but before the store heard of
/// it, and again after Slack posted the card but before the store heard of that: each
/// time, the restarted service finds what it made (the channel by its name, the card in
/// the channel) instead of making a second, and the run's one card ends on its final
/// state.
#[tokio::test]
async fn a_crash_between_slack_acting_and_the_store_recording_makes_nothing_twice() {
    let victim = Victim::default();
    let standin = SlackStandIn::start(Script {
        crash: CrashAfter::new(&["conversations.create"], victim.crash()),
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wf = "name: shop\nstages:\n  a: { agent: noop }\n  slow: { agent: exec, spec: { command: [sleep, '2'] } }\n";
    common::write_workflows(dir.path(), &[("shop.yaml", wf), ("groups.yaml", GROUPS)]);
    let client = reqwest::Client::new();
    let start = || {
        let port = common::free_port();
        let proc = serve(dir.path(), &standin, port);
        victim.is(&proc);
        (proc, format!("http://127.0.0.1:{port}"))
    };

    // Dies as Slack makes the channel.
    let (mut first, base) = start();
    common::until_ready(&client, &base).await;
    let id = common::create_run_at(&client, &base, "shop").await;
    died(&mut first).await;
    assert_eq!(standin.calls("conversations.create").len(), 1);

    // Dies as Slack posts the card, in the channel it found.
    standin.script(|s| s.crash = CrashAfter::new(&["chat.postMessage"], victim.crash()));
    // At start-up it takes up the run's card: it may die before it is ready.
    let (mut second, _) = start();
    died(&mut second).await;
    assert!(!standin.calls("conversations.list").is_empty(), "it looked");
    assert_eq!(
        card_calls(&standin, "CINC1").len(),
        1,
        "the card went into CINC1"
    );

    // Finds the card and goes on with it.
    let (_third, base) = start();
    common::until_ready(&client, &base).await;
    common::until("the run to succeed", Duration::from_secs(60), async || {
        let run = common::get_json(&client, &format!("{base}/api/v1/runs/{id}"), None).await?;
        (run["state"] == "succeeded").then_some(())
    })
    .await;
    let cards = standin
        .until("the card's final state", |s| {
            let cards = card_calls(s, "CINC1");
            cards
                .last()
                .filter(|c| shown(c).contains("Total recovery time"))
                .map(|_| cards.clone())
        })
        .await;
    assert_eq!(
        standin.calls("conversations.create").len(),
        1,
        "one incident channel"
    );
    let posts = cards
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .count();
    assert_eq!(posts, 1, "one card");
    assert!(
        cards
            .iter()
            .filter(|c| c.method == "chat.update")
            .all(|c| c.body["ts"] == "1700000000.000001"),
        "every edit is of that card"
    );
    let invited = standin.calls("conversations.invite");
    assert!(
        invited.iter().any(|c| c.body["channel"] == "CINC1"),
        "who should be there was brought in: {invited:?}"
    );
}

/// A promote whose replica is 42 s behind, allowed to lose 5 s.
pub(crate) const LOSSY: &str = "\
name: shop
stages:
  promote:
    agent: database
    spec: { cluster: db-a, role: writer, rpo: 42s, max_data_loss: 5s, duration: 10ms }
";

/// The data-loss gate on the card: what promoting now loses, in words, with Approve and
/// Reject; approving from the card promotes, and the final card keeps the recovery point.
#[tokio::test]
async fn the_data_loss_gate_says_what_promoting_loses_and_is_passed_from_the_card() {
    let standin = SlackStandIn::start(Script::default()).await;
    let t = app(&standin, &[("shop.yaml", LOSSY), ("groups.yaml", GROUPS)]).await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    t.wait_state(&id, "awaiting_approval").await;
    let said = "promoting db-a now loses about 42 s / 17 MB of writes (measured)";
    standin
        .until("the gate on the card", |s| {
            card_calls(s, "CINC1")
                .last()
                .filter(|c| {
                    let shown = shown(c);
                    shown.contains(said)
                        && shown.contains("\"Approve\"")
                        && shown.contains("\"Reject\"")
                })
                .cloned()
        })
        .await;
    let (status, hook) = press(&t, &standin, "U1", "approve", &id).await;
    assert_eq!(status, 200);
    assert!(
        standin.answer_at(&hook).await["text"]
            .as_str()
            .unwrap_or("")
            .contains("<@U1> approved"),
    );
    let run = t.wait_state(&id, "succeeded").await;
    assert_eq!(stage(&run, "promote")["approved_by"], "slack:U1");
    standin
        .until("the recovery point on the final card", |s| {
            card_calls(s, "CINC1")
                .last()
                .filter(|c| {
                    shown(c).contains("recovery point: about 42 s / 17 MB of writes (measured)")
                })
                .cloned()
        })
        .await;

    // Rejected from the card: the promote fails, and the card says by whom and why.
    let id = t.create(r#"{"group": "shop"}"#).await;
    t.wait_state(&id, "awaiting_approval").await;
    let (_, hook) = press(&t, &standin, "U1", "reject", &id).await;
    standin.answer_at(&hook).await;
    let run = t.wait_state(&id, "failed").await;
    assert!(
        stage(&run, "promote")["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("rejected by slack:U1") && m.ends_with(said)),
        "{run:#}"
    );
    t.shutdown().await;
}

/// A group drilled every second: its standing channel is told once when it stops being
/// ready (naming the check), nothing while it stays so, and once when it is ready again.
/// A scheduled drill opens no incident channel.
#[tokio::test]
async fn a_readiness_change_is_told_once_in_the_standing_channel() {
    let scratch = tempfile::tempdir().expect("scratch");
    let fix = scratch.path().join("fix.sh");
    let drilled = format!(
        "\
name: shop
params: {{ fix: \"{}\" }}
stages:
  fixed:
    agent: exec
    retry: {{ max_attempts: 1 }}
    spec: {{ command: [\"${{fix}}\"] }}
",
        fix.display()
    );
    let groups = "\
groups:
  shop:
    workflows: { failover: shop }
    channel: CSTANDING
    allow: { slack_users: [U1] }
    drill: { every: 1s }
";
    let standin = SlackStandIn::start(Script::default()).await;
    let t = app(
        &standin,
        &[("shop.yaml", &drilled), ("groups.yaml", groups)],
    )
    .await;
    let told = |s: &SlackStandIn| -> Vec<String> {
        s.calls("chat.postMessage")
            .iter()
            .filter(|c| c.body["channel"] == "CSTANDING")
            .map(shown)
            .collect()
    };
    let first = standin
        .until("not ready, told", |s| {
            let told = told(s);
            (!told.is_empty()).then_some(told)
        })
        .await;
    assert!(
        first[0].contains("`shop` is not ready for a failover"),
        "{first:?}"
    );
    assert!(
        first[0].contains("✗ fixed: stage:"),
        "names the check: {first:?}"
    );
    // Drills go on failing: nothing more is said.
    let failed_drills = || async {
        let (_, body) = t
            .get("/api/v1/runs?group=shop&state=failed&limit=500")
            .await;
        body["runs"].as_array().map_or(0, Vec::len)
    };
    let seen = failed_drills().await;
    common::until(
        "three more failed drills",
        Duration::from_secs(20),
        async || (failed_drills().await >= seen + 3).then_some(()),
    )
    .await;
    assert_eq!(told(&standin).len(), 1, "{:?}", told(&standin));

    // The fix: the next drill passes, and that is told once too.
    std::fs::write(&fix, "#!/bin/sh\n").expect("write the fix");
    let both = standin
        .until("ready again, told", |s| {
            let told = told(s);
            (told.len() >= 2).then_some(told)
        })
        .await;
    assert!(both[1].contains("`shop` is ready again"), "{both:?}");
    let passed = || async {
        let (_, body) = t
            .get("/api/v1/runs?group=shop&state=succeeded&limit=500")
            .await;
        body["runs"].as_array().map_or(0, Vec::len)
    };
    let seen = passed().await;
    common::until(
        "three more passing drills",
        Duration::from_secs(20),
        async || (passed().await >= seen + 3).then_some(()),
    )
    .await;
    assert_eq!(told(&standin).len(), 2, "{:?}", told(&standin));
    assert!(
        standin.calls("conversations.create").is_empty(),
        "a scheduled drill opens no incident channel"
    );
    t.shutdown().await;
}

/// `/dr evacuate`: a person every group named allows starts an evacuation, said in the
/// channel; `/dr status EVACUATION` shows how it stands; a group that does not allow the
/// person refuses the whole evacuation, and nothing starts.
#[tokio::test]
async fn dr_evacuate_starts_an_evacuation_that_status_shows() {
    let standin = SlackStandIn::start(Script::default()).await;
    let t = shop(&standin).await;
    // Starting is acknowledged at once, and what it did follows.
    let evacuate = async |user: &str, text: &str| {
        let (_, ack, hook) = slash_with_hook(&t, &standin, user, text).await;
        assert_eq!(ack["text"], "Starting the evacuation…");
        standin.answer_at(&hook).await
    };
    let refused = evacuate("U1", "evacuate all --reason region a").await;
    let said = refused["text"].as_str().unwrap_or("");
    assert!(
        said.contains("Group `open` cannot be run from Slack"),
        "{said}"
    );
    let refused = evacuate("U9", "evacuate shop --reason region a").await;
    assert!(
        refused["text"]
            .as_str()
            .is_some_and(|s| s.contains("may not")),
        "{refused}"
    );
    let (_, usage) = slash(&t, &standin, "U1", "evacuate shop").await;
    assert!(
        usage["text"]
            .as_str()
            .is_some_and(|s| s.contains("needs --reason")),
        "{usage}"
    );
    let (_, runs) = t.get("/api/v1/runs").await;
    assert_eq!(runs["runs"], serde_json::json!([]), "nothing started");

    let started = evacuate("U1", "evacuate shop --reason region a").await;
    let said = started["text"].as_str().unwrap_or("");
    assert_eq!(started["response_type"], "in_channel", "{started}");
    assert!(said.contains("started an evacuation of 1 groups"), "{said}");
    let id = said.split('`').nth(1).unwrap_or_default().to_string();
    // The group's run waits at its gate: the evacuation is going, the group started.
    let shown = common::until("the group to start", Duration::from_secs(20), async || {
        let (_, status) = slash(&t, &standin, "U1", &format!("status {id}")).await;
        let said = status["text"].as_str().unwrap_or("").to_string();
        said.contains("shop: started").then_some(said)
    })
    .await;
    assert!(
        shown.contains(&format!("evacuation {id} (failover): going; 1 started")),
        "{shown}"
    );
    t.shutdown().await;
}

/// 200 groups evacuated with Slack connected: one card in the channel groups.yaml names
/// for evacuations, posted once and edited in place within the tiers; no incident for a group
/// that went well; each failed group gets its incident, is named on the card with its
/// buttons, and is resumed from it, or skipped by `/dr skip EVACUATION GROUP REASON`.
#[tokio::test]
async fn an_evacuation_of_200_groups_keeps_one_card_and_failures_are_handled_from_it() {
    const SCALE: f64 = 20.0;
    let standin = SlackStandIn::start(Script::default()).await;
    let stage = |extra: &str| {
        format!(
            "stages:\n  move:\n    agent: capacity\n    retry: {{ max_attempts: 1 }}\n    spec: {{ cluster: k8s, namespace: shop, replicas: 2, duration: 50ms{extra} }}\n"
        )
    };
    let mover = format!("name: mover\n{}", stage(""));
    let flaky = format!("name: flaky\n{}", stage(", fail_attempts: 1"));
    let broken = format!("name: broken\n{}", stage(", fail_permanently: true"));
    let allow = "    allow: { slack_users: [U1] }\n";
    // The card goes to the channel named for evacuations, not the first group's.
    let mut groups = String::from("evacuation_channel: { slack: CDR }\ngroups:\n");
    for i in 0..197 {
        groups.push_str(&format!(
            "  g{i:03}:\n    workflows: {{ failover: mover }}\n{allow}"
        ));
        if i == 0 {
            groups.push_str("    channel: CSTANDING\n");
        }
    }
    groups.push_str(&format!(
        "  flaky:\n    workflows: {{ failover: flaky }}\n{allow}"
    ));
    groups.push_str(&format!(
        "  broken:\n    workflows: {{ failover: broken }}\n{allow}"
    ));
    groups.push_str(&format!(
        "  after-broken:\n    workflows: {{ failover: mover }}\n    depends_on: [broken]\n{allow}"
    ));
    let t = app(
        &standin,
        &[
            ("mover.yaml", mover.as_str()),
            ("flaky.yaml", flaky.as_str()),
            ("broken.yaml", broken.as_str()),
            ("groups.yaml", groups.as_str()),
        ],
    )
    .await;
    let (_, mut started, hook) =
        slash_with_hook(&t, &standin, "U1", "evacuate all --reason region a is gone").await;
    // Starting is acknowledged at once, and what it did follows.
    assert_eq!(started["text"], "Starting the evacuation…");
    started = standin.answer_at(&hook).await;
    let said = started["text"].as_str().unwrap_or("");
    assert!(
        said.contains("started an evacuation of 200 groups"),
        "{said}"
    );
    let id = said.split('`').nth(1).unwrap_or_default().to_string();

    // The card comes to show the two failures and the group they hold, with buttons.
    let card = |s: &SlackStandIn| -> Vec<Call> {
        let mut calls: Vec<Call> = s
            .all_calls()
            .into_iter()
            .filter(|c| {
                matches!(c.method.as_str(), "chat.postMessage" | "chat.update")
                    && c.body["channel"] == "CDR"
                    && shown(c).contains(&format!("evacuation `{id}`"))
            })
            .collect();
        calls.sort_by_key(|c| c.at);
        calls
    };
    let failing = standin
        .until("the card to show two failures", |s| {
            let last = card(s).last().map(shown)?;
            (last.contains("197 succeeded") && last.contains("2 failed") && last.contains("1 held"))
                .then_some(last)
        })
        .await;
    assert!(failing.contains("Why: region a is gone"), "{failing}");
    assert!(failing.contains("❌ `flaky` failed (run `"), "{failing}");
    assert!(failing.contains("evacuation_resume"), "{failing}");
    assert!(failing.contains(&format!("{id}/broken")), "{failing}");
    assert!(failing.contains("Abort the rest"), "{failing}");
    // Only the failed groups opened an incident.
    let incidents: Vec<String> = standin
        .calls("conversations.create")
        .iter()
        .map(|c| c.body["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(incidents.len(), 2, "{incidents:?}");
    assert!(
        incidents.iter().any(|n| n.contains("flaky"))
            && incidents.iter().any(|n| n.contains("broken")),
        "{incidents:?}"
    );

    // Resumed from the card, by someone the group does not allow: refused.
    let (status, hook) = press(
        &t,
        &standin,
        "U9",
        "evacuation_resume",
        &format!("{id}/flaky"),
    )
    .await;
    assert_eq!(status, 200);
    let refused = standin.answer_at(&hook).await;
    assert!(
        refused["text"]
            .as_str()
            .is_some_and(|s| s.contains("may not")),
        "{refused}"
    );
    let (_, hook) = press(
        &t,
        &standin,
        "U1",
        "evacuation_resume",
        &format!("{id}/flaky"),
    )
    .await;
    let resumed = standin.answer_at(&hook).await;
    assert!(
        resumed["text"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("resumed `flaky` in evacuation `{id}`"))),
        "{resumed}"
    );
    // Skip asks why first; the command skips, and what depended on it goes on.
    let (_, hook) = press(
        &t,
        &standin,
        "U1",
        "evacuation_skip",
        &format!("{id}/broken"),
    )
    .await;
    let asked = standin.answer_at(&hook).await;
    assert!(
        asked["text"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("/dr skip {id} broken REASON"))),
        "{asked}"
    );
    let (_, _, hook) = slash_with_hook(
        &t,
        &standin,
        "U1",
        &format!("skip {id} broken --reason not needed in region b"),
    )
    .await;
    let skipped = standin.answer_at(&hook).await;
    // `--reason`, as the commands that start things take it, is not part of the reason.
    assert!(
        skipped["text"].as_str().is_some_and(
            |s| s.contains("skipped `broken`") && s.ends_with(": not needed in region b")
        ),
        "{skipped}"
    );
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Some(last) = card(&standin).last().map(shown)
                && last.contains("Evacuation: failover of 200 groups: done in")
            {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // What was left going, if it never ended: the card and the groups as stored.
    let done = match finished {
        Ok(done) => done,
        Err(_) => panic!(
            "the card never showed the evacuation done; it last showed:\n{}\nand the store has:\n{:#}",
            card(&standin).last().map(shown).unwrap_or_default(),
            t.get(&format!("/api/v1/evacuations/{id}")).await.1
        ),
    };
    assert!(done.contains("199 succeeded · 1 skipped"), "{done}");
    assert!(!done.contains("evacuation_resume"), "{done}");

    // One post, then edits in place: no more than one a tick, and within the tier.
    let calls = card(&standin);
    let posts = calls
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .count();
    assert_eq!(posts, 1, "the card is posted once");
    let edits: Vec<_> = calls
        .iter()
        .filter(|c| c.method == "chat.update")
        .map(|c| c.at)
        .collect();
    let least = Duration::from_secs_f64(60.0 / (50.0 * SCALE) * 0.9);
    for pair in edits.windows(2) {
        assert!(pair[1].duration_since(pair[0]) >= least, "edits too close");
    }
    assert_eq!(
        standin.calls("conversations.create").len(),
        2,
        "no incident for the groups that went well, nor for the resumed one again"
    );
    t.shutdown().await;
}
