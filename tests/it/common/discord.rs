//! A loopback stand-in for Discord's REST API (`DISCORD_API_URL`): threads, messages,
//! thread members, interaction answers and command registration, each recorded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

pub const APPLICATION_ID: &str = "1100";

#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: Value,
    /// The id the stand-in gave what the call created.
    pub id: String,
    pub at: Instant,
}

/// What the stand-in does to the unlucky.
#[derive(Clone, Default)]
pub struct Script {
    /// Calls (`POST threads`, `POST messages`: the method and the path's last part) after
    /// whose effect the caller is crashed instead of answered.
    pub crash: super::crash::CrashAfter,
    /// How many of the next message edits get a 429 with this `retry_after`.
    pub limited_edits: usize,
    pub retry_after: f64,
    /// Every message post says its bucket is empty for this long.
    pub bucket_reset_after: Option<f64>,
}

#[derive(Default)]
struct Inner {
    /// What `GET /gateway` answers.
    gateway_url: Option<String>,
    calls: Vec<Call>,
    ids: u64,
    script: Script,
    limited: usize,
}

#[derive(Clone)]
pub struct DiscordStandIn {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

/// The application's key pair: the public half is `DISCORD_PUBLIC_KEY`.
pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

pub fn public_key() -> String {
    hex::encode(key().verifying_key().to_bytes())
}

/// Signs an interaction as Discord does: over the timestamp and the raw body.
pub fn sign(timestamp: &str, body: &str) -> String {
    let message = [timestamp.as_bytes(), body.as_bytes()].concat();
    hex::encode(key().sign(&message).to_bytes())
}

impl DiscordStandIn {
    pub async fn start() -> DiscordStandIn {
        Self::scripted(Script::default()).await
    }

    pub async fn scripted(script: Script) -> DiscordStandIn {
        let inner = Arc::new(Mutex::new(Inner {
            ids: 9_000_000,
            script,
            ..Inner::default()
        }));
        let router = Router::new().fallback(api).with_state(inner.clone());
        let base = super::serve_loopback(router, "Discord stand-in").await;
        DiscordStandIn { base, inner }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Calls of this method whose path ends so.
    pub fn calls_to(&self, method: &str, path_end: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.path.ends_with(path_end))
            .collect()
    }

    /// Changes the script from here on.
    pub fn script(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.lock().script);
    }

    pub fn limited(&self) -> usize {
        self.lock().limited
    }

    pub async fn until<T>(&self, what: &str, probe: impl Fn(&DiscordStandIn) -> Option<T>) -> T {
        super::until(what, Duration::from_secs(60), async || probe(self)).await
    }
}

async fn api(State(inner): State<Arc<Mutex<Inner>>>, request: Request) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let authorised = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "Bot discord-test-token");
    let body: Bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    if !authorised {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "message": "401: Unauthorized", "code": 0 })),
        )
            .into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = inner.lock().unwrap_or_else(|e| e.into_inner());
    let parts: Vec<String> = path
        .trim_start_matches("/api/v10/")
        .split('/')
        .map(str::to_string)
        .collect();
    let edit = method == "PATCH" && parts.first().is_some_and(|p| p == "channels");
    if edit && s.script.limited_edits > 0 {
        s.script.limited_edits -= 1;
        s.limited += 1;
        let body = json!({ "message": "You are being rate limited.", "retry_after": s.script.retry_after, "global": false });
        return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    }
    s.ids += 1;
    let id = s.ids.to_string();
    s.calls.push(Call {
        method: method.clone(),
        path: path.clone(),
        body: body.clone(),
        id: id.clone(),
        at: Instant::now(),
    });
    let reset_after = s.script.bucket_reset_after;
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let answer = match (method.as_str(), parts.as_slice()) {
        ("POST", ["channels", channel, "threads"]) => {
            json!({ "id": id, "type": 11, "parent_id": channel, "name": body["name"] })
        }
        ("POST", ["channels", channel, "messages"]) => {
            let answer = json!({ "id": id, "channel_id": channel, "content": body["content"] });
            if let Some(after) = reset_after {
                return (
                    [
                        ("x-ratelimit-remaining", "0".to_string()),
                        ("x-ratelimit-reset-after", after.to_string()),
                    ],
                    axum::Json(answer),
                )
                    .into_response();
            }
            answer
        }
        ("PATCH", ["channels", channel, "messages", message]) => {
            json!({ "id": message, "channel_id": channel })
        }
        ("PUT", ["channels", _, "thread-members", _]) => {
            return StatusCode::NO_CONTENT.into_response();
        }
        ("GET", ["channels", channel]) => json!({ "id": channel, "type": 0, "guild_id": "4000" }),
        ("GET", ["guilds", _, "threads", "active"]) => {
            let threads: Vec<Value> = s
                .calls
                .iter()
                .filter(|c| c.method == "POST" && c.path.ends_with("/threads"))
                .map(|c| {
                    let parent = c.path.split('/').rev().nth(1).unwrap_or_default();
                    json!({ "id": c.id, "type": 11, "parent_id": parent, "name": c.body["name"] })
                })
                .collect();
            json!({ "threads": threads, "members": [] })
        }
        ("GET", ["channels", channel, "messages"]) => {
            let posted = format!("/channels/{channel}/messages");
            let messages: Vec<Value> = s
                .calls
                .iter()
                .rev()
                .filter(|c| c.method == "POST" && c.path.ends_with(&posted))
                .map(|c| json!({ "id": c.id, "channel_id": channel, "content": c.body["content"], "author": { "id": APPLICATION_ID, "username": "lifeboat", "bot": true } }))
                .collect();
            json!(messages)
        }
        ("PATCH", ["webhooks", _, _, "messages", "@original"]) => json!({ "id": id }),
        ("PUT", ["applications", _, "commands"]) => body.clone(),
        ("GET", ["gateway"]) => json!({ "url": s.gateway_url }),
        ("POST", ["interactions", _, _, "callback"]) => {
            return StatusCode::NO_CONTENT.into_response();
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({ "message": "404: Not Found", "code": 0 })),
            )
                .into_response();
        }
    };
    let step = format!("{method} {}", parts.last().copied().unwrap_or_default());
    if let Some(crash) = s.script.crash.take(&step) {
        drop(s);
        crash();
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    axum::Json(answer).into_response()
}

/// Discord's gateway, as far as serenity needs it: HELLO, then READY once the bot
/// identifies, heartbeats acknowledged, and the dispatches it is given.
pub struct GatewayStandIn {
    send: tokio::sync::broadcast::Sender<String>,
    identified: Arc<std::sync::atomic::AtomicUsize>,
}

impl GatewayStandIn {
    pub async fn start(discord: &DiscordStandIn) -> GatewayStandIn {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the gateway stand-in");
        let addr = listener.local_addr().expect("an address");
        let url = format!("ws://{addr}");
        discord.lock().gateway_url = Some(url.clone());
        let (send, _) = tokio::sync::broadcast::channel::<String>(64);
        let identified = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, count) = (send.clone(), identified.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                    continue;
                };
                let (mut sink, mut source) = ws.split();
                let hello =
                    json!({ "op": 10, "d": { "heartbeat_interval": 45000 }, "s": null, "t": null });
                if sink
                    .send(Message::Text(hello.to_string().into()))
                    .await
                    .is_err()
                {
                    continue;
                }
                let mut outgoing = tx.subscribe();
                let (count, url) = (count.clone(), url.clone());
                tokio::spawn(async move {
                    let mut seq = 1;
                    loop {
                        tokio::select! {
                            frame = source.next() => {
                                let Some(Ok(Message::Text(text))) = frame else { break };
                                let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                                let answer = match frame["op"].as_u64() {
                                    // IDENTIFY
                                    Some(2) => {
                                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                        json!({ "op": 0, "s": seq, "t": "READY", "d": {
                                            "v": 10,
                                            "user": { "id": APPLICATION_ID, "username": "lifeboat", "discriminator": "0", "global_name": null, "avatar": null, "bot": true },
                                            "guilds": [],
                                            "session_id": "session-1",
                                            "resume_gateway_url": url,
                                            "application": { "id": APPLICATION_ID, "flags": 0 }
                                        }})
                                    }
                                    // HEARTBEAT
                                    Some(1) => json!({ "op": 11, "d": null, "s": null, "t": null }),
                                    _ => continue,
                                };
                                if sink.send(Message::Text(answer.to_string().into())).await.is_err() { break }
                            }
                            dispatch = outgoing.recv() => {
                                let Ok(dispatch) = dispatch else { break };
                                seq += 1;
                                let mut frame: Value = serde_json::from_str(&dispatch).unwrap_or(Value::Null);
                                frame["s"] = json!(seq);
                                if sink.send(Message::Text(frame.to_string().into())).await.is_err() { break }
                            }
                        }
                    }
                });
            }
        });
        GatewayStandIn { send, identified }
    }

    pub fn identified(&self) -> usize {
        self.identified.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Dispatches an interaction to the connected bot.
    pub fn interaction(&self, interaction: &Value) {
        let frame = json!({ "op": 0, "s": 0, "t": "INTERACTION_CREATE", "d": interaction });
        let _ = self.send.send(frame.to_string());
    }
}
