//! Delivering one event: sign each attempt with a fresh timestamp and the same message
//! id, classify the answer, wait as the policy or `Retry-After` says, give up when told
//! to or when the retries are spent. Never reports a failure as sent.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hookline_core::registry;
use hookline_core::retry::{DeliveryPolicy, with_jitter};
use hookline_core::signature::{self, Scheme};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;

use crate::event::SimulatedEvent;
use crate::secrets::SigningKeys;
use crate::target_guard::{GuardedConnector, refusal_in};

pub type HttpClient = Client<HttpsConnector<GuardedConnector>, Full<Bytes>>;

/// The longest `Retry-After` honoured, so a hostile or broken target cannot park an
/// event for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);

/// What one attempt's answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again, after `after` when the target said so.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Do not try again (e.g. 401, 400).
    Final {
        reason: String,
    },
    /// 410 Gone: the target does not want this webhook any more; stop emitting.
    Gone,
}

/// Classifies an HTTP answer: 2xx delivered; 429 and 503 retry honouring `Retry-After`;
/// 408 and other 5xx retry with the policy's backoff; 410 stops emission; a 404 whose
/// `error` is [`registry::UNKNOWN_WEBHOOK_ERROR`] retries with the backoff (the
/// handlers learn of a new webhook a moment after it is Ready); other 4xx (a suspended
/// webhook's 404 included) and anything else are final.
pub fn classify(
    status: StatusCode,
    retry_after: Option<&str>,
    error_code: Option<&str>,
    now: DateTime<Utc>,
) -> Outcome {
    let code = status.as_u16();
    if status.is_success() {
        Outcome::Delivered
    } else if code == 410 {
        Outcome::Gone
    } else if code == 404 && error_code == Some(registry::UNKNOWN_WEBHOOK_ERROR) {
        Outcome::Retry {
            reason: format!("http_404_{}", registry::UNKNOWN_WEBHOOK_ERROR),
            after: None,
        }
    } else if code == 429 || code == 503 {
        Outcome::Retry {
            reason: format!("http_{code}"),
            after: retry_after.and_then(|value| parse_retry_after(value, now)),
        }
    } else if code == 408 || status.is_server_error() {
        Outcome::Retry {
            reason: format!("http_{code}"),
            after: None,
        }
    } else {
        Outcome::Final {
            reason: format!("http_{code}"),
        }
    }
}

/// The `error` field of a JSON refusal, as the handler writes it.
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Refusal {
        error: String,
    }
    serde_json::from_slice::<Refusal>(body)
        .ok()
        .map(|refusal| refusal.error)
}

/// `Retry-After` as delay seconds or an HTTP date, capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let delay = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = DateTime::parse_from_rfc2822(value)
            .ok()?
            .with_timezone(&Utc);
        (at - now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// How a whole delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    Delivered {
        attempts: u32,
        latency: Duration,
    },
    Failed {
        attempts: u32,
        reason: String,
    },
    Gone {
        attempts: u32,
    },
    /// Shutdown's drain deadline came while it still waited to retry.
    Abandoned {
        attempts: u32,
    },
}

/// Everything one delivery needs besides the event.
pub struct Deliverer {
    pub client: HttpClient,
    pub target: Uri,
    pub scheme: Scheme,
    pub keys: SigningKeys,
    pub policy: DeliveryPolicy,
    pub request_timeout: Duration,
}

impl Deliverer {
    /// Delivers `event`, retrying per the policy. `give_up` resolves when waiting for
    /// another attempt is no longer allowed (shutdown's drain deadline).
    pub async fn deliver(
        &self,
        event: &SimulatedEvent,
        give_up: impl std::future::Future<Output = ()>,
        on_attempt: impl Fn(&'static str),
    ) -> DeliveryResult {
        let started = Instant::now();
        let body = Bytes::from(event.body.clone());
        tokio::pin!(give_up);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let outcome = self.attempt(event, body.clone()).await;
            on_attempt(match &outcome {
                Outcome::Delivered => "delivered",
                Outcome::Retry { .. } => "retry",
                Outcome::Final { .. } => "final",
                Outcome::Gone => "gone",
            });
            let (reason, after) = match outcome {
                Outcome::Delivered => {
                    return DeliveryResult::Delivered {
                        attempts,
                        latency: started.elapsed(),
                    };
                }
                Outcome::Gone => return DeliveryResult::Gone { attempts },
                Outcome::Final { reason } => return DeliveryResult::Failed { attempts, reason },
                Outcome::Retry { reason, after } => (reason, after),
            };
            if !self.policy.may_retry(attempts - 1) {
                return DeliveryResult::Failed {
                    attempts,
                    reason: format!("retries exhausted, last: {reason}"),
                };
            }
            let delay =
                after.unwrap_or_else(|| with_jitter(self.policy.delay(attempts), rand::random()));
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = &mut give_up => return DeliveryResult::Abandoned { attempts },
            }
        }
    }

    async fn attempt(&self, event: &SimulatedEvent, body: Bytes) -> Outcome {
        let secrets = self.keys.secrets();
        let headers = match signature::sign(
            self.scheme,
            &secrets,
            &event.message_id,
            Utc::now(),
            &event.body,
        ) {
            Ok(headers) => headers,
            Err(err) => {
                return Outcome::Final {
                    reason: format!("cannot sign: {err}"),
                };
            }
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.target.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("hookline-emitter/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(err) => {
                return Outcome::Final {
                    reason: format!("cannot build the request: {err}"),
                };
            }
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned);
            // Read the answer to its end so the connection goes back to the pool; a
            // refusal's `error` code says whether it is worth retrying.
            let answer = response.into_body().collect().await;
            let error_code = match answer {
                Ok(collected) if !status.is_success() => error_code(&collected.to_bytes()),
                _ => None,
            };
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, error_code))
        };
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(Ok((status, retry_after, error_code))) => classify(
                status,
                retry_after.as_deref(),
                error_code.as_deref(),
                Utc::now(),
            ),
            Ok(Err(err)) if refusal_in(&err).is_some() => Outcome::Final {
                reason: "private_target_refused".into(),
            },
            Ok(Err(err)) => Outcome::Retry {
                reason: if err.is_connect() {
                    "connect_error".into()
                } else {
                    "network_error".into()
                },
                after: None,
            },
            Err(_) => Outcome::Retry {
                reason: "timeout".into(),
                after: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
    }

    fn code(c: u16) -> StatusCode {
        StatusCode::from_u16(c).unwrap()
    }

    #[test]
    fn answers_are_classified_like_a_careful_sender_would() {
        assert_eq!(classify(code(200), None, None, now()), Outcome::Delivered);
        assert_eq!(classify(code(202), None, None, now()), Outcome::Delivered);
        assert_eq!(classify(code(410), None, None, now()), Outcome::Gone);
        assert_eq!(
            classify(code(429), Some("7"), None, now()),
            Outcome::Retry {
                reason: "http_429".into(),
                after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify(code(503), None, None, now()),
            Outcome::Retry {
                reason: "http_503".into(),
                after: None
            }
        );
        for retried in [408, 500, 502, 504] {
            assert!(
                matches!(
                    classify(code(retried), None, None, now()),
                    Outcome::Retry { after: None, .. }
                ),
                "{retried}"
            );
        }
        assert!(matches!(
            classify(code(404), None, Some("unknown_webhook"), now()),
            Outcome::Retry { after: None, .. }
        ));
        assert!(matches!(
            classify(code(404), None, Some("webhook_suspended"), now()),
            Outcome::Final { .. }
        ));
        assert_eq!(
            error_code(br#"{"error":"unknown_webhook","message":"no webhook with this id"}"#)
                .as_deref(),
            Some("unknown_webhook")
        );
        assert_eq!(error_code(b"<html>not found</html>"), None);
        for final_code in [400, 401, 403, 404, 413, 422, 301] {
            assert!(
                matches!(
                    classify(code(final_code), None, None, now()),
                    Outcome::Final { .. }
                ),
                "{final_code}"
            );
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        assert_eq!(
            parse_retry_after("120", now()),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 12:00:30 GMT", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 11:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("99999999", now()), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now()), None);
    }
}
