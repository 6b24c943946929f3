//! Errors of the API: each a status and a JSON body `{"error", "message"}`, with the
//! database's and Kubernetes' own errors logged, not shown.

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hookline_store::dead_letter_replay::ReplayError;
use serde::Serialize;
use thiserror::Error;
use utoipa::ToSchema;

use crate::auth::Refusal;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code, e.g. `not_found`, `count_changed`.
    pub error: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("sign in first")]
    Unauthenticated,
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("too many failed sign-ins: try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("the X-CSRF-Token header is missing or does not match the session")]
    CsrfMismatch,
    #[error("only the operator role may {0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error(
        "the filter now selects {now} dead letters, not the {expected} confirmed: nothing was replayed"
    )]
    CountChanged { expected: i64, now: i64 },
    #[error("the query took longer than the console allows: narrow the time range or the filters")]
    QueryTooBroad,
    #[error("PostgreSQL did not answer: {0}")]
    Database(#[source] sqlx::Error),
    #[error("the Kubernetes API has not been read yet")]
    KubernetesNotSynced,
    #[error("the replay stopped: {0}")]
    Replay(#[source] ReplayError),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            Self::TooManyAttempts { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            Self::CsrfMismatch => (StatusCode::FORBIDDEN, "csrf_mismatch"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::CountChanged { .. } => (StatusCode::CONFLICT, "count_changed"),
            Self::QueryTooBroad => (StatusCode::UNPROCESSABLE_ENTITY, "query_too_broad"),
            Self::Database(_) | Self::KubernetesNotSynced | Self::Replay(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unauthenticated => Self::Unauthenticated,
            Refusal::InvalidCredentials => Self::InvalidCredentials,
            // Rounded up: a client waiting exactly this long finds the lock gone.
            Refusal::Throttled(wait) => Self::TooManyAttempts {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            },
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            // 57014: canceled by statement_timeout.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
                Self::QueryTooBroad
            }
            // Class 22, data exception: a parameter PostgreSQL cannot take (a NUL
            // character, a time out of range). The request's fault, not the database's.
            sqlx::Error::Database(db) if db.code().is_some_and(|code| code.starts_with("22")) => {
                Self::BadRequest(format!(
                    "a parameter is not one PostgreSQL can compare: {}",
                    db.message()
                ))
            }
            _ => Self::Database(err),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            // The cause goes to the log; the page gets a sentence without internals.
            Self::Database(err) => {
                tracing::warn!(%err, "database error");
                "PostgreSQL did not answer; try again shortly".to_owned()
            }
            Self::Replay(err) => {
                tracing::warn!(%err, "replay stopped");
                format!(
                    "the replay stopped before it finished ({err}); what it did is recorded, run it again to finish"
                )
            }
            other => other.to_string(),
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: code,
                message,
            }),
        )
            .into_response();
        if let Self::TooManyAttempts { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}
