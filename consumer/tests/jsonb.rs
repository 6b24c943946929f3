//! Against the real PostgreSQL of the local stack: the consumer's check of what `jsonb`
//! holds agrees with PostgreSQL, and a row whose JSON PostgreSQL refuses anyway is
//! stored with its body as received and a null `payload`, not refused.

use chrono::Utc;
use hookline_consumer::event::EventRow;
use hookline_consumer::jsonb;
use hookline_store::day_partitions::{DayPartitions, Retention};
use hookline_store::events::{self, EventColumns};
use hookline_store::{database, schema};
use serde_json::{Value, json};
use sqlx::PgPool;

async fn migrated(prefix: &str) -> PgPool {
    let database_url = hookline_testkit::fresh_database(prefix).await;
    let pool = database::connect(&database_url, 2).await.expect("connect");
    schema::migrate(&pool).await.expect("migrate");
    pool
}

/// A stored event: message id, body, payload, request headers.
type StoredRow = (String, Vec<u8>, Option<Value>, Option<Value>);

/// Whether PostgreSQL takes `document` as `jsonb`.
async fn postgres_accepts(pool: &PgPool, document: &str) -> bool {
    sqlx::query("SELECT $1::jsonb")
        .bind(document)
        .execute(pool)
        .await
        .is_ok()
}

#[tokio::test]
async fn the_check_agrees_with_postgresql_at_every_edge() {
    let pool = migrated("jsonb-edges").await;
    let documents = [
        "1e131071",
        "1e131072",
        "9.9e131071",
        "10e131071",
        "0.1e131072",
        "0.01e131073",
        "1e-16383",
        "1e-16384",
        "1.0e-16382",
        "1.00e-16382",
        "0.000e-16380",
        "0.000e-16381",
        "0e999999",
        "0e1073741822",
        "0e1073741823",
        "-1e999999",
        "123456789.123456789e-16374",
        "123456789.123456789e-16375",
        "[1, 2.5, -3e5, {\"a\": [1e10]}]",
        r#""\u0000""#,
        r#""\\u0000""#,
        r#""\ud800""#,
        r#""\udfff""#,
        r#""\ud83d\ude00""#,
        r#""\ud83d\u0041""#,
        r#"{"1e999999": "\ud800\udc00"}"#,
    ];
    for document in documents {
        assert_eq!(
            jsonb::storable(document.as_bytes()).is_some(),
            postgres_accepts(&pool, document).await,
            "{document}"
        );
    }
}

#[tokio::test]
async fn a_row_whose_json_postgresql_refuses_is_stored_without_it() {
    let pool = migrated("jsonb-refused").await;
    let retention = Retention {
        events_days: None,
        dead_letter_days: None,
        days_ahead: 1,
        dedup_window_days: 1,
    };
    let partitions = DayPartitions::new(pool.clone(), retention);
    let received_at = Utc::now();
    let row = |message_id: &str, body: &str| EventRow {
        webhook_id: "wh-1".into(),
        message_id: message_id.into(),
        event_id: None,
        event_type: None,
        source_timestamp: None,
        body: body.as_bytes().to_vec(),
        // As if the check had let it through: the store must not depend on it.
        payload: Some(body.into()),
        content_type: Some("application/json".into()),
        request_headers: Some(r#"{"webhook-id":"x"}"#.into()),
        received_at,
        attempts: 1,
    };
    let rows = [
        row("fine", r#"{"n":1}"#),
        row("huge", r#"{"amount":1e999999}"#),
    ];
    let days = partitions
        .ensure_for(rows.iter().map(|r| r.received_at))
        .await
        .expect("ensure partitions");
    let columns: EventColumns = rows.iter().collect();
    let mut tx = pool.begin().await.expect("begin");
    let batch = events::insert(&mut tx, &columns, &days.searched).await;
    let refused = batch.expect_err("PostgreSQL refuses the batch");
    assert!(database::is_data_error(&refused), "{refused}");
    tx.rollback().await.expect("rollback");

    let mut tx = pool.begin().await.expect("begin");
    let (inserted, refused) = events::insert_one_by_one(&mut tx, &columns, &days.searched)
        .await
        .expect("row by row");
    tx.commit().await.expect("commit");
    assert_eq!((inserted.total(), refused), (2, Vec::new()));

    let stored: Vec<StoredRow> =
        sqlx::query_as("SELECT message_id, body, payload, request_headers FROM events ORDER BY 1")
            .fetch_all(&pool)
            .await
            .expect("events");
    assert_eq!(
        stored,
        vec![
            (
                "fine".to_owned(),
                br#"{"n":1}"#.to_vec(),
                Some(json!({"n": 1})),
                Some(json!({"webhook-id": "x"})),
            ),
            (
                "huge".to_owned(),
                br#"{"amount":1e999999}"#.to_vec(),
                None,
                None,
            ),
        ]
    );
}
