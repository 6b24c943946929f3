//! What every API handler shares. A module of its own so that the router (`api`) and
//! the handler modules it routes to both depend on it, not on each other.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hookline_api::webhook::Webhook;
use hookline_store::dead_letter_replay::Replayer;
use kube::runtime::reflector::Store;
use sqlx::PgPool;

use crate::auth::Auth;
use crate::metrics::Metrics;

/// What every API handler shares.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub auth: Arc<Auth>,
    pub webhooks: Store<Webhook>,
    pub replayer: Arc<Replayer>,
    pub metrics: Arc<Metrics>,
    /// Set once the reflector has listed the Webhooks.
    pub webhooks_synced: Arc<AtomicBool>,
    /// Whether the console sees one namespace only: then events and dead letters are
    /// listed for that namespace's Webhooks only.
    pub namespaced: bool,
}

impl AppState {
    pub fn webhooks_synced(&self) -> bool {
        self.webhooks_synced.load(Ordering::Acquire)
    }
}
