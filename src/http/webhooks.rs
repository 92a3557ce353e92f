//! `POST /webhooks/{source}` (alertmanager, pagerduty, grafana) and
//! `/webhooks/generic/{name}` (routes.yaml `sources:`). The answers
//! are what the senders act on: 200 once every alert is recorded with its decision; 401
//! for credentials that fail (nothing recorded); 404 for a source there is not; 400 for a body that cannot be read; 413
//! over 1 MiB; 503 when the store cannot take them, so that the sender tries again.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::alerts::{DeskError, Rejected};

async fn take(
    state: &AppState,
    source: &str,
    generic: bool,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let now_secs = state.orchestrator.clock().now_ms() / 1000;
    let alerts = state
        .sources
        .receive(source, generic, headers, &body, now_secs)
        .map_err(|r| match r {
            Rejected::Unknown(m) => ApiError::not_found(m),
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

/// `POST /webhooks/{source}`: a built-in source (`alertmanager`, `pagerduty`, `grafana`).
pub async fn builtin(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    take(&state, &source, false, &headers, body).await
}

/// `POST /webhooks/generic/{name}`: a source configured under `sources:` in routes.yaml.
pub async fn generic(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    take(&state, &name, true, &headers, body).await
}
