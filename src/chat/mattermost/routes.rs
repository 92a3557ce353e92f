//! `POST /mattermost/commands` (the `/dr` slash command, a form) and
//! `POST /mattermost/actions` (button presses, JSON). A request that fails its check gets
//! 401 and changes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Map, Value};

use super::inbound::{MattermostBot, Press, SlashCommand};
use crate::chat::launch::refuse;

type Refused = (StatusCode, Json<Value>);

pub const PATHS: &[&str] = &["/mattermost/commands", "/mattermost/actions"];

pub fn routes(bot: Arc<MattermostBot>) -> Router {
    Router::new()
        .route("/mattermost/commands", post(commands))
        .route("/mattermost/actions", post(actions))
        .with_state(bot)
}

async fn commands(
    State(bot): State<Arc<MattermostBot>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Refused> {
    let fields: Map<String, Value> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    // Mattermost sends the token in the form and as `Authorization: Token …`.
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Token "))
        .or_else(|| fields.get("token").and_then(Value::as_str))
        .unwrap_or("")
        .trim()
        .to_string();
    bot.verify_command(&token)
        .map_err(|why| refuse(StatusCode::UNAUTHORIZED, why))?;
    let command: SlashCommand = serde_json::from_value(Value::Object(fields)).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("not a Mattermost slash command: {e}"),
        )
    })?;
    Ok(Json(bot.command(command).await))
}

async fn actions(
    State(bot): State<Arc<MattermostBot>>,
    body: Bytes,
) -> Result<Json<Value>, Refused> {
    let press: Press = serde_json::from_slice(&body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("not a Mattermost button press: {e}"),
        )
    })?;
    bot.press(press)
        .await
        .map(Json)
        .map_err(|why| refuse(StatusCode::UNAUTHORIZED, why))
}
