//! Discord, end to end against a loopback stand-in of its REST API: interactions over HTTP
//! with real Ed25519 signatures, `/dr` registered at start-up, and each run's card in an
//! incident thread.

use crate::common;

use common::TestApp;
use common::crash::{CrashAfter, Victim, died};
use common::discord::{APPLICATION_ID, Call, DiscordStandIn, public_key, sign};
use common::evacuation;
use lifeboat::app::Options;
use lifeboat::chat::discord::DiscordSettings;
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
    discord_channel: \"5000\"
    owners: { discord: [\"42\"] }
    allow: { discord_roles: [\"123\"] }
";

async fn app(standin: &DiscordStandIn) -> TestApp {
    app_with(standin, SHOP).await
}

async fn app_with(standin: &DiscordStandIn, workflow: &str) -> TestApp {
    app_on(standin, &[("shop.yaml", workflow), ("groups.yaml", GROUPS)]).await
}

/// The app on these workflow files, with Discord's interactions over HTTP.
async fn app_on(standin: &DiscordStandIn, files: &[(&str, &str)]) -> TestApp {
    let settings = DiscordSettings {
        token: SecretString::from("discord-test-token"),
        public_key: Some(public_key()),
        application_id: Some(APPLICATION_ID.parse().expect("an id")),
        api_url: Some(standin.base.clone()),
        guild_ids: Vec::new(),
    };
    common::spawn_configured(files, &[], Options::default(), move |s| {
        s.chat.set(settings)
    })
    .await
}

async fn interact(t: &TestApp, body: &Value, signature: Option<String>) -> (u16, Value) {
    let body = body.to_string();
    let ts = common::slack::now_secs().to_string();
    let signature = signature.unwrap_or_else(|| sign(&ts, &body));
    let resp = t
        .client
        .post(t.url("/discord/interactions"))
        .header("content-type", "application/json")
        .header("x-signature-ed25519", signature)
        .header("x-signature-timestamp", ts)
        .body(body)
        .send()
        .await
        .expect("a request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// An interaction as Discord sends one in a guild, with the fields serenity's models need.
fn interaction(kind: u8, user: &str, roles: &[&str], token: &str, data: Value) -> Value {
    json!({
        "id": common::fresh_id(),
        "application_id": APPLICATION_ID,
        "type": kind,
        "token": token,
        "version": 1,
        "locale": "en-GB",
        "entitlements": [],
        "attachment_size_limit": 10485760,
        "guild_id": "4000",
        "channel_id": "6000",
        "member": {
            "user": { "id": user, "username": "someone", "discriminator": "0", "global_name": null, "avatar": null },
            "roles": roles,
            "deaf": false,
            "mute": false,
            "flags": 0,
            "joined_at": "2026-01-01T00:00:00.000000+00:00"
        },
        "data": data,
    })
}

fn failover() -> Value {
    json!({ "id": "77", "name": "dr", "type": 1, "options": [
        { "name": "failover", "type": 1, "options": [ { "name": "group", "type": 3, "value": "shop" } ] }
    ]})
}

/// What replaced the deferred answer of the interaction with this token.
async fn answer(standin: &DiscordStandIn, token: &str) -> String {
    standin
        .until("the interaction's answer", |s| {
            s.calls_to("PATCH", &format!("{token}/messages/@original"))
                .last()
                .map(|c| c.body["content"].as_str().unwrap_or("").to_string())
        })
        .await
}

/// The run id an answer names.
fn run_id_in(text: &str) -> String {
    text.split('`')
        .find(|w| w.len() == 36)
        .expect("a run id")
        .to_string()
}

/// The first incident thread opened in the group's channel.
async fn incident_thread(standin: &DiscordStandIn) -> Call {
    standin
        .until("the incident thread", |s| {
            s.calls_to("POST", "/channels/5000/threads")
                .first()
                .cloned()
        })
        .await
}

fn card_calls(standin: &DiscordStandIn, thread: &str) -> Vec<Call> {
    standin
        .calls()
        .into_iter()
        .filter(|c| {
            c.path.contains(&format!("/channels/{thread}/messages")) && c.body["embeds"].is_array()
        })
        .collect()
}

fn shown(call: &Call) -> String {
    call.body["embeds"][0].to_string() + &call.body["components"].to_string()
}

#[tokio::test]
async fn ping_is_answered_and_a_bad_signature_gets_401() {
    let standin = DiscordStandIn::start().await;
    let t = app(&standin).await;
    let ping = json!({ "id": "1", "application_id": APPLICATION_ID, "type": 1, "token": "t", "version": 1 });
    let (status, body) = interact(&t, &ping, None).await;
    assert_eq!((status, body), (200, json!({ "type": 1 })));

    let (status, body) = interact(&t, &ping, Some("00".repeat(64))).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = interact(&t, &ping, Some("not hex".into())).await;
    assert_eq!(status, 401);
    // A signature over another body.
    let other = sign("1700000000", "{\"type\":1}");
    let (status, _) = interact(&t, &ping, Some(other)).await;
    assert_eq!(status, 401);
    let (status, _) = interact(
        &t,
        &interaction(2, "77", &["123"], "tok", failover()),
        Some("00".repeat(64)),
    )
    .await;
    assert_eq!(status, 401);
    let (_, runs) = t.get("/api/v1/runs").await;
    assert_eq!(runs["runs"], json!([]), "nothing started");
    t.shutdown().await;
}

#[tokio::test]
async fn dr_failover_runs_into_an_incident_thread_with_its_card() {
    let standin = DiscordStandIn::start().await;
    let t = app(&standin).await;
    // `/dr` is registered at start-up.
    let registered = standin
        .until("/dr to be registered", |s| {
            s.calls_to("PUT", &format!("/applications/{APPLICATION_ID}/commands"))
                .first()
                .cloned()
        })
        .await;
    assert_eq!(registered.body[0]["name"], "dr");

    // Without the role: refused, and nothing starts.
    let (status, deferred) = interact(
        &t,
        &interaction(2, "88", &["999"], "tok-refused", failover()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(deferred, json!({ "type": 5, "data": { "flags": 64 } }));
    let refused = answer(&standin, "tok-refused").await;
    assert!(refused.contains("<@88> may not do that"), "{refused}");

    let (status, _) = interact(
        &t,
        &interaction(2, "77", &["123"], "tok-start", failover()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let started = answer(&standin, "tok-start").await;
    assert!(
        started.contains("<@77> started failover of `shop`"),
        "{started}"
    );
    let id = run_id_in(&started);

    // A thread in the group's channel, with the requester and the owner in it.
    let thread = incident_thread(&standin).await;
    assert!(
        thread.body["name"]
            .as_str()
            .unwrap_or("")
            .starts_with("failover shop "),
        "{:?}",
        thread.body
    );
    let thread_id = thread.id.as_str();
    for person in ["77", "42"] {
        standin
            .until("the thread's members", |s| {
                s.calls_to(
                    "PUT",
                    &format!("/channels/{thread_id}/thread-members/{person}"),
                )
                .first()
                .cloned()
            })
            .await;
    }

    // The gate, approved from the card by someone with the role.
    standin
        .until("Approve on the card", |s| {
            card_calls(s, thread_id)
                .last()
                .filter(|c| shown(c).contains("Approve"))
                .cloned()
        })
        .await;
    let press = json!({ "custom_id": format!("approve:{id}"), "component_type": 2 });
    let (status, deferred) = interact(
        &t,
        &interaction(3, "77", &["123"], "tok-approve", press),
        None,
    )
    .await;
    assert_eq!(
        (status, deferred),
        (200, json!({ "type": 5, "data": { "flags": 64 } }))
    );
    let approved = answer(&standin, "tok-approve").await;
    assert!(approved.contains("<@77> approved"), "{approved}");
    t.wait_state(&id, "succeeded").await;

    let cards = standin
        .until("the card's final state", |s| {
            let cards = card_calls(s, thread_id);
            cards
                .last()
                .filter(|c| {
                    shown(c).contains("succeeded") && shown(c).contains("Total recovery time")
                })
                .map(|_| cards.clone())
        })
        .await;
    assert_eq!(
        cards.iter().filter(|c| c.method == "POST").count(),
        1,
        "posted once"
    );
    assert!(
        cards.iter().filter(|c| c.method == "PATCH").count() >= 1,
        "edited in place"
    );
    assert!(shown(cards.last().expect("a card")).contains("<@77> approved `dial`"));
    let summary = standin
        .until("the summary in the thread", |s| {
            s.calls_to("POST", &format!("/channels/{thread_id}/messages"))
                .into_iter()
                .find(|c| {
                    c.body["content"]
                        .as_str()
                        .unwrap_or("")
                        .contains("Total recovery time")
                })
        })
        .await;
    assert!(
        summary.body["content"]
            .as_str()
            .unwrap_or("")
            .contains("`scale` succeeded in")
    );
    for channel in ["6000", "5000"] {
        standin
            .until("the announcement", |s| {
                s.calls_to("POST", &format!("/channels/{channel}/messages"))
                    .into_iter()
                    .find(|c| {
                        c.body["content"]
                            .as_str()
                            .unwrap_or("")
                            .contains(&format!("<#{thread_id}>"))
                    })
            })
            .await;
    }
    t.shutdown().await;
}

#[tokio::test]
async fn discords_rate_limit_headers_and_429s_are_honoured() {
    const RESET_AFTER: f64 = 0.3;
    let standin = DiscordStandIn::scripted(common::discord::Script {
        limited_edits: 1,
        retry_after: 0.5,
        bucket_reset_after: Some(RESET_AFTER),
        ..Default::default()
    })
    .await;
    // Long enough that the card is posted while the run goes on, so that it is edited.
    let workflow = SHOP
        .replace("approval: required", "")
        .replace("duration: 100ms", "duration: 1s");
    let t = app_with(&standin, &workflow).await;
    t.create(r#"{"group": "shop"}"#).await;
    let thread = incident_thread(&standin).await;
    // Every post to the thread waits for its bucket to refill.
    let posts = standin
        .until("the summary", |s| {
            let posts = s.calls_to("POST", &format!("/channels/{}/messages", thread.id));
            posts
                .iter()
                .any(|c| {
                    c.body["content"]
                        .as_str()
                        .unwrap_or("")
                        .contains("Total recovery time")
                })
                .then_some(posts)
        })
        .await;
    assert!(posts.len() >= 2, "{posts:#?}");
    for pair in posts.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= std::time::Duration::from_secs_f64(RESET_AFTER * 0.9),
            "posts {gap:?} apart on an empty bucket"
        );
    }
    assert_eq!(standin.limited(), 1, "one 429, waited out");
    standin
        .until("the card's final state", |s| {
            card_calls(s, &thread.id)
                .last()
                .filter(|c| c.method == "PATCH" && shown(c).contains("succeeded"))
                .cloned()
        })
        .await;
    t.shutdown().await;
}

#[tokio::test]
async fn without_a_public_key_interactions_come_over_the_gateway() {
    let standin = DiscordStandIn::start().await;
    let gateway = common::discord::GatewayStandIn::start(&standin).await;
    let settings = DiscordSettings {
        token: SecretString::from("discord-test-token"),
        public_key: None,
        application_id: Some(APPLICATION_ID.parse().expect("an id")),
        api_url: Some(standin.base.clone()),
        guild_ids: Vec::new(),
    };
    let t = common::spawn_configured(
        &[
            ("shop.yaml", &SHOP.replace("approval: required", "")),
            ("groups.yaml", GROUPS),
        ],
        &[],
        Options::default(),
        move |s| s.chat.set(settings),
    )
    .await;
    common::until(
        "the bot to identify",
        std::time::Duration::from_secs(30),
        async || (gateway.identified() > 0).then_some(()),
    )
    .await;
    // No endpoint without a key.
    let ping = json!({ "id": "1", "application_id": APPLICATION_ID, "type": 1, "token": "t", "version": 1 });
    let (status, _) = interact(&t, &ping, None).await;
    assert_eq!(status, 401);

    let mut command = interaction(2, "77", &["123"], "tok-gateway", failover());
    command["data"]["id"] = json!("5555");
    command["id"] = json!("1234567890");
    gateway.interaction(&command);
    let callback = standin
        .until("the interaction's callback", |s| {
            s.calls_to("POST", "/interactions/1234567890/tok-gateway/callback")
                .first()
                .cloned()
        })
        .await;
    assert_eq!(callback.body, json!({ "type": 5, "data": { "flags": 64 } }));
    let started = answer(&standin, "tok-gateway").await;
    assert!(
        started.contains("<@77> started failover of `shop`"),
        "{started}"
    );
    let id = run_id_in(&started);
    t.wait_state(&id, "succeeded").await;
    t.shutdown().await;
}

#[tokio::test]
async fn an_alert_countdown_is_posted_in_the_groups_channel_and_start_now_starts_it() {
    let standin = DiscordStandIn::start().await;
    let settings = DiscordSettings {
        token: SecretString::from("discord-test-token"),
        public_key: Some(public_key()),
        application_id: Some(APPLICATION_ID.parse().expect("an id")),
        api_url: Some(standin.base.clone()),
        guild_ids: Vec::new(),
    };
    let routes = "routes:\n  - name: shop-down\n    match: { alertname: RegionDown }\n    group: shop\n    mode: countdown\n    delay: 10m\n";
    let t = common::spawn_configured(
        &[
            ("shop.yaml", SHOP),
            ("groups.yaml", GROUPS),
            ("routes.yaml", routes),
        ],
        &[],
        Options::default(),
        move |s| {
            s.chat.set(settings);
            s.alerts =
                std::mem::take(&mut s.alerts).with_secret("alertmanager", "am-token-for-discord");
        },
    )
    .await;
    let body = json!({
        "version": "4", "status": "firing", "receiver": "lifeboat",
        "alerts": [{ "status": "firing", "labels": { "alertname": "RegionDown", "region": "a" },
                     "annotations": {}, "startsAt": "2026-11-25T10:00:00Z", "fingerprint": "d1" }]
    });
    let reply: Value = t
        .client
        .post(t.url("/webhooks/alertmanager"))
        .bearer_auth("am-token-for-discord")
        .body(body.to_string())
        .send()
        .await
        .expect("the alert")
        .json()
        .await
        .expect("json");
    let offer = reply["alerts"][0]["offer_id"]
        .as_str()
        .expect("an offer")
        .to_string();
    let posted = standin
        .until("the countdown in the group's channel", |s| {
            s.calls().into_iter().find(|c| {
                c.method == "POST"
                    && c.path.ends_with("/channels/5000/messages")
                    && shown(c).contains(&format!("veto:{offer}"))
            })
        })
        .await;
    let card = shown(&posted);
    assert!(card.contains("Failover of shop starts in 10:00"), "{card}");
    assert!(card.contains(&format!("start_now:{offer}")), "{card}");

    // Without the role: refused. With it: started now, as that person.
    let press = |token: &str, user: &str, roles: &[&str]| {
        interaction(
            3,
            user,
            roles,
            token,
            json!({ "custom_id": format!("start_now:{offer}"), "component_type": 2 }),
        )
    };
    interact(&t, &press("tok-no", "99", &[]), None).await;
    let refused = answer(&standin, "tok-no").await;
    assert!(refused.contains("<@99> may not do that"), "{refused}");
    let (status, _) = interact(&t, &press("tok-yes", "77", &["123"]), None).await;
    assert_eq!(status, 200);
    let started = answer(&standin, "tok-yes").await;
    assert!(
        started.contains(&format!(
            "<@77> started the failover of `shop`: run `{offer}`"
        )),
        "{started}"
    );
    let (_, run) = t.get(&format!("/api/v1/runs/{offer}")).await;
    assert_eq!(run["requested_by"], "discord:77");
    standin
        .until("the card saying who started it", |s| {
            s.calls().into_iter().find(|c| {
                c.method == "PATCH"
                    && c.path.contains("/channels/5000/messages/")
                    && shown(c).contains("started by <@77>")
            })
        })
        .await;
    t.shutdown().await;
}

#[tokio::test]
async fn retry_now_from_the_card_cuts_a_30s_backoff_and_agents_lists_the_live_ones() {
    const FLAKY: &str = "\
name: shop
stages:
  scale:
    agent: capacity
    spec: { cluster: k8s, namespace: shop, replicas: 2, duration: 50ms, fail_attempts: 1 }
    retry: { max_attempts: 3, initial_backoff: 30s, max_backoff: 30s }
";
    let standin = DiscordStandIn::start().await;
    let t = app_with(&standin, FLAKY).await;

    let agents = json!({ "id": "77", "name": "dr", "type": 1, "options": [
        { "name": "agents", "type": 1, "options": [] }
    ]});
    interact(
        &t,
        &interaction(2, "77", &["123"], "tok-agents", agents),
        None,
    )
    .await;
    let listed = answer(&standin, "tok-agents").await;
    assert!(
        listed.contains("🟢 `embedded:") && listed.contains("capacity"),
        "{listed}"
    );

    interact(
        &t,
        &interaction(2, "77", &["123"], "tok-start", failover()),
        None,
    )
    .await;
    let started = answer(&standin, "tok-start").await;
    let id = run_id_in(&started);
    let thread = incident_thread(&standin).await;
    let thread_id = thread.id.as_str();
    let card = standin
        .until("Retry now on the card", |s| {
            card_calls(s, thread_id)
                .last()
                .filter(|c| shown(c).contains("Retry now: scale"))
                .cloned()
        })
        .await;
    assert!(
        shown(&card).contains(&format!("retry_now:{id}/scale")),
        "{}",
        shown(&card)
    );
    let (_, waiting) = t.get(&format!("/api/v1/runs/{id}")).await;
    let retry_at = common::stage(&waiting, "scale")["retry_at"]
        .as_str()
        .expect("a backoff")
        .to_string();

    let press = json!({ "custom_id": format!("retry_now:{id}/scale"), "component_type": 2 });
    let (status, _) = interact(
        &t,
        &interaction(3, "77", &["123"], "tok-retry", press),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let retried = answer(&standin, "tok-retry").await;
    assert!(retried.contains("<@77> retried `scale` now"), "{retried}");
    let done = t.wait_state(&id, "succeeded").await;
    let second = done["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "stage.dispatched" && e["attempt"] == 2)
        .expect("a second attempt")
        .clone();
    assert_eq!(second["actor"], "discord:77");
    assert!(second["at"].as_str().unwrap_or("") < retry_at.as_str());

    // The final card carries the scorecard.
    let last = standin
        .until("the scorecard on the card", |s| {
            card_calls(s, thread_id)
                .last()
                .filter(|c| shown(c).contains("critical path: scale"))
                .cloned()
        })
        .await;
    assert!(shown(&last).contains("<@77> retried `scale` now"));
    t.shutdown().await;
}

/// An interaction signed at `ts`.
async fn interact_at(t: &TestApp, body: &Value, ts: &str) -> u16 {
    let body = body.to_string();
    t.client
        .post(t.url("/discord/interactions"))
        .header("content-type", "application/json")
        .header("x-signature-ed25519", sign(ts, &body))
        .header("x-signature-timestamp", ts)
        .body(body)
        .send()
        .await
        .expect("a request")
        .status()
        .as_u16()
}

/// A validly signed interaction older (or newer) than five minutes gets 401, whatever
/// number its timestamp holds; one seen before (its id) is answered as before and starts
/// nothing; one from a server `DISCORD_GUILD_IDS` does not name is refused to its sender
/// and recorded; ids sent as JSON numbers are read.
#[tokio::test]
async fn stale_replayed_and_foreign_interactions_start_nothing() {
    let standin = DiscordStandIn::start().await;
    let settings = DiscordSettings {
        token: SecretString::from("discord-test-token"),
        public_key: Some(public_key()),
        application_id: Some(APPLICATION_ID.parse().expect("an id")),
        api_url: Some(standin.base.clone()),
        guild_ids: vec!["4000".into()],
    };
    let t = common::spawn_configured(
        &[("shop.yaml", SHOP), ("groups.yaml", GROUPS)],
        &[],
        Options::default(),
        move |s| s.chat.set(settings),
    )
    .await;
    let now = common::slack::now_secs();
    let command = interaction(2, "77", &["123"], "tok-old", failover());
    // Well outside the 5 minutes, so that a slow machine's seconds between here and the
    // check do not bring one in.
    for ts in [
        (now - 330).to_string(),
        (now + 330).to_string(),
        i64::MIN.to_string(),
        i64::MAX.to_string(),
        "-1".into(),
    ] {
        assert_eq!(interact_at(&t, &command, &ts).await, 401, "timestamp {ts}");
    }
    let (_, runs) = t.get("/api/v1/runs").await;
    assert_eq!(runs["runs"], json!([]), "nothing started");

    // From another server: refused to the sender, and recorded.
    let mut foreign = interaction(2, "77", &["123"], "tok-foreign", failover());
    foreign["guild_id"] = json!("9999");
    let (status, _) = interact(&t, &foreign, None).await;
    assert_eq!(status, 200);
    let refused = answer(&standin, "tok-foreign").await;
    assert!(
        refused.contains("does not serve this Discord server (9999)"),
        "{refused}"
    );

    // Ids as numbers; the same interaction twice (a fresh token, to see if it answers).
    let mut numeric = interaction(2, "77", &["123"], "tok-first", failover());
    numeric["id"] = json!(1_300_000_000_000_999_999u64);
    numeric["guild_id"] = json!(4000);
    numeric["member"]["user"]["id"] = json!(77);
    numeric["member"]["roles"] = json!([123]);
    let (status, _) = interact(&t, &numeric, None).await;
    assert_eq!(status, 200);
    let started = answer(&standin, "tok-first").await;
    assert!(
        started.contains("<@77> started failover of `shop`"),
        "{started}"
    );
    let mut copy = numeric.clone();
    copy["token"] = json!("tok-copy");
    let (status, body) = interact(&t, &copy, None).await;
    assert_eq!(
        (status, body),
        (200, json!({ "type": 5, "data": { "flags": 64 } }))
    );

    // A fresh interaction is the barrier: by its answer, the copy has had its chance.
    let runs =
        json!({ "id": "78", "name": "dr", "type": 1, "options": [{ "name": "runs", "type": 1 }] });
    let (status, _) = interact(&t, &interaction(2, "77", &["123"], "tok-last", runs), None).await;
    assert_eq!(status, 200);
    answer(&standin, "tok-last").await;
    assert!(
        standin
            .calls_to("PATCH", "tok-copy/messages/@original")
            .is_empty(),
        "the copy was answered"
    );
    let (_, runs) = t.get("/api/v1/runs").await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "{runs}");
    let refusals = t.app().store.refusals(10).await.expect("refusals");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].actor, "discord:77");
    t.shutdown().await;
}

/// `lifeboat serve` on the embedded store in `dir`, talking to the stand-in.
fn serve(dir: &std::path::Path, standin: &DiscordStandIn, port: u16) -> common::Proc {
    common::serve(
        dir,
        port,
        &[
            ("DISCORD_TOKEN", "discord-test-token"),
            ("DISCORD_PUBLIC_KEY", &public_key()),
            ("DISCORD_APPLICATION_ID", APPLICATION_ID),
            ("DISCORD_API_URL", &standin.base),
        ],
    )
}

/// The service dies after Discord opened the incident thread but before the store heard
/// of it, and again after Discord took the card but before the store heard of that: each
/// time, the restarted service finds what it made (the thread by its name under the
/// group's channel, the card as the thread's first message of a bot) instead of making a
/// second, and the run's one card ends on its final state.
#[tokio::test]
async fn a_crash_between_discord_acting_and_the_store_recording_makes_nothing_twice() {
    let victim = Victim::default();
    let standin = DiscordStandIn::start().await;
    standin.script(|s| s.crash = CrashAfter::new(&["POST threads"], victim.crash()));
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

    // Dies as Discord opens the thread.
    let (mut first, base) = start();
    common::until_ready(&client, &base).await;
    let id = common::create_run_at(&client, &base, "shop").await;
    died(&mut first).await;
    let threads = standin.calls_to("POST", "/channels/5000/threads");
    assert_eq!(threads.len(), 1);
    let thread = threads[0].id.clone();

    // Dies as Discord takes the card, in the thread it found; at start-up, so perhaps
    // before it is ready.
    standin.script(|s| s.crash = CrashAfter::new(&["POST messages"], victim.crash()));
    let (mut second, _) = start();
    died(&mut second).await;
    assert!(
        !standin.calls_to("GET", "/threads/active").is_empty(),
        "it looked"
    );
    let cards = standin.calls_to("POST", &format!("/channels/{thread}/messages"));
    assert_eq!(cards.len(), 1, "the card went into the thread");
    let card = cards[0].id.clone();

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
    standin
        .until("the card's final state", |s| {
            s.calls_to("PATCH", &format!("/channels/{thread}/messages/{card}"))
                .last()
                .filter(|c| c.body.to_string().contains("Total recovery time"))
                .cloned()
        })
        .await;
    assert_eq!(
        standin.calls_to("POST", "/channels/5000/threads").len(),
        1,
        "one incident thread"
    );
    let posted = standin.calls_to("POST", &format!("/channels/{thread}/messages"));
    assert_eq!(
        posted
            .iter()
            .filter(|c| c.body["components"].is_array() || c.body["embeds"].is_array())
            .count(),
        1,
        "one card: {posted:?}"
    );
}

/// The data-loss gate on Discord's card: what promoting loses, with Approve and Reject, and
/// approved from the card.
#[tokio::test]
async fn the_data_loss_gate_is_shown_and_passed_on_discord() {
    let standin = DiscordStandIn::start().await;
    let t = app_with(&standin, crate::slack::LOSSY).await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    t.wait_state(&id, "awaiting_approval").await;
    let thread = incident_thread(&standin).await;
    let thread_id = thread.id.as_str();
    standin
        .until("the gate on the card", |s| {
            card_calls(s, thread_id)
                .last()
                .filter(|c| {
                    let shown = shown(c);
                    shown.contains(
                        "promoting db-a now loses about 42 s / 17 MB of writes (measured)",
                    ) && shown.contains("Approve")
                        && shown.contains("Reject")
                })
                .cloned()
        })
        .await;
    let press = json!({ "custom_id": format!("approve:{id}"), "component_type": 2 });
    let (status, _) = interact(
        &t,
        &interaction(3, "77", &["123"], "tok-approve-loss", press),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        answer(&standin, "tok-approve-loss")
            .await
            .contains("<@77> approved")
    );
    let run = t.wait_state(&id, "succeeded").await;
    assert_eq!(common::stage(&run, "promote")["attempts"], 2);
    t.shutdown().await;
}

/// A group drilled every second whose drills fail: its Discord channel is told once that
/// it is not ready, naming the check, and nothing more while it stays so; no incident
/// thread opens for a scheduled drill.
#[tokio::test]
async fn a_readiness_change_is_told_once_in_the_group_channel() {
    let drilled = "\
name: shop
stages:
  fixed:
    agent: exec
    retry: { max_attempts: 1 }
    spec: { command: [/nonexistent/lifeboat-readiness-fix] }
";
    let groups = "\
groups:
  shop:
    workflows: { failover: shop }
    discord_channel: \"5000\"
    allow: { discord_roles: [\"123\"] }
    drill: { every: 1s }
";
    let standin = DiscordStandIn::start().await;
    let settings = DiscordSettings {
        token: SecretString::from("discord-test-token"),
        public_key: Some(public_key()),
        application_id: Some(APPLICATION_ID.parse().expect("an id")),
        api_url: Some(standin.base.clone()),
        guild_ids: Vec::new(),
    };
    let t = common::spawn_configured(
        &[("shop.yaml", drilled), ("groups.yaml", groups)],
        &[],
        Options::default(),
        move |s| s.chat.set(settings),
    )
    .await;
    let told = |s: &DiscordStandIn| -> Vec<String> {
        s.calls_to("POST", "/channels/5000/messages")
            .iter()
            .filter_map(|c| c.body["content"].as_str().map(str::to_string))
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
    assert!(first[0].contains("✗ fixed: stage:"), "{first:?}");
    let failed = || async {
        let (_, body) = t
            .get("/api/v1/runs?group=shop&state=failed&limit=500")
            .await;
        body["runs"].as_array().map_or(0, Vec::len)
    };
    let seen = failed().await;
    common::until(
        "three more failed drills",
        std::time::Duration::from_secs(20),
        async || (failed().await >= seen + 3).then_some(()),
    )
    .await;
    assert_eq!(told(&standin).len(), 1, "{:?}", told(&standin));
    assert!(
        standin
            .calls_to("POST", "/channels/5000/threads")
            .is_empty()
    );
    t.shutdown().await;
}

/// Five groups whose incidents open in channel 5000, the role 123 allowed on each, and the
/// evacuation card in channel 7000.
const EVACUATED: &str = "\
evacuation_channel: { discord: \"7000\" }
groups:
  east:
    workflows: { failover: mover }
    discord_channel: \"5000\"
    allow: { discord_roles: [\"123\"] }
  west:
    workflows: { failover: mover }
    discord_channel: \"5000\"
    allow: { discord_roles: [\"123\"] }
  flaky:
    workflows: { failover: flaky }
    discord_channel: \"5000\"
    allow: { discord_roles: [\"123\"] }
  broken:
    workflows: { failover: broken }
    discord_channel: \"5000\"
    allow: { discord_roles: [\"123\"] }
  after-broken:
    workflows: { failover: mover }
    depends_on: [broken]
    discord_channel: \"5000\"
    allow: { discord_roles: [\"123\"] }
";

/// `/dr SUBCOMMAND` with these string options, as Discord sends the invocation.
fn dr(subcommand: &str, options: &[(&str, &str)]) -> Value {
    let options: Vec<Value> = options
        .iter()
        .map(|(name, value)| json!({ "name": name, "type": 3, "value": value }))
        .collect();
    json!({ "id": "77", "name": "dr", "type": 1, "options": [
        { "name": subcommand, "type": 1, "options": options }
    ]})
}

/// A press of the button whose custom id this is.
fn button(custom_id: &str) -> Value {
    json!({ "custom_id": custom_id, "component_type": 2 })
}

/// The custom ids of a message's buttons, row by row.
fn custom_ids(call: &Call) -> Vec<String> {
    call.body["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().into_iter().flatten())
        .filter_map(|b| b["custom_id"].as_str().map(str::to_string))
        .collect()
}

/// The evacuation's card in channel 7000: its post and its edits, in order.
fn evacuation_cards(standin: &DiscordStandIn, id: &str) -> Vec<Call> {
    card_calls(standin, "7000")
        .into_iter()
        .filter(|c| c.body["embeds"][0]["footer"]["text"] == format!("evacuation {id}"))
        .collect()
}

/// An evacuation started with `/dr evacuate` keeps one card in the channel groups.yaml
/// names for evacuations on Discord. Its buttons are Lifeboat's own custom ids and act as
/// the person who pressed them: Resume is refused to someone without the role and changes
/// nothing, and resumes the failed group's run for someone with it; Abort is refused
/// likewise; Skip asks for `/dr skip` with a reason, which lets the group held behind the
/// skipped one go on; the card ends done, with no buttons, and a button it no longer
/// shows does nothing.
#[tokio::test]
async fn an_evacuations_card_on_discord_resumes_and_skips_its_failed_groups() {
    let standin = DiscordStandIn::start().await;
    let mut files = evacuation::workflows();
    files.push(("groups.yaml", EVACUATED.to_string()));
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let t = app_on(&standin, &files).await;

    let evacuate = dr(
        "evacuate",
        &[("groups", "all"), ("reason", "region a is gone")],
    );
    let (status, _) = interact(
        &t,
        &interaction(2, "77", &["123"], "tok-evacuate", evacuate),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let started = answer(&standin, "tok-evacuate").await;
    assert!(
        started.contains("<@77> started an evacuation of 5 groups"),
        "{started}"
    );
    let id = started.split('`').nth(1).unwrap_or_default().to_string();
    assert_eq!(id.len(), 36, "{started}");

    // The card comes to show the two failures and the group they hold, with buttons.
    let failing = standin
        .until("the card to show two failures", |s| {
            let last = evacuation_cards(s, &id).last().cloned()?;
            let said = shown(&last);
            (said.contains("2 succeeded") && said.contains("2 failed") && said.contains("1 held"))
                .then_some(last)
        })
        .await;
    let said = shown(&failing);
    assert!(
        said.contains("Why: region a is gone (asked by <@77>)"),
        "{said}"
    );
    assert!(said.contains("❌ `flaky` failed (run `"), "{said}");
    assert!(said.contains("❌ `broken` failed (run `"), "{said}");
    let buttons = custom_ids(&failing);
    let [abort, resume_flaky, skip_broken] = [
        format!("evacuation_abort:{id}"),
        format!("evacuation_resume:{id}/flaky"),
        format!("evacuation_skip:{id}/broken"),
    ];
    for expected in [&abort, &resume_flaky, &skip_broken] {
        assert!(buttons.contains(expected), "{expected} in {buttons:?}");
    }
    // Only the failed groups opened an incident thread.
    let threads = standin
        .until("the failed groups' incident threads", |s| {
            let threads = s.calls_to("POST", "/channels/5000/threads");
            (threads.len() >= 2).then_some(threads)
        })
        .await;
    let mut named: Vec<String> = threads
        .iter()
        .filter_map(|c| c.body["name"].as_str())
        .filter_map(|n| n.split(' ').nth(1).map(str::to_string))
        .collect();
    named.sort();
    assert_eq!(named, ["broken", "flaky"], "{threads:?}");
    let flaky = evacuation::group(&t, &id, "flaky").await;
    assert_eq!(flaky["state"], "failed", "{flaky}");
    let run = flaky["run"].as_str().expect("flaky's run").to_string();
    t.wait_state(&run, "failed").await;

    // Resume, from someone without the role: refused and recorded, and nothing moves.
    let (status, _) = interact(
        &t,
        &interaction(3, "88", &["999"], "tok-resume-no", button(&resume_flaky)),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let refused = answer(&standin, "tok-resume-no").await;
    assert!(refused.contains("<@88> may not do that"), "{refused}");
    assert_eq!(evacuation::group(&t, &id, "flaky").await["state"], "failed");
    let (_, still) = t.get(&format!("/api/v1/runs/{run}")).await;
    assert_eq!(still["state"], "failed", "{still}");
    let (_, refusals) = t.get("/api/v1/refusals").await;
    assert!(
        refusals["refusals"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["actor"] == "discord:88" && r["request"] == format!("resume {id} flaky")),
        "{refusals}"
    );
    // Abort, likewise: the held group stays held.
    interact(
        &t,
        &interaction(3, "88", &["999"], "tok-abort-no", button(&abort)),
        None,
    )
    .await;
    let refused = answer(&standin, "tok-abort-no").await;
    assert!(refused.contains("<@88> may not do that"), "{refused}");
    assert_eq!(
        evacuation::group(&t, &id, "after-broken").await["state"],
        "held"
    );

    // Resume, from someone with it: the same run goes on, and its second attempt passes.
    interact(
        &t,
        &interaction(3, "77", &["123"], "tok-resume", button(&resume_flaky)),
        None,
    )
    .await;
    let resumed = answer(&standin, "tok-resume").await;
    assert!(
        resumed.contains(&format!("<@77> resumed `flaky` in evacuation `{id}`")),
        "{resumed}"
    );
    evacuation::resumed(&t, &id, "flaky", &run, "discord:77").await;

    // Skip asks why first, and skips nothing yet.
    interact(
        &t,
        &interaction(3, "77", &["123"], "tok-skip", button(&skip_broken)),
        None,
    )
    .await;
    let asked = answer(&standin, "tok-skip").await;
    assert!(
        asked.contains(&format!("/dr skip {id} broken REASON")),
        "{asked}"
    );
    assert_eq!(
        evacuation::group(&t, &id, "broken").await["state"],
        "failed"
    );
    assert_eq!(
        evacuation::group(&t, &id, "after-broken").await["state"],
        "held"
    );
    let skip = dr(
        "skip",
        &[
            ("run", id.as_str()),
            ("stage", "broken"),
            ("reason", "not needed in region b"),
        ],
    );
    interact(
        &t,
        &interaction(2, "77", &["123"], "tok-skip-command", skip),
        None,
    )
    .await;
    let skipped = answer(&standin, "tok-skip-command").await;
    assert!(
        skipped.contains(&format!(
            "<@77> skipped `broken` in evacuation `{id}`: not needed in region b"
        )),
        "{skipped}"
    );
    let broken = evacuation::group(&t, &id, "broken").await;
    assert_eq!(broken["state"], "skipped", "{broken}");
    assert_eq!(
        broken["note"], "skipped by discord:77: not needed in region b",
        "{broken}"
    );

    // What was held goes on, and the card ends done, with no buttons left.
    let last = standin
        .until("the card to show the evacuation done", |s| {
            let last = evacuation_cards(s, &id).last().cloned()?;
            shown(&last)
                .contains("Evacuation: failover of 5 groups: done in")
                .then_some(last)
        })
        .await;
    let said = shown(&last);
    assert!(said.contains("4 succeeded · 1 skipped"), "{said}");
    assert!(custom_ids(&last).is_empty(), "{said}");
    let (_, e) = t.get(&format!("/api/v1/evacuations/{id}")).await;
    assert_eq!(e["state"], "succeeded", "{e}");
    let cards = evacuation_cards(&standin, &id);
    assert_eq!(
        cards.iter().filter(|c| c.method == "POST").count(),
        1,
        "the card is posted once, then edited: {cards:?}"
    );
    assert_eq!(
        standin.calls_to("POST", "/channels/5000/threads").len(),
        2,
        "no incident for the groups that went well, nor another for the resumed one"
    );

    // A button the card no longer shows does nothing.
    interact(
        &t,
        &interaction(3, "77", &["123"], "tok-resume-again", button(&resume_flaky)),
        None,
    )
    .await;
    let again = answer(&standin, "tok-resume-again").await;
    assert!(
        again.contains(&format!("Cannot resume evacuation `{id}`")),
        "{again}"
    );
    let (_, again) = t.get(&format!("/api/v1/runs/{run}")).await;
    assert_eq!(
        again["events"]
            .as_array()
            .map(|e| e.iter().filter(|e| e["kind"] == "run.resumed").count()),
        Some(1),
        "{again:#}"
    );
    t.shutdown().await;
}
