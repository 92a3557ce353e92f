//! Signing in with an API token, which becomes a session cookie (HttpOnly, SameSite=Strict,
//! Secure behind https, 12 hours), and signing out.

use axum::Form;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{Page, error_page};
use crate::http::viewer::{COOKIE, SESSION_MS, Signed, Viewer, secret, session_key};
use crate::http::{ApiError, AppState};
use crate::store::Session;

/// Opens a session for the token named `token_name`: its cookie, and the session.
pub async fn open(state: &AppState, token_name: &str) -> Result<(Signed, HeaderValue), ApiError> {
    let secret = secret();
    let id = session_key(&secret);
    let session = Session {
        token_name: token_name.to_string(),
        csrf: super::super::viewer::secret(),
        expires_at: state.orchestrator.clock().now_ms() + SESSION_MS,
    };
    state.store.open_session(&id, &session).await?;
    let secure = if state.https { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_MS / 1000
    );
    let cookie = HeaderValue::from_str(&cookie)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((Signed { id, session }, cookie))
}

fn form_page(status: StatusCode, problem: Option<&str>) -> Response {
    let page = Page {
        title: "Sign in".into(),
        tab: None,
        live: None,
        drawn: 0,
        viewer: None,
        main: html! {
            @if let Some(problem) = problem {
                p.error role="alert" { (problem) }
            }
            form.sign-in method="post" action="/sign-in" {
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                p.hint { "One of LIFEBOAT_API_TOKENS. You act as its name, with its scope." }
                button type="submit" { "Sign in" }
            }
        },
    };
    (status, axum::response::Html(page.render().into_string())).into_response()
}

/// `GET /sign-in`. With no tokens there is nothing to sign in with: the console is open.
pub async fn form(State(state): State<AppState>) -> Response {
    if state.tokens.is_empty() {
        return Redirect::to("/").into_response();
    }
    form_page(StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

/// `POST /sign-in`: a token of LIFEBOAT_API_TOKENS opens a session; anything else is 401.
pub async fn sign_in(
    State(state): State<AppState>,
    form: Result<Form<SignIn>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return form_page(StatusCode::BAD_REQUEST, Some("the form has no `token`"));
    };
    let Some(token) = state.tokens.iter().find(|t| t.matches(form.token.trim())) else {
        tracing::info!("Refused a console sign-in with a token that is not configured.");
        return form_page(
            StatusCode::UNAUTHORIZED,
            Some("That token is not one of this service's API tokens."),
        );
    };
    match open(&state, &token.name).await {
        Ok((_, cookie)) => {
            tracing::info!(token = %token.name, "Signed in to the console.");
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Err(e) => error_page(None, e),
    }
}

#[derive(Deserialize)]
pub struct Token {
    #[serde(default)]
    csrf: String,
}

/// `POST /sign-out`: the session ends here and in the store.
pub async fn sign_out(
    State(state): State<AppState>,
    parts: Parts,
    form: Result<Form<Token>, axum::extract::rejection::FormRejection>,
) -> Response {
    let viewer = match Viewer::of(&parts, &state).await {
        Ok(Some(v)) => v,
        Ok(None) => return Redirect::to("/sign-in").into_response(),
        Err(e) => return error_page(None, e),
    };
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Err(e) = viewer.check_form(&csrf) {
        return error_page(Some(&viewer), e);
    }
    if let Some(signed) = &viewer.session
        && let Err(e) = state.store.close_session(&signed.id).await
    {
        return error_page(Some(&viewer), e.into());
    }
    let mut response = Redirect::to("/sign-in").into_response();
    let gone = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(gone) = HeaderValue::from_str(&gone) {
        response.headers_mut().insert(header::SET_COOKIE, gone);
    }
    response
}
