//! The `webhook` label of the metrics that count per Webhook. A request's path names a
//! Webhook id the internet chose; only ids the registry lists as active become label
//! values, the rest count as `unknown`, and a deleted Webhook's series are removed, so
//! the series count follows the live Webhooks.

use crate::registry_view::{Lookup, RegistryView};

#[derive(Debug, Clone, Copy)]
pub struct WebhookLabels {
    per_webhook: bool,
}

impl WebhookLabels {
    /// The label of ids the registry does not list as active (unknown, deleted).
    pub const UNKNOWN: &'static str = "unknown";
    /// The label of every Webhook when per-Webhook labels are off.
    pub const ALL: &'static str = "all";

    pub fn new(per_webhook: bool) -> Self {
        Self { per_webhook }
    }

    /// The `webhook` label value for `webhook_id`.
    pub fn value(&self, view: &RegistryView, webhook_id: &str) -> String {
        if !self.per_webhook {
            return Self::ALL.to_owned();
        }
        match view.lookup(webhook_id) {
            Lookup::Active(_) => webhook_id.to_owned(),
            Lookup::Deleted | Lookup::Unknown => Self::UNKNOWN.to_owned(),
        }
    }

    /// Whether a deleted Webhook had series of its own to remove.
    pub fn per_webhook(&self) -> bool {
        self.per_webhook
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::registry::RegistryUpdate;
    use hookline_testkit::fixtures::registry_entry;

    fn entry() -> hookline_core::registry::RegistryEntry {
        registry_entry("9b2f")
    }

    #[test]
    fn only_active_ids_become_label_values() {
        let view = RegistryView::default();
        let live = entry();
        view.apply(RegistryUpdate::Upsert(Box::new(live.clone())));
        let labels = WebhookLabels::new(true);
        assert_eq!(labels.value(&view, &live.webhook_id), live.webhook_id);
        assert_eq!(labels.value(&view, "wh-from-the-internet"), "unknown");

        view.apply(RegistryUpdate::Deleted {
            webhook_id: live.webhook_id.clone(),
        });
        assert_eq!(labels.value(&view, &live.webhook_id), "unknown");
    }

    #[test]
    fn one_label_for_all_when_per_webhook_labels_are_off() {
        let view = RegistryView::default();
        let live = entry();
        view.apply(RegistryUpdate::Upsert(Box::new(live.clone())));
        let labels = WebhookLabels::new(false);
        assert_eq!(labels.value(&view, &live.webhook_id), "all");
        assert_eq!(labels.value(&view, "wh-other"), "all");
        assert!(!labels.per_webhook());
    }
}
