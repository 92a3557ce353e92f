//! `POST /webhooks/alertmanager`, `/webhooks/pagerduty`, `/webhooks/grafana`. The answers
//! are what the senders act on: 200 once every alert is recorded with its decision; 401
//! for credentials that fail (nothing recorded); 400 for a body that cannot be read; 413
//! over 1 MiB; 503 when the store cannot take them, so that the sender tries again.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::alerts::{DeskError, Rejected, receive};
use crate::domain::Source;

async fn take(
    state: &AppState,
    source: Source,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let now_secs = state.orchestrator.clock().now_ms() / 1000;
    let alerts = receive(&state.alerts, source, headers, &body, now_secs).map_err(|r| match r {
        Rejected::Unauthorized(m) => {
            tracing::warn!(%source, why = %m, "Refused an alert webhook.");
            ApiError::new(StatusCode::UNAUTHORIZED, m)
        }
        Rejected::BadBody(m) => ApiError::bad_request(m),
    })?;
    let receipts = state.desk.file(alerts).await.map_err(|e| match e {
        DeskError::Unavailable(_) | DeskError::Closed => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    })?;
    let alerts: Vec<Value> = receipts
        .iter()
        .map(|r| {
            let mut v = json!({ "decision": r.decision.as_str() });
            if let Some(map) = v.as_object_mut() {
                if r.repeat {
                    map.insert("repeat".into(), Value::Bool(true));
                }
                for (k, val) in [
                    ("route", r.route.clone()),
                    ("group", r.group.clone()),
                    ("detail", r.detail.clone()),
                    ("run_id", r.run.map(|x| x.to_string())),
                    ("offer_id", r.offer.map(|x| x.to_string())),
                ] {
                    if let Some(val) = val {
                        map.insert(k.into(), Value::String(val));
                    }
                }
            }
            v
        })
        .collect();
    Ok(Json(json!({ "accepted": alerts.len(), "alerts": alerts })))
}

pub async fn alertmanager(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    take(&state, Source::Alertmanager, &headers, body).await
}

pub async fn pagerduty(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    take(&state, Source::Pagerduty, &headers, body).await
}

pub async fn grafana(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    take(&state, Source::Grafana, &headers, body).await
}
