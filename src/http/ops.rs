//! Liveness, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Ready when the store and the bus both answer.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    // An unreachable store can make a query wait for its pool; readiness answers promptly.
    let (store, bus) = tokio::join!(
        tokio::time::timeout(READY_WAIT, state.orchestrator.store_ready()),
        tokio::time::timeout(READY_WAIT, state.bus.ready()),
    );
    let (store, bus) = (store.unwrap_or(false), bus.unwrap_or(false));
    let status = if store && bus {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = if store && bus { "ready" } else { "not ready" };
    (
        status,
        Json(json!({ "status": word, "store": store, "bus": bus })),
    )
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Readiness is read from the store at each scrape, so that every replica agrees.
    let now = state.orchestrator.clock().now_ms();
    for g in state.orchestrator.catalog().groups.values() {
        match crate::readiness::of_group(&state.store, state.orchestrator.catalog(), g, now).await {
            Ok(r) => state.metrics.readiness(&r),
            Err(e) => {
                tracing::warn!(group = %g.name, error = %e, "Could not read a group's readiness for the metrics.")
            }
        }
    }
    let rendered = match state.orchestrator.state_counts().await {
        Ok(counts) => state.metrics.render(counts),
        Err(e) => Err(e),
    };
    match rendered {
        Ok(text) => crate::metrics::exposition(text),
        Err(e) => super::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("metrics unavailable: {e}"),
        )
        .into_response(),
    }
}
