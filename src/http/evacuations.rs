//! `POST /api/v1/evacuations` (many groups moved at once, in dependency order),
//! `GET /api/v1/evacuations/{id}` (the groups and their states, with counts), and a
//! person's word on it: resume or skip a group, abort the rest.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::Caller;
use super::json as body;
use super::{ApiError, AppState};
use crate::domain::evacuation::{Evacuation, EvacuationGroup};
use crate::domain::{Actor, EvacuationId};
use crate::evacuation::{self, ControlError, GroupControl, StartError, Which};
use crate::workflow::Action;

#[derive(Deserialize)]
#[serde(untagged)]
enum Groups {
    /// `"all"`.
    Word(String),
    List(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEvacuation {
    groups: Groups,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    dry_run: bool,
    reason: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Reason {
    #[serde(default)]
    reason: Option<String>,
}

fn evacuation_id(id: &str) -> Result<EvacuationId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("`{id}` is not an evacuation id")))
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::UnknownGroup { .. } => ApiError::not_found(e.to_string()),
            StartError::Store(e) => e.into(),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotFound(_) | ControlError::NoGroup(_) => {
                ApiError::not_found(e.to_string())
            }
            ControlError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            ControlError::Run(e) => e.into(),
            ControlError::Store(e) => e.into(),
        }
    }
}

/// The evacuation as the API shows it: each group with what it depends on in it, and
/// the scorecard so far.
async fn shown(state: &AppState, e: &Evacuation) -> Result<Value, ApiError> {
    let catalog = state.orchestrator.catalog();
    let depends_on = |g: &str| crate::evacuation::depends_within(catalog, e, g);
    let group = |g: &EvacuationGroup| {
        json!({
            "group": g.group,
            "state": g.state,
            "run": g.run,
            "note": g.note,
            "depends_on": depends_on(&g.group),
        })
    };
    let times = state.store.evacuation_run_times(e.id).await?;
    let now = state.orchestrator.clock().now_ms();
    let card = crate::domain::evacuation::score(e, &times, &depends_on, now);
    Ok(json!({
        "id": e.id,
        "action": e.action,
        "dry_run": e.dry_run,
        "reason": e.reason,
        "requested_by": e.requested_by.to_string(),
        "state": e.state,
        "created_at": crate::clock::rfc3339(e.created_at),
        "finished_at": e.finished_at.map(crate::clock::rfc3339),
        "counts": e.counts(),
        "groups": e.groups.iter().map(group).collect::<Vec<_>>(),
        "scorecard": card,
    }))
}

/// `POST /api/v1/evacuations`: `{"groups": [...] | "all", "action", "dry_run", "reason"}`.
pub async fn create(
    State(state): State<AppState>,
    Caller(actor): Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: CreateEvacuation = body::body(&bytes, false)?;
    let action: Action = match req.action.as_deref() {
        None => Action::Failover,
        Some(a) => a.parse().map_err(ApiError::bad_request)?,
    };
    let which = match req.groups {
        Groups::Word(w) if w == "all" => Which::All,
        Groups::Word(w) => {
            return Err(ApiError::bad_request(format!(
                "`groups` is \"all\" or a list of groups, not \"{w}\""
            )));
        }
        Groups::List(list) => Which::Groups(list),
    };
    let catalog = state.orchestrator.catalog();
    let names = evacuation::groups_of(catalog, which, action)?;
    let refused: Vec<String> = names
        .iter()
        .filter_map(|n| {
            let g = catalog.groups.get(n)?;
            crate::trigger::authorize(g, &actor, &[]).err()
        })
        .collect();
    if !refused.is_empty() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, refused.join("; ")));
    }
    let e = evacuation::start(
        &state.orchestrator,
        &state.store,
        names,
        action,
        req.dry_run,
        &req.reason,
        &actor,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(shown(&state, &e).await?)))
}

pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = evacuation_id(&id)?;
    let e = state
        .store
        .evacuation(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no evacuation {id}")))?;
    Ok(Json(shown(&state, &e).await?))
}

/// Whether `actor` may act on `group`, as for starting its runs.
fn allowed(state: &AppState, actor: &Actor, group: &str) -> Result<(), ApiError> {
    match state.orchestrator.catalog().groups.get(group) {
        Some(g) => crate::trigger::authorize(g, actor, &[])
            .map_err(|why| ApiError::new(StatusCode::FORBIDDEN, why)),
        None => Ok(()),
    }
}

/// `POST /api/v1/evacuations/{id}/groups/{group}/{resume|skip}`.
pub async fn control_group(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((id, group, word)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = evacuation_id(&id)?;
    let said: Reason = body::body(&bytes, true)?;
    let control = match word.as_str() {
        "resume" => GroupControl::Resume,
        "skip" => GroupControl::Skip {
            reason: said
                .reason
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .ok_or_else(|| {
                    ApiError::bad_request("`reason` is required: a skipped group says why")
                })?,
        },
        other => {
            return Err(ApiError::not_found(format!(
                "no evacuation control `{other}` (a group's: resume, skip)"
            )));
        }
    };
    allowed(&state, &actor, &group)?;
    let e = evacuation::control_group(
        &state.orchestrator,
        &state.store,
        id,
        &group,
        control,
        &actor,
    )
    .await?;
    Ok(Json(shown(&state, &e).await?))
}

/// `POST /api/v1/evacuations/{id}/abort`: what has not started never will.
pub async fn abort(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = evacuation_id(&id)?;
    let said: Reason = body::body(&bytes, true)?;
    let e = state
        .store
        .evacuation(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no evacuation {id}")))?;
    for g in &e.groups {
        allowed(&state, &actor, &g.group)?;
    }
    let e = evacuation::abort(
        &state.orchestrator,
        &state.store,
        id,
        &actor,
        said.reason.as_deref(),
    )
    .await?;
    Ok(Json(shown(&state, &e).await?))
}
