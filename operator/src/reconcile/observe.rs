//! Stage 1, dereference: everything a reconcile reads before it decides, read once.

use hookline_api::webhook::{LENT_SECRET_LABEL, SecretKeyRef, Webhook};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource};

use super::{Context, Error};
use crate::desired::{self, SigningKeys};

/// What the world holds for one Webhook, as read at the start of a reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The signing keys the operator wrote before: from its signing Secret, else (the
    /// Secret deleted by hand) from the last registry entry it published.
    pub stored_keys: Option<SigningKeys>,
    pub referenced: Referenced,
    /// What stands under each name the Webhook's children take.
    pub children: Children,
}

/// Whether an object exists under a child's name, and whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Occupant {
    #[default]
    Absent,
    /// Controlled by this Webhook (a controller owner reference with its uid).
    Owned,
    /// Made by someone else, or controlled by another object: never written or deleted.
    Foreign,
}

impl Occupant {
    /// Who holds `meta` (an object that exists), seen from the Webhook of uid `uid`.
    pub fn of(meta: &ObjectMeta, uid: &str) -> Self {
        let controlled = meta.owner_references.iter().flatten().any(|owner| {
            owner.controller == Some(true) && owner.uid == uid && owner.kind == "Webhook"
        });
        if controlled {
            Self::Owned
        } else {
            Self::Foreign
        }
    }
}

/// The occupants of the names of the signing Secret, the emitter Deployment and the
/// emitter's NetworkPolicy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Children {
    pub signing_secret: Occupant,
    pub emitter: Occupant,
    pub emitter_network_policy: Occupant,
}

/// The Secret `spec.secretRef` names, if it does.
#[derive(Clone, PartialEq)]
pub enum Referenced {
    /// No `secretRef`: the operator generates the secret.
    NotUsed,
    /// The Secret or its key is missing or empty (or not UTF-8).
    Missing { name: String, key: String },
    /// The Secret exists but does not carry the label that lends it to Webhooks.
    NotLent { name: String },
    Found {
        name: String,
        key: String,
        value: String,
    },
}

impl Referenced {
    /// What `reference` finds in `secret` (the Secret it names, if it exists). A Secret
    /// without the lending label is not read at all.
    pub fn from_secret(reference: &SecretKeyRef, secret: Option<Secret>) -> Self {
        if let Some(secret) = &secret
            && !is_lent(&secret.metadata)
        {
            return Self::NotLent {
                name: reference.name.clone(),
            };
        }
        let value = secret
            .and_then(|secret| secret.data)
            .and_then(|data| data.get(&reference.key).cloned())
            .and_then(|bytes| String::from_utf8(bytes.0).ok())
            .filter(|value| !value.is_empty());
        let (name, key) = (reference.name.clone(), reference.key.clone());
        match value {
            Some(value) => Self::Found { name, key, value },
            None => Self::Missing { name, key },
        }
    }
}

impl std::fmt::Debug for Referenced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotUsed => f.write_str("NotUsed"),
            Self::Missing { name, key } => write!(f, "Missing({name}/{key})"),
            Self::NotLent { name } => write!(f, "NotLent({name})"),
            Self::Found { name, key, .. } => write!(f, "Found({name}/{key}, <redacted>)"),
        }
    }
}

/// Whether a Secret's owner lent it to the Webhooks of its namespace.
pub fn is_lent(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|labels| labels.get(LENT_SECRET_LABEL))
        .is_some_and(|value| value == "true")
}

/// `Owned` when the watch cache holds `name` as the object of the Webhook of uid `uid`;
/// `None` (read it from the server) otherwise: the cache holds only objects labelled as
/// the operator's, so an absent entry may still be someone else's object.
pub fn cached_occupant<K>(
    store: &Store<PartialObjectMeta<K>>,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Option<Occupant>
where
    K: Resource<DynamicType = ()> + Clone,
    PartialObjectMeta<K>: Resource<DynamicType = ()>,
{
    let key = ObjectRef::new(name).within(namespace);
    store
        .get(&key)
        .filter(|cached| Occupant::of(&cached.metadata, uid) == Occupant::Owned)
        .map(|_| Occupant::Owned)
}

/// Reads the signing Secret (or the last registry entry), the referenced Secret and who
/// holds the names of the Webhook's children.
pub async fn observe(
    webhook: &Webhook,
    id: &str,
    secrets: &Api<Secret>,
    ctx: &Context,
) -> Result<Observed, Error> {
    let namespace = secrets.namespace().unwrap_or_default().to_owned();
    let secret_name = desired::signing_secret_name(webhook);
    let emitter_name = desired::emitter_name(webhook);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    let occupant =
        |meta: Option<&ObjectMeta>| meta.map_or(Occupant::Absent, |m| Occupant::of(m, id));
    let cached_emitter = ctx
        .owned_emitters()
        .and_then(|store| cached_occupant(&store, &namespace, &emitter_name, id));
    let emitter = async {
        match cached_emitter {
            Some(cached) => Ok(cached),
            None => deployments
                .get_metadata_opt(&emitter_name)
                .await
                .map(|found| occupant(found.as_ref().map(|d| &d.metadata))),
        }
    };
    let (signing_secret, emitter, policy) = tokio::join!(
        secrets.get_opt(&secret_name),
        emitter,
        policies.get_metadata_opt(&emitter_name),
    );
    let signing_secret =
        signing_secret.map_err(Error::kube(format!("read Secret {secret_name}")))?;
    let children = Children {
        signing_secret: occupant(signing_secret.as_ref().map(|s| &s.metadata)),
        emitter: emitter.map_err(Error::kube(format!("read Deployment {emitter_name}")))?,
        emitter_network_policy: occupant(
            policy
                .map_err(Error::kube(format!("read NetworkPolicy {emitter_name}")))?
                .as_ref()
                .map(|p| &p.metadata),
        ),
    };
    // Keys are read back only from a Secret this Webhook owns: another one under the
    // same name is someone else's and is never read.
    let from_secret = signing_secret
        .filter(|_| children.signing_secret == Occupant::Owned)
        .and_then(|secret| SigningKeys::from_secret(&secret));
    let stored_keys = match from_secret {
        Some(keys) => Some(keys),
        None => {
            let rotation_generation = webhook
                .status
                .as_ref()
                .map_or(0, |s| s.secret_rotation_generation);
            ctx.registry
                .last_published(id)
                .await
                .and_then(|entry| SigningKeys::from_registry_entry(&entry, rotation_generation))
        }
    };
    let referenced = match &webhook.spec.secret_ref {
        None => Referenced::NotUsed,
        Some(reference) => {
            let secret = secrets
                .get_opt(&reference.name)
                .await
                .map_err(Error::kube(format!("read Secret {}", reference.name)))?;
            Referenced::from_secret(reference, secret)
        }
    };
    Ok(Observed {
        stored_keys,
        referenced,
        children,
    })
}
