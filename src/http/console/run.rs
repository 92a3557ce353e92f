//! `/runs/{id}`: a run's stages with what their providers checked and changed, its
//! timeline, scorecard and audit trail, and the controls its viewer may use.

use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::response::Response;
use maud::{Markup, html};

use super::text::{at, maybe_at, segment, state, took};
use super::{Tab, Visit, csrf, error_page, may_act};
use crate::clock::short_duration;
use crate::domain::scorecard;
use crate::domain::{Run, RunState, StageState};
use crate::evidence::Format;
use crate::evidence::timeline;
use crate::http::viewer::Signed;
use crate::http::{AppState, api, reports};

pub async fn page(State(s): State<AppState>, Path(id): Path<String>, parts: Parts) -> Response {
    let visit = match Visit::start(&s, &parts).await {
        Ok(v) => v,
        Err(to_sign_in) => return to_sign_in,
    };
    let viewer = &visit.viewer;
    let found = async {
        let run = api::stored_run(&s, api::run_id(&id)?).await?;
        let audit = s.orchestrator.events(run.id).await?;
        Ok::<_, crate::http::ApiError>((run, audit))
    };
    let (run, audit) = match found.await {
        Ok(found) => found,
        Err(e) => return error_page(Some(viewer), e),
    };
    let now = s.orchestrator.clock().now_ms();
    let card = scorecard::score(&run, &audit);
    let critical = card
        .as_ref()
        .map(|c| c.critical_path.clone())
        .unwrap_or_default();
    let bars = timeline::bars(&run, &audit);
    let controls = may_act(&s, viewer, &run.group)
        .then_some(viewer.session.as_ref())
        .flatten();
    let main = html! {
        dl.facts {
            dt { "Group" } dd { a href=(format!("/groups/{}", segment(&run.group))) { (run.group) } }
            dt { "Action" } dd { (run.action) @if run.dry_run { " (dry run: nothing changes)" } }
            dt { "State" } dd #run-state { (state(run.state.as_str())) }
            dt { "Started by" } dd { (run.requested_by) }
            dt { "Why" } dd { (run.reason.as_deref().unwrap_or("—")) }
            dt { "Created" } dd { (at(run.created_at)) }
            dt { "Took" } dd { (took(Some(run.created_at), run.finished_at, now)) }
            @if let Some(m) = &run.message { dt { "Message" } dd { (m) } }
            dt { "Evidence" } dd { a href=(format!("/runs/{}/report.html", run.id)) { "Report for an auditor" } }
        }
        @if let Some(signed) = controls { (run_controls(&run, signed)) }
        h2 { "Stages" }
        table.stages {
            thead { tr {
                th scope="col" { "Stage" } th scope="col" { "Agent" } th scope="col" { "State" }
                th scope="col" { "Attempt" } th scope="col" { "Took" } th scope="col" { "What it did" }
                @if controls.is_some() { th scope="col" { "Controls" } }
            } }
            tbody {
                @for (i, planned) in run.plan.iter().enumerate() {
                    @let st = &run.stages[i];
                    tr data-stage=(planned.name) data-state=(st.state.as_str()) {
                        th scope="row" { (planned.name) }
                        td { (planned.agent) }
                        td.stage-state { (state(st.state.as_str())) }
                        td { (st.attempts) }
                        td { (took(st.started_at, st.finished_at, now)) }
                        td { (stage_detail(&run, i)) }
                        @if let Some(signed) = controls { td { (stage_controls(&run, i, signed)) } }
                    }
                }
            }
        }
        h2 { "Timeline" }
        (timeline::chart(&run, &bars, &critical, now))
        @if let Some(card) = &card {
            h2 { "Scorecard" }
            dl.facts {
                dt { "Recovery time" } dd { (short_duration(card.total_ms)) }
                dt { "Critical path" } dd { (card.critical_path.join(" → ")) " (" (short_duration(card.critical_path_ms)) ")" }
                dt { "Lifeboat's overhead" } dd { (short_duration(card.overhead_ms)) }
                dt { "Waiting on people" } dd { (short_duration(card.waiting_on_people_ms)) }
                @if let Some(rpo) = &card.rpo { dt { "Recovery point" } dd { (rpo.loss()) } }
            }
        }
        h2 { "Audit trail" }
        table.audit {
            thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Stage" } th scope="col" { "Detail" } } }
            tbody {
                @for a in &audit {
                    tr {
                        td { (at(a.at)) }
                        td.actor { (a.actor) }
                        td { code { (a.kind) } }
                        td { (a.stage.as_deref().unwrap_or("")) @if let Some(n) = a.attempt { " #" (n) } }
                        td { (a.message.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    };
    visit.respond(
        format!(
            "{} {} {}",
            run.action,
            run.group,
            if run.dry_run { "(dry run)" } else { "" }
        )
        .trim()
        .to_string(),
        Some(Tab::Runs),
        Some(format!("run={}", run.id)),
        main,
    )
}

/// The run's evidence report, for a viewer signed in to the console.
pub async fn report(State(s): State<AppState>, Path(id): Path<String>, parts: Parts) -> Response {
    let visit = match Visit::start(&s, &parts).await {
        Ok(v) => v,
        Err(to_sign_in) => return to_sign_in,
    };
    let found = async {
        let run = api::stored_run(&s, api::run_id(&id)?).await?;
        let now = s.orchestrator.clock().now_ms();
        let doc = crate::evidence::gather(s.orchestrator.catalog(), &s.store, run, now).await?;
        Ok::<_, crate::http::ApiError>(doc.render(Format::Html)?)
    };
    match found.await {
        Ok(text) => visit.with_cookie(reports::document(Format::Html, text)),
        Err(e) => error_page(Some(&visit.viewer), e),
    }
}

/// What the stage's provider checked and changed, its message, and a gate it holds at.
fn stage_detail(run: &Run, i: usize) -> Markup {
    let st = &run.stages[i];
    html! {
        @if let Some(hold) = &st.hold { p.hold role="status" { "⚠ " (hold.message) } }
        @if let Some(m) = &st.message { p { (m) } }
        @if !st.approvals.is_empty() {
            p { "Approved by " (st.approvals.iter().map(|a| a.person.clone()).collect::<Vec<_>>().join(", ")) }
        }
        @if let Some(report) = &st.report {
            @if !report.checks.is_empty() {
                ul.checks {
                    @for c in &report.checks {
                        li { @if c.ok { "✓ " } @else { "✗ " } strong { (c.name) } ": " (c.detail) }
                    }
                }
            }
            @if !report.changes.is_empty() {
                ul.changes {
                    @for c in &report.changes {
                        li { strong { (c.target) } ": " (c.from) " → " (c.to) }
                    }
                }
            }
            @if let Some(rpo) = &report.rpo { p { "Recovery point: " (rpo.loss()) } }
        }
        @if st.state == StageState::Retrying { p { "Next attempt at " (maybe_at(st.retry_at)) } }
    }
}

fn run_controls(run: &Run, signed: &Signed) -> Markup {
    let base = format!("/console/runs/{}", run.id);
    html! {
        div.controls role="group" aria-label="Run controls" {
            @if !run.state.is_final() {
                form method="post" action=(format!("{base}/cancel")) {
                    (csrf(signed))
                    label { "Reason " input type="text" name="reason"; }
                    button.danger type="submit" { "Cancel run" }
                }
            }
            @if matches!(run.state, RunState::Failed | RunState::Cancelled) {
                form method="post" action=(format!("{base}/resume")) {
                    (csrf(signed))
                    button type="submit" { "Resume" }
                }
            }
        }
    }
}

fn stage_controls(run: &Run, i: usize, signed: &Signed) -> Markup {
    let name = &run.plan[i].name;
    let st = &run.stages[i];
    let base = format!("/console/runs/{}", run.id);
    let gate_open = run.open_gates().contains(&i);
    let escaped = segment(name);
    html! {
        @if gate_open {
            form method="post" action=(format!("{base}/approve")) {
                (csrf(signed))
                input type="hidden" name="stage" value=(name);
                button type="submit" { "Approve " (name) }
            }
            form method="post" action=(format!("{base}/reject")) {
                (csrf(signed))
                label { "Reason " input type="text" name="reason"; }
                button.danger type="submit" { "Reject" }
            }
        }
        @if st.state == StageState::Retrying {
            form method="post" action=(format!("{base}/stages/{escaped}/retry")) {
                (csrf(signed))
                button type="submit" { "Retry " (name) " now" }
            }
        }
        @if st.state == StageState::Failed {
            form method="post" action=(format!("{base}/stages/{escaped}/skip")) {
                (csrf(signed))
                label { "Reason " input type="text" name="reason" required; }
                button type="submit" { "Skip " (name) }
            }
        }
    }
}
