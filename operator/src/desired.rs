//! Pure builders of what a Webhook should have: its signing keys, the Secret holding
//! them, the emitter Deployment and the registry entry (the emitter's NetworkPolicy is
//! built in `egress`). No I/O: the reconciler reads the world, calls these, and applies
//! the result.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use hookline_core::ids::WebhookId;
use hookline_core::registry::{RateLimit, RegistryEntry, RegistrySecret};
use hookline_core::retry::{BackoffPolicy, DeliveryPolicy};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use thiserror::Error;

use hookline_api::emitter::{env as emitter_env, secret as secret_keys};
use hookline_api::webhook::{Webhook, WebhookSpec};

use crate::limits::Limits;

/// Settings of the operator that shape every Webhook's objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The emitter's container image.
    pub emitter_image: String,
    /// Base URL senders outside the cluster use (the Ingress), e.g. `https://hooks.example.com`.
    pub public_base_url: String,
    /// Base URL of the handler Service inside the cluster, the emitter's default target.
    pub in_cluster_handler_url: String,
    /// What the cluster's admin lets a Webhook ask for.
    pub limits: Limits,
    /// Write a NetworkPolicy beside each emitter Deployment restricting its egress to
    /// DNS and its target's port (`egress`).
    pub emitter_network_policy: bool,
    /// The port the handler's pods listen on behind `in_cluster_handler_url`'s Service:
    /// policy engines see Service traffic at the pod's port, not the Service's.
    pub handler_pod_port: u16,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DesiredError {
    #[error("the Webhook has no {0} yet (it was not read from the API server)")]
    MissingMetadata(&'static str),
}

pub const MANAGED_BY: &str = "hookline-operator";
/// Data keys of the signing Secret; the emitter reads the files of the same names.
/// Annotations of the signing Secret recording which rotation the keys answer.
pub const ROTATION_GENERATION_ANNOTATION: &str = "hookline.io/rotation-generation";
pub const ROTATED_AT_ANNOTATION: &str = "hookline.io/rotated-at";
/// Where the emitter mounts the signing Secret.
pub const SECRET_MOUNT_PATH: &str = "/var/run/hookline/signing";
const OPS_PORT: i32 = 9090;

/// The id senders use in `POST /webhooks/{id}`: the resource's uid, unique for its life.
pub fn webhook_id(webhook: &Webhook) -> Result<WebhookId, DesiredError> {
    webhook
        .metadata
        .uid
        .as_deref()
        .map(WebhookId::from)
        .ok_or(DesiredError::MissingMetadata("uid"))
}

pub fn signing_secret_name(webhook: &Webhook) -> String {
    format!("{}-signing", webhook.name_any())
}

pub fn emitter_name(webhook: &Webhook) -> String {
    format!("{}-emitter", webhook.name_any())
}

pub fn endpoint(settings: &Settings, id: &str) -> String {
    format!(
        "{}/webhooks/{id}",
        settings.public_base_url.trim_end_matches('/')
    )
}

/// Where the emitter delivers: the spec's URL, else this webhook's in-cluster endpoint.
pub fn target_url(spec: &WebhookSpec, settings: &Settings, id: &str) -> String {
    spec.url.clone().unwrap_or_else(|| {
        format!(
            "{}/webhooks/{id}",
            settings.in_cluster_handler_url.trim_end_matches('/')
        )
    })
}

/// Whether the emitter may connect to private addresses: always for the default target
/// (the in-cluster handler is private by nature), otherwise only when the Webhook asks
/// and the admin's limits let it.
pub fn allows_private_targets(spec: &WebhookSpec, settings: &Settings) -> bool {
    spec.url.is_none()
        || (spec.emitter.allow_private_targets && settings.limits.allow_private_targets)
}

/// The emitter replicas the Deployment should run. Suspension does not stop the
/// emitter: it stands for an outside sender, which learns of it from the refusals.
pub fn emitter_replicas(spec: &WebhookSpec) -> i32 {
    if spec.emitter.enabled {
        spec.emitter.replicas
    } else {
        0
    }
}

/// The labels every child carries; the emitter's pods are selected by them.
pub fn labels(webhook: &Webhook) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "hookline-emitter".into()),
        ("app.kubernetes.io/instance".into(), webhook.name_any()),
        ("app.kubernetes.io/component".into(), "emitter".into()),
        ("app.kubernetes.io/part-of".into(), "hookline".into()),
        ("app.kubernetes.io/managed-by".into(), MANAGED_BY.into()),
        ("hookline.io/webhook".into(), webhook.name_any()),
    ])
}

/// The label selector of the emitter's pods, as the scale subresource reports it.
pub fn selector_string(webhook: &Webhook) -> String {
    format!(
        "app.kubernetes.io/component=emitter,hookline.io/webhook={}",
        webhook.name_any()
    )
}

pub(crate) fn selector_labels(webhook: &Webhook) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/component".into(), "emitter".into()),
        ("hookline.io/webhook".into(), webhook.name_any()),
    ])
}

fn owner_reference(webhook: &Webhook) -> Result<OwnerReference, DesiredError> {
    webhook
        .controller_owner_ref(&())
        .ok_or(DesiredError::MissingMetadata("uid"))
}

pub(crate) fn child_metadata(webhook: &Webhook, name: String) -> Result<ObjectMeta, DesiredError> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: webhook.namespace(),
        labels: Some(labels(webhook)),
        owner_references: Some(vec![owner_reference(webhook)?]),
        ..ObjectMeta::default()
    })
}

/// The signing secrets of one Webhook: the current one and, during a rotation's grace
/// period, the previous one with the moment it stops being accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeys {
    pub current: String,
    pub previous: Option<(String, DateTime<Utc>)>,
    /// The `spec.secretRotation.generation` the current secret answers.
    pub rotation_generation: i64,
    pub rotated_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field(
                "previous_expires_at",
                &self.previous.as_ref().map(|(_, at)| at),
            )
            .field("rotation_generation", &self.rotation_generation)
            .field("rotated_at", &self.rotated_at)
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Reads the keys back from the signing Secret the operator wrote; `None` when the
    /// Secret has no current key.
    pub fn from_secret(secret: &Secret) -> Option<Self> {
        let data = secret.data.as_ref()?;
        let text = |key: &str| {
            data.get(key)
                .and_then(|value| String::from_utf8(value.0.clone()).ok())
                .filter(|value| !value.is_empty())
        };
        let annotations = secret.metadata.annotations.as_ref();
        let annotation = |key: &str| annotations.and_then(|a| a.get(key));
        let previous = match (
            text(secret_keys::PREVIOUS),
            text(secret_keys::PREVIOUS_EXPIRES_AT),
        ) {
            (Some(value), Some(at)) => DateTime::parse_from_rfc3339(&at)
                .ok()
                .map(|at| (value, at.with_timezone(&Utc))),
            _ => None,
        };
        Some(Self {
            current: text(secret_keys::CURRENT)?,
            previous,
            rotation_generation: annotation(ROTATION_GENERATION_ANNOTATION)
                .and_then(|g| g.parse().ok())
                .unwrap_or(0),
            rotated_at: annotation(ROTATED_AT_ANNOTATION)
                .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                .map(|at| at.with_timezone(&Utc)),
        })
    }

    /// Recovers the keys from the last registry entry published, for when the signing
    /// Secret was deleted by hand: senders keep their secret instead of being cut off.
    pub fn from_registry_entry(entry: &RegistryEntry, rotation_generation: i64) -> Option<Self> {
        let mut secrets = entry.secrets.iter();
        let current = secrets.next()?;
        Some(Self {
            current: current.value.clone(),
            previous: secrets
                .next()
                .and_then(|s| s.expires_at.map(|at| (s.value.clone(), at))),
            rotation_generation,
            rotated_at: None,
        })
    }

    /// When the operator must look again to drop the previous secret.
    pub fn previous_expires_at(&self) -> Option<DateTime<Utc>> {
        self.previous.as_ref().map(|(_, at)| *at)
    }
}

/// Decides the signing keys from the spec, what the operator stored before, the value of
/// the referenced Secret (when `secretRef` is set) and the time.
///
/// - `secretRef` set: the referenced value is current; when it changes, the old value
///   stays accepted for the grace period.
/// - generated: a fresh secret on first sight and whenever `secretRotation.generation`
///   rises; the old one stays accepted for the grace period.
/// - a previous secret past its expiry is dropped.
pub fn next_signing_keys(
    spec: &WebhookSpec,
    stored: Option<SigningKeys>,
    referenced: Option<&str>,
    now: DateTime<Utc>,
    generate: impl FnOnce() -> String,
) -> SigningKeys {
    let grace = Duration::seconds(spec.secret_rotation.grace_period_seconds.max(0));
    let wanted_generation = spec.secret_rotation.generation;
    let mut keys = match stored {
        None => SigningKeys {
            current: referenced.map_or_else(generate, str::to_owned),
            previous: None,
            rotation_generation: wanted_generation,
            rotated_at: None,
        },
        Some(stored) => {
            let replacement = match referenced {
                Some(value) if value != stored.current => Some(value.to_owned()),
                Some(_) => None,
                None if wanted_generation > stored.rotation_generation => Some(generate()),
                None => None,
            };
            match replacement {
                Some(current) => SigningKeys {
                    previous: (!grace.is_zero()).then(|| (stored.current, now + grace)),
                    current,
                    rotation_generation: wanted_generation,
                    rotated_at: Some(now),
                },
                None => SigningKeys {
                    rotation_generation: wanted_generation.max(stored.rotation_generation),
                    ..stored
                },
            }
        }
    };
    if keys.previous.as_ref().is_some_and(|(_, at)| *at <= now) {
        keys.previous = None;
    }
    keys
}

/// The signing Secret the emitter mounts and the operator reads back.
pub fn signing_secret(webhook: &Webhook, keys: &SigningKeys) -> Result<Secret, DesiredError> {
    let mut data = BTreeMap::from([(
        secret_keys::CURRENT.to_owned(),
        ByteString(keys.current.clone().into_bytes()),
    )]);
    if let Some((previous, expires_at)) = &keys.previous {
        data.insert(
            secret_keys::PREVIOUS.into(),
            ByteString(previous.clone().into_bytes()),
        );
        data.insert(
            secret_keys::PREVIOUS_EXPIRES_AT.into(),
            ByteString(expires_at.to_rfc3339().into_bytes()),
        );
    }
    let mut annotations = BTreeMap::from([(
        ROTATION_GENERATION_ANNOTATION.to_owned(),
        keys.rotation_generation.to_string(),
    )]);
    if let Some(at) = keys.rotated_at {
        annotations.insert(ROTATED_AT_ANNOTATION.into(), at.to_rfc3339());
    }
    let mut metadata = child_metadata(webhook, signing_secret_name(webhook))?;
    metadata.annotations = Some(annotations);
    Ok(Secret {
        metadata,
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Secret::default()
    })
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("ops".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    }
}

/// The emitter Deployment: one simulated event source for this Webhook, configured
/// through the environment variables `hookline-emitter --help` documents.
pub fn emitter_deployment(
    webhook: &Webhook,
    settings: &Settings,
    id: &str,
) -> Result<Deployment, DesiredError> {
    Ok(Deployment {
        metadata: child_metadata(webhook, emitter_name(webhook))?,
        spec: Some(DeploymentSpec {
            replicas: Some(emitter_replicas(&webhook.spec)),
            selector: LabelSelector {
                match_labels: Some(selector_labels(webhook)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(webhook)),
                    annotations: Some(BTreeMap::from([
                        ("prometheus.io/scrape".into(), "true".into()),
                        ("prometheus.io/port".into(), OPS_PORT.to_string()),
                    ])),
                    ..ObjectMeta::default()
                }),
                spec: Some(emitter_pod(
                    webhook,
                    emitter_container(webhook, settings, id),
                )),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

/// The emitter's pod: `container` as a non-root user without the API server's token,
/// the signing Secret as its volume.
fn emitter_pod(webhook: &Webhook, container: Container) -> PodSpec {
    PodSpec {
        containers: vec![container],
        automount_service_account_token: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65_532),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        volumes: Some(vec![Volume {
            name: "signing".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(signing_secret_name(webhook)),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        }]),
        ..PodSpec::default()
    }
}

/// The emitter's container: its configuration, the signing Secret mounted read-only,
/// probes on its ops port, small resources and no privileges.
fn emitter_container(webhook: &Webhook, settings: &Settings, id: &str) -> Container {
    Container {
        name: "emitter".into(),
        image: Some(settings.emitter_image.clone()),
        env: Some(emitter_env(&webhook.spec, settings, id)),
        ports: Some(vec![ContainerPort {
            name: Some("ops".into()),
            container_port: OPS_PORT,
            ..ContainerPort::default()
        }]),
        volume_mounts: Some(vec![VolumeMount {
            name: "signing".into(),
            mount_path: SECRET_MOUNT_PATH.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        liveness_probe: Some(http_probe("/healthz")),
        readiness_probe: Some(http_probe("/readyz")),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity("10m".into())),
                ("memory".into(), Quantity("32Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".into(),
                Quantity("128Mi".into()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// The emitter's configuration, one variable per flag (`hookline_api::emitter::env`).
fn emitter_env(spec: &WebhookSpec, settings: &Settings, id: &str) -> Vec<EnvVar> {
    let delivery = delivery_policy(spec);
    vec![
        env(emitter_env::WEBHOOK_ID, id),
        env(emitter_env::TARGET_URL, target_url(spec, settings, id)),
        env(
            emitter_env::ALLOW_PRIVATE_TARGETS,
            allows_private_targets(spec, settings).to_string(),
        ),
        env(emitter_env::SECRET_DIR, SECRET_MOUNT_PATH),
        env(emitter_env::SCHEME, spec.scheme.as_str()),
        env(
            emitter_env::RATE_PER_SECOND,
            spec.emitter.rate_per_second.to_string(),
        ),
        env(emitter_env::EVENT_TYPES, spec.emitter.event_types.join(",")),
        env(emitter_env::DELIVERY_RETRIES, delivery.retries.to_string()),
        env(
            emitter_env::DELIVERY_BACKOFF_POLICY,
            match delivery.backoff_policy {
                BackoffPolicy::Linear => "linear",
                BackoffPolicy::Exponential => "exponential",
            },
        ),
        env(
            emitter_env::DELIVERY_BACKOFF_DELAY_MS,
            delivery.backoff_delay_ms.to_string(),
        ),
        env(
            emitter_env::DELIVERY_MAX_BACKOFF_DELAY_MS,
            delivery.max_backoff_delay_ms.to_string(),
        ),
        env(emitter_env::LOG_FORMAT, "json"),
        env(emitter_env::OPS_ADDR, format!("0.0.0.0:{OPS_PORT}")),
    ]
}

/// The spec's delivery policy in core's terms (the CRD's bounds make every value valid).
pub fn delivery_policy(spec: &WebhookSpec) -> DeliveryPolicy {
    let d = &spec.delivery;
    DeliveryPolicy {
        retries: u32::try_from(d.retry).unwrap_or(0),
        backoff_policy: d.backoff_policy,
        backoff_delay_ms: u64::try_from(d.backoff_delay_ms).unwrap_or(1),
        max_backoff_delay_ms: u64::try_from(d.max_backoff_delay_ms).unwrap_or(1),
        dead_letter: d.dead_letter,
    }
}

/// What the handler and consumer learn about this Webhook.
pub fn registry_entry(
    webhook: &Webhook,
    settings: &Settings,
    id: &WebhookId,
    keys: &SigningKeys,
    now: DateTime<Utc>,
) -> RegistryEntry {
    let spec = &webhook.spec;
    let mut secrets = vec![RegistrySecret {
        value: keys.current.clone(),
        expires_at: None,
    }];
    if let Some((value, expires_at)) = &keys.previous {
        secrets.push(RegistrySecret {
            value: value.clone(),
            expires_at: Some(*expires_at),
        });
    }
    RegistryEntry {
        webhook_id: id.clone(),
        namespace: webhook.namespace().unwrap_or_default(),
        name: webhook.name_any(),
        customer_id: spec.customer_id.clone(),
        url: target_url(spec, settings, id),
        scheme: spec.scheme,
        secrets,
        suspended: spec.suspended,
        rate_limit: RateLimit {
            requests_per_second: u32::try_from(spec.rate_limit.requests_per_second).unwrap_or(1),
            burst: u32::try_from(spec.rate_limit.burst).unwrap_or(1),
        },
        delivery: delivery_policy(spec),
        allowed_source_ranges: spec.allowed_source_ranges.clone(),
        generation: webhook.metadata.generation.unwrap_or(0),
        updated_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use hookline_api::webhook::SecretKeyRef;
    use hookline_core::signature::Scheme;

    use crate::test_support::{settings, spec, webhook};

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, hour, 0, 0).unwrap()
    }

    fn env_value(deployment: &Deployment, name: &str) -> Option<String> {
        let pod = deployment.spec.as_ref()?.template.spec.as_ref()?;
        pod.containers[0]
            .env
            .as_ref()?
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    }

    #[test]
    fn defaults_follow_the_prototype() {
        let s = spec();
        assert_eq!(s.scheme, Scheme::Standard);
        assert_eq!(s.emitter.rate_per_second, 0.2);
        assert_eq!(
            s.emitter.event_types,
            ["CREATED", "PENDING", "PAID", "FAILED"]
        );
        assert_eq!(s.delivery.retry, 3);
        assert!(s.emitter.enabled && !s.suspended);
    }

    #[test]
    fn emitter_runs_when_enabled_even_while_suspended() {
        let mut s = spec();
        s.emitter.replicas = 3;
        assert_eq!(emitter_replicas(&s), 3);
        s.suspended = true;
        assert_eq!(
            emitter_replicas(&s),
            3,
            "the sender keeps sending and sees refusals"
        );
        s.emitter.enabled = false;
        assert_eq!(emitter_replicas(&s), 0);
    }

    #[test]
    fn first_sight_generates_a_secret_or_takes_the_referenced_one() {
        let generated = next_signing_keys(&spec(), None, None, at(1), || "whsec_new".into());
        assert_eq!(generated.current, "whsec_new");
        assert!(generated.previous.is_none() && generated.rotated_at.is_none());

        let mut s = spec();
        s.secret_ref = Some(SecretKeyRef {
            name: "mine".into(),
            key: "token".into(),
        });
        let referenced = next_signing_keys(&s, None, Some("from-ref"), at(1), || {
            unreachable!("a referenced secret is not generated")
        });
        assert_eq!(referenced.current, "from-ref");
    }

    #[test]
    fn rotation_keeps_the_old_secret_for_the_grace_period_then_drops_it() {
        let mut s = spec();
        s.secret_rotation.grace_period_seconds = 3_600;
        let first = next_signing_keys(&s, None, None, at(1), || "whsec_one".into());

        let unchanged = next_signing_keys(&s, Some(first.clone()), None, at(2), || {
            unreachable!("no rotation asked")
        });
        assert_eq!(unchanged, first);

        s.secret_rotation.generation = 1;
        let rotated = next_signing_keys(&s, Some(first), None, at(2), || "whsec_two".into());
        assert_eq!(rotated.current, "whsec_two");
        assert_eq!(rotated.previous, Some(("whsec_one".into(), at(3))));
        assert_eq!(rotated.rotation_generation, 1);
        assert_eq!(rotated.rotated_at, Some(at(2)));

        let during = next_signing_keys(&s, Some(rotated.clone()), None, at(2), || unreachable!());
        assert_eq!(during.previous, rotated.previous);
        let after = next_signing_keys(&s, Some(rotated), None, at(3), || unreachable!());
        assert_eq!(after.current, "whsec_two");
        assert!(after.previous.is_none(), "expired at its deadline");
    }

    #[test]
    fn a_changed_referenced_secret_rotates_with_grace_and_zero_grace_drops_at_once() {
        let mut s = spec();
        s.secret_ref = Some(SecretKeyRef {
            name: "mine".into(),
            key: "token".into(),
        });
        let first = next_signing_keys(&s, None, Some("v1"), at(1), || unreachable!());
        let changed = next_signing_keys(
            &s,
            Some(first.clone()),
            Some("v2"),
            at(1),
            || unreachable!(),
        );
        assert_eq!(changed.current, "v2");
        assert_eq!(
            changed.previous.as_ref().map(|(v, _)| v.as_str()),
            Some("v1")
        );

        s.secret_rotation.grace_period_seconds = 0;
        let no_grace = next_signing_keys(&s, Some(first), Some("v2"), at(1), || unreachable!());
        assert!(no_grace.previous.is_none());
    }

    #[test]
    fn signing_secret_round_trips_and_is_owned_by_the_webhook() {
        let w = webhook(spec());
        let keys = SigningKeys {
            current: "whsec_two".into(),
            previous: Some(("whsec_one".into(), at(3))),
            rotation_generation: 2,
            rotated_at: Some(at(2)),
        };
        let secret = signing_secret(&w, &keys).expect("secret");
        assert_eq!(secret.metadata.name.as_deref(), Some("invoices-signing"));
        let owner = &secret.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.uid, "7f6c-uid");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(SigningKeys::from_secret(&secret), Some(keys));
        assert!(!format!("{:?}", SigningKeys::from_secret(&secret)).contains("whsec_"));
    }

    #[test]
    fn emitter_deployment_carries_the_spec() {
        let mut s = spec();
        s.emitter.replicas = 2;
        s.scheme = Scheme::LegacyHex;
        let w = webhook(s);
        let d = emitter_deployment(&w, &settings(), "7f6c-uid").expect("deployment");
        assert_eq!(d.metadata.name.as_deref(), Some("invoices-emitter"));
        assert_eq!(d.spec.as_ref().unwrap().replicas, Some(2));
        assert_eq!(
            env_value(&d, emitter_env::WEBHOOK_ID).as_deref(),
            Some("7f6c-uid")
        );
        assert_eq!(
            env_value(&d, emitter_env::TARGET_URL).as_deref(),
            Some("http://hookline-handler.hookline.svc:8080/webhooks/7f6c-uid")
        );
        assert_eq!(
            env_value(&d, emitter_env::SCHEME).as_deref(),
            Some("legacy-hex")
        );
        assert_eq!(
            env_value(&d, emitter_env::EVENT_TYPES).as_deref(),
            Some("CREATED,PENDING,PAID,FAILED")
        );
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let security = pod.containers[0].security_context.as_ref().unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.run_as_non_root, Some(true));
        let selector = d
            .spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap();
        let pod_labels = d
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert!(
            selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
            "selector matches the pods"
        );
    }

    #[test]
    fn private_targets_are_allowed_for_the_default_target_or_when_asked_and_allowed() {
        let allowed = |s: &WebhookSpec, settings: &Settings| {
            let d =
                emitter_deployment(&webhook(s.clone()), settings, "7f6c-uid").expect("deployment");
            env_value(&d, emitter_env::ALLOW_PRIVATE_TARGETS)
        };
        let mut s = spec();
        assert_eq!(
            allowed(&s, &settings()).as_deref(),
            Some("true"),
            "the in-cluster handler is private by nature"
        );
        s.url = Some("http://10.0.0.7/in".into());
        assert_eq!(
            allowed(&s, &settings()).as_deref(),
            Some("false"),
            "an explicit URL must opt in"
        );
        s.emitter.allow_private_targets = true;
        assert_eq!(
            allowed(&s, &settings()).as_deref(),
            Some("false"),
            "the Webhook alone cannot turn the guard off"
        );
        let permissive = Settings {
            limits: Limits {
                allow_private_targets: true,
                ..Limits::default()
            },
            ..settings()
        };
        assert_eq!(allowed(&s, &permissive).as_deref(), Some("true"));
        s.emitter.allow_private_targets = false;
        assert_eq!(
            allowed(&s, &permissive).as_deref(),
            Some("false"),
            "the admin allows, the Webhook did not ask"
        );
    }

    #[test]
    fn registry_entry_lists_current_then_previous_secret() {
        let mut s = spec();
        s.url = Some("https://receiver.example.com/in".into());
        let w = webhook(s);
        let keys = SigningKeys {
            current: "whsec_two".into(),
            previous: Some(("whsec_one".into(), at(3))),
            rotation_generation: 1,
            rotated_at: Some(at(2)),
        };
        let entry = registry_entry(&w, &settings(), &"7f6c-uid".into(), &keys, at(2));
        let values: Vec<_> = entry.secrets.iter().map(|s| s.value.as_str()).collect();
        assert_eq!(values, ["whsec_two", "whsec_one"]);
        assert_eq!(entry.secrets[1].expires_at, Some(at(3)));
        assert_eq!(entry.url, "https://receiver.example.com/in");
        assert_eq!(entry.scheme, Scheme::Standard);
        assert_eq!(entry.generation, 4);
        assert_eq!(entry.namespace, "shop");
        let behind_an_ingress = Settings {
            public_base_url: "https://hooks.example.com/".into(),
            ..settings()
        };
        assert_eq!(
            endpoint(&behind_an_ingress, "7f6c-uid"),
            "https://hooks.example.com/webhooks/7f6c-uid"
        );
    }

    #[test]
    fn keys_come_back_from_a_published_registry_entry() {
        let keys = SigningKeys {
            current: "whsec_two".into(),
            previous: Some(("whsec_one".into(), at(3))),
            rotation_generation: 1,
            rotated_at: None,
        };
        let entry = registry_entry(&webhook(spec()), &settings(), &"id".into(), &keys, at(2));
        assert_eq!(SigningKeys::from_registry_entry(&entry, 1), Some(keys));
    }

    #[test]
    fn a_webhook_not_read_from_the_server_is_refused() {
        let w = Webhook::new("x", spec());
        assert_eq!(webhook_id(&w), Err(DesiredError::MissingMetadata("uid")));
        assert!(
            signing_secret(
                &w,
                &next_signing_keys(&spec(), None, None, at(1), || "s".into())
            )
            .is_err()
        );
    }
}
