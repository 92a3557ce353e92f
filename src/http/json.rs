//! Request bodies and response shapes of the API.

use axum::body::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::ApiError;
use crate::clock::{Millis, rfc3339};
use crate::domain::{Audit, Run};

/// Parses a JSON body; a malformed one is a 400 that says what and where. An empty body
/// counts as `{}` where every field is optional.
pub fn body<T: DeserializeOwned>(bytes: &Bytes, empty_ok: bool) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        if !empty_ok {
            return Err(ApiError::bad_request(
                "request body is empty: expected a JSON object",
            ));
        }
        b"{}"
    } else {
        bytes
    };
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    serde_json::from_slice(text)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    pub group: String,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub params: serde_json::Map<String, Value>,
    /// Start although no live agent serves a kind of work the run needs (audited).
    #[serde(default)]
    pub force: bool,
}

/// The body of approve, reject and cancel (all optional).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ControlBody {
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// Go on although the workflow plans differently now (with the plan the run had).
    #[serde(default)]
    pub force: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skip {
    /// Why the stage is given up on: kept with it and in the audit log.
    pub reason: String,
}

fn time(ms: Option<Millis>) -> Value {
    ms.map_or(Value::Null, |m| Value::String(rfc3339(m)))
}

fn duration(start: Option<Millis>, end: Option<Millis>) -> Value {
    match (start, end) {
        (Some(s), Some(e)) => json!(e - s),
        _ => Value::Null,
    }
}

pub fn run(run: &Run, events: Option<&[Audit]>) -> Value {
    let stages: Vec<Value> = run
        .plan
        .iter()
        .zip(&run.stages)
        .enumerate()
        .map(|(i, (p, s))| {
            let mut stage = json!({
                "name": p.name,
                "agent": p.agent,
                "state": s.state,
                "attempts": s.attempts,
                "started_at": time(s.started_at),
                "finished_at": time(s.finished_at),
                "duration_ms": duration(s.started_at, s.finished_at),
                "message": s.message,
                "after": p.after.iter().map(|&i| run.plan[i].name.clone()).collect::<Vec<_>>(),
                "approval": p.approval,
                "approved_by": s.approved_by,
                "retry_at": time(s.retry_at),
            });
            // Added only where they say something, so that older clients' fixtures hold.
            if run.gated(i) && run.approvals_needed(i) > 1 {
                stage["approvals_needed"] = json!(run.approvals_needed(i));
            }
            if let Some(hold) = &s.hold {
                stage["held"] = json!(hold.message);
            }
            if !s.approvals.is_empty() {
                stage["approvals"] = s
                    .approvals
                    .iter()
                    .map(|a| json!({ "by": a.by, "person": a.person, "at": rfc3339(a.at) }))
                    .collect();
            }
            if let Some(by) = &s.skipped_by {
                stage["skipped_by"] = json!(by);
            }
            // Only where a provider reported: a run reads as it did before reports existed.
            if let Some(report) = &s.report {
                stage["report"] = json!(report);
            }
            stage
        })
        .collect();
    let mut out = json!({
        "id": run.id,
        "group": run.group,
        "action": run.action,
        "workflow": run.workflow,
        "dry_run": run.dry_run,
        "reason": run.reason,
        "requested_by": run.requested_by,
        "params": run.params,
        "state": run.state,
        "created_at": time(Some(run.created_at)),
        "started_at": time(run.started_at),
        "finished_at": time(run.finished_at),
        "duration_ms": duration(Some(run.created_at), run.finished_at),
        "message": run.message,
        "stages": stages,
    });
    if let (Some(events), Some(map)) = (events, out.as_object_mut()) {
        let events: Vec<Value> = events
            .iter()
            .map(|a| {
                json!({
                    "at": rfc3339(a.at),
                    "actor": a.actor,
                    "kind": a.kind,
                    "stage": a.stage,
                    "attempt": a.attempt,
                    "message": a.message,
                })
            })
            .collect();
        map.insert("events".into(), Value::Array(events));
    }
    out
}

/// An offer as the API shows it.
pub fn offer(o: &crate::domain::Offer) -> Value {
    json!({
        "id": o.id,
        "route": o.route,
        "group": o.group,
        "action": o.action,
        "mode": o.mode.as_str(),
        "state": o.state.as_str(),
        "opened_at": rfc3339(o.opened_at),
        "deadline": o.deadline.map(rfc3339),
        "decided_by": o.decided_by.as_ref().map(|a| a.to_string()),
        "decided_at": o.decided_at.map(rfc3339),
        "run_id": o.run_id,
        "message": o.message,
        "alert": o.alert,
    })
}

#[cfg(test)]
mod tests {
    use crate::domain::fixture;

    #[test]
    fn a_run_reads_as_it_did_before_its_types_were_typed() {
        let recorded = include_str!("../../tests/fixtures/api-run.json");
        let now =
            serde_json::to_string_pretty(&super::run(&fixture::run(), Some(&fixture::audit())))
                .expect("json");
        assert_eq!(now, recorded);
    }
}
