//! Who is looking: an API caller by bearer token, or a console user by session cookie.
//! A session is kept in the store under the SHA-256 of the cookie's secret, names the API
//! token it was opened with, and acts with that token's name, scope and groups: the console
//! can do nothing the token cannot do through the API.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};

use super::api::bearer;
use super::{ApiError, AppState};
use crate::domain::Actor;
use crate::store::Session;

/// The console's cookie.
pub const COOKIE: &str = "lifeboat_session";

/// How long a console sign-in lasts.
pub const SESSION_MS: i64 = 12 * 3_600_000;

/// A signed-in console user, or an API caller.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub actor: Actor,
    /// The token may only read: the console offers no control.
    pub read_only: bool,
    /// The console session, with its form token; none for a bearer caller.
    pub session: Option<Signed>,
}

#[derive(Clone, Debug)]
pub struct Signed {
    /// The store's key for it: the hash of the cookie's secret.
    pub id: String,
    pub session: Session,
}

pub fn session_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh random secret: 244 bits from the system's generator.
pub fn secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The session cookie's secret, if the request carries one.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

impl Viewer {
    /// The viewer a request shows, if any: a bearer token first, then a session cookie.
    pub async fn of(parts: &Parts, state: &AppState) -> Result<Option<Viewer>, ApiError> {
        if parts.headers.contains_key(header::AUTHORIZATION) || state.tokens.is_empty() {
            let (actor, read_only) = bearer(parts, state)?;
            // With no tokens, a local browser still has a session, for its forms' tokens.
            let session = match cookie(&parts.headers) {
                Some(secret) if state.tokens.is_empty() => {
                    let id = session_key(&secret);
                    state
                        .store
                        .session(&id)
                        .await?
                        .map(|session| Signed { id, session })
                }
                _ => None,
            };
            return Ok(Some(Viewer {
                actor,
                read_only,
                session,
            }));
        }
        let Some(secret) = cookie(&parts.headers) else {
            return Ok(None);
        };
        let id = session_key(&secret);
        let Some(session) = state.store.session(&id).await? else {
            return Ok(None);
        };
        // A token taken out of the settings ends its sessions.
        let Some(token) = state.tokens.iter().find(|t| t.name == session.token_name) else {
            return Ok(None);
        };
        Ok(Some(Viewer {
            actor: Actor::Api(token.name.clone()),
            read_only: token.read_only,
            session: Some(Signed { id, session }),
        }))
    }

    /// Refuses a console form whose token is not this session's: 403, nothing done.
    pub fn check_form(&self, presented: &str) -> Result<(), ApiError> {
        let expected = self.session.as_ref().map(|s| s.session.csrf.as_bytes());
        match expected {
            Some(expected) if constant_time_eq(expected, presented.as_bytes()) => Ok(()),
            _ => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the form's token is missing or is not this session's: reload the page and try again",
            )),
        }
    }

    /// Refuses a control to a token that may only read: 403, nothing done.
    pub fn may_write(&self) -> Result<(), ApiError> {
        if self.read_only {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("{} may only read", self.actor),
            ));
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Viewer::of(parts, state)
            .await?
            .ok_or_else(ApiError::unauthorized)
    }
}
