//! `/api/v1`: runs and groups. Every handler takes the caller from the bearer token.

use std::str::FromStr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::json::{self as body, ControlBody, CreateRun};
use super::{ApiError, AppState};
use crate::domain::{Actor, Control, RunId};
use crate::store::Refusal;
use crate::trigger::{self, Trigger};
use crate::workflow::{Action, Params, plan};

/// The caller, from `Authorization: Bearer <token>`. A read-only token gets this far only
/// on a read.
pub struct Caller(pub Actor);

/// Who a request's bearer token (or, with no tokens, this machine) is, and whether the
/// token may only read.
pub(super) fn bearer(parts: &Parts, state: &AppState) -> Result<(Actor, bool), ApiError> {
    if state.tokens.is_empty() {
        // An open API is for this machine only; a proxy in front would put it on the
        // network, and a proxy says so in these headers.
        let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"]
            .iter()
            .any(|h| parts.headers.contains_key(*h));
        if proxied {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this API has no tokens and answers only on this machine; the request came through a proxy: set LIFEBOAT_API_TOKENS",
            ));
        }
        return Ok((Actor::Api("local".into()), false));
    }
    let presented = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(ApiError::unauthorized)?;
    let token = state
        .tokens
        .iter()
        .find(|t| t.matches(presented.trim()))
        .ok_or_else(ApiError::unauthorized)?;
    Ok((Actor::Api(token.name.clone()), token.read_only))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (actor, read_only) = bearer(parts, state)?;
        let reads = matches!(parts.method, Method::GET | Method::HEAD);
        if let (true, false, Actor::Api(name)) = (read_only, reads, &actor) {
            let why = format!("API token `{name}` may only read");
            refused(state, &actor, None, None, parts.uri.path(), &why).await;
            return Err(ApiError::new(StatusCode::FORBIDDEN, why));
        }
        Ok(Caller(actor))
    }
}

/// Records a refusal with the chat ones, for `GET /api/v1/refusals`.
pub(super) async fn refused(
    state: &AppState,
    actor: &Actor,
    group: Option<&str>,
    run: Option<RunId>,
    request: &str,
    reason: &str,
) {
    let refusal = Refusal {
        actor,
        group,
        run,
        request,
        reason,
    };
    if let Err(e) = state.orchestrator.record_refusal(&refusal).await {
        tracing::error!(error = %e, actor = %actor, "Could not record a refusal.");
    }
    tracing::info!(actor = %actor, group, request, "Refused an API request.");
}

/// Whether `actor` may act on `group` (its `allow.api`): 403 naming the group otherwise,
/// recorded with the chat refusals.
async fn may_act(
    state: &AppState,
    actor: &Actor,
    group: &str,
    run: Option<RunId>,
    request: &str,
) -> Result<(), ApiError> {
    let Some(g) = state.orchestrator.catalog().groups.get(group) else {
        // An unknown group is answered by what comes next, as before.
        return Ok(());
    };
    match trigger::authorize(g, actor, &[]) {
        Ok(()) => Ok(()),
        Err(why) => {
            refused(state, actor, Some(group), run, request, &why).await;
            Err(ApiError::new(StatusCode::FORBIDDEN, why))
        }
    }
}

pub(super) fn run_id(raw: &str) -> Result<RunId, ApiError> {
    RunId::from_str(raw).map_err(|_| ApiError::bad_request(format!("`{raw}` is not a run id")))
}

fn action(raw: Option<&str>) -> Result<Action, ApiError> {
    raw.unwrap_or("failover")
        .parse()
        .map_err(ApiError::bad_request)
}

pub async fn create_run(
    State(state): State<AppState>,
    Caller(actor): Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: CreateRun = body::body(&bytes, false)?;
    let run = start(&state, actor, req).await?;
    Ok((StatusCode::CREATED, Json(body::run(&run, None))))
}

/// Starts a run for `actor`, if the group allows them: the API's and the console's way.
pub(super) async fn start(
    state: &AppState,
    actor: crate::domain::Actor,
    req: CreateRun,
) -> Result<crate::domain::Run, ApiError> {
    let action = action(req.action.as_deref())?;
    may_act(
        state,
        &actor,
        &req.group,
        None,
        &format!("{action} {}", req.group),
    )
    .await?;
    let params: Params = req.params.into_iter().collect();
    Ok(trigger::start(
        &state.orchestrator,
        Trigger {
            dry_run: req.dry_run,
            reason: req.reason,
            params,
            force: req.force,
            ..Trigger::new(actor, req.group, action)
        },
    )
    .await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub group: Option<String>,
    pub state: Option<String>,
    pub action: Option<String>,
    /// The cursor: the last run id of the page before.
    pub before: Option<String>,
    pub limit: Option<i64>,
}

/// A query value, unless it is empty (a form's "any").
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl ListQuery {
    /// The store's filter, or a 400 naming the value that is no state, action or run id.
    pub(super) fn filter(&self, default_limit: i64) -> Result<crate::store::RunFilter, ApiError> {
        Ok(crate::store::RunFilter {
            group: given(&self.group).map(str::to_string),
            state: given(&self.state)
                .map(str::parse)
                .transpose()
                .map_err(ApiError::bad_request)?,
            action: given(&self.action)
                .map(str::parse)
                .transpose()
                .map_err(ApiError::bad_request)?,
            before: given(&self.before).map(run_id).transpose()?,
            since: None,
            limit: self.limit.unwrap_or(default_limit).clamp(1, 500),
        })
    }
}

pub async fn list_runs(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let runs = state.store.find_runs(&q.filter(50)?).await?;
    Ok(Json(
        json!({ "runs": runs.iter().map(|r| body::run(r, None)).collect::<Vec<_>>() }),
    ))
}

pub async fn get_run(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = stored_run(&state, run_id(&id)?).await?;
    let events = state.orchestrator.events(run.id).await?;
    Ok(Json(body::run(&run, Some(&events))))
}

/// The run a path names, as the store holds it; 404 for none.
pub(super) async fn stored_run(
    state: &AppState,
    id: RunId,
) -> Result<crate::domain::Run, ApiError> {
    state
        .orchestrator
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id} not found")))
}

/// `GET /api/v1/runs/{id}/report`: a finished run's recovery-time scorecard.
pub async fn run_report(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = stored_run(&state, run_id(&id)?).await?;
    let id = run.id;
    let recovery = state.orchestrator.recovery(&run).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "run {id} is {}: its scorecard comes when it ends",
                run.state
            ),
        )
    })?;
    let mut out = serde_json::to_value(&recovery).map_err(anyhow::Error::from)?;
    out["run"] = serde_json::json!(run.id);
    out["state"] = serde_json::json!(run.state);
    Ok(Json(out))
}

/// A run's control from its path's word and its body. A word that is no control is a
/// 404, never another control.
fn run_control(word: &str, bytes: &Bytes) -> Result<Control, ApiError> {
    Ok(match word {
        "approve" => Control::Approve {
            stage: body::body::<ControlBody>(bytes, true)?.stage,
        },
        "reject" => Control::Reject {
            reason: body::body::<ControlBody>(bytes, true)?.reason,
        },
        "cancel" | "abort" => Control::Cancel {
            reason: body::body::<ControlBody>(bytes, true)?.reason,
        },
        "resume" => Control::Resume {
            force: body::body::<body::Resume>(bytes, true)?.force,
        },
        other => {
            return Err(ApiError::not_found(format!(
                "no run control `{other}` (approve, reject, cancel, abort, resume; a stage's: retry, skip)"
            )));
        }
    })
}

/// A stage's control: `retry` (a stage in backoff goes out now) or `skip` (a person gives
/// up on a failed stage, saying why).
fn stage_control(word: &str, stage: String, bytes: &Bytes) -> Result<Control, ApiError> {
    Ok(match word {
        "retry" => {
            let _: ControlBody = body::body(bytes, true)?;
            Control::RetryNow { stage }
        }
        "skip" => {
            let skip: body::Skip = body::body(bytes, false)?;
            let reason = skip.reason.trim();
            if reason.is_empty() {
                return Err(ApiError::bad_request(
                    "`reason` is empty: say why the stage is skipped",
                ));
            }
            Control::Skip {
                stage,
                reason: reason.to_string(),
            }
        }
        other => {
            return Err(ApiError::not_found(format!(
                "no stage control `{other}` (retry, skip)"
            )));
        }
    })
}

/// `POST /api/v1/runs/{id}/{approve|reject|cancel|abort|resume}`.
pub async fn control_run(
    State(s): State<AppState>,
    Caller(a): Caller,
    Path((id, word)): Path<(String, String)>,
    b: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = run_id(&id)?;
    let control = run_control(&word, &b)?;
    Ok(Json(body::run(&act(&s, &a, id, control).await?, None)))
}

/// A person's control over a run, if its group allows them: the API's and the console's
/// way.
pub(super) async fn act(
    s: &AppState,
    a: &crate::domain::Actor,
    id: RunId,
    control: Control,
) -> Result<crate::domain::Run, ApiError> {
    let group = stored_run(s, id).await?.group;
    may_act(s, a, &group, Some(id), control.word()).await?;
    Ok(s.orchestrator.control(id, control, a).await?)
}

/// `POST /api/v1/runs/{id}/stages/{stage}/{retry|skip}`.
pub async fn control_stage(
    State(s): State<AppState>,
    Caller(a): Caller,
    Path((id, stage, word)): Path<(String, String, String)>,
    b: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = run_id(&id)?;
    let control = stage_control(&word, stage, &b)?;
    Ok(Json(body::run(&act(&s, &a, id, control).await?, None)))
}

pub async fn list_groups(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    let groups: Vec<Value> = state
        .orchestrator
        .catalog()
        .groups
        .values()
        .map(|g| {
            json!({
                "name": g.name,
                "description": g.description,
                "services": g.services,
                "workflows": g.workflows.iter().map(|(a, w)| (a.to_string(), Value::String(w.clone()))).collect::<serde_json::Map<_, _>>(),
                "channel": g.channel("channel"),
            })
        })
        .collect();
    Json(json!({ "groups": groups }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanQuery {
    action: Option<String>,
}

pub async fn group_plan(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
    query: Result<Query<PlanQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let action = action(q.action.as_deref())?;
    let (planned, from_run) = match state
        .orchestrator
        .plan_for(&name, action, &Params::new(), false)
        .await
    {
        Ok(planned) => planned,
        Err(crate::orchestrator::CreateRunError::Plan(e)) => {
            return Err(ApiError::not_found(e.explained()));
        }
        Err(e) => return Err(e.into()),
    };
    let (workflow, stages) = (planned.workflow, planned.stages);
    let waves: Vec<Value> = plan::waves(&stages)
        .iter()
        .map(|wave| {
            Value::Array(
                wave.iter()
                    .map(|&i| {
                        let s = &stages[i];
                        json!({
                            "name": s.name,
                            "agent": s.agent,
                            "approval": s.approval,
                            "after": s.after.iter().map(|&a| stages[a].name.clone()).collect::<Vec<_>>(),
                            "max_attempts": s.retry.max_attempts,
                        })
                    })
                    .collect(),
            )
        })
        .collect();
    let mut out = json!({ "group": name, "action": action, "workflow": workflow, "waves": waves });
    // A failback worked out from the record says which failover it reverses.
    if let Some(run) = from_run {
        out["from_run"] = json!(run);
    }
    Ok(Json(out))
}

/// `GET /api/v1/agents`: agent processes heard from in the last hour, live ones first
/// (heard from within three heartbeats).
pub async fn agents(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let agents = state.orchestrator.agents().await?;
    let agents: Vec<Value> = agents
        .iter()
        .map(|(a, live)| {
            json!({
                "instance": a.instance,
                "kinds": a.kinds,
                "host": a.host,
                "version": a.version,
                "in_flight": a.in_flight,
                "started_at": crate::clock::rfc3339(a.started_at),
                "last_seen": crate::clock::rfc3339(a.last_seen),
                "live": live,
            })
        })
        .collect();
    Ok(Json(json!({ "agents": agents })))
}

/// `GET /api/v1/leases`: the leases held now.
pub async fn leases(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let leases = state.orchestrator.leases().await?;
    let leases: Vec<Value> = leases
        .iter()
        .map(|l| {
            json!({
                "resource": l.resource,
                "run_id": l.run_id,
                "stage": l.stage,
                "holder": l.holder,
                "expires_at": crate::clock::rfc3339(l.expires_at),
            })
        })
        .collect();
    Ok(Json(json!({ "leases": leases })))
}

#[derive(Deserialize)]
pub struct RefusalQuery {
    limit: Option<i64>,
}

/// `GET /api/v1/refusals`: chat and API requests refused for want of permission, newest
/// first.
pub async fn refusals(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<RefusalQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let refusals = state
        .orchestrator
        .refusals(q.limit.unwrap_or(50).clamp(1, 500))
        .await?;
    let refusals: Vec<Value> = refusals
        .iter()
        .map(|r| {
            json!({
                "at": crate::clock::rfc3339(r.at),
                "actor": r.actor,
                "group": r.group,
                "run_id": r.run,
                "request": r.request,
                "reason": r.reason,
            })
        })
        .collect();
    Ok(Json(json!({ "refusals": refusals })))
}

#[derive(Deserialize)]
pub struct AlertQuery {
    run: Option<String>,
    route: Option<String>,
    decision: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/alerts?run=&route=&decision=&limit=`: recent alerts and what they did,
/// newest first; `total` counts every alert of the run when `run` is given.
pub async fn alerts(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<AlertQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let run = q.run.as_deref().map(run_id).transpose()?;
    let decision = q
        .decision
        .as_deref()
        .map(|d| d.parse::<crate::domain::AlertDecision>())
        .transpose()
        .map_err(ApiError::bad_request)?;
    let filter = crate::store::AlertFilter {
        run,
        route: q.route,
        decision,
        limit: q.limit.unwrap_or(50).clamp(1, 1000),
    };
    let rows = state.orchestrator.alerts(&filter).await?;
    let alerts: Vec<Value> = rows
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "source": a.source,
                "status": a.status,
                "fingerprint": a.fingerprint,
                "name": a.name,
                "labels": a.labels,
                "route": a.route,
                "group": a.group,
                "action": a.action,
                "decision": a.decision,
                "detail": a.detail,
                "offer_id": a.offer_id,
                "run_id": a.run_id,
                "repeats": a.repeats,
                "received_at": crate::clock::rfc3339(a.received_at),
            })
        })
        .collect();
    let mut body = json!({ "alerts": alerts });
    if let (Some(run), Some(map)) = (run, body.as_object_mut()) {
        let (total, repeats) = state.orchestrator.alert_count(run).await?;
        map.insert("total".into(), json!(total));
        map.insert("repeats".into(), json!(repeats));
    }
    Ok(Json(body))
}

/// `GET /api/v1/offers?limit=`: runs alerts proposed (auto, confirm, countdown) and what
/// became of them, newest first.
pub async fn offers(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<RefusalQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let offers = state
        .orchestrator
        .offers(q.limit.unwrap_or(50).clamp(1, 500))
        .await?;
    let offers: Vec<Value> = offers.iter().map(body::offer).collect();
    Ok(Json(json!({ "offers": offers })))
}

/// `POST /api/v1/offers/{id}/{approve|reject|veto|start}`: an API caller's word on an
/// offer, as the chat buttons give it.
pub async fn decide_offer(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((id, choice)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = run_id(&id)?;
    let control = offer_control(&choice)?;
    Ok(Json(body::offer(
        &decide(&state, &actor, id, control).await?,
    )))
}

/// An offer's control from its path's word.
pub(super) fn offer_control(choice: &str) -> Result<Control, ApiError> {
    Ok(match choice {
        "approve" => Control::Approve { stage: None },
        "reject" => Control::Reject { reason: None },
        "veto" => Control::Veto,
        "start" => Control::StartNow,
        other => {
            return Err(ApiError::not_found(format!(
                "no offer action `{other}` (approve, reject, veto, start)"
            )));
        }
    })
}

/// A person's word on an offer, if its group allows them: the API's and the console's way.
pub(super) async fn decide(
    state: &AppState,
    actor: &crate::domain::Actor,
    id: RunId,
    control: Control,
) -> Result<crate::domain::Offer, ApiError> {
    use crate::alerts::OfferError;
    let offer = state
        .offers
        .offer(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("offer {id} not found")))?;
    may_act(state, actor, &offer.group, Some(id), control.word()).await?;
    match state.offers.decide(id, &control, actor).await {
        Ok(offer) => Ok(offer),
        Err(e @ OfferError::NotFound(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e @ (OfferError::Decided(_) | OfferError::Mismatch { .. })) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
        Err(OfferError::Store(e)) => Err(e.into()),
    }
}

/// `GET /api/v1/readiness`: each group's readiness from its last finished drill, with
/// the checks it made, and when the next scheduled drill is.
pub async fn readiness(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let now = state.orchestrator.clock().now_ms();
    let mut groups = Vec::new();
    for g in state.orchestrator.catalog().groups.values() {
        groups.push(
            crate::readiness::full(&state.store, state.orchestrator.catalog(), g, now).await?,
        );
    }
    Ok(Json(json!({ "groups": groups })))
}
