//! The console's forms: start a run, a run's and a stage's controls, an offer's word.
//! Each checks the session's form token first (403, nothing done, without it), then acts
//! through the API's own functions, so the token's scope and the group's `allow` apply
//! exactly as they do there. Success sends the browser back to the page it acts on.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;

use super::error_page;
use crate::domain::Control;
use crate::http::api;
use crate::http::json::CreateRun;
use crate::http::viewer::Viewer;
use crate::http::{ApiError, AppState};

/// A posted form's fields, in order.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(body: &Bytes) -> Fields {
        Fields(form_urlencoded::parse(body).into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }
}

/// A console form as posted: its fields, and who posted it, once the form's token and
/// their token's scope allow a control (a refusal page otherwise, and nothing done).
pub struct Posted {
    viewer: Viewer,
    fields: Fields,
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| error_page(None, ApiError::new(e.status(), e.body_text())))?;
        let fields = Fields::parse(&body);
        let viewer = writer(state, &parts, &fields).await?;
        Ok(Posted { viewer, fields })
    }
}

async fn writer(state: &AppState, parts: &Parts, fields: &Fields) -> Result<Viewer, Response> {
    let viewer = match Viewer::of(parts, state).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return Err(error_page(
                None,
                ApiError::new(StatusCode::UNAUTHORIZED, "sign in first"),
            ));
        }
        Err(e) => return Err(error_page(None, e)),
    };
    let checked = viewer
        .check_form(fields.get("csrf").unwrap_or(""))
        .and_then(|()| viewer.may_write());
    if let Err(e) = checked {
        // Recorded with the API's and chat's refusals, as the same request through the
        // API would be.
        api::refused(
            state,
            &viewer.actor,
            None,
            None,
            parts.uri.path(),
            &e.message,
        )
        .await;
        return Err(error_page(Some(&viewer), e));
    }
    Ok(viewer)
}

fn back_to_run(id: impl std::fmt::Display) -> Response {
    Redirect::to(&format!("/runs/{id}")).into_response()
}

/// `POST /console/runs`: the group page's start form.
pub async fn start(State(state): State<AppState>, Posted { viewer, fields }: Posted) -> Response {
    let Some(group) = fields.text("group") else {
        return error_page(
            Some(&viewer),
            ApiError::bad_request("the form names no group"),
        );
    };
    let params = fields
        .0
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("param.")?, v.trim())))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let request = CreateRun {
        group,
        action: fields.text("action"),
        dry_run: fields.get("dry_run").is_some(),
        reason: fields.text("reason"),
        params,
        force: false,
    };
    match api::start(&state, viewer.actor.clone(), request).await {
        Ok(run) => back_to_run(run.id),
        Err(e) => error_page(Some(&viewer), e),
    }
}

/// `POST /console/runs/{id}/{approve|reject|cancel|resume}`.
pub async fn control_run(
    State(state): State<AppState>,
    Path((id, word)): Path<(String, String)>,
    Posted { viewer, fields }: Posted,
) -> Response {
    let control = match word.as_str() {
        "approve" => Control::Approve {
            stage: fields.text("stage"),
        },
        "reject" => Control::Reject {
            reason: fields.text("reason"),
        },
        "cancel" => Control::Cancel {
            reason: fields.text("reason"),
        },
        "resume" => Control::Resume {
            force: fields.get("force").is_some(),
        },
        other => {
            let e = ApiError::not_found(format!("no run control `{other}`"));
            return error_page(Some(&viewer), e);
        }
    };
    act(&state, &viewer, &id, control).await
}

/// `POST /console/runs/{id}/stages/{stage}/{retry|skip}`; a skip says why.
pub async fn control_stage(
    State(state): State<AppState>,
    Path((id, stage, word)): Path<(String, String, String)>,
    Posted { viewer, fields }: Posted,
) -> Response {
    let control = match word.as_str() {
        "retry" => Control::RetryNow { stage },
        "skip" => match fields.text("reason") {
            Some(reason) => Control::Skip { stage, reason },
            None => {
                let e = ApiError::bad_request("say why the stage is skipped: the reason is empty");
                return error_page(Some(&viewer), e);
            }
        },
        other => {
            let e = ApiError::not_found(format!("no stage control `{other}`"));
            return error_page(Some(&viewer), e);
        }
    };
    act(&state, &viewer, &id, control).await
}

async fn act(state: &AppState, viewer: &Viewer, id: &str, control: Control) -> Response {
    let id = match api::run_id(id) {
        Ok(id) => id,
        Err(e) => return error_page(Some(viewer), e),
    };
    match api::act(state, &viewer.actor, id, control).await {
        Ok(run) => back_to_run(run.id),
        Err(e) => error_page(Some(viewer), e),
    }
}

/// `POST /console/offers/{id}/{approve|reject|veto|start}`.
pub async fn decide_offer(
    State(state): State<AppState>,
    Path((id, choice)): Path<(String, String)>,
    Posted { viewer, .. }: Posted,
) -> Response {
    let decided = async {
        let id = api::run_id(&id)?;
        let control = api::offer_control(&choice)?;
        api::decide(&state, &viewer.actor, id, control).await
    };
    match decided.await {
        Ok(_) => Redirect::to("/alerts").into_response(),
        Err(e) => error_page(Some(&viewer), e),
    }
}
