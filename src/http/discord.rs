//! `POST /discord/interactions`: Discord's Interactions Endpoint. Each request's Ed25519
//! signature is checked over its timestamp and raw body before anything parses it; one
//! that fails gets 401 (Discord sends such requests on purpose, and drops an endpoint
//! that accepts them).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::{ApiError, AppState};
use crate::chat::discord::interaction::Interaction;

pub async fn interactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let bot = state
        .discord
        .as_deref()
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Discord is not configured here"))?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    bot.verify(
        header("x-signature-ed25519"),
        header("x-signature-timestamp"),
        &body,
    )
    .map_err(|why| ApiError::new(StatusCode::UNAUTHORIZED, why))?;
    let interaction: Interaction = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a Discord interaction: {e}")))?;
    bot.interact(interaction)
        .map(Json)
        .map_err(ApiError::bad_request)
}
