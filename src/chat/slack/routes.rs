//! `POST /slack/commands` and `POST /slack/interactions`: each request's signature is
//! checked over its raw body before anything parses it; a request that fails gets 401 and
//! changes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::inbound::{self, Interaction, SlackBot, SlashCommand};
use crate::chat::launch::refuse;

type Refused = (StatusCode, Json<Value>);

pub const PATHS: &[&str] = &["/slack/commands", "/slack/interactions"];

pub fn routes(bot: Arc<SlackBot>) -> Router {
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .with_state(bot)
}

fn verified(bot: &SlackBot, headers: &HeaderMap, body: &[u8]) -> Result<(), Refused> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    bot.verify(
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        body,
    )
    .map_err(|why| refuse(StatusCode::UNAUTHORIZED, why))
}

/// The fields of a form body, as JSON strings, read into `T`.
pub fn form<T: DeserializeOwned>(body: &[u8]) -> Result<T, Refused> {
    let fields: Map<String, Value> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    serde_json::from_value(Value::Object(fields)).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("not a Slack slash command: {e}"),
        )
    })
}

async fn commands(
    State(bot): State<Arc<SlackBot>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Refused> {
    verified(&bot, &headers, &body)?;
    let command: SlashCommand = form(&body)?;
    Ok(Json(inbound::body(&bot.command(command).await)))
}

async fn interactions(
    State(bot): State<Arc<SlackBot>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Refused> {
    verified(&bot, &headers, &body)?;
    let payload = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| {
            refuse(
                StatusCode::BAD_REQUEST,
                "no `payload` field: not a Slack interaction",
            )
        })?;
    let interaction: Interaction = serde_json::from_str(&payload).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("not a Slack interaction: {e}"),
        )
    })?;
    // Acknowledged now; the press is handled after, its outcome sent to `response_url`.
    tokio::spawn(async move { bot.press(interaction).await });
    Ok(StatusCode::OK)
}
