//! Against the real PostgreSQL of the local stack: the embedded migrations apply to a
//! fresh database, twice without harm, and the schema enforces the idempotency key.

use hookline_consumer::db;

#[tokio::test]
async fn migrations_apply_and_the_events_key_refuses_duplicates() {
    let database_url = hookline_testkit::fresh_database("smoke").await;
    let pool = db::connect(&database_url, 2).await.expect("connect");
    db::migrate(&pool).await.expect("first migration run");
    db::migrate(&pool)
        .await
        .expect("second run finds nothing to do");

    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables \
         where table_schema = 'public' and table_name <> '_sqlx_migrations' order by 1",
    )
    .fetch_all(&pool)
    .await
    .expect("list tables");
    assert_eq!(tables, ["dead_letters", "events", "webhooks"]);

    let insert = "insert into events (webhook_id, message_id, payload, received_at) \
                  values ($1, $2, $3, now()) on conflict do nothing";
    let payload = serde_json::json!({"event_id": "e1", "data": {"invoice_id": "i1"}});
    let first = sqlx::query(insert)
        .bind("wh-1")
        .bind("msg-1")
        .bind(&payload)
        .execute(&pool)
        .await
        .expect("insert");
    let again = sqlx::query(insert)
        .bind("wh-1")
        .bind("msg-1")
        .bind(&payload)
        .execute(&pool)
        .await
        .expect("insert again");
    assert_eq!(first.rows_affected(), 1);
    assert_eq!(again.rows_affected(), 0);

    let stored: serde_json::Value =
        sqlx::query_scalar("select payload from events where webhook_id = 'wh-1'")
            .fetch_one(&pool)
            .await
            .expect("read back");
    assert_eq!(stored, payload);
}
