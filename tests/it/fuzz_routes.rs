//! Every way in, through the running service: broken bodies, signed as their senders sign
//! them, sent over HTTP to each webhook, interaction and API path. Where `fuzz` feeds each
//! parser, this drives the handlers that join them (verification, decoding, access,
//! starting and deciding). No request may get a 5xx or take the service down, and every
//! refusal is a JSON error that says why.

use std::sync::OnceLock;
use std::time::Duration;

use lifeboat::app::Options;
use lifeboat::chat::discord::DiscordSettings;
use lifeboat::chat::mattermost::MattermostSettings;
use lifeboat::chat::slack::SlackSettings;
use lifeboat::chat::slack::verify as slack_verify;
use lifeboat::config::AlertSettings;
use lifeboat::secret::SecretString;
use lifeboat::signing;
use proptest::prelude::*;
use serde_json::Value;

use crate::common::{self, TestApp};
use crate::fuzz::{
    ALERTMANAGER, GRAFANA, MATTERMOST_COMMAND, PAGERDUTY, RUN, SLACK_COMMAND, broken, broken_form,
    config, discord_seeds, form_mutations, mutations, slack_payload,
};

const TOKEN: &str = "fuzz-token-0123456789";
const SLACK_SECRET: &str = "slack-signing-secret";

const SHOP: &str = "name: shop\nparams:\n  to: { default: region-a, enum: [region-a, region-b] }\nstages:\n  hold: { agent: capacity, spec: { cluster: k8s, namespace: shop, replicas: 2, duration: 10ms } }\n";

/// Where nothing listens: what the service says to Slack, Discord and Mattermost fails
/// quickly and is none of these tests' business.
const NOWHERE: &str = "http://127.0.0.1:9";

/// One service for every case, on a runtime of its own that outlives each case.
struct Served {
    runtime: tokio::runtime::Runtime,
    app: TestApp,
}

fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let app = runtime.block_on(common::spawn_configured(
            &[("shop.yaml", SHOP), ("groups.yaml", common::GROUPS)],
            &[("ops", TOKEN)],
            Options::default(),
            |s| {
                // Taken with no credentials, as on loopback they may be: each body reaches
                // its parser whatever its headers.
                s.alerts = AlertSettings {
                    open: ["alertmanager", "grafana", "pagerduty"]
                        .map(String::from)
                        .into(),
                    ..AlertSettings::default()
                };
                s.chat.set(SlackSettings {
                    bot_token: SecretString::from("xoxb-fuzz"),
                    signing_secret: Some(SecretString::from(SLACK_SECRET)),
                    app_token: None,
                    api_url: NOWHERE.into(),
                    tier_scale: 1.0,
                    team_ids: Vec::new(),
                });
                s.chat.set(DiscordSettings {
                    token: SecretString::from("discord-fuzz"),
                    public_key: Some(common::discord::public_key()),
                    application_id: Some(1),
                    api_url: Some(NOWHERE.into()),
                    guild_ids: Vec::new(),
                });
                s.chat.set(MattermostSettings {
                    url: NOWHERE.into(),
                    bot_token: SecretString::from("mm-bot"),
                    command_tokens: vec![SecretString::from("mm-token")],
                    actions_url: Some("http://127.0.0.1/mattermost/actions".into()),
                });
            },
        ));
        Served { runtime, app }
    })
}

/// A request as its sender makes it.
#[derive(Debug)]
struct Sent {
    path: String,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn now() -> String {
    common::slack::now_secs().to_string()
}

fn json(path: &str, body: Vec<u8>) -> Sent {
    Sent {
        path: path.into(),
        content_type: "application/json",
        headers: Vec::new(),
        body,
    }
}

fn api(path: &str, body: Vec<u8>) -> Sent {
    Sent {
        headers: vec![("authorization", format!("Bearer {TOKEN}"))],
        ..json(path, body)
    }
}

fn slack(path: &str, body: Vec<u8>) -> Sent {
    let ts = now();
    let at: i64 = ts.parse().unwrap_or_default();
    let signature = slack_verify::sign(SLACK_SECRET.as_bytes(), at, &body);
    Sent {
        path: path.into(),
        content_type: "application/x-www-form-urlencoded",
        headers: vec![
            ("x-slack-request-timestamp", ts),
            ("x-slack-signature", signature),
        ],
        body,
    }
}

fn discord(body: Vec<u8>) -> Sent {
    use ed25519_dalek::Signer;
    let ts = now();
    let message = [ts.as_bytes(), &body].concat();
    let signature = hex::encode(common::discord::key().sign(&message).to_bytes());
    Sent {
        headers: vec![
            ("x-signature-ed25519", signature),
            ("x-signature-timestamp", ts),
        ],
        ..json("/discord/interactions", body)
    }
}

/// How many ways in `request` knows.
const WAYS: usize = 11;

/// Way in number `way`, with a body broken by `ms` (or `form_ms`); `seed` picks among
/// Discord's interactions.
fn request(
    way: usize,
    seed: usize,
    ms: &[crate::fuzz::Mutation],
    form_ms: &[crate::fuzz::FormMutation],
) -> Sent {
    let run = r#"{"group":"shop","dry_run":true,"reason":"drill","params":{"to":"region-b"}}"#;
    let control = r#"{"reason":"done by hand"}"#;
    match way {
        0 => json("/webhooks/alertmanager", broken(ALERTMANAGER, ms)),
        1 => json("/webhooks/grafana", broken(GRAFANA, ms)),
        2 => json("/webhooks/pagerduty", broken(PAGERDUTY, ms)),
        3 => api("/api/v1/runs", broken(run, ms)),
        4 => api(&format!("/api/v1/runs/{RUN}/approve"), broken(control, ms)),
        5 => api(
            &format!("/api/v1/runs/{RUN}/stages/hold/skip"),
            broken(control, ms),
        ),
        6 => slack("/slack/commands", broken_form(SLACK_COMMAND, form_ms)),
        7 => slack(
            "/slack/interactions",
            broken_form(&[("payload", slack_payload())], form_ms),
        ),
        8 => discord(broken(&discord_seeds()[seed % discord_seeds().len()], ms)),
        9 => Sent {
            content_type: "application/x-www-form-urlencoded",
            ..json(
                "/mattermost/commands",
                broken_form(MATTERMOST_COMMAND, form_ms),
            )
        },
        _ => json("/mattermost/actions", broken(&signed_press(), ms)),
    }
}

/// A press of Approve on a card of this service: its context signed as the service signs
/// the contexts of its buttons.
fn signed_press() -> String {
    let key = signing::sign(b"mm-bot", &[b"lifeboat/mattermost-actions"]);
    let signature = signing::sign(key.as_bytes(), &[b"approve", b":", RUN.as_bytes()]);
    serde_json::json!({
        "user_id": "user1", "user_name": "alice", "channel_id": "chan1", "team_id": "team1",
        "context": { "button": "approve", "target": RUN, "signature": signature }
    })
    .to_string()
}

/// Sends `sent`; the status and the body as text.
async fn send(app: &TestApp, sent: &Sent) -> (u16, String) {
    let mut req = app
        .client
        .post(app.url(&sent.path))
        .header("content-type", sent.content_type)
        .timeout(Duration::from_secs(20))
        .body(sent.body.clone());
    for (name, value) in &sent.headers {
        req = req.header(*name, value);
    }
    let resp = req.send().await.expect("an answer");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

fn answers(sent: &Sent) -> Result<(), TestCaseError> {
    let served = served();
    let (status, body) = served.runtime.block_on(send(&served.app, sent));
    prop_assert!(status < 500, "{} answered {}: {}", sent.path, status, body);
    if status >= 400 {
        let error: Value = serde_json::from_str(&body).unwrap_or_default();
        prop_assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| !e.trim().is_empty()),
            "{} refused with {} and no reason: {}",
            sent.path,
            status,
            body
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn every_way_in_answers_broken_bodies_without_falling_over(
        way in 0..WAYS,
        seed in any::<usize>(),
        ms in mutations(),
        form_ms in form_mutations(),
    ) {
        answers(&request(way, seed, &ms, &form_ms))?;
    }

    #[test]
    fn every_way_in_answers_arbitrary_bytes(
        way in 0..WAYS,
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut sent = request(way, 0, &[], &[]);
        sent = match sent.path.as_str() {
            "/discord/interactions" => discord(bytes),
            "/slack/commands" | "/slack/interactions" => slack(&sent.path.clone(), bytes),
            _ => Sent { body: bytes, ..sent },
        };
        answers(&sent)?;
    }
}

/// The seeds themselves get through: the service still answers them as it should after
/// the cases above, so a case that passed by a refusal at the door proves something.
#[test]
fn the_unbroken_requests_are_taken() {
    let served = served();
    for way in 0..WAYS {
        let sent = request(way, 0, &[], &[]);
        let (status, body) = served.runtime.block_on(send(&served.app, &sent));
        // The cases above share the service and start runs of the same group: a start
        // that finds one of theirs still going was read and answered all the same.
        let busy = status == 409
            && serde_json::from_str::<Value>(&body).is_ok_and(|b| b["active_run"].is_string());
        assert!(
            (200..300).contains(&status) || (sent.path.contains(RUN) && status == 404) || busy,
            "{}: {} {}",
            sent.path,
            status,
            body
        );
    }
}
