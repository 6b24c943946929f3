//! Stage 5, status: the conditions and fields a reconcile reports, built purely from
//! what it decided and what applying it gave; only `report` writes it to the server.

use chrono::Utc;
use hookline_api::webhook::{Webhook, WebhookStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::plan::Refusal;
use super::{Context, Error, FIELD_MANAGER};
use crate::conditions::{self, EMITTER_AVAILABLE, PartState, READY, REGISTERED, SECRET_READY};
use crate::desired::{self, Settings, SigningKeys};

/// The emitter Deployment's replicas: wanted, and available now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmitterReplicas {
    pub desired: i32,
    pub ready: i32,
}

/// What a served reconcile knows beyond its conditions.
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    pub replicas: EmitterReplicas,
    pub keys: &'a SigningKeys,
}

/// The conditions of a Webhook whose children were applied.
pub fn served_parts(
    signing_secret_name: &str,
    registered: Result<(), String>,
    replicas: EmitterReplicas,
    emitter_enabled: bool,
) -> [(&'static str, PartState); 3] {
    [
        (
            SECRET_READY,
            PartState::met(
                "SecretApplied",
                format!("signing secret in Secret {signing_secret_name}"),
            ),
        ),
        (
            REGISTERED,
            match registered {
                Ok(()) => PartState::met("Published", "the handler and consumer know this webhook"),
                Err(err) => PartState::unmet("RegistryUnavailable", err),
            },
        ),
        (
            EMITTER_AVAILABLE,
            conditions::emitter_state(replicas.desired, replicas.ready, emitter_enabled),
        ),
    ]
}

/// The conditions of a refused Webhook: `Ready` says why, with the refusal's reason; the
/// part to blame says it too, and the other parts wait for it.
pub fn refused_parts(refusal: &Refusal) -> [(&'static str, PartState); 4] {
    let blamed = PartState::unmet(refusal.reason, refusal.message.clone());
    let waiting = match refusal.part {
        SECRET_READY => PartState::unmet("WaitingForSecret", "waits for the signing secret"),
        _ => PartState::unmet(
            "NotApplied",
            format!(
                "nothing is applied while the Webhook is refused ({})",
                refusal.reason
            ),
        ),
    };
    let part = |kind: &'static str| {
        if kind == refusal.part {
            blamed.clone()
        } else {
            waiting.clone()
        }
    };
    [
        (READY, blamed.clone()),
        (SECRET_READY, part(SECRET_READY)),
        (REGISTERED, part(REGISTERED)),
        (EMITTER_AVAILABLE, part(EMITTER_AVAILABLE)),
    ]
}

/// The Webhook's new status; fields a refused reconcile does not know keep their value.
pub fn status(
    webhook: &Webhook,
    settings: &Settings,
    id: &str,
    parts: &[(&'static str, PartState)],
    served: Option<Served<'_>>,
    now: Time,
) -> WebhookStatus {
    let previous = webhook.status.clone().unwrap_or_default();
    let generation = webhook.metadata.generation.unwrap_or(0);
    let replicas = served.map_or(
        EmitterReplicas {
            desired: previous.emitter_replicas,
            ready: previous.emitter_ready_replicas,
        },
        |served| served.replicas,
    );
    WebhookStatus {
        conditions: conditions::conditions(&previous.conditions, parts, generation, now),
        observed_generation: Some(generation),
        webhook_id: Some(id.to_owned()),
        endpoint: Some(desired::endpoint(settings, id)),
        emitter_replicas: replicas.desired,
        emitter_ready_replicas: replicas.ready,
        emitter_replicas_text: Some(format!("{}/{}", replicas.ready, replicas.desired)),
        emitter_selector: Some(desired::selector_string(webhook)),
        secret_rotation_generation: served.map_or(previous.secret_rotation_generation, |s| {
            s.keys.rotation_generation
        }),
        last_secret_rotation: served
            .and_then(|s| s.keys.rotated_at)
            .map(|at| at.to_rfc3339())
            .or(previous.last_secret_rotation),
    }
}

/// Builds the Webhook's status from `parts` (and what a served reconcile knows), as of
/// now, and writes it.
pub async fn report(
    ctx: &Context,
    webhook: &Webhook,
    id: &str,
    parts: &[(&'static str, PartState)],
    served: Option<Served<'_>>,
) -> Result<(), Error> {
    let report = status(webhook, &ctx.settings, id, parts, served, time_now());
    patch(ctx, webhook, report).await
}

fn time_now() -> Time {
    Time(
        Timestamp::from_millisecond(Utc::now().timestamp_millis()).unwrap_or(Timestamp::UNIX_EPOCH),
    )
}

/// Writes `status` with server-side apply.
async fn patch(ctx: &Context, webhook: &Webhook, status: WebhookStatus) -> Result<(), Error> {
    let namespace = webhook.namespace().unwrap_or_default();
    if is_unchanged(webhook, &status) {
        ctx.metrics
            .set_webhook_ready(&namespace, &webhook.name_any(), is_ready(&status));
        return Ok(());
    }
    let api: Api<Webhook> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": Webhook::api_version(&()),
        "kind": Webhook::kind(&()),
        "status": status,
    });
    api.patch_status(
        &webhook.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(Error::kube(format!(
        "update the status of Webhook {}",
        webhook.name_any()
    )))?;
    ctx.metrics
        .set_webhook_ready(&namespace, &webhook.name_any(), is_ready(&status));
    Ok(())
}

/// Whether the Webhook already reports `status`: a reconcile that changed nothing
/// writes nothing (no API call, and no watch event for every other watcher).
fn is_unchanged(webhook: &Webhook, status: &WebhookStatus) -> bool {
    webhook.status.as_ref() == Some(status)
}

fn is_ready(status: &WebhookStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|condition| condition.type_ == conditions::READY && condition.status == "True")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::test_support::{invoices, settings, signing_keys};

    fn now() -> Time {
        Time(Timestamp::from_second(1_796_040_000).expect("a time"))
    }

    fn condition<'s>(status: &'s WebhookStatus, kind: &str) -> (&'s str, &'s str) {
        let found = status
            .conditions
            .iter()
            .find(|c| c.type_ == kind)
            .unwrap_or_else(|| panic!("no {kind} condition"));
        (found.status.as_str(), found.reason.as_str())
    }

    #[test]
    fn a_refused_webhook_is_not_ready_and_keeps_what_it_had() {
        let webhook = invoices();
        let parts = refused_parts(&Refusal {
            part: SECRET_READY,
            reason: "SecretInvalid",
            message: "key \"k\" of Secret \"s\" is not usable".into(),
            withdraw: false,
        });
        let report = status(&webhook, &settings(), "id-1", &parts, None, now());
        assert_eq!(condition(&report, "Ready"), ("False", "SecretInvalid"));
        assert_eq!(
            condition(&report, "SecretReady"),
            ("False", "SecretInvalid")
        );
        assert_eq!(
            condition(&report, "Registered"),
            ("False", "WaitingForSecret")
        );
        assert_eq!(report.observed_generation, Some(3));
        assert_eq!(
            (report.emitter_replicas, report.emitter_ready_replicas),
            (1, 1),
            "the recorded replicas stay"
        );
    }

    #[test]
    fn a_served_webhook_reports_its_parts_replicas_and_rotation() {
        let webhook = invoices();
        let replicas = EmitterReplicas {
            desired: 2,
            ready: 1,
        };
        let keys = SigningKeys {
            rotation_generation: 4,
            rotated_at: Some(Utc.with_ymd_and_hms(2026, 11, 30, 11, 0, 0).unwrap()),
            ..signing_keys("whsec_x")
        };
        let parts = served_parts("invoices-signing", Ok(()), replicas, true);
        let served = Served {
            replicas,
            keys: &keys,
        };
        let report = status(&webhook, &settings(), "id-1", &parts, Some(served), now());
        assert_eq!(condition(&report, "SecretReady"), ("True", "SecretApplied"));
        assert_eq!(condition(&report, "Registered"), ("True", "Published"));
        assert_eq!(condition(&report, "EmitterAvailable").0, "False", "1 of 2");
        assert_eq!(report.emitter_replicas_text.as_deref(), Some("1/2"));
        assert_eq!(report.secret_rotation_generation, 4);
        assert_eq!(
            report.last_secret_rotation.as_deref(),
            Some("2026-11-30T11:00:00+00:00")
        );
        assert_eq!(
            report.endpoint.as_deref(),
            Some("http://127.0.0.1:18080/webhooks/id-1")
        );
        let unpublished = served_parts(
            "invoices-signing",
            Err("the broker is down".into()),
            replicas,
            true,
        );
        let report = status(
            &webhook,
            &settings(),
            "id-1",
            &unpublished,
            Some(served),
            now(),
        );
        assert_eq!(
            condition(&report, "Registered"),
            ("False", "RegistryUnavailable")
        );
        assert_eq!(condition(&report, "Ready").0, "False");
    }

    #[test]
    fn a_second_reconcile_that_changes_nothing_writes_no_status() {
        let mut webhook = invoices();
        let keys = signing_keys("whsec_x");
        let replicas = EmitterReplicas {
            desired: 1,
            ready: 1,
        };
        let parts = served_parts("invoices-signing", Ok(()), replicas, true);
        let served = Served {
            replicas,
            keys: &keys,
        };
        let first = status(&webhook, &settings(), "id-1", &parts, Some(served), now());
        assert!(
            !is_unchanged(&webhook, &first),
            "the first report is written"
        );
        webhook.status = Some(first);
        let later = Time(Timestamp::from_second(1_796_043_600).expect("a time"));
        let second = status(
            &webhook,
            &settings(),
            "id-1",
            &parts,
            Some(served),
            later.clone(),
        );
        assert!(
            is_unchanged(&webhook, &second),
            "an hour later with nothing changed, the same status (its transition times kept)"
        );
        let fewer = EmitterReplicas {
            desired: 1,
            ready: 0,
        };
        let parts = served_parts("invoices-signing", Ok(()), fewer, true);
        let served = Served {
            replicas: fewer,
            keys: &keys,
        };
        let third = status(&webhook, &settings(), "id-1", &parts, Some(served), later);
        assert!(!is_unchanged(&webhook, &third), "a lost replica is written");
    }

    #[test]
    fn a_name_conflict_is_the_reason_webhook_is_not_ready() {
        let parts = refused_parts(&Refusal {
            part: EMITTER_AVAILABLE,
            reason: "NameConflict",
            message: "Deployment \"invoices-emitter\" already exists".into(),
            withdraw: false,
        });
        let report = status(&invoices(), &settings(), "id-1", &parts, None, now());
        assert_eq!(condition(&report, "Ready"), ("False", "NameConflict"));
        assert_eq!(
            condition(&report, "EmitterAvailable"),
            ("False", "NameConflict")
        );
        assert_eq!(condition(&report, "SecretReady"), ("False", "NotApplied"));
        assert_eq!(
            report
                .conditions
                .iter()
                .filter(|c| c.type_ == "Ready")
                .count(),
            1
        );
    }
}
