//! The `webhooks` table: the registry mirrored without secrets, so that
//! `select * from webhooks` answers which Webhooks exist and how they deliver.

use hookline_core::registry::RegistryEntry;
use sqlx::PgPool;
use sqlx::types::Json;

/// Mirrors a registry entry, secrets left out. An older entry (a slower replica
/// mirroring the same topic) does not overwrite a newer one.
pub async fn upsert(pool: &PgPool, entry: &RegistryEntry) -> Result<(), sqlx::Error> {
    let status = if entry.suspended {
        "suspended"
    } else {
        "active"
    };
    sqlx::query(
        "INSERT INTO webhooks (webhook_id, namespace, name, customer_id, url, scheme, status, \
                               delivery, generation, updated_at, deleted_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL) \
         ON CONFLICT (webhook_id) DO UPDATE SET \
             namespace = EXCLUDED.namespace, name = EXCLUDED.name, \
             customer_id = EXCLUDED.customer_id, url = EXCLUDED.url, \
             scheme = EXCLUDED.scheme, status = EXCLUDED.status, \
             delivery = EXCLUDED.delivery, generation = EXCLUDED.generation, \
             updated_at = EXCLUDED.updated_at, deleted_at = NULL \
         WHERE webhooks.updated_at <= EXCLUDED.updated_at",
    )
    .bind(entry.webhook_id.as_str())
    .bind(&entry.namespace)
    .bind(&entry.name)
    .bind(&entry.customer_id)
    .bind(&entry.url)
    .bind(entry.scheme.to_string())
    .bind(status)
    .bind(Json(&entry.delivery))
    .bind(entry.generation)
    .bind(entry.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks a mirrored Webhook deleted (a registry deletion record); its events stay.
pub async fn mark_deleted(pool: &PgPool, webhook_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhooks SET status = 'deleted', deleted_at = now() \
         WHERE webhook_id = $1 AND status <> 'deleted'",
    )
    .bind(webhook_id)
    .execute(pool)
    .await?;
    Ok(())
}
