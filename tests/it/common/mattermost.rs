//! A loopback stand-in for Mattermost's REST API v4 (`MATTERMOST_URL`): posts, their
//! patches and user look-ups, each recorded, with a bot token checked on every call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const BOT_TOKEN: &str = "mm-bot-token-7c1";

#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: Value,
    /// The id the stand-in gave a post it created.
    pub id: String,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    ids: u64,
    /// How many of the next patches get a 429.
    limited_patches: usize,
    limited: usize,
    /// Calls (`POST posts`) after whose effect the caller is crashed instead of answered.
    crash: super::crash::CrashAfter,
}

#[derive(Clone)]
pub struct MattermostStandIn {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl MattermostStandIn {
    /// The stand-in, answering the first `limited_patches` edits with a 429.
    pub async fn start(limited_patches: usize) -> MattermostStandIn {
        let inner = Arc::new(Mutex::new(Inner {
            limited_patches,
            ..Inner::default()
        }));
        let router = Router::new().fallback(api).with_state(inner.clone());
        let base = super::serve_loopback(router, "Mattermost stand-in").await;
        MattermostStandIn { base, inner }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From here on, crashes the caller after these calls (`POST posts`).
    pub fn crash(&self, after: super::crash::CrashAfter) {
        self.lock().crash = after;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn posts(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == "POST" && c.path == "/api/v4/posts")
            .collect()
    }

    pub fn patches_of(&self, post: &str) -> Vec<Call> {
        let path = format!("/api/v4/posts/{post}/patch");
        self.calls()
            .into_iter()
            .filter(|c| c.method == "PUT" && c.path == path)
            .collect()
    }

    pub fn limited(&self) -> usize {
        self.lock().limited
    }

    pub async fn until<T>(&self, what: &str, probe: impl Fn(&MattermostStandIn) -> Option<T>) -> T {
        super::until(what, Duration::from_secs(60), async || probe(self)).await
    }
}

/// What a person reads in a post: its message and its attachment's title and text.
pub fn shown(body: &Value) -> String {
    let mut out = body["message"].as_str().unwrap_or_default().to_string();
    if let Some(attachments) = body["props"]["attachments"].as_array() {
        for a in attachments {
            for field in ["title", "text"] {
                out.push('\n');
                out.push_str(a[field].as_str().unwrap_or_default());
            }
        }
    }
    out
}

/// A post's buttons, by name.
pub fn buttons(body: &Value) -> Vec<(String, Value)> {
    body["props"]["attachments"][0]["actions"]
        .as_array()
        .map(|actions| {
            actions
                .iter()
                .map(|a| {
                    (
                        a["name"].as_str().unwrap_or_default().to_string(),
                        a["integration"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn api(State(inner): State<Arc<Mutex<Inner>>>, request: Request) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let authorised = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {BOT_TOKEN}"));
    let body: Bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    if !authorised {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "message": "Invalid or expired session", "status_code": 401 })),
        )
            .into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = inner.lock().unwrap_or_else(|e| e.into_inner());
    let parts: Vec<&str> = path.trim_start_matches("/api/v4/").split('/').collect();
    if method == "PUT" && s.limited_patches > 0 {
        s.limited_patches -= 1;
        s.limited += 1;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0.2")],
            axum::Json(json!({ "message": "Too many requests", "status_code": 429 })),
        )
            .into_response();
    }
    s.ids += 1;
    let id = format!("post{}", s.ids);
    s.calls.push(Call {
        method: method.clone(),
        path: path.clone(),
        body: body.clone(),
        id: id.clone(),
    });
    let answer = match (method.as_str(), parts.as_slice()) {
        ("POST", ["posts"]) => {
            let mut post = body.clone();
            if let Some(map) = post.as_object_mut() {
                map.insert("id".into(), Value::String(id));
            }
            post
        }
        ("PUT", ["posts", post, "patch"]) => json!({ "id": post }),
        ("GET", ["channels", channel, "posts"]) => {
            listed(&s.calls, |p| p["channel_id"] == *channel)
        }
        ("GET", ["posts", root, "thread"]) => {
            listed(&s.calls, |p| p["id"] == *root || p["root_id"] == *root)
        }
        ("GET", ["users", "me"]) => json!({ "id": "u-lifeboat", "username": "lifeboat" }),
        ("GET", ["users", user]) => json!({ "id": user, "username": format!("name-of-{user}") }),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({ "message": "not found", "status_code": 404 })),
            )
                .into_response();
        }
    };
    let step = format!("{method} {}", parts.first().copied().unwrap_or_default());
    if let Some(crash) = s.crash.take(&step) {
        drop(s);
        crash();
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    axum::Json(answer).into_response()
}

/// The posts made so far that `which` picks, as `{order, posts}`, newest first.
fn listed(calls: &[Call], which: impl Fn(&Value) -> bool) -> Value {
    let mut order = Vec::new();
    let mut posts = serde_json::Map::new();
    for (n, c) in calls.iter().enumerate().rev() {
        if c.method != "POST" || c.path != "/api/v4/posts" {
            continue;
        }
        let mut post = c.body.clone();
        post["id"] = Value::String(c.id.clone());
        post["create_at"] = json!(1_700_000_000_000i64 + n as i64);
        post["user_id"] = json!("u-lifeboat");
        if which(&post) {
            order.push(Value::String(c.id.clone()));
            posts.insert(c.id.clone(), post);
        }
    }
    json!({ "order": order, "posts": posts })
}
