//! Against the real PostgreSQL of the local stack: the embedded migrations apply to a
//! fresh database, twice without harm, the schema refuses a second copy of a record,
//! and rows stored before 0002 (and before the events were partitioned) are carried over.

use std::borrow::Cow;

use hookline_store::{database, schema};
use sqlx::migrate::Migrator;

#[tokio::test]
async fn migrations_apply_and_the_events_key_refuses_duplicates() {
    let database_url = hookline_testkit::fresh_database("smoke").await;
    let pool = database::connect(&database_url, 2).await.expect("connect");
    schema::migrate(&pool).await.expect("first migration run");
    schema::migrate(&pool)
        .await
        .expect("second run finds nothing to do");

    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables \
         where table_schema = 'public' and table_name <> '_sqlx_migrations' \
           and table_name !~ '^events_p[0-9]{8}$' order by 1",
    )
    .fetch_all(&pool)
    .await
    .expect("list tables");
    assert_eq!(tables, ["dead_letters", "events", "replays", "webhooks"]);
    let today_partition: Option<String> = sqlx::query_scalar(
        "select partition_name from events_partitions() \
         where day = (now() at time zone 'UTC')::date",
    )
    .fetch_optional(&pool)
    .await
    .expect("list partitions");
    assert!(
        today_partition.is_some(),
        "the migration creates today's partition"
    );

    // The same record read twice from Kafka carries the same received_at.
    let insert = "insert into events (webhook_id, message_id, body, received_at, received_day) \
                  values ($1, $2, $3, $4, ($4 at time zone 'UTC')::date) on conflict do nothing";
    let received_at = chrono::Utc::now();
    let body: &[u8] = b"token=x&command=%2Fweather";
    let mut inserted = Vec::new();
    for attempt in ["insert", "insert again"] {
        let done = sqlx::query(insert)
            .bind("wh-1")
            .bind("msg-1")
            .bind(body)
            .bind(received_at)
            .execute(&pool)
            .await
            .expect(attempt);
        inserted.push(done.rows_affected());
    }
    assert_eq!(
        inserted,
        [1, 0],
        "rows inserted by the first and the second"
    );

    let stored: Vec<u8> = sqlx::query_scalar("select body from events where webhook_id = 'wh-1'")
        .fetch_one(&pool)
        .await
        .expect("read back");
    assert_eq!(stored, body);
}

#[tokio::test]
async fn rows_of_the_first_schema_are_carried_over_by_0002() {
    let database_url = hookline_testkit::fresh_database("upgrade").await;
    let pool = database::connect(&database_url, 2).await.expect("connect");
    let first_only = Migrator {
        migrations: Cow::Owned(
            schema::MIGRATOR
                .migrations
                .iter()
                .filter(|migration| migration.version == 1)
                .cloned()
                .collect(),
        ),
        ..Migrator::DEFAULT
    };
    first_only.run(&pool).await.expect("migration 0001");
    sqlx::query(
        "insert into events (webhook_id, message_id, event_id, event_type, invoice_id, payload, received_at) \
         values ('wh-1', 'msg-1', 'e1', 'PAID', 'inv-7', '{\"event_id\":\"e1\",\"data\":{\"invoice_id\":\"inv-7\"}}', now())",
    )
    .execute(&pool)
    .await
    .expect("a row of the first schema");
    sqlx::query(
        "insert into events (webhook_id, message_id, payload, received_at) \
         values ('wh-1', 'msg-old', '{}', now() - interval '3 days')",
    )
    .execute(&pool)
    .await
    .expect("a row received three days ago");

    schema::migrate(&pool).await.expect("the later migrations");
    let days: Vec<(String, i64)> = sqlx::query_as(
        "select tableoid::regclass::text, count(*) from events group by 1 order by 1",
    )
    .fetch_all(&pool)
    .await
    .expect("rows per partition");
    assert_eq!(days.len(), 2, "each row in its day's partition: {days:?}");
    assert!(
        days.iter()
            .all(|(partition, count)| partition.starts_with("events_p") && *count == 1)
    );
    let (event_id, event_type, body, invoice): (String, String, Vec<u8>, Option<String>) =
        sqlx::query_as(
            "select event_id, event_type, body, payload->'data'->>'invoice_id' from events \
             where message_id = 'msg-1'",
        )
        .fetch_one(&pool)
        .await
        .expect("the carried-over row");
    assert_eq!((event_id.as_str(), event_type.as_str()), ("e1", "PAID"));
    let body: serde_json::Value = serde_json::from_slice(&body).expect("the body is the payload");
    assert_eq!(body["data"]["invoice_id"], "inv-7");
    assert_eq!(invoice.as_deref(), Some("inv-7"));
    let invoice_column: i64 = sqlx::query_scalar(
        "select count(*) from information_schema.columns \
         where table_name = 'events' and column_name = 'invoice_id'",
    )
    .fetch_one(&pool)
    .await
    .expect("columns");
    assert_eq!(invoice_column, 0, "invoice_id is gone");
}
