//! Mirrors the registry into the `webhooks` table, without secrets, so that
//! `select * from webhooks` answers what the prototype's table answered.

use std::time::Duration;

use hookline_core::registry::RegistryUpdate;
use hookline_runtime::shutdown::Shutdown;
use hookline_store::webhooks;
use sqlx::PgPool;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::metrics::Metrics;

/// Applies registry updates in the order they were read. Only what the registry view
/// applied arrives here (see `hookline_runtime::registry_view::follow`): a replayed older record refused as
/// stale is not mirrored either. An update that fails (the database is down) is tried
/// again until it is written or shutdown comes.
pub async fn run(
    pool: PgPool,
    mut updates: UnboundedReceiver<RegistryUpdate>,
    metrics: Metrics,
    shutdown: Shutdown,
) {
    loop {
        let update = tokio::select! {
            update = updates.recv() => update,
            () = shutdown.wait() => return,
        };
        let Some(update) = update else {
            return;
        };
        let mut backoff = Duration::from_millis(200);
        loop {
            let written = match &update {
                RegistryUpdate::Upsert(entry) => webhooks::upsert(&pool, entry).await,
                RegistryUpdate::Deleted { webhook_id } => {
                    webhooks::mark_deleted(&pool, webhook_id).await
                }
            };
            match written {
                Ok(()) => {
                    metrics.webhooks_mirrored.inc();
                    break;
                }
                Err(err) => {
                    tracing::warn!(%err, retry_in_ms = backoff.as_millis() as u64, "cannot mirror a registry update");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.wait() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}
