//! `/alerts`: the runs alerts proposed, with a countdown's deadline ticking and its Veto and
//! Start now, and the recent alerts with what each did.

use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Response;
use maud::html;

use super::text::{at, left, state};
use super::{Tab, Visit, csrf, error_page, may_act};
use crate::domain::{OfferMode, OfferState};
use crate::http::AppState;
use crate::store::AlertFilter;

pub async fn page(State(s): State<AppState>, parts: Parts) -> Response {
    let visit = match Visit::start(&s, &parts).await {
        Ok(v) => v,
        Err(to_sign_in) => return to_sign_in,
    };
    let viewer = &visit.viewer;
    let found = async {
        let offers = s.orchestrator.offers(50).await?;
        let alerts = s
            .orchestrator
            .alerts(&AlertFilter {
                limit: 50,
                ..AlertFilter::default()
            })
            .await?;
        Ok::<_, anyhow::Error>((offers, alerts))
    };
    let (offers, alerts) = match found.await {
        Ok(found) => found,
        Err(e) => return error_page(Some(viewer), e.into()),
    };
    let now = s.orchestrator.clock().now_ms();
    let main = html! {
        h2 { "Offers" }
        @if offers.is_empty() { p { "No alert has proposed a run." } }
        ul.offers {
            @for o in &offers {
                @let base = format!("/console/offers/{}", o.id);
                @let signed = may_act(&s, viewer, &o.group).then_some(viewer.session.as_ref()).flatten();
                li.offer data-offer=(o.id) {
                    p {
                        strong { (o.action) " " (o.group) } " (" (o.mode) ") " (state(o.state.as_str()))
                        " — " (o.alert.headline) " via " (o.route)
                    }
                    @if o.state == OfferState::Open {
                        @if let Some(deadline) = o.deadline {
                            p.countdown {
                                "Starts at " (at(deadline)) ", "
                                span.remaining data-deadline=(deadline) role="timer" aria-live="off" {
                                    "in " (left(deadline - now))
                                }
                            }
                        }
                        @if let Some(signed) = signed {
                            div.controls role="group" aria-label="Offer controls" {
                                @if o.mode == OfferMode::Countdown {
                                    form method="post" action=(format!("{base}/veto")) { (csrf(signed)) button.danger type="submit" { "Veto" } }
                                    form method="post" action=(format!("{base}/start")) { (csrf(signed)) button type="submit" { "Start now" } }
                                } @else {
                                    form method="post" action=(format!("{base}/approve")) { (csrf(signed)) button type="submit" { "Approve" } }
                                    form method="post" action=(format!("{base}/reject")) { (csrf(signed)) button.danger type="submit" { "Reject" } }
                                }
                            }
                        }
                    } @else {
                        p {
                            @if let Some(by) = &o.decided_by { "Decided by " (by) " " }
                            @if let Some(when) = o.decided_at { (at(when)) }
                            @if let Some(run) = o.run_id { " · " a href=(format!("/runs/{run}")) { "its run" } }
                            @if let Some(m) = &o.message { " · " (m) }
                        }
                    }
                }
            }
        }
        h2 { "Recent alerts" }
        @if alerts.is_empty() { p { "No alerts yet." } }
        @else {
            table.alerts {
                thead { tr {
                    th scope="col" { "Received" } th scope="col" { "Source" } th scope="col" { "Alert" }
                    th scope="col" { "Status" } th scope="col" { "Route" } th scope="col" { "What it did" }
                } }
                tbody {
                    @for a in &alerts {
                        tr {
                            td { (at(a.received_at)) }
                            td { (a.source) }
                            td { (a.name) @if a.repeats > 0 { " (×" (a.repeats + 1) ")" } }
                            td { (a.status) }
                            td { (a.route.as_deref().unwrap_or("—")) }
                            td {
                                (a.decision.as_deref().unwrap_or("—"))
                                @if let Some(d) = &a.detail { ": " (d) }
                                @if let Some(run) = &a.run_id { " · " a href=(format!("/runs/{run}")) { "run" } }
                            }
                        }
                    }
                }
            }
        }
    };
    visit.respond(
        "Alerts and offers",
        Some(Tab::Alerts),
        Some(String::new()),
        main,
    )
}
