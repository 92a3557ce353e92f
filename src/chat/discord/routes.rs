//! `POST /discord/interactions`: Discord's Interactions Endpoint. Each request's Ed25519
//! signature is checked over its timestamp and raw body before anything parses it; one
//! that fails gets 401 (Discord sends such requests on purpose, and drops an endpoint
//! that accepts them).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use super::inbound::DiscordBot;
use super::interaction::Interaction;
use crate::chat::launch::refuse;

pub const PATHS: &[&str] = &["/discord/interactions"];

pub fn routes(bot: Arc<DiscordBot>) -> Router {
    Router::new()
        .route("/discord/interactions", post(interactions))
        .with_state(bot)
}

async fn interactions(
    State(bot): State<Arc<DiscordBot>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    bot.verify(
        header("x-signature-ed25519"),
        header("x-signature-timestamp"),
        &body,
    )
    .map_err(|why| refuse(StatusCode::UNAUTHORIZED, why))?;
    let interaction: Interaction = serde_json::from_slice(&body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("not a Discord interaction: {e}"),
        )
    })?;
    bot.interact(interaction)
        .map(Json)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, e))
}
