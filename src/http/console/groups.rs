//! `/groups` and `/groups/{name}`: each group's services, actions and who may run them;
//! a form to start one of its actions; and the plan, as a graph of waves.

use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::plan_graph;
use super::text::{at, segment, state};
use super::{Tab, Visit, csrf, error_page, may_act};
use crate::http::{ApiError, AppState};
use crate::workflow::{Action, Group, Params};

fn allowed(group: &Group) -> Markup {
    html! {
        @if group.allow.is_empty() {
            "anyone signed in (no allow list)"
        } @else {
            ul.allow {
                @for (key, who) in &group.allow {
                    li { strong { (key) } ": " (who.join(", ")) }
                }
            }
        }
    }
}

pub async fn list(State(s): State<AppState>, parts: Parts) -> Response {
    let visit = match Visit::start(&s, &parts).await {
        Ok(v) => v,
        Err(to_sign_in) => return to_sign_in,
    };
    let groups = &s.orchestrator.catalog().groups;
    let main = html! {
        table.groups {
            thead { tr { th scope="col" { "Group" } th scope="col" { "Services" } th scope="col" { "Actions" } th scope="col" { "Who may run them" } } }
            tbody {
                @for g in groups.values() {
                    tr {
                        th scope="row" {
                            a href=(format!("/groups/{}", segment(&g.name))) { (g.name) }
                            @if let Some(d) = &g.description { br; small { (d) } }
                        }
                        td { (g.services.join(", ")) }
                        td { (g.workflows.keys().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")) }
                        td { (allowed(g)) }
                    }
                }
            }
        }
    };
    visit.respond("Groups", Some(Tab::Groups), None, main)
}

#[derive(Deserialize)]
pub struct PlanQuery {
    action: Option<String>,
}

pub async fn page(
    State(s): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<PlanQuery>, axum::extract::rejection::QueryRejection>,
    parts: Parts,
) -> Response {
    let visit = match Visit::start(&s, &parts).await {
        Ok(v) => v,
        Err(to_sign_in) => return to_sign_in,
    };
    let viewer = &visit.viewer;
    let catalog = s.orchestrator.catalog();
    let Some(group) = catalog.groups.get(&name) else {
        return error_page(
            Some(viewer),
            ApiError::not_found(format!("no group `{name}`")),
        );
    };
    let chosen = match query.ok().and_then(|Query(q)| q.action) {
        Some(raw) => match raw.parse::<Action>() {
            Ok(a) => a,
            Err(e) => return error_page(Some(viewer), ApiError::bad_request(e)),
        },
        None => group
            .workflows
            .keys()
            .next()
            .copied()
            .unwrap_or(Action::Failover),
    };
    let plan = s
        .orchestrator
        .plan_for(&name, chosen, &Params::new(), false)
        .await;
    let recent = s.store.list_runs(Some(&name), 10).await.unwrap_or_default();
    let form = may_act(&s, viewer, &name)
        .then_some(viewer.session.as_ref())
        .flatten();
    let main = html! {
        @if let Some(d) = &group.description { p { (d) } }
        dl.facts {
            dt { "Services" } dd { (group.services.join(", ")) }
            dt { "Actions" } dd {
                @for (a, workflow) in &group.workflows {
                    a href=(format!("/groups/{}?action={a}", segment(&name))) { (a) } " (" (workflow) ") "
                }
            }
            dt { "Who may run them" } dd { (allowed(group)) }
            dt { "Approvals at each gate" } dd { (group.approvals.max(1)) }
        }
        @if let Some(signed) = form {
            h2 { "Start" }
            form.start method="post" action="/console/runs" {
                (csrf(signed))
                input type="hidden" name="group" value=(name);
                label { "Action "
                    select name="action" {
                        @for a in group.workflows.keys() {
                            option value=(a) selected[*a == chosen] { (a) }
                        }
                    }
                }
                label { input type="checkbox" name="dry_run" value="1"; " Dry run (nothing changes)" }
                label { "Reason " input type="text" name="reason" required; }
                @if let Some(w) = group.workflows.get(&chosen).and_then(|w| catalog.workflows.get(w)) {
                    @for (param, default) in &w.params {
                        @let allowed = w.declared.get(param).and_then(|d| d.allowed.clone());
                        label { "Param " code { (param) } " "
                            @if let Some(values) = allowed {
                                select name=(format!("param.{param}")) {
                                    @for v in values {
                                        @let v = crate::workflow::param_text(&v);
                                        option value=(v) selected[crate::workflow::param_text(default) == v] { (v) }
                                    }
                                }
                            } @else {
                                input type="text" name=(format!("param.{param}")) placeholder=(crate::workflow::param_text(default));
                            }
                        }
                    }
                }
                button type="submit" { "Start " (chosen) }
            }
        }
        h2 { "Plan for " (chosen) }
        @match &plan {
            Ok((planned, from_run)) => {
                @if let Some(from) = from_run { p { "Worked out from failover run " a href=(format!("/runs/{from}")) { (from) } "." } }
                (plan_graph::graph(&planned.stages))
            }
            Err(e) => { p.error { (e) } }
        }
        h2 { "Recent runs" }
        @if recent.is_empty() { p { "None yet." } }
        ul.recent {
            @for r in &recent {
                li { a href=(format!("/runs/{}", r.id)) { (r.action) @if r.dry_run { " (dry run)" } } " " (state(r.state.as_str())) " " (at(r.created_at)) }
            }
        }
    };
    visit.respond(
        format!("Group {name}"),
        Some(Tab::Groups),
        Some(format!("group={}", segment(&name))),
        main,
    )
}
