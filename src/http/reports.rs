//! Evidence reports: `GET /api/v1/runs/{id}/report.{html,md,json}`, one run for an
//! auditor, and `GET /api/v1/groups/{name}/report.{html,md,json}?since=90d`, a group's
//! drills and runs over a period.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::api::{self, Caller};
use super::{ApiError, AppState};
use crate::evidence::{self, Format};

/// The format a report's file name asks for: `report.html`, `report.md`, `report.json`.
fn format_of(file: &str) -> Result<Format, ApiError> {
    file.strip_prefix("report.")
        .and_then(Format::parse)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no `{file}` here (report.html, report.md, report.json)"
            ))
        })
}

pub(super) fn document(format: Format, text: String) -> Response {
    ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
}

/// `GET /api/v1/runs/{id}/report.{html,md,json}`.
pub async fn run_report(
    State(state): State<AppState>,
    _caller: Caller,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let format = format_of(&file)?;
    let run = api::stored_run(&state, api::run_id(&id)?).await?;
    let now = state.orchestrator.clock().now_ms();
    let doc = evidence::gather(state.orchestrator.catalog(), &state.store, run, now).await?;
    Ok(document(format, doc.render(format)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// `90d`, `12h`: how far back from now; 90 days when not given.
    since: Option<String>,
}

/// The longest period asked for: past this, a typo (`900000d`) rather than an audit.
const LONGEST: Duration = Duration::from_secs(10 * 366 * 86_400);

/// `GET /api/v1/groups/{name}/report.{html,md,json}?since=90d`.
pub async fn group_report(
    State(state): State<AppState>,
    _caller: Caller,
    Path((name, file)): Path<(String, String)>,
    query: Result<Query<PeriodQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let format = format_of(&file)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let back = match q.since.as_deref().map(str::trim) {
        None | Some("") => Duration::from_secs(90 * 86_400),
        Some(words) => humantime::parse_duration(words)
            .ok()
            .filter(|d| *d <= LONGEST)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "since `{words}` is not a period back from now (90d, 12h, 30m; at most 10 years)"
                ))
            })?,
    };
    let group = state
        .orchestrator
        .catalog()
        .groups
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no group `{name}`")))?;
    let now = state.orchestrator.clock().now_ms();
    let since = now - back.as_millis() as i64;
    let period = evidence::gather_period(&state.store, group, since, now).await?;
    Ok(document(format, period.render(format)?))
}
