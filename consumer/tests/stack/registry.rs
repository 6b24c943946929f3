//! The registry mirror cannot be rolled back: records replayed to the registry topic by
//! whoever can write it (an entry from before a change, one from before a deletion) are
//! refused by the consumer, counted on its /metrics, and not written to `webhooks`.

use std::time::Duration;

use hookline_core::registry::RegistryEntry;
use hookline_runtime::registry_view::ENTRIES_REFUSED;
use hookline_testkit::{eventually, fixtures};

use crate::common::Harness;

fn of(webhook_id: &str, customer: &str) -> RegistryEntry {
    RegistryEntry {
        customer_id: customer.into(),
        ..fixtures::registry_entry(webhook_id)
    }
}

/// The mirrored (status, customer) of every webhook, by id.
async fn mirrored(h: &Harness) -> Vec<(String, String, String)> {
    sqlx::query_as("select webhook_id, status, customer_id from webhooks order by 1")
        .fetch_all(&h.pool)
        .await
        .expect("read webhooks")
}

#[tokio::test]
async fn replayed_registry_records_are_neither_applied_nor_mirrored() {
    let h = Harness::new("registry-replay", 1).await;
    let consumer = h.start(&[]).await;
    let before_change = h.register(&of("wh-r", "before")).await;
    h.register(&of("wh-r", "after")).await;
    let before_deletion = h.register(&of("wh-g", "gone")).await;
    h.unregister("wh-g").await;
    let settled = vec![
        ("wh-g".to_owned(), "deleted".to_owned(), "gone".to_owned()),
        ("wh-r".to_owned(), "active".to_owned(), "after".to_owned()),
    ];
    eventually("the registry mirrored", Duration::from_secs(10), || async {
        (mirrored(&h).await == settled).then_some(())
    })
    .await;

    h.put_registry_value("wh-r", &before_change).await;
    h.put_registry_value("wh-g", &before_deletion).await;
    // Once the marker is mirrored, the replays before it were read.
    h.register(&of("wh-marker", "marker")).await;
    eventually("the marker mirrored", Duration::from_secs(10), || async {
        (mirrored(&h).await.len() == 3).then_some(())
    })
    .await;
    let mut rows = mirrored(&h).await;
    rows.retain(|(id, _, _)| id != "wh-marker");
    assert_eq!(rows, settled);
    assert_eq!(
        consumer
            .metric(&format!(
                "{}{{reason=\"stale\"}}",
                ENTRIES_REFUSED.exported()
            ))
            .await,
        2.0
    );
    consumer.stop().await;
}
