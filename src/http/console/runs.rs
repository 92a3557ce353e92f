//! `/`: the runs, newest first, filtered by group, state and action, paged by cursor.

use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::response::Response;
use maud::html;

use super::text::{at, state, took};
use super::{Tab, Visit, error_page};
use crate::domain::RunState;
use crate::http::AppState;
use crate::http::api::ListQuery;
use crate::workflow::Action;

/// Rows on a page.
const PAGE: i64 = 50;

pub async fn page(
    State(s): State<AppState>,
    parts: Parts,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let visit = match Visit::start(&s, &parts).await {
        Ok(v) => v,
        Err(to_sign_in) => return to_sign_in,
    };
    let viewer = &visit.viewer;
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return error_page(
                Some(viewer),
                crate::http::ApiError::bad_request(e.body_text()),
            );
        }
    };
    let filter = match q.filter(PAGE) {
        Ok(f) => f,
        Err(e) => return error_page(Some(viewer), e),
    };
    let runs = match s.store.find_runs(&filter).await {
        Ok(runs) => runs,
        Err(e) => return error_page(Some(viewer), e.into()),
    };
    let now = s.orchestrator.clock().now_ms();
    let groups: Vec<&String> = s.orchestrator.catalog().groups.keys().collect();
    // The same filters, from the last run shown on.
    let next = (runs.len() as i64 == filter.limit)
        .then(|| runs.last().map(|r| r.id))
        .flatten()
        .map(|last| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in [
                ("group", &filter.group),
                ("state", &filter.state.map(|s| s.to_string())),
                ("action", &filter.action.map(|a| a.to_string())),
            ] {
                if let Some(v) = v {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("before", &last.to_string());
            format!("/?{}", q.finish())
        });
    let selected = |current: Option<String>, value: &str| current.as_deref() == Some(value);
    let main = html! {
        form.filters method="get" action="/" {
            label { "Group "
                select name="group" {
                    option value="" { "any" }
                    @for g in &groups {
                        option value=(g) selected[selected(filter.group.clone(), g)] { (g) }
                    }
                }
            }
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    @for st in RunState::ALL {
                        option value=(st) selected[selected(filter.state.map(|s| s.to_string()), st.as_str())] { (st.as_str().replace('_', " ")) }
                    }
                }
            }
            label { "Action "
                select name="action" {
                    option value="" { "any" }
                    @for a in Action::ALL {
                        option value=(a) selected[selected(filter.action.map(|a| a.to_string()), a.as_str())] { (a) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if runs.is_empty() {
            p { "No runs match." }
        } @else {
            table.runs {
                thead { tr {
                    th scope="col" { "Run" } th scope="col" { "Group" } th scope="col" { "Action" }
                    th scope="col" { "State" } th scope="col" { "Started by" } th scope="col" { "Why" }
                    th scope="col" { "When" } th scope="col" { "Took" }
                } }
                tbody {
                    @for r in &runs {
                        tr data-run=(r.id) {
                            td { a href=(format!("/runs/{}", r.id)) { code { (r.id.to_string().get(..13).unwrap_or("")) "…" } } }
                            td { (r.group) }
                            td { (r.action) @if r.dry_run { " (dry run)" } }
                            td { (state(r.state.as_str())) }
                            td { (r.requested_by) }
                            td { (r.reason.as_deref().unwrap_or("")) }
                            td { (at(r.created_at)) }
                            td { (took(r.started_at.or(Some(r.created_at)), r.finished_at, now)) }
                        }
                    }
                }
            }
        }
        @if let Some(next) = next {
            p { a rel="next" href=(next) { "Older runs →" } }
        }
    };
    let live = match &filter.group {
        Some(g) => format!("group={}", super::text::segment(g)),
        None => String::new(),
    };
    visit.respond("Runs", Some(Tab::Runs), Some(live), main)
}
