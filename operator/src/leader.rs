//! Leader election through a `coordination.k8s.io` Lease, so that of several operator
//! replicas exactly one reconciles. A replica that cannot renew in time stops acting.

use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// A Lease this process competes for.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    owner: Option<OwnerReference>,
}

impl LeaseLock {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
            owner: None,
        }
    }

    /// Gives the Lease an owner whose deletion garbage-collects it.
    #[must_use]
    pub fn owned_by(mut self, owner: OwnerReference) -> Self {
        self.owner = Some(owner);
        self
    }

    fn owner_references(&self) -> Option<Vec<OwnerReference>> {
        self.owner.clone().map(|owner| vec![owner])
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// How often the holder renews: a third of the lease, so two misses still keep it.
    pub fn renew_interval(&self) -> Duration {
        self.duration / 3
    }

    /// Takes the lease when it is free or expired, renews it when held by us.
    /// `Ok(true)`: we hold it now. A conflicting writer makes this `Ok(false)`.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    owner_references: self.owner_references(),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec_taken(now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(err) if is_conflict(&err) => Ok(false),
                Err(err) => Err(err),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let held_by_us = spec.holder_identity.as_deref() == Some(&self.identity);
        let spec = if held_by_us {
            LeaseSpec {
                renew_time: Some(MicroTime(now)),
                ..spec
            }
        } else if lease_is_free(&spec, now) {
            self.spec_taken(now, spec.lease_transitions.unwrap_or(0) + 1)
        } else {
            return Ok(false);
        };
        lease.spec = Some(spec);
        if self.owner.is_some() {
            lease.metadata.owner_references = self.owner_references();
        }
        // The resourceVersion in `lease` makes this a compare-and-swap.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if is_conflict(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Gives the lease up so another replica can take it at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_conflict(&err) => Ok(()),
            Err(err) => Err(err),
        }
    }

    fn spec_taken(&self, now: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

fn now() -> Timestamp {
    Timestamp::from_millisecond(Utc::now().timestamp_millis()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Free when nobody holds it or the holder has not renewed within the lease duration.
fn lease_is_free(spec: &LeaseSpec, now: Timestamp) -> bool {
    let (Some(_), Some(renewed), Some(duration)) = (
        spec.holder_identity.as_ref(),
        spec.renew_time.as_ref(),
        spec.lease_duration_seconds,
    ) else {
        return true;
    };
    let expires_ms = renewed.0.as_millisecond() + i64::from(duration) * 1_000;
    now.as_millisecond() > expires_ms
}

fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn a_lease_is_free_when_unheld_or_expired() {
        assert!(lease_is_free(&LeaseSpec::default(), at(100)));
        let held = LeaseSpec {
            holder_identity: Some("a".into()),
            renew_time: Some(MicroTime(at(100))),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        };
        assert!(!lease_is_free(&held, at(110)));
        assert!(!lease_is_free(&held, at(115)));
        assert!(lease_is_free(&held, at(116)));
    }
}
