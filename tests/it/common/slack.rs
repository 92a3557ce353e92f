//! A loopback stand-in for Slack's Web API (`SLACK_API_URL`) and for `response_url`s: it
//! answers as Slack does and records every call, with a script for what Slack does to the
//! unlucky (a channel name taken, a 429 with `Retry-After`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Value, json};

pub const SIGNING_SECRET: &str = "test-signing-secret-8f742231b10e";

#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub body: Value,
    pub at: Instant,
}

#[derive(Default)]
pub struct Script {
    /// Channel names `conversations.create` answers `name_taken` for; each name created
    /// joins them.
    pub taken: HashSet<String>,
    /// How many of the next `conversations.create` calls answer `name_taken`, whatever
    /// the name.
    pub refuse_names: usize,
    /// How many of the next `chat.update` calls get a 429 with `Retry-After: 1`.
    pub rate_limit_updates: usize,
    /// User-group members, by group.
    pub usergroups: HashMap<String, Vec<String>>,
    /// Methods after whose effect the caller is crashed instead of answered.
    pub crash: super::crash::CrashAfter,
}

#[derive(Default)]
struct Inner {
    /// Where `apps.connections.open` sends Socket Mode clients.
    socket_url: Option<String>,
    calls: Vec<Call>,
    hooks: Vec<Value>,
    /// Replies by `response_url`.
    hooks_by: Vec<(String, Value)>,
    script: Script,
    channels: usize,
    messages: usize,
    /// Channels made, by name: their ids.
    named: Vec<(String, String)>,
    /// Top-level messages with blocks, as `conversations.history` gives them: channel, ts.
    cards: Vec<(String, String)>,
    /// 429s answered so far.
    limited: usize,
}

#[derive(Clone)]
pub struct SlackStandIn {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl SlackStandIn {
    pub async fn start(script: Script) -> SlackStandIn {
        let inner = Arc::new(Mutex::new(Inner {
            script,
            ..Inner::default()
        }));
        let router = Router::new()
            .route("/api/{method}", any(api))
            .route("/hooks/{id}", post(hook))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Slack stand-in");
        let addr = listener.local_addr().expect("an address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        SlackStandIn {
            base: format!("http://{addr}"),
            inner,
        }
    }

    /// What `SLACK_API_URL` is set to.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.base)
    }

    /// A `response_url` that records what is sent to it.
    pub fn hook(&self, id: &str) -> String {
        format!("{}/hooks/{id}", self.base)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    pub fn all_calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// What was sent to `response_url`s, in order.
    pub fn hooks(&self) -> Vec<Value> {
        self.lock().hooks.clone()
    }

    /// What was sent to the `response_url` of this id, in order.
    pub fn hooks_at(&self, id: &str) -> Vec<Value> {
        self.lock()
            .hooks_by
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Changes the script from here on.
    pub fn script(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.lock().script);
    }

    pub fn rate_limited(&self) -> usize {
        self.lock().limited
    }

    /// Polls until `probe` holds of the stand-in, or fails after 60 s.
    /// The reply sent to one `response_url`.
    pub async fn answer_at(&self, hook: &str) -> Value {
        let id = hook.rsplit('/').next().unwrap_or("").to_string();
        self.until("a response_url reply", |s| s.hooks_at(&id).last().cloned())
            .await
    }

    pub async fn until<T>(&self, what: &str, probe: impl Fn(&SlackStandIn) -> Option<T>) -> T {
        super::until(what, Duration::from_secs(60), async || probe(self)).await
    }
}

/// The text of a call's message, blocks and all: what a person would read.
pub fn shown(call: &Call) -> String {
    let mut out = call.body["text"].as_str().unwrap_or_default().to_string();
    if let Some(blocks) = call.body["blocks"].as_array() {
        out.push('\n');
        out.push_str(&serde_json::to_string(blocks).unwrap_or_default());
    }
    out
}

async fn hook(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
    inner.hooks.push(value.clone());
    inner.hooks_by.push((id, value));
    StatusCode::OK
}

async fn api(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(method): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers.get("authorization").and_then(|v| v.to_str().ok());
    let expected = if method == "apps.connections.open" {
        "Bearer xapp-test-token"
    } else {
        "Bearer xoxb-test-token"
    };
    if token != Some(expected) {
        return axum::Json(json!({ "ok": false, "error": "invalid_auth" })).into_response();
    }
    let body: Value = if body.is_empty() {
        json!(query)
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    let mut s = inner.lock().unwrap_or_else(|e| e.into_inner());
    if method == "apps.connections.open" {
        s.calls.push(Call {
            method: method.clone(),
            body: json!({ "authorization": headers.get("authorization").and_then(|v| v.to_str().ok()) }),
            at: Instant::now(),
        });
        return axum::Json(match &s.socket_url {
            Some(url) => json!({ "ok": true, "url": url }),
            None => json!({ "ok": false, "error": "not_allowed_token_type" }),
        })
        .into_response();
    }
    if method == "chat.update" && s.script.rate_limit_updates > 0 {
        s.script.rate_limit_updates -= 1;
        s.limited += 1;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            axum::Json(json!({ "ok": false, "error": "ratelimited" })),
        )
            .into_response();
    }
    s.calls.push(Call {
        method: method.clone(),
        body: body.clone(),
        at: Instant::now(),
    });
    let answer = match method.as_str() {
        "conversations.create" => {
            let name = body["name"].as_str().unwrap_or_default().to_string();
            if s.script.refuse_names > 0 {
                s.script.refuse_names -= 1;
                json!({ "ok": false, "error": "name_taken" })
            } else if s.script.taken.contains(&name) {
                json!({ "ok": false, "error": "name_taken" })
            } else {
                s.script.taken.insert(name.clone());
                s.channels += 1;
                let id = format!("CINC{}", s.channels);
                s.named.push((name.clone(), id.clone()));
                json!({ "ok": true, "channel": { "id": id, "name": name, "created": 1_700_000_000 } })
            }
        }
        "conversations.invite" => {
            json!({ "ok": true, "channel": { "id": body["channel"], "created": 1_700_000_000 } })
        }
        "chat.postMessage" => {
            s.messages += 1;
            let ts = format!("1700000000.{:06}", s.messages);
            if body["thread_ts"].is_null() && body["blocks"].is_array() {
                let channel = body["channel"].as_str().unwrap_or_default().to_string();
                s.cards.push((channel, ts.clone()));
            }
            json!({ "ok": true, "channel": body["channel"], "ts": ts, "message": { "ts": ts, "text": body["text"] } })
        }
        "chat.update" => {
            json!({ "ok": true, "channel": body["channel"], "ts": body["ts"], "message": { "text": body["text"] } })
        }
        "auth.test" => {
            json!({ "ok": true, "url": "https://shop.slack.com/", "team": "shop", "user": "lifeboat", "team_id": "T1", "user_id": "UBOT", "bot_id": "B1" })
        }
        "conversations.list" => {
            let channels: Vec<Value> = s
                .named
                .iter()
                .map(|(name, id)| json!({ "id": id, "name": name, "created": 1_700_000_000 }))
                .collect();
            json!({ "ok": true, "channels": channels, "response_metadata": { "next_cursor": "" } })
        }
        "conversations.history" => {
            let channel = body["channel"].as_str().unwrap_or_default();
            let messages: Vec<Value> = s
                .cards
                .iter()
                .rev()
                .filter(|(c, _)| c == channel)
                .map(|(_, ts)| json!({ "type": "message", "ts": ts, "bot_id": "B1", "text": "card", "blocks": [{ "type": "section", "text": { "type": "mrkdwn", "text": "card" } }] }))
                .collect();
            json!({ "ok": true, "messages": messages, "has_more": false })
        }
        "usergroups.users.list" => {
            let group = body["usergroup"].as_str().unwrap_or_default();
            let users = s.script.usergroups.get(group).cloned().unwrap_or_default();
            json!({ "ok": true, "users": users })
        }
        _ => json!({ "ok": false, "error": "unknown_method" }),
    };
    if let Some(crash) = s.script.crash.take(&method) {
        drop(s);
        crash();
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    axum::Json(answer).into_response()
}

/// A slash command's form body, signed as Slack signs it, now.
pub fn signed_form(fields: &[(&str, &str)]) -> (String, String, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let ts = now_secs();
    let signature =
        lifeboat::chat::slack::verify::sign(SIGNING_SECRET.as_bytes(), ts, body.as_bytes());
    (body, ts.to_string(), signature)
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Slack's side of Socket Mode: `apps.connections.open` hands out this socket; it says
/// hello to whoever connects, sends the envelopes it is given, and records the frames that
/// come back (the acknowledgements).
pub struct SocketStandIn {
    send: tokio::sync::broadcast::Sender<String>,
    received: Arc<Mutex<Vec<Value>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl SocketStandIn {
    pub async fn start(slack: &SlackStandIn) -> SocketStandIn {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the socket stand-in");
        let addr = listener.local_addr().expect("an address");
        slack.lock().socket_url = Some(format!("ws://{addr}/link"));
        let (send, _) = tokio::sync::broadcast::channel::<String>(64);
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, seen, count) = (send.clone(), received.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                    continue;
                };
                let (mut sink, mut source) = ws.split();
                let hello = json!({
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": { "host": "standin", "build_number": 1, "approximate_connection_time": 18060 },
                    "connection_info": { "app_id": "A1" }
                });
                if sink
                    .send(Message::Text(hello.to_string().into()))
                    .await
                    .is_err()
                {
                    continue;
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut outgoing = tx.subscribe();
                let seen = seen.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            frame = outgoing.recv() => match frame {
                                Ok(text) => if sink.send(Message::Text(text.into())).await.is_err() { break },
                                Err(_) => break,
                            },
                            frame = source.next() => match frame {
                                Some(Ok(Message::Text(text))) => {
                                    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                                    seen.lock().unwrap_or_else(|e| e.into_inner()).push(value);
                                }
                                Some(Ok(Message::Ping(p))) => { let _ = sink.send(Message::Pong(p)).await; }
                                Some(Ok(_)) => {}
                                _ => break,
                            },
                        }
                    }
                });
            }
        });
        SocketStandIn {
            send,
            received,
            connections,
        }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sends an envelope to every connected client.
    pub fn send(&self, envelope: &Value) {
        let _ = self.send.send(envelope.to_string());
    }

    /// The acknowledgement of an envelope, once it has come back.
    pub fn ack(&self, envelope_id: &str) -> Option<Value> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|f| f["envelope_id"] == envelope_id)
            .cloned()
    }
}

/// What a test does to a signed request's body, timestamp and signature.
pub type Tamper = dyn FnOnce(&mut String, &mut String, &mut String);

/// Posts a form to `path`, signed unless `tamper` changes it; the status and body.
pub async fn post_form(
    t: &super::TestApp,
    path: &str,
    fields: &[(&str, &str)],
    tamper: impl FnOnce(&mut String, &mut String, &mut String),
) -> (u16, Value) {
    let (mut body, mut ts, mut signature) = signed_form(fields);
    tamper(&mut body, &mut ts, &mut signature);
    let resp = t
        .client
        .post(t.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", signature)
        .body(body)
        .send()
        .await
        .expect("a request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A button press on a card, as Slack sends it.
pub async fn press(
    t: &super::TestApp,
    standin: &SlackStandIn,
    user: &str,
    action: &str,
    run: &str,
) -> (u16, String) {
    let hook = standin.hook(&format!("press-{}", uuid::Uuid::now_v7().simple()));
    let trigger = super::fresh_id();
    let payload = serde_json::json!({
        "type": "block_actions",
        "user": { "id": user, "username": "someone", "team_id": "T1" },
        "team": { "id": "T1", "domain": "shop" },
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
    (status, hook)
}
