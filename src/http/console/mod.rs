//! The console: server-rendered pages at `/` for when chat is down. Every page works with
//! no script; `assets/console.js` follows `GET /api/v1/events` and redraws the page's
//! `main` as runs move, and counts down offers' deadlines. Forms post to `/console/...`
//! with the session's form token, and act through the same functions as the API, as the
//! signed-in token's name.

mod agents;
mod alerts;
mod forms;
mod groups;
mod plan_graph;
mod run;
mod runs;
mod sign_in;
mod text;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};

use super::viewer::{Signed, Viewer};
use super::{ApiError, AppState};

const CSS: &str = concat!(
    include_str!("assets/console.css"),
    include_str!("../../evidence/timeline.css")
);
const JS: &str = include_str!("assets/console.js");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(runs::page))
        .route("/runs/{id}", get(run::page))
        .route("/runs/{id}/report.html", get(run::report))
        .route("/alerts", get(alerts::page))
        .route("/groups", get(groups::list))
        .route("/groups/{name}", get(groups::page))
        .route("/agents", get(agents::page))
        .route("/sign-in", get(sign_in::form).post(sign_in::sign_in))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/console/runs", post(forms::start))
        .route("/console/runs/{id}/{control}", post(forms::control_run))
        .route(
            "/console/runs/{id}/stages/{stage}/{control}",
            post(forms::control_stage),
        )
        .route("/console/offers/{id}/{choice}", post(forms::decide_offer))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Which page of the navigation is shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Runs,
    Alerts,
    Groups,
    Agents,
}

/// A page as the browser gets it: who is signed in, the navigation, and `main`. `live`
/// filters the events that redraw it (`run=…`, `group=…`, or empty for all; `None`: the
/// page does not follow events).
pub struct Page<'a> {
    pub title: String,
    pub tab: Option<Tab>,
    pub live: Option<String>,
    /// When the page began to read what it shows: it follows events from then on.
    pub drawn: crate::clock::Millis,
    pub viewer: Option<&'a Viewer>,
    pub main: Markup,
}

impl Page<'_> {
    pub fn render(self) -> Markup {
        let tabs = [
            (Tab::Runs, "/", "Runs"),
            (Tab::Alerts, "/alerts", "Alerts and offers"),
            (Tab::Groups, "/groups", "Groups"),
            (Tab::Agents, "/agents", "Agents and leases"),
        ];
        // A second back, for replicas' clocks and for events stamped just before a commit
        // the page read: a redraw too many costs nothing, one too few leaves it stale.
        let since = self.drawn - 1000;
        let events = self.live.map(|filter| match filter.as_str() {
            "" => format!("?since={since}"),
            f => format!("?{f}&since={since}"),
        });
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) " · Lifeboat" }
                    link rel="stylesheet" href="/console/assets/console.css";
                    script src="/console/assets/console.js" defer {}
                }
                body {
                    a.skip href="#main" { "Skip to content" }
                    header {
                        span.brand { "Lifeboat" }
                        @if let Some(viewer) = self.viewer {
                            nav aria-label="Console" {
                                ul {
                                    @for (tab, href, name) in tabs {
                                        li {
                                            @if self.tab == Some(tab) {
                                                a href=(href) aria-current="page" { (name) }
                                            } @else {
                                                a href=(href) { (name) }
                                            }
                                        }
                                    }
                                }
                            }
                            div.who {
                                span { "Signed in as " strong { (viewer.actor) } @if viewer.read_only { " (read only)" } }
                                @if let Some(signed) = &viewer.session {
                                    form method="post" action="/sign-out" {
                                        (csrf(signed))
                                        button type="submit" { "Sign out" }
                                    }
                                }
                            }
                        }
                    }
                    main #main data-events=[events] tabindex="-1" {
                        h1 { (self.title) }
                        (self.main)
                    }
                }
            }
        }
    }
}

/// The hidden form token of a session.
pub fn csrf(signed: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed.session.csrf); }
}

/// A page being drawn: who looks, the session cookie when one was just opened, and when
/// the page began to read what it shows.
pub struct Visit {
    pub viewer: Viewer,
    cookie: Option<HeaderValue>,
    drawn: crate::clock::Millis,
}

impl Visit {
    /// The viewer of a page, or the way to the sign-in form. With no tokens (loopback
    /// only), every local browser is a viewer, and gets a session of its own for its
    /// forms' tokens.
    pub async fn start(
        state: &AppState,
        parts: &axum::http::request::Parts,
    ) -> Result<Visit, Response> {
        let found = Viewer::of(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let (viewer, cookie) = match found {
            Some(v) if v.session.is_some() || !state.tokens.is_empty() => (v, None),
            Some(mut v) => {
                let (signed, cookie) = sign_in::open(state, "local")
                    .await
                    .map_err(IntoResponse::into_response)?;
                v.session = Some(signed);
                (v, Some(cookie))
            }
            None => return Err(Redirect::to("/sign-in").into_response()),
        };
        Ok(Visit {
            viewer,
            cookie,
            drawn: state.orchestrator.clock().now_ms(),
        })
    }

    /// The page, with the session cookie when one was just opened.
    pub fn respond(
        &self,
        title: impl Into<String>,
        tab: Option<Tab>,
        live: Option<String>,
        main: Markup,
    ) -> Response {
        let page = Page {
            title: title.into(),
            tab,
            live,
            drawn: self.drawn,
            viewer: Some(&self.viewer),
            main,
        };
        self.with_cookie(Html(page.render().into_string()).into_response())
    }

    /// `response` with the session cookie when one was just opened.
    pub fn with_cookie(&self, mut response: Response) -> Response {
        if let Some(cookie) = &self.cookie {
            response
                .headers_mut()
                .insert(header::SET_COOKIE, cookie.clone());
        }
        response
    }
}

/// An error as a page: what went wrong, in words, with its status.
pub fn error_page(viewer: Option<&Viewer>, e: ApiError) -> Response {
    let status = e.status;
    let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
        "something went wrong inside Lifeboat; the log has the details".to_string()
    } else {
        e.message
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %message, "A console page failed.");
    }
    let page = Page {
        title: format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
        tab: None,
        live: None,
        drawn: 0,
        viewer,
        main: html! {
            p.error role="alert" { (message) }
            p { a href="/" { "Back to the runs" } }
        },
    };
    (status, Html(page.render().into_string())).into_response()
}

/// Whether `viewer` may act on `group` (its `allow.api`, and a token that may write):
/// what they may not do is not offered.
pub fn may_act(state: &AppState, viewer: &Viewer, group: &str) -> bool {
    if viewer.read_only || viewer.session.is_none() {
        return false;
    }
    let Some(g) = state.orchestrator.catalog().groups.get(group) else {
        return false;
    };
    crate::trigger::authorize(g, &viewer.actor, &[]).is_ok()
}
