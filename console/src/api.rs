//! The `/api/v1` router: who may call what, the session endpoints, and the OpenAPI
//! document generated from the handlers below and in the resource modules.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header::SET_COOKIE;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::auth::{Auth, CSRF_HEADER, Principal, Refusal, SESSION_COOKIE};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::{dead_letters, events, live, stats, webhooks};

/// The API: the login and the OpenAPI document open, everything else signed in.
pub fn router(state: AppState) -> Router {
    let signed_in = Router::new()
        .route("/session", get(current_session).delete(log_out))
        .route("/webhooks", get(webhooks::list))
        .route("/webhooks/{namespace}/{name}", get(webhooks::one))
        .route("/stats", get(stats::series))
        .route("/events", get(events::list))
        .route("/events/{webhook_id}/{message_id}", get(events::one))
        .route("/dead-letters", get(dead_letters::list))
        .route("/dead-letters/count", get(dead_letters::count))
        .route("/dead-letters/reasons", get(dead_letters::reasons))
        .route("/dead-letters/replay", post(dead_letters::replay))
        .route("/dead-letters/{id}", get(dead_letters::one))
        .route("/replays", get(dead_letters::replays))
        .route("/live", get(live::stream))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_sign_in,
        ));
    let open = Router::new()
        .route("/session", post(log_in))
        .route("/openapi.json", get(openapi_json));
    Router::new()
        .nest("/api/v1", signed_in.merge(open))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Signed in, and for a state-changing method the session's CSRF token too.
async fn require_sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let principal = match state.auth.authenticate(request.headers(), peer.ip()).await {
        Ok(principal) => principal,
        Err(refusal) => {
            if matches!(refusal, Refusal::Throttled(_)) {
                state.metrics.throttled_logins.inc();
            }
            return ApiError::from(refusal).into_response();
        }
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let token = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !Auth::csrf_matches(&principal, token) {
            return ApiError::CsrfMismatch.into_response();
        }
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .observe_request(&method, &route, response.status(), started.elapsed());
    response
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Signs in with a username and password; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = Credentials,
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = Principal),
        (status = 400, description = "Not a credentials object", body = ErrorBody),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 429, description = "Too many failed sign-ins for the username or from the address; \
                                      the Retry-After header says when to try again", body = ErrorBody)),
    security(()))]
async fn log_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    credentials: Result<Json<Credentials>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(credentials) =
        credentials.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let (principal, cookie) = match state
        .auth
        .log_in(&credentials.username, &credentials.password, peer.ip())
        .await
    {
        Ok(signed_in) => signed_in,
        Err(refusal) => {
            match refusal {
                Refusal::Throttled(_) => state.metrics.throttled_logins.inc(),
                _ => state.metrics.failed_logins.inc(),
            };
            tracing::info!(username = %credentials.username, peer = %peer.ip(), ?refusal, "sign-in refused");
            return Err(refusal.into());
        }
    };
    tracing::info!(username = %principal.username, role = ?principal.role, "signed in");
    Ok(([(SET_COOKIE, cookie)], Json(principal)).into_response())
}

/// Who is signed in, with the CSRF token to send back.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses(
        (status = 200, description = "The signed-in user", body = Principal),
        (status = 401, description = "Not signed in", body = ErrorBody)))]
async fn current_session(Extension(principal): Extension<Principal>) -> Json<Principal> {
    Json(principal)
}

/// Signs out: the session ends on the server (its cookie is refused from now on) and
/// the cookie is cleared.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "CSRF token missing or wrong", body = ErrorBody)))]
async fn log_out(State(state): State<AppState>, request: Request) -> Response {
    (
        StatusCode::NO_CONTENT,
        [(SET_COOKIE, state.auth.log_out(request.headers()))],
    )
        .into_response()
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The session cookie, HTTP Basic, and the CSRF header, as OpenAPI security schemes.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Hookline console API", version = "1",
         description = "Webhooks, events, dead letters and their replay, live traffic. \
                        Every POST and DELETE but the sign-in needs the session's X-CSRF-Token header."),
    paths(log_in, current_session, log_out,
          webhooks::list, webhooks::one, stats::series,
          events::list, events::one,
          dead_letters::list, dead_letters::count, dead_letters::reasons, dead_letters::one,
          dead_letters::replay, dead_letters::replays,
          live::stream),
    modifiers(&SecuritySchemes),
    security(("session" = []), ("basic" = [])),
    tags((name = "session"), (name = "webhooks"), (name = "events"),
         (name = "dead-letters"), (name = "live"))
)]
pub struct ApiDoc;
