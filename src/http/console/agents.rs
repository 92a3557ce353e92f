//! `/agents`: agent processes with their last heartbeat, and the leases held now.

use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Response;
use maud::html;

use super::text::at;
use super::{Tab, Visit, error_page};
use crate::http::AppState;

pub async fn page(State(s): State<AppState>, parts: Parts) -> Response {
    let visit = match Visit::start(&s, &parts).await {
        Ok(v) => v,
        Err(to_sign_in) => return to_sign_in,
    };
    let viewer = &visit.viewer;
    let found = async {
        let agents = s.orchestrator.agents().await?;
        let leases = s.orchestrator.leases().await?;
        Ok::<_, anyhow::Error>((agents, leases))
    };
    let (agents, leases) = match found.await {
        Ok(found) => found,
        Err(e) => return error_page(Some(viewer), e.into()),
    };
    let main = html! {
        h2 { "Agents" }
        @if agents.is_empty() { p { "No agent heard from in the last hour." } }
        @else {
            table.agents {
                thead { tr {
                    th scope="col" { "Instance" } th scope="col" { "Kinds" } th scope="col" { "Host" }
                    th scope="col" { "Live" } th scope="col" { "In flight" } th scope="col" { "Last heartbeat" }
                } }
                tbody {
                    @for (a, live) in &agents {
                        tr {
                            th scope="row" { code { (a.instance) } }
                            td { (a.kinds.join(", ")) }
                            td { (a.host) }
                            td { @if *live { span.state.state-succeeded { "✓ live" } } @else { span.state.state-failed { "✗ silent" } } }
                            td { (a.in_flight) }
                            td { (at(a.last_seen)) }
                        }
                    }
                }
            }
        }
        h2 { "Leases held now" }
        @if leases.is_empty() { p { "None." } }
        @else {
            table.leases {
                thead { tr { th scope="col" { "Resource" } th scope="col" { "Run" } th scope="col" { "Stage" } th scope="col" { "Holder" } th scope="col" { "Expires" } } }
                tbody {
                    @for l in &leases {
                        tr {
                            th scope="row" { code { (l.resource) } }
                            td { a href=(format!("/runs/{}", l.run_id)) { (l.run_id) } }
                            td { (l.stage) }
                            td { code { (l.holder) } }
                            td { (at(l.expires_at)) }
                        }
                    }
                }
            }
        }
    };
    visit.respond(
        "Agents and leases",
        Some(Tab::Agents),
        Some(String::new()),
        main,
    )
}
