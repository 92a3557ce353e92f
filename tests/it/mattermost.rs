//! Mattermost, end to end against a loopback stand-in of its REST API v4: `/dr` as a
//! custom slash command checked by its token, the incident thread and card, and buttons
//! whose context only Lifeboat can sign.

use crate::common;

use common::TestApp;
use common::crash::{CrashAfter, Victim, died};
use common::mattermost::{BOT_TOKEN, MattermostStandIn, buttons, shown};
use lifeboat::app::Options;
use lifeboat::chat::mattermost::MattermostSettings;
use lifeboat::secret::SecretString;
use serde_json::{Value, json};

const SHOP: &str = "\
name: shop
stages:
  scale:
    agent: capacity
    spec: { cluster: k8s, namespace: shop, replicas: 2, duration: 100ms }
  dial:
    agent: dial
    approval: required
    spec: { endpoint: shop.example.com, region: a, duration: 100ms }
";

const GROUPS: &str = "\
groups:
  shop:
    workflows: { failover: shop }
    mattermost_channel: chan-dr
    owners: { mattermost: [u-owner] }
    allow: { mattermost_teams: [team-sre], mattermost_users: [u-carol] }
";

const COMMAND_TOKEN: &str = "mm-command-token-51";

async fn app(standin: &MattermostStandIn) -> TestApp {
    let settings = MattermostSettings {
        url: standin.base.clone(),
        bot_token: SecretString::from(BOT_TOKEN),
        command_tokens: vec![SecretString::from(COMMAND_TOKEN)],
        actions_url: Some("https://lifeboat.example.com/mattermost/actions".into()),
    };
    common::spawn_configured(
        &[("shop.yaml", SHOP), ("groups.yaml", GROUPS)],
        &[],
        Options::default(),
        move |s| s.chat.set(settings),
    )
    .await
}

async fn command(t: &TestApp, token: &str, user: &str, team: &str, text: &str) -> (u16, Value) {
    let form: Vec<(&str, &str)> = vec![
        ("token", token),
        ("team_id", team),
        ("team_domain", "acme"),
        ("channel_id", "chan-ops"),
        ("channel_name", "ops"),
        ("user_id", user),
        ("user_name", "alice"),
        ("command", "/dr"),
        ("text", text),
        ("response_url", "http://mattermost.invalid/hooks/commands/x"),
        ("trigger_id", "trigger-1"),
    ];
    let resp = t
        .client
        .post(t.url("/mattermost/commands"))
        .form(&form)
        .send()
        .await
        .expect("a request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn press(t: &TestApp, user: &str, team: &str, context: &Value) -> (u16, Value) {
    let body = json!({
        "user_id": user, "user_name": "bob", "channel_id": "chan-dr", "team_id": team,
        "team_domain": "acme", "post_id": "post2", "trigger_id": "trigger-2",
        "type": "", "data_source": "", "context": context,
    });
    let resp = t
        .client
        .post(t.url("/mattermost/actions"))
        .json(&body)
        .send()
        .await
        .expect("a request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn runs(t: &TestApp) -> Vec<Value> {
    let (_, runs) = t.get("/api/v1/runs").await;
    runs["runs"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn dr_failover_runs_in_an_incident_thread_and_its_buttons_are_lifeboats_own() {
    let standin = MattermostStandIn::start(1).await;
    let t = app(&standin).await;

    // The command's token is checked before anything is read or done.
    let (status, body) = command(&t, "not-the-token", "u-alice", "team-sre", "failover shop").await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = command(&t, "", "u-alice", "team-sre", "failover shop").await;
    assert_eq!(status, 401);
    assert!(runs(&t).await.is_empty());

    // Someone outside the group's team and users is refused, and it is recorded.
    let (status, body) = command(&t, COMMAND_TOKEN, "u-eve", "team-dev", "failover shop").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response_type"], "ephemeral", "{body}");
    assert!(runs(&t).await.is_empty());
    let (_, refusals) = t.get("/api/v1/refusals").await;
    assert_eq!(
        refusals["refusals"][0]["actor"], "mattermost:u-eve",
        "{refusals}"
    );

    let (status, body) = command(&t, COMMAND_TOKEN, "u-alice", "team-sre", "failover shop").await;
    assert_eq!(status, 200, "{body}");
    let started = runs(&t).await;
    assert_eq!(started.len(), 1, "{body}");
    assert_eq!(started[0]["requested_by"], "mattermost:u-alice");
    let id = started[0]["id"].as_str().unwrap_or_default().to_string();

    // The thread opens in the group's channel, naming the requester and the owner; the
    // card is posted in it and waits at the gate with its buttons.
    let root = standin
        .until("the incident thread", |s| {
            s.posts()
                .into_iter()
                .find(|p| p.body["channel_id"] == "chan-dr" && p.body["root_id"].is_null())
        })
        .await;
    let opened = shown(&root.body);
    assert!(
        opened.contains("Failover of `shop`: its incident thread"),
        "{opened}"
    );
    assert!(
        opened.contains("@alice"),
        "the requester, by name: {opened}"
    );
    assert!(
        opened.contains("@name-of-u-owner"),
        "the owner, looked up: {opened}"
    );
    let card = standin
        .until("the card in the thread", |s| {
            s.posts()
                .into_iter()
                .find(|p| p.body["root_id"] == root.id.as_str() && !buttons(&p.body).is_empty())
        })
        .await;
    let approve = standin
        .until("the card at the gate", |s| {
            let latest = s
                .patches_of(&card.id)
                .last()
                .map(|c| c.body.clone())
                .unwrap_or_else(|| card.body.clone());
            buttons(&latest)
                .into_iter()
                .find(|(name, _)| name == "Approve")
                .map(|(_, integration)| integration)
        })
        .await;
    assert_eq!(
        approve["url"], "https://lifeboat.example.com/mattermost/actions",
        "{approve}"
    );
    let context = approve["context"].clone();
    assert_eq!(context["target"], id.as_str(), "{context}");

    // A context Lifeboat did not make does nothing: another run, another button, no
    // signature.
    for forged in [
        json!({ "button": "approve", "target": "01a213a1-0776-769e-b4c5-9785c42f41c5", "signature": context["signature"] }),
        json!({ "button": "cancel", "target": id, "signature": context["signature"] }),
        json!({ "button": "approve", "target": id }),
    ] {
        let (status, body) = press(&t, "u-bob", "team-sre", &forged).await;
        assert_eq!(status, 401, "{forged}: {body}");
    }
    let (_, run) = t.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(run["state"], "awaiting_approval", "{run}");

    // Bob of the SRE team approves from the card; the run goes on and the card ends.
    let (status, body) = press(&t, "u-bob", "team-sre", &context).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["ephemeral_text"]
            .as_str()
            .is_some_and(|t| t.contains("approved")),
        "{body}"
    );
    let done = t.wait_state(&id, "succeeded").await;
    let approved = done["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "stage.approved").cloned())
        .unwrap_or_default();
    assert_eq!(approved["actor"], "mattermost:u-bob", "{done}");
    let last = standin
        .until("the card's final edit", |s| {
            s.patches_of(&card.id)
                .last()
                .filter(|c| shown(&c.body).contains("succeeded"))
                .cloned()
        })
        .await;
    assert!(
        buttons(&last.body).is_empty(),
        "a finished run has no buttons"
    );
    assert!(standin.limited() >= 1, "the stand-in's 429 was waited out");

    // Where it was asked for hears where to follow it.
    standin
        .until("the notice in the asking channel", |s| {
            s.posts().into_iter().find(|p| {
                p.body["channel_id"] == "chan-ops" && shown(&p.body).contains("follow it in")
            })
        })
        .await;
    t.shutdown().await;
}

#[tokio::test]
async fn without_mattermost_configured_its_paths_refuse() {
    let t = common::spawn(&[("shop.yaml", SHOP)], &[]).await;
    let (status, body) = command(&t, COMMAND_TOKEN, "u-alice", "team-sre", "groups").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "Mattermost is not configured here");
    t.shutdown().await;
}

/// The service dies after Mattermost took the incident's root post but before the store
/// heard of it, and again after it took the card: each time the restarted service finds
/// what it made (the root by the run it names, the card in its thread) instead of making
/// a second, and the one card ends on the run's final state.
#[tokio::test]
async fn a_crash_between_mattermost_acting_and_the_store_recording_makes_nothing_twice() {
    let victim = Victim::default();
    let standin = MattermostStandIn::start(0).await;
    standin.crash(CrashAfter::new(&["POST posts"], victim.crash()));
    let dir = tempfile::tempdir().expect("tempdir");
    let wf = "name: shop\nstages:\n  a: { agent: noop }\n  slow: { agent: exec, spec: { command: [sleep, '2'] } }\n";
    common::write_workflows(dir.path(), &[("shop.yaml", wf), ("groups.yaml", GROUPS)]);
    let client = reqwest::Client::new();
    let start = || {
        let port = common::free_port();
        let proc = common::serve(
            dir.path(),
            port,
            &[
                ("MATTERMOST_URL", &standin.base),
                ("MATTERMOST_BOT_TOKEN", BOT_TOKEN),
                ("MATTERMOST_COMMAND_TOKENS", COMMAND_TOKEN),
            ],
        );
        victim.is(&proc);
        (proc, format!("http://127.0.0.1:{port}"))
    };
    // Dies as Mattermost takes the root post.
    let (mut first, base) = start();
    common::until_ready(&client, &base).await;
    let id = common::create_run_at(&client, &base, "shop").await;
    died(&mut first).await;
    let roots = standin.posts();
    assert_eq!(roots.len(), 1, "{roots:?}");
    let root = roots[0].id.clone();

    // Dies as Mattermost takes the card, in the thread it found.
    standin.crash(CrashAfter::new(&["POST posts"], victim.crash()));
    let (mut second, _) = start();
    died(&mut second).await;
    let posts = standin.posts();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(
        posts[1].body["root_id"],
        root.as_str(),
        "the card is in the thread"
    );
    let card = posts[1].id.clone();

    // Finds the card and goes on with it.
    let (_third, base) = start();
    common::until_ready(&client, &base).await;
    common::until(
        "the run to succeed",
        std::time::Duration::from_secs(60),
        async || {
            let run = common::get_json(&client, &format!("{base}/api/v1/runs/{id}"), None).await?;
            (run["state"] == "succeeded").then_some(())
        },
    )
    .await;
    common::until(
        "the card's final state",
        std::time::Duration::from_secs(60),
        async || {
            standin
                .calls()
                .into_iter()
                .rev()
                .find(|c| c.method == "PUT" && c.path == format!("/api/v4/posts/{card}/patch"))
                .filter(|c| c.body.to_string().contains("Total recovery time"))
        },
    )
    .await;
    let posts = standin.posts();
    let roots = posts
        .iter()
        .filter(|p| p.body["root_id"].as_str().is_none_or(str::is_empty))
        .count();
    let cards = posts
        .iter()
        .filter(|p| p.body["props"]["lifeboat_card"] == id.as_str())
        .count();
    assert_eq!((roots, cards), (1, 1), "one thread, one card: {posts:?}");
}
