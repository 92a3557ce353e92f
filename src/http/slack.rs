//! `POST /slack/commands` and `POST /slack/interactions`: each request's signature is
//! checked over its raw body before anything parses it; a request that fails gets 401 and
//! changes nothing.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{ApiError, AppState};
use crate::chat::slack::inbound::{self, Interaction, SlackBot, SlashCommand};

fn bot(state: &AppState) -> Result<&SlackBot, ApiError> {
    state
        .slack
        .as_deref()
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Slack is not configured here"))
}

fn verified(bot: &SlackBot, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    bot.verify(
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        body,
    )
    .map_err(|why| ApiError::new(StatusCode::UNAUTHORIZED, why))
}

/// The fields of a form body, as JSON strings, read into `T`.
fn form<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let fields: Map<String, Value> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::bad_request(format!("not a Slack slash command: {e}")))
}

pub async fn commands(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let bot = bot(&state)?;
    verified(bot, &headers, &body)?;
    let command: SlashCommand = form(&body)?;
    Ok(Json(inbound::body(&bot.command(command).await)))
}

pub async fn interactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let bot = bot(&state)?;
    verified(bot, &headers, &body)?;
    let payload = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| ApiError::bad_request("no `payload` field: not a Slack interaction"))?;
    let interaction: Interaction = serde_json::from_str(&payload)
        .map_err(|e| ApiError::bad_request(format!("not a Slack interaction: {e}")))?;
    // Acknowledged now; the press is handled after, its outcome sent to `response_url`.
    let bot = bot.clone();
    tokio::spawn(async move { bot.press(interaction).await });
    Ok(StatusCode::OK)
}
