//! Stages 2 and 3, validate and build: from a Webhook and what was observed, either
//! why it cannot be served yet (a condition to report) or everything it should be.
//! Pure, so every decision is unit tested from recorded objects without a server.

use chrono::{DateTime, Utc};
use hookline_api::webhook::Webhook;
use hookline_core::ids::WebhookId;
use hookline_core::registry::RegistryEntry;
use hookline_core::signature::SigningSecret;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::observe::{Children, Observed, Occupant, Referenced};
use crate::conditions::{EMITTER_AVAILABLE, READY, SECRET_READY};
use crate::desired::{self, DesiredError, Settings, SigningKeys};
use crate::egress;

/// What a reconcile decided.
#[derive(Debug)]
pub enum Decision {
    /// Apply all of it.
    Serve(Box<Plan>),
    /// Apply nothing, report why (a condition and a Warning Event).
    Refuse(Refusal),
}

/// Everything a served Webhook should be.
#[derive(Debug)]
pub struct Plan {
    pub keys: SigningKeys,
    /// The current secret changed (a rotation or a new referenced value).
    pub rotated: bool,
    pub signing_secret: Secret,
    pub emitter: Deployment,
    /// The emitter's egress policy; `None` when the operator is told to write none.
    pub emitter_network_policy: Option<NetworkPolicy>,
    /// A policy this Webhook owns that the operator no longer wants (told to write none).
    pub delete_emitter_network_policy: bool,
    pub registry_entry: RegistryEntry,
    pub desired_replicas: i32,
}

/// Why a Webhook cannot be served, as its condition says it. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The condition that is not met because of it (`Ready` when no part is to blame).
    pub part: &'static str,
    pub reason: &'static str,
    pub message: String,
    /// What was served before must stop: the registry entry is removed and the emitter
    /// scaled to zero (a Secret whose owner took back the loan). Otherwise a Webhook
    /// registered before keeps its last good state.
    pub withdraw: bool,
}

impl Refusal {
    fn new(part: &'static str, reason: &'static str, message: String) -> Self {
        Self {
            part,
            reason,
            message,
            withdraw: false,
        }
    }
}

/// The first child name held by an object this Webhook does not control.
fn name_conflict(webhook: &Webhook, children: &Children, settings: &Settings) -> Option<Refusal> {
    let emitter = desired::emitter_name(webhook);
    let taken = [
        (
            children.signing_secret,
            SECRET_READY,
            "Secret",
            desired::signing_secret_name(webhook),
        ),
        (
            children.emitter,
            EMITTER_AVAILABLE,
            "Deployment",
            emitter.clone(),
        ),
        (
            if settings.emitter_network_policy {
                children.emitter_network_policy
            } else {
                Occupant::Absent
            },
            EMITTER_AVAILABLE,
            "NetworkPolicy",
            emitter,
        ),
    ];
    taken
        .into_iter()
        .find(|(occupant, ..)| *occupant == Occupant::Foreign)
        .map(|(_, part, kind, name)| {
            Refusal::new(
                part,
                "NameConflict",
                format!(
                    "{kind} {name:?} already exists and is not controlled by this Webhook: it is left as it is; rename the Webhook, or remove that {kind}"
                ),
            )
        })
}

/// Validates what was observed, then builds everything the Webhook should be at `now`;
/// `generate` makes a new secret when one is needed.
pub fn plan(
    webhook: &Webhook,
    observed: &Observed,
    settings: &Settings,
    id: &WebhookId,
    now: DateTime<Utc>,
    generate: impl FnOnce() -> String,
) -> Result<Decision, DesiredError> {
    match validate(webhook, observed, settings) {
        Ok(referenced) => build(webhook, observed, settings, id, now, referenced, generate)
            .map(|plan| Decision::Serve(Box::new(plan))),
        Err(refusal) => Ok(Decision::Refuse(refusal)),
    }
}

/// Stage 2: why the Webhook cannot be served, or the referenced secret it is served
/// with (`None` when it has no `secretRef`).
fn validate<'o>(
    webhook: &Webhook,
    observed: &'o Observed,
    settings: &Settings,
) -> Result<Option<&'o str>, Refusal> {
    if let Some(conflict) = name_conflict(webhook, &observed.children, settings) {
        return Err(conflict);
    }
    let exceeded = settings.limits.exceeded(&webhook.spec);
    if !exceeded.is_empty() {
        return Err(Refusal::new(READY, "LimitExceeded", exceeded.join("; ")));
    }
    referenced_secret(webhook, &observed.referenced)
}

/// The value of the Secret `secretRef` names, when it is lent and usable for the
/// Webhook's scheme.
fn referenced_secret<'o>(
    webhook: &Webhook,
    referenced: &'o Referenced,
) -> Result<Option<&'o str>, Refusal> {
    match referenced {
        Referenced::NotUsed => Ok(None),
        Referenced::Missing { name, key } => Err(Refusal::new(
            SECRET_READY,
            "SecretNotFound",
            format!(
                "Secret {name:?} has no non-empty key {key:?}: create it or fix spec.secretRef"
            ),
        )),
        Referenced::NotLent { name } => Err(Refusal {
            withdraw: true,
            ..Refusal::new(
                SECRET_READY,
                "SecretNotLent",
                format!(
                    "Secret {name:?} is not lent to Webhooks: whoever owns it may label it {}=true",
                    hookline_api::webhook::LENT_SECRET_LABEL
                ),
            )
        }),
        Referenced::Found { name, key, value } => {
            let scheme = webhook.spec.scheme;
            match SigningSecret::parse(scheme, value) {
                Ok(_) => Ok(Some(value.as_str())),
                Err(err) => Err(Refusal::new(
                    SECRET_READY,
                    "SecretInvalid",
                    format!(
                        "key {key:?} of Secret {name:?} is not a usable {scheme} secret: {err}"
                    ),
                )),
            }
        }
    }
}

/// Stage 3: everything a valid Webhook should be, its secret `referenced` or generated.
fn build(
    webhook: &Webhook,
    observed: &Observed,
    settings: &Settings,
    id: &WebhookId,
    now: DateTime<Utc>,
    referenced: Option<&str>,
    generate: impl FnOnce() -> String,
) -> Result<Plan, DesiredError> {
    let keys = desired::next_signing_keys(
        &webhook.spec,
        observed.stored_keys.clone(),
        referenced,
        now,
        generate,
    );
    let rotated = observed
        .stored_keys
        .as_ref()
        .is_some_and(|stored| stored.current != keys.current);
    Ok(Plan {
        rotated,
        signing_secret: desired::signing_secret(webhook, &keys)?,
        emitter: desired::emitter_deployment(webhook, settings, id)?,
        emitter_network_policy: settings
            .emitter_network_policy
            .then(|| egress::emitter_network_policy(webhook, settings, id))
            .transpose()?,
        delete_emitter_network_policy: !settings.emitter_network_policy
            && observed.children.emitter_network_policy == Occupant::Owned,
        registry_entry: desired::registry_entry(webhook, settings, id, &keys, now),
        desired_replicas: desired::emitter_replicas(&webhook.spec),
        keys,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use hookline_core::signature::Scheme;

    use super::*;
    use crate::test_support::{
        from_stripe, invoices, settings, signing_keys, signing_secret,
        stripe_secret_with_trailing_newline,
    };

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
    }

    fn decide(webhook: &Webhook, observed: &Observed) -> Decision {
        let id = desired::webhook_id(webhook).expect("recorded objects have a uid");
        plan(webhook, observed, &settings(), &id, now(), || {
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()
        })
        .expect("builds")
    }

    /// A first reconcile: nothing stored, no `secretRef`, no children.
    fn nothing_observed() -> Observed {
        Observed {
            stored_keys: None,
            referenced: Referenced::NotUsed,
            children: Children::default(),
        }
    }

    fn served(decision: Decision) -> Plan {
        match decision {
            Decision::Serve(plan) => *plan,
            Decision::Refuse(refusal) => panic!("refused: {refusal:?}"),
        }
    }

    fn refused(decision: Decision) -> Refusal {
        match decision {
            Decision::Refuse(refusal) => refusal,
            Decision::Serve(plan) => panic!("served: {plan:?}"),
        }
    }

    #[test]
    fn a_new_webhook_gets_a_generated_secret_and_all_its_children() {
        let webhook = invoices();
        let plan = served(decide(&webhook, &nothing_observed()));
        assert_eq!(plan.keys.current, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert!(!plan.rotated, "a first secret is no rotation");
        assert_eq!(plan.desired_replicas, 2);
        assert_eq!(
            plan.registry_entry.webhook_id,
            "5f1d7c3e-2a44-4b9e-9c61-0d2b7f3e8a10"
        );
        assert_eq!(plan.registry_entry.scheme, Scheme::Standard);
        assert_eq!(
            plan.signing_secret.metadata.name.as_deref(),
            Some("invoices-signing")
        );
        assert_eq!(
            plan.emitter.metadata.namespace.as_deref(),
            Some("shop"),
            "children live beside their Webhook"
        );
        let policy = plan.emitter_network_policy.expect("an egress policy");
        assert_eq!(policy.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(policy.metadata.name, plan.emitter.metadata.name);
    }

    #[test]
    fn no_egress_policy_when_the_operator_is_told_to_write_none() {
        let webhook = invoices();
        let id = desired::webhook_id(&webhook).expect("uid");
        let settings = Settings {
            emitter_network_policy: false,
            ..settings()
        };
        let observed = nothing_observed();
        let plan = served(
            plan(&webhook, &observed, &settings, &id, now(), || {
                "whsec_x".into()
            })
            .expect("builds"),
        );
        assert!(plan.emitter_network_policy.is_none());
    }

    #[test]
    fn the_recorded_signing_secret_is_kept_until_the_rotation_generation_moves() {
        let stored = SigningKeys::from_secret(&signing_secret()).expect("recorded keys");
        let observed = Observed {
            stored_keys: Some(stored.clone()),
            ..nothing_observed()
        };
        let kept = served(decide(&invoices(), &observed));
        assert_eq!(kept.keys.current, stored.current);
        assert!(!kept.rotated);

        let mut rotate = invoices();
        rotate.spec.secret_rotation.generation = 1;
        let rotated = served(decide(&rotate, &observed));
        assert!(rotated.rotated);
        assert_eq!(rotated.keys.rotation_generation, 1);
        let (previous, expires) = rotated.keys.previous.clone().expect("previous kept");
        assert_eq!(previous, stored.current);
        assert_eq!(expires, now() + chrono::Duration::seconds(3600));
        assert_eq!(
            rotated.registry_entry.secrets.len(),
            2,
            "both are accepted during the grace period"
        );
    }

    #[test]
    fn a_missing_referenced_secret_is_refused_naming_it() {
        let webhook = from_stripe();
        let reference = webhook.spec.secret_ref.clone().expect("secretRef");
        let observed = Observed {
            referenced: Referenced::from_secret(&reference, None),
            ..nothing_observed()
        };
        let refusal = refused(decide(&webhook, &observed));
        assert_eq!(refusal.reason, "SecretNotFound");
        assert!(
            refusal.message.contains("\"stripe-endpoint\""),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn a_referenced_secret_with_a_trailing_newline_is_refused_without_showing_it() {
        let webhook = from_stripe();
        let reference = webhook.spec.secret_ref.clone().expect("secretRef");
        let recorded = stripe_secret_with_trailing_newline();
        let observed = Observed {
            referenced: Referenced::from_secret(&reference, Some(recorded)),
            ..nothing_observed()
        };
        let refusal = refused(decide(&webhook, &observed));
        assert_eq!(refusal.reason, "SecretInvalid");
        assert!(
            refusal.message.contains("whitespace"),
            "{}",
            refusal.message
        );
        assert!(
            !refusal.message.contains("stripe-key"),
            "{}",
            refusal.message
        );

        let fixed = Referenced::Found {
            name: "stripe-endpoint".into(),
            key: "secret".into(),
            value: "whsec_stripe-key".into(),
        };
        let plan = served(decide(
            &webhook,
            &Observed {
                referenced: fixed,
                ..nothing_observed()
            },
        ));
        assert_eq!(plan.keys.current, "whsec_stripe-key");
        assert_eq!(plan.desired_replicas, 0, "its emitter is off");
    }

    #[test]
    fn a_changed_referenced_value_rotates_with_grace() {
        let webhook = from_stripe();
        let stored = signing_keys("whsec_old");
        let observed = Observed {
            stored_keys: Some(stored),
            referenced: Referenced::Found {
                name: "stripe-endpoint".into(),
                key: "secret".into(),
                value: "whsec_new".into(),
            },
            children: Children::default(),
        };
        let plan = served(decide(&webhook, &observed));
        assert!(plan.rotated);
        assert_eq!(plan.keys.current, "whsec_new");
        assert_eq!(
            plan.keys.previous.as_ref().map(|(value, _)| value.as_str()),
            Some("whsec_old")
        );
    }

    #[test]
    fn an_object_of_someone_else_under_a_childs_name_refuses_naming_it() {
        let webhook = invoices();
        for (children, kind, part) in [
            (
                Children {
                    signing_secret: Occupant::Foreign,
                    ..Children::default()
                },
                "Secret \"invoices-signing\"",
                SECRET_READY,
            ),
            (
                Children {
                    emitter: Occupant::Foreign,
                    ..Children::default()
                },
                "Deployment \"invoices-emitter\"",
                EMITTER_AVAILABLE,
            ),
            (
                Children {
                    emitter_network_policy: Occupant::Foreign,
                    ..Children::default()
                },
                "NetworkPolicy \"invoices-emitter\"",
                EMITTER_AVAILABLE,
            ),
        ] {
            let refusal = refused(decide(
                &webhook,
                &Observed {
                    children,
                    ..nothing_observed()
                },
            ));
            assert_eq!(refusal.reason, "NameConflict");
            assert_eq!(refusal.part, part);
            assert!(refusal.message.starts_with(kind), "{}", refusal.message);
            assert!(!refusal.withdraw, "what was served before stays");
        }
        let owned = Children {
            signing_secret: Occupant::Owned,
            emitter: Occupant::Owned,
            emitter_network_policy: Occupant::Owned,
        };
        served(decide(
            &webhook,
            &Observed {
                children: owned,
                ..nothing_observed()
            },
        ));
    }

    #[test]
    fn a_policy_no_longer_wanted_is_deleted_only_when_owned_and_a_foreign_one_is_no_conflict() {
        let webhook = invoices();
        let id = desired::webhook_id(&webhook).expect("uid");
        let settings = Settings {
            emitter_network_policy: false,
            ..settings()
        };
        let decide_with = |policy| {
            served(
                plan(
                    &webhook,
                    &Observed {
                        children: Children {
                            emitter_network_policy: policy,
                            ..Children::default()
                        },
                        ..nothing_observed()
                    },
                    &settings,
                    &id,
                    now(),
                    || "whsec_x".into(),
                )
                .expect("builds"),
            )
        };
        assert!(decide_with(Occupant::Owned).delete_emitter_network_policy);
        assert!(!decide_with(Occupant::Foreign).delete_emitter_network_policy);
        assert!(!decide_with(Occupant::Absent).delete_emitter_network_policy);
    }

    #[test]
    fn a_webhook_over_the_admins_limits_is_refused_naming_each() {
        let mut webhook = invoices();
        webhook.spec.emitter.replicas = 50;
        webhook.spec.rate_limit.requests_per_second = 1_000_000;
        let refusal = refused(decide(&webhook, &nothing_observed()));
        assert_eq!(refusal.reason, "LimitExceeded");
        assert_eq!(refusal.part, READY);
        assert!(
            refusal.message.contains("spec.emitter.replicas is 50")
                && refusal
                    .message
                    .contains("spec.rateLimit.requestsPerSecond is 1000000"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn a_secret_not_lent_is_not_read_and_withdraws_the_webhook() {
        let webhook = from_stripe();
        let reference = webhook.spec.secret_ref.clone().expect("secretRef");
        let mut unlabelled = stripe_secret_with_trailing_newline();
        unlabelled.metadata.labels = None;
        let refusal = refused(decide(
            &webhook,
            &Observed {
                referenced: Referenced::from_secret(&reference, Some(unlabelled.clone())),
                ..nothing_observed()
            },
        ));
        assert_eq!(refusal.reason, "SecretNotLent");
        assert!(refusal.withdraw);
        assert!(
            refusal.message.contains("hookline.io/webhook-secret=true"),
            "{}",
            refusal.message
        );
        let mut wrong_value = unlabelled;
        wrong_value.metadata.labels =
            Some([("hookline.io/webhook-secret".to_owned(), "yes".to_owned())].into());
        assert_eq!(
            Referenced::from_secret(&reference, Some(wrong_value)),
            Referenced::NotLent {
                name: "stripe-endpoint".into()
            }
        );
    }
}
