//! Stage 1, dereference: everything a reconcile reads before it decides, read once.

use hookline_api::webhook::{SecretKeyRef, Webhook};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::{Context, Error};
use crate::desired::{self, SigningKeys};

/// What the world holds for one Webhook, as read at the start of a reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The signing keys the operator wrote before: from its signing Secret, else (the
    /// Secret deleted by hand) from the last registry entry it published.
    pub stored_keys: Option<SigningKeys>,
    pub referenced: Referenced,
}

/// The Secret `spec.secretRef` names, if it does.
#[derive(Clone, PartialEq)]
pub enum Referenced {
    /// No `secretRef`: the operator generates the secret.
    NotUsed,
    /// The Secret or its key is missing or empty (or not UTF-8).
    Missing { name: String, key: String },
    Found {
        name: String,
        key: String,
        value: String,
    },
}

impl Referenced {
    /// What `reference` finds in `secret` (the Secret it names, if it exists).
    pub fn from_secret(reference: &SecretKeyRef, secret: Option<Secret>) -> Self {
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
            Self::Found { name, key, .. } => write!(f, "Found({name}/{key}, <redacted>)"),
        }
    }
}

/// Reads the signing Secret (or the last registry entry) and the referenced Secret.
pub async fn observe(
    webhook: &Webhook,
    id: &str,
    secrets: &Api<Secret>,
    ctx: &Context,
) -> Result<Observed, Error> {
    let secret_name = desired::signing_secret_name(webhook);
    let from_secret = secrets
        .get_opt(&secret_name)
        .await
        .map_err(Error::kube(format!("read Secret {secret_name}")))?
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
    })
}
