//! Why a webhook request was not accepted, and the HTTP answer for each reason: a
//! status, a JSON body naming the check that failed, and `Retry-After` where a retry
//! can succeed. Nothing here carries a secret or a signature, and no message carries a
//! library's text (a broker's or HTTP library's error goes to the log, via `detail`).

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookline_core::registry;
use hookline_core::signature::VerifyError;
use serde_json::json;
use thiserror::Error;

use crate::rate_limit::retry_after_secs;

#[derive(Debug, Error)]
pub enum Rejection {
    #[error("no webhook with this id")]
    UnknownWebhook,
    #[error("this webhook was deleted")]
    DeletedWebhook,
    /// Answered 404 like an unknown id: a suspended webhook takes nothing, and the
    /// sender should treat it as gone until it is resumed, not retry (a 503 would make
    /// well-behaved senders retry for hours).
    #[error("this webhook is suspended")]
    SuspendedWebhook,
    #[error("the webhook registry is still loading")]
    RegistryLoading,
    /// The registry entry holds no secret the scheme can use (the operator refuses
    /// such secrets, so only an entry written by something else gets here). A 503, so
    /// senders retry and nothing is lost once the secret is fixed.
    #[error("this webhook has no usable signing secret; see its Webhook resource's conditions")]
    SecretUnusable,
    #[error("the body is larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("the body was not received within {0:?}")]
    BodyTimeout(Duration),
    #[error("the body could not be read")]
    BodyRead { detail: String },
    #[error("the source address is outside this webhook's allowed source ranges")]
    SourceNotAllowed,
    #[error("{0}")]
    BadSignature(VerifyError),
    #[error("{0}")]
    StaleTimestamp(VerifyError),
    #[error("this webhook's rate limit is exceeded")]
    RateLimited { retry_after: Duration },
    #[error("too many requests in progress")]
    Overloaded,
    #[error("too many requests in progress for this webhook")]
    WebhookOverloaded,
    #[error("too many requests in progress from this source address")]
    SourceOverloaded,
    #[error("a request with this message id is being stored right now")]
    DuplicateInFlight,
    #[error("the event could not be stored right now; retry later")]
    KafkaUnavailable { detail: String },
}

impl Rejection {
    /// A verification failure, sorted into a bad signature or a bad timestamp.
    pub fn from_verify(err: VerifyError) -> Self {
        match err {
            VerifyError::TimestampOutOfTolerance { .. } => Self::StaleTimestamp(err),
            _ => Self::BadSignature(err),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownWebhook | Self::SuspendedWebhook => StatusCode::NOT_FOUND,
            Self::DeletedWebhook => StatusCode::GONE,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::BodyRead { .. } => StatusCode::BAD_REQUEST,
            Self::SourceNotAllowed => StatusCode::FORBIDDEN,
            Self::BadSignature(_) | Self::StaleTimestamp(_) => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } | Self::SourceOverloaded => StatusCode::TOO_MANY_REQUESTS,
            Self::RegistryLoading
            | Self::SecretUnusable
            | Self::Overloaded
            | Self::WebhookOverloaded
            | Self::DuplicateInFlight
            | Self::KafkaUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable name of the check that failed, the `error` field of the body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownWebhook => registry::UNKNOWN_WEBHOOK_ERROR,
            Self::DeletedWebhook => "webhook_deleted",
            Self::SuspendedWebhook => "webhook_suspended",
            Self::RegistryLoading => "registry_loading",
            Self::SecretUnusable => "secret_unusable",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::BodyTimeout(_) => "body_timeout",
            Self::BodyRead { .. } => "body_unreadable",
            Self::SourceNotAllowed => "source_not_allowed",
            Self::BadSignature(_) => "invalid_signature",
            Self::StaleTimestamp(_) => "timestamp_out_of_tolerance",
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::WebhookOverloaded => "webhook_overloaded",
            Self::SourceOverloaded => "source_overloaded",
            Self::DuplicateInFlight => "duplicate_in_flight",
            Self::KafkaUnavailable { .. } => "kafka_unavailable",
        }
    }

    /// What went wrong below Hookline (a library's error text), for the log only.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::BodyRead { detail } | Self::KafkaUnavailable { detail } => Some(detail),
            _ => None,
        }
    }

    /// Seconds a sender should wait before retrying, where a retry can succeed.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after } => Some(retry_after_secs(*retry_after)),
            Self::RegistryLoading
            | Self::Overloaded
            | Self::WebhookOverloaded
            | Self::SourceOverloaded
            | Self::DuplicateInFlight => Some(1),
            Self::KafkaUnavailable { .. } => Some(5),
            Self::SecretUnusable => Some(30),
            _ => None,
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        if let Self::BadSignature(err) | Self::StaleTimestamp(err) = &self {
            body["reason"] = err.reason().into();
        }
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_failures_split_into_signature_and_timestamp() {
        let stale = Rejection::from_verify(VerifyError::TimestampOutOfTolerance {
            timestamp: 1,
            now: 1_000,
            age_secs: 999,
            tolerance_secs: 300,
        });
        assert_eq!(stale.code(), "timestamp_out_of_tolerance");
        let forged = Rejection::from_verify(VerifyError::NoMatchingSignature);
        assert_eq!(forged.code(), "invalid_signature");
        assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn retryable_rejections_carry_retry_after() {
        let limited = Rejection::RateLimited {
            retry_after: Duration::from_millis(1_500),
        }
        .into_response();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "2");
        let down = Rejection::KafkaUnavailable {
            detail: "broker down".into(),
        }
        .into_response();
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(down.headers().contains_key(header::RETRY_AFTER));
        for shed in [Rejection::WebhookOverloaded, Rejection::SourceOverloaded] {
            assert!(
                shed.into_response()
                    .headers()
                    .contains_key(header::RETRY_AFTER)
            );
        }
        let gone = Rejection::DeletedWebhook.into_response();
        assert_eq!(gone.status(), StatusCode::GONE);
        assert!(!gone.headers().contains_key(header::RETRY_AFTER));
    }

    #[tokio::test]
    async fn library_text_stays_out_of_the_body() {
        let library_text =
            "KafkaError (Message production error: MessageTimedOut (Local: Message timed out))";
        for rejection in [
            Rejection::KafkaUnavailable {
                detail: library_text.into(),
            },
            Rejection::BodyRead {
                detail: library_text.into(),
            },
        ] {
            assert_eq!(rejection.detail(), Some(library_text));
            let response = rejection.into_response();
            let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            let body = String::from_utf8_lossy(&body);
            assert!(
                !body.contains("Kafka") && !body.contains("timed out"),
                "{body}"
            );
        }
    }
}
