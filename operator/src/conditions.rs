//! Status conditions computed from what the reconciler observed. Pure: the time and
//! the previous conditions come in, so a condition's `lastTransitionTime` moves only
//! when its status does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const SECRET_READY: &str = "SecretReady";
pub const REGISTERED: &str = "Registered";
pub const EMITTER_AVAILABLE: &str = "EmitterAvailable";

/// One part's state: met, or not with a reason (CamelCase) and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartState {
    Met { reason: String, message: String },
    Unmet { reason: String, message: String },
}

impl PartState {
    pub fn met(reason: &str, message: impl Into<String>) -> Self {
        Self::Met {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn unmet(reason: &str, message: impl Into<String>) -> Self {
        Self::Unmet {
            reason: reason.into(),
            message: message.into(),
        }
    }

    fn is_met(&self) -> bool {
        matches!(self, Self::Met { .. })
    }
}

/// The emitter part from the Deployment's replica counts.
pub fn emitter_state(desired: i32, ready: i32, enabled: bool) -> PartState {
    if desired == 0 {
        let why = if enabled {
            "the emitter is scaled to zero"
        } else {
            "the emitter is disabled"
        };
        PartState::met("ScaledToZero", format!("no emitter runs: {why}"))
    } else if ready >= desired {
        PartState::met(
            "MinimumReplicasAvailable",
            format!("{ready} of {desired} emitter replicas ready"),
        )
    } else {
        PartState::unmet(
            "ReplicasNotReady",
            format!("{ready} of {desired} emitter replicas ready"),
        )
    }
}

/// The conditions for the parts plus `Ready`, which holds when every part does. A `Ready`
/// among `parts` (a refusal that says why itself) is taken as it is.
pub fn conditions(
    previous: &[Condition],
    parts: &[(&'static str, PartState)],
    generation: i64,
    now: Time,
) -> Vec<Condition> {
    let given = parts
        .iter()
        .find(|(kind, _)| *kind == READY)
        .map(|(_, state)| state.clone());
    let parts = parts.iter().filter(|(kind, _)| *kind != READY);
    let unmet: Vec<&str> = parts
        .clone()
        .filter(|(_, state)| !state.is_met())
        .map(|(kind, _)| *kind)
        .collect();
    let ready = given.unwrap_or_else(|| {
        if unmet.is_empty() {
            PartState::met("AllPartsReady", "the webhook accepts and emits events")
        } else {
            PartState::unmet("PartsNotReady", format!("not ready: {}", unmet.join(", ")))
        }
    });
    std::iter::once((READY, ready))
        .chain(parts.cloned())
        .map(|(kind, state)| {
            let (status, reason, message) = match state {
                PartState::Met { reason, message } => ("True", reason, message),
                PartState::Unmet { reason, message } => ("False", reason, message),
            };
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == kind && c.status == status)
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
            Condition {
                type_: kind.into(),
                status: status.into(),
                reason,
                message,
                observed_generation: Some(generation),
                last_transition_time,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn time(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn find<'c>(conditions: &'c [Condition], kind: &str) -> &'c Condition {
        conditions.iter().find(|c| c.type_ == kind).expect(kind)
    }

    #[test]
    fn ready_follows_the_parts_and_names_the_unmet_ones() {
        let parts = [
            (SECRET_READY, PartState::met("SecretApplied", "ok")),
            (
                REGISTERED,
                PartState::unmet("RegistryUnavailable", "Kafka down"),
            ),
        ];
        let c = conditions(&[], &parts, 3, time(10));
        let ready = find(&c, READY);
        assert_eq!(ready.status, "False");
        assert!(ready.message.contains(REGISTERED), "{}", ready.message);
        assert_eq!(find(&c, REGISTERED).reason, "RegistryUnavailable");
        assert!(c.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let met = [(SECRET_READY, PartState::met("SecretApplied", "ok"))];
        let first = conditions(&[], &met, 1, time(10));
        let again = conditions(&first, &met, 2, time(20));
        assert_eq!(find(&again, SECRET_READY).last_transition_time, time(10));
        let unmet = [(SECRET_READY, PartState::unmet("SecretNotFound", "missing"))];
        let changed = conditions(&again, &unmet, 3, time(30));
        assert_eq!(find(&changed, SECRET_READY).last_transition_time, time(30));
        assert_eq!(find(&changed, READY).last_transition_time, time(30));
    }

    #[test]
    fn emitter_state_explains_zero_replicas() {
        let disabled = emitter_state(0, 0, false);
        assert!(
            matches!(&disabled, PartState::Met { message, .. } if message.contains("disabled"))
        );
        let scaled = emitter_state(0, 0, true);
        assert!(
            matches!(&scaled, PartState::Met { message, .. } if message.contains("scaled to zero"))
        );
        let partial = emitter_state(2, 1, true);
        assert!(
            matches!(&partial, PartState::Unmet { message, .. } if message == "1 of 2 emitter replicas ready")
        );
        assert!(emitter_state(2, 2, true).is_met());
    }
}
