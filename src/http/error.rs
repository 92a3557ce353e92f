//! Every error answers JSON: `{"error": "..."}` plus details where they help.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::orchestrator::machine::Refusal;
use crate::orchestrator::{CommandError, CreateRunError};
use crate::store::{CreateError, StoreError};
use crate::trigger::StartError;
use crate::workflow::PlanError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub extra: Option<(&'static str, Value)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            extra: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "missing or invalid bearer token")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            return internal(&self.message);
        }
        let mut body = json!({ "error": self.message });
        if let (Some((k, v)), Some(map)) = (self.extra, body.as_object_mut()) {
            map.insert(k.to_string(), v);
        }
        (self.status, Json(body)).into_response()
    }
}

/// A 500: what went wrong is logged under an id of its own and only the id is answered, so
/// that no store error, query or path reaches a client.
fn internal(message: &str) -> Response {
    let id = uuid::Uuid::now_v7().simple().to_string();
    tracing::error!(error_id = %id, error = %message, "Internal error answered with a 500.");
    let body = json!({
        "error": format!("internal error; the service logged it as {id}"),
        "error_id": id,
    });
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            StartError::Create(e) => e.into(),
        }
    }
}

impl From<CreateRunError> for ApiError {
    fn from(e: CreateRunError) -> Self {
        let message = e.to_string();
        match e {
            CreateRunError::Plan(e) => e.into(),
            CreateRunError::Busy(CreateError::Busy { active, .. }) => ApiError {
                status: StatusCode::CONFLICT,
                message,
                extra: Some(("active_run", Value::String(active.to_string()))),
            },
            CreateRunError::Closed => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message),
            CreateRunError::Unserved(_) | CreateRunError::Unreversible(_) => {
                ApiError::new(StatusCode::CONFLICT, message)
            }
            CreateRunError::Store(e) | CreateRunError::Busy(CreateError::Store(e)) => e.into(),
            CreateRunError::Busy(CreateError::Exists(_)) => {
                ApiError::new(StatusCode::CONFLICT, message)
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        match e {
            StoreError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, message),
            StoreError::Unavailable(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message),
            StoreError::NotFound(_) => ApiError::not_found(message),
            StoreError::Other(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message),
        }
    }
}

/// A store read that failed, answered by what it means: 503 when the store did not
/// answer, else a logged 500.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl From<PlanError> for ApiError {
    fn from(e: PlanError) -> Self {
        let message = e.to_string();
        match e {
            PlanError::UnknownGroup { .. } | PlanError::NoWorkflow { .. } => {
                ApiError::not_found(message)
            }
            PlanError::BadParams(_) => ApiError::bad_request(message),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        let message = e.to_string();
        match e {
            CommandError::NotFound(_) | CommandError::UnknownStage(_) => {
                ApiError::not_found(message)
            }
            // Four eyes: this person may not give this approval.
            CommandError::Refused(Refusal::OwnRun(_) | Refusal::AlreadyApproved(_)) => {
                ApiError::new(StatusCode::FORBIDDEN, message)
            }
            CommandError::Refused(_)
            | CommandError::Busy { .. }
            | CommandError::WorkflowChanged(_)
            | CommandError::Unserved(_) => ApiError::new(StatusCode::CONFLICT, message),
            CommandError::Closed | CommandError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
            }
            CommandError::Store(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message),
        }
    }
}
