//! Against the real PostgreSQL of the local stack, over TLS: the consumer's login (role
//! hookline_consumer, not the owner) stores events, keeps the day partitions and expires
//! old days, and PostgreSQL refuses it dropping, altering or emptying a table.

use chrono::{Duration, Utc};
use hookline_consumer::day_partitions::{DayPartitions, Retention, day_of};
use hookline_consumer::db;
use hookline_consumer::event::EventRow;
use hookline_consumer::store;
use sqlx::PgPool;

const RETENTION: Retention = Retention {
    events_days: Some(30),
    dead_letter_days: Some(10),
    days_ahead: 3,
    dedup_window_days: 3,
};

/// A fresh database migrated by the owner, and a pool of the consumer's login on it.
async fn as_consumer(prefix: &str) -> (PgPool, PgPool) {
    let owner_url = hookline_testkit::fresh_database(prefix).await;
    let owner = db::connect(&owner_url, 2)
        .await
        .expect("connect as the owner");
    db::migrate(&owner).await.expect("migrate as the owner");
    let database = owner_url
        .split('?')
        .next()
        .and_then(|base| base.rsplit('/').next())
        .expect("a database name")
        .to_owned();
    let login = hookline_testkit::stack()
        .vars
        .get("CONSUMER_DATABASE_URL")
        .expect("the stack's CONSUMER_DATABASE_URL; re-run `make stack-up`");
    let consumer_url = hookline_testkit::with_database(login, &database);
    let consumer = db::connect(&consumer_url, 4)
        .await
        .expect("connect as the consumer");
    (owner, consumer)
}

fn row(message_id: &str, received_at: chrono::DateTime<Utc>) -> EventRow {
    EventRow {
        webhook_id: "wh-1".into(),
        message_id: message_id.into(),
        event_id: None,
        event_type: Some("invoice.paid".into()),
        source_timestamp: None,
        body: b"{}".to_vec(),
        payload: Some("{}".into()),
        content_type: Some("application/json".into()),
        request_headers: None,
        received_at,
        attempts: 1,
    }
}

async fn sqlstate(pool: &PgPool, statement: &str) -> String {
    let err = sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(pool)
        .await
        .expect_err(statement);
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()).unwrap_or_default(),
        other => panic!("{statement}: not a database error: {other}"),
    }
}

#[tokio::test]
async fn the_consumer_login_stores_and_expires_but_cannot_drop_or_alter() {
    let (owner, consumer) = as_consumer("least_privilege").await;
    let role: String = sqlx::query_scalar("select current_user")
        .fetch_one(&consumer)
        .await
        .expect("who");
    assert_eq!(role, "hookline_consumer_login");
    let tls: bool = sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        .fetch_one(&consumer)
        .await
        .expect("pg_stat_ssl");
    assert!(tls, "the consumer's connection is encrypted");
    db::verify(&consumer).await.expect("the schema is current");

    // What it needs: partitions ahead and on demand, inserts, the dedup probe of other
    // days, and the retention of a whole old day.
    let partitions = DayPartitions::new(consumer.clone(), RETENTION);
    let now = Utc::now();
    let sweep = partitions.sweep(now).await.expect("sweep as the consumer");
    assert!(sweep.swept && sweep.partitions >= 5);
    let old = now - Duration::days(40);
    let rows = [row("m-old", old), row("m-new", now)];
    let days = partitions
        .ensure_for(rows.iter().map(|r| r.received_at))
        .await
        .expect("ensure partitions");
    let mut connection = consumer.acquire().await.expect("connection");
    assert_eq!(
        store::insert_events(&mut connection, &rows, &days.searched)
            .await
            .expect("insert as the consumer"),
        2
    );
    drop(connection);
    sqlx::query("update events set stored_at = received_at")
        .execute(&owner)
        .await
        .expect("backdate stored_at as the owner");
    let sweep = partitions.sweep(now).await.expect("a retention sweep");
    assert_eq!(sweep.dropped, vec![day_of(old)]);

    // What it may not do: each refused by PostgreSQL for lack of privilege (42501).
    for statement in [
        "DROP TABLE events",
        "DROP TABLE webhooks",
        "ALTER TABLE events ADD COLUMN extra int",
        "ALTER TABLE dead_letters DROP COLUMN reason",
        "TRUNCATE events",
        "DELETE FROM events",
        "UPDATE events SET attempts = 0",
        "CREATE TABLE stolen (x int)",
        "DROP FUNCTION events_expire_day(date, interval)",
    ] {
        assert_eq!(
            sqlstate(&consumer, statement).await,
            "42501",
            "{statement} was not refused for privilege"
        );
    }
    let today = format!("events_p{}", now.format("%Y%m%d"));
    for statement in [format!("DROP TABLE {today}"), format!("TRUNCATE {today}")] {
        assert_eq!(
            sqlstate(&consumer, &statement).await,
            "42501",
            "{statement}"
        );
    }
    // The retention function keeps at least a day, whoever asks.
    assert_eq!(
        sqlstate(
            &consumer,
            &format!(
                "SELECT events_expire_day('{}', interval '1 hour')",
                day_of(now)
            )
        )
        .await,
        "22023"
    );
    let left: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&owner)
        .await
        .expect("count");
    assert_eq!(left, 1, "the refused statements changed nothing");
}
