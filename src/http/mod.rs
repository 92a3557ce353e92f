//! The HTTP surface (the README's "HTTP API" and "Console"): the runs and groups API, the
//! event stream, health, readiness and metrics, the alert webhooks, and the console's
//! pages. Each chat platform's paths are its own routes, merged here; every request is
//! verified before it is parsed.

mod api;
mod console;
mod error;
mod evacuations;
mod events;
pub mod feed;
mod json;
mod ops;
mod reports;
pub mod serve;
mod viewer;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use error::ApiError;

use crate::alerts::{Desk, Offers, Sources};
use crate::app::App;
use crate::bus::Bus;
use crate::config::ApiToken;
use crate::metrics::Metrics;
use crate::orchestrator::Orchestrator;

#[derive(Clone)]
pub struct AppState {
    pub orchestrator: Orchestrator,
    pub metrics: Arc<Metrics>,
    pub bus: Arc<dyn Bus>,
    /// Empty means the API is open, which `serve` allows only on loopback.
    pub tokens: Arc<Vec<ApiToken>>,
    /// The alert sources and their secrets.
    pub sources: Arc<Sources>,
    pub desk: Desk,
    pub offers: Offers,
    pub store: crate::store::Store,
    /// Lifecycle events for `GET /api/v1/events` and the console.
    pub feed: feed::Feed,
    /// Cancelled when the service stops: event streams end, so that the drain is short.
    pub closing: tokio_util::sync::CancellationToken,
    /// The console's cookie is `Secure` when the service is reached over https.
    pub https: bool,
}

impl AppState {
    pub fn new(app: &App, tokens: Vec<ApiToken>) -> Self {
        AppState {
            store: app.store.clone(),
            feed: feed::Feed::new(),
            closing: tokio_util::sync::CancellationToken::new(),
            https: false,
            orchestrator: app.orchestrator.clone(),
            metrics: app.metrics.clone(),
            bus: app.bus.clone(),
            tokens: Arc::new(tokens),
            sources: app.sources.clone(),
            desk: app.desk.clone(),
            offers: app.offers.clone(),
        }
    }
}

/// The API, the alert webhooks and health, with each chat platform's own paths.
pub fn router(state: AppState, chat: Router) -> Router {
    Router::new()
        .route("/api/v1/runs", get(api::list_runs).post(api::create_run))
        .route("/api/v1/runs/{id}", get(api::get_run))
        .route("/api/v1/runs/{id}/report", get(api::run_report))
        .route(
            "/api/v1/runs/{id}/{control}",
            get(reports::run_report).post(api::control_run),
        )
        .route(
            "/api/v1/runs/{id}/stages/{stage}/{control}",
            post(api::control_stage),
        )
        .route("/api/v1/groups", get(api::list_groups))
        .route("/api/v1/leases", get(api::leases))
        .route("/api/v1/agents", get(api::agents))
        .route("/api/v1/refusals", get(api::refusals))
        .route("/api/v1/alerts", get(api::alerts))
        .route("/api/v1/offers", get(api::offers))
        .route("/api/v1/offers/{id}/{choice}", post(api::decide_offer))
        .route("/webhooks/{source}", post(webhooks::builtin))
        .route("/webhooks/generic/{name}", post(webhooks::generic))
        .route("/api/v1/groups/{name}/plan", get(api::group_plan))
        .route("/api/v1/groups/{name}/{file}", get(reports::group_report))
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/readiness", get(api::readiness))
        .route("/api/v1/evacuations", post(evacuations::create))
        .route("/api/v1/evacuations/{id}", get(evacuations::get))
        .route("/api/v1/evacuations/{id}/abort", post(evacuations::abort))
        .route(
            "/api/v1/evacuations/{id}/groups/{group}/{control}",
            post(evacuations::control_group),
        )
        .merge(console::routes())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .with_state(state)
        .merge(chat)
        .fallback(|| async { ApiError::not_found("no such path") })
        .layer(axum::middleware::from_fn(serve::bounded))
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
}

/// Refuses an open API, or webhooks taken with no credentials, anywhere but on loopback.
pub fn check_exposure(
    listen: SocketAddr,
    tokens: &[ApiToken],
    open_webhooks: &[String],
) -> anyhow::Result<()> {
    if tokens.is_empty() && !listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve the API on {listen} without LIFEBOAT_API_TOKENS: set tokens, or listen on 127.0.0.1"
        );
    }
    if !open_webhooks.is_empty() && !listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to take alerts with no credentials ({}, from LIFEBOAT_OPEN_WEBHOOKS) on {listen}: set their secrets, or listen on 127.0.0.1",
            open_webhooks.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_open_api_is_served_only_on_loopback() {
        let token = vec![crate::config::ApiToken::new("ops", "0123456789abcdef")];
        let check = |addr: &str, tokens: &[crate::config::ApiToken], open: &[String]| {
            super::check_exposure(addr.parse().expect("addr"), tokens, open)
        };
        assert!(check("127.0.0.1:8080", &[], &[]).is_ok());
        assert!(check("[::1]:8080", &[], &[]).is_ok());
        let refused = check("0.0.0.0:8080", &[], &[]).expect_err("open on all");
        assert!(refused.to_string().contains("without LIFEBOAT_API_TOKENS"));
        assert!(check("0.0.0.0:8080", &token, &[]).is_ok());
        let open = ["alertmanager".to_string()];
        let refused = check("0.0.0.0:8080", &token, &open).expect_err("open webhooks on all");
        assert!(
            refused.to_string().contains("LIFEBOAT_OPEN_WEBHOOKS"),
            "{refused}"
        );
        assert!(check("127.0.0.1:8080", &token, &open).is_ok());
    }
}
