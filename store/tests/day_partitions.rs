//! Against the real PostgreSQL of the local stack: the events table's day partitions
//! are created ahead and on demand, the idempotency key holds across days, and the
//! retention drops whole days (never a day with rows inside the window) and expires
//! dead letters. The consumer's login (role hookline_consumer, not the owner) does all
//! that over TLS, and PostgreSQL refuses it dropping, altering or emptying a table.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use hookline_store::day_partitions::{DayPartitions, Retention, day_of};
use hookline_store::events::{self, EventColumns};
use hookline_store::{database, schema};
use sqlx::PgPool;

const RETENTION: Retention = Retention {
    events_days: Some(30),
    dead_letter_days: Some(10),
    days_ahead: 3,
    dedup_window_days: 3,
};

async fn migrated(prefix: &str) -> PgPool {
    let database_url = hookline_testkit::fresh_database(prefix).await;
    let pool = database::connect(&database_url, 4).await.expect("connect");
    schema::migrate(&pool).await.expect("migrate");
    pool
}

/// An event of `wh-1`: its message id and when it was received.
type Row = (&'static str, DateTime<Utc>);

fn row(message_id: &'static str, received_at: DateTime<Utc>) -> Row {
    (message_id, received_at)
}

/// `rows` as the statement takes them: an `invoice.paid` event of `{}` each.
fn columns(rows: &[Row]) -> EventColumns<'static> {
    let mut columns = EventColumns::with_capacity(rows.len());
    for (message_id, received_at) in rows {
        columns.webhook_id.push("wh-1");
        columns.message_id.push(*message_id);
        columns.event_id.push(None);
        columns.event_type.push(Some("invoice.paid"));
        columns.source_timestamp.push(None);
        columns.body.push(b"{}");
        columns.payload.push(Some("{}"));
        columns.content_type.push(Some("application/json"));
        columns.request_headers.push(None);
        columns.received_at.push(*received_at);
        columns.attempts.push(1);
    }
    columns
}

/// Writes `rows` as the consumer does: their days ensured, then one statement.
async fn store(partitions: &DayPartitions, pool: &PgPool, rows: &[Row]) -> u64 {
    let days = partitions
        .ensure_for(rows.iter().map(|(_, received_at)| *received_at))
        .await
        .expect("ensure partitions");
    let mut connection = pool.acquire().await.expect("connection");
    events::insert(&mut connection, &columns(rows), &days.searched)
        .await
        .expect("insert")
        .total()
}

async fn days(pool: &PgPool) -> Vec<NaiveDate> {
    sqlx::query_scalar("select day from events_partitions()")
        .fetch_all(pool)
        .await
        .expect("list partitions")
}

#[tokio::test]
async fn partitions_exist_ahead_and_on_demand_and_the_key_holds_across_days() {
    let pool = migrated("partitions-ahead").await;
    let partitions = DayPartitions::new(pool.clone(), RETENTION);
    let now = Utc::now();
    let today = day_of(now);
    let sweep = partitions.sweep(now).await.expect("sweep");
    assert!(sweep.swept);
    let expected: Vec<NaiveDate> = (-1..=3).map(|d| today + Duration::days(d)).collect();
    assert_eq!(days(&pool).await, expected, "yesterday to three days ahead");
    assert_eq!(sweep.partitions, 5);
    let again = partitions.sweep(now).await.expect("second sweep");
    assert!(again.created.is_empty() && again.dropped.is_empty());

    // A day far from today (a replayed old dead letter, a clock far off) gets its
    // partition when a batch needs it.
    let old = now - Duration::days(12);
    assert_eq!(store(&partitions, &pool, &[row("m-old", old)]).await, 1);
    assert!(days(&pool).await.contains(&day_of(old)));

    // A sender's retry is not stored again: the same day (the primary key), a day
    // within the dedup window (the search), or inside one batch (the earliest receipt
    // is kept). Past the window it is a row of its own day.
    let two_days_ago = now - Duration::days(2);
    assert_eq!(
        store(&partitions, &pool, &[row("m-recent", two_days_ago)]).await,
        1
    );
    let later_same_day = two_days_ago + Duration::seconds(1);
    let same_day_retry = if day_of(later_same_day) == day_of(two_days_ago) {
        later_same_day
    } else {
        two_days_ago - Duration::seconds(1)
    };
    assert_eq!(
        store(&partitions, &pool, &[row("m-recent", same_day_retry)]).await,
        0
    );
    assert_eq!(store(&partitions, &pool, &[row("m-recent", now)]).await, 0);
    assert_eq!(
        store(&partitions, &pool, &[row("m-old", now)]).await,
        1,
        "twelve days later is past the three-day window"
    );
    let batch = [
        row("m-twice", now - Duration::days(2)),
        row("m-twice", now - Duration::days(4)),
        row("m-new", now),
    ];
    assert_eq!(store(&partitions, &pool, &batch).await, 2);
    let kept: DateTime<Utc> =
        sqlx::query_scalar("select received_at from events where message_id = 'm-twice'")
            .fetch_one(&pool)
            .await
            .expect("the kept receipt");
    assert_eq!(day_of(kept), day_of(now - Duration::days(4)));
    let total: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(total, 5, "m-old twice, m-recent, m-twice, m-new");
}

#[tokio::test]
async fn a_restarted_consumer_searches_the_days_it_did_not_create() {
    let pool = migrated("partitions-restart").await;
    let now = Utc::now();
    let before = DayPartitions::new(pool.clone(), RETENTION);
    assert_eq!(
        store(&before, &pool, &[row("m-1", now - Duration::days(2))]).await,
        1
    );
    // A new process knows no partition until it lists them (the service does at start).
    let restarted = DayPartitions::new(pool.clone(), RETENTION);
    restarted.reload().await.expect("list the partitions");
    assert_eq!(store(&restarted, &pool, &[row("m-1", now)]).await, 0);
}

#[tokio::test]
async fn retention_drops_whole_days_past_the_window_and_expires_dead_letters() {
    let pool = migrated("partitions-retention").await;
    let partitions = DayPartitions::new(pool.clone(), RETENTION);
    let now = Utc::now();
    let expired = now - Duration::days(40);
    let edge = now - Duration::days(29);
    let replayed_lately = now - Duration::days(35);
    store(
        &partitions,
        &pool,
        &[
            row("m-expired", expired),
            row("m-edge", edge),
            row("m-replayed", replayed_lately),
        ],
    )
    .await;
    // Stored when received, except the replayed one: received 35 days ago, stored now.
    sqlx::query("update events set stored_at = received_at where message_id <> 'm-replayed'")
        .execute(&pool)
        .await
        .expect("backdate stored_at");
    for (origin_offset, days_ago) in [(1_i64, 11_i64), (2, 9)] {
        sqlx::query(
            "insert into dead_letters (webhook_id, message_id, reason, attempts, origin_topic, \
                                       origin_partition, origin_offset, payload, headers, dead_at) \
             values ('wh-1', $1, 'test', 3, 'hookline.events', 0, $2, '', '{}', now() - $3 * interval '1 day')",
        )
        .bind(format!("dl-{origin_offset}"))
        .bind(origin_offset)
        .bind(days_ago as f64)
        .execute(&pool)
        .await
        .expect("a dead letter");
    }

    let sweep = partitions.sweep(now).await.expect("sweep");
    assert_eq!(sweep.dropped, vec![day_of(expired)]);
    assert_eq!(sweep.dead_letters_expired, 1);
    let left: Vec<String> = sqlx::query_scalar("select message_id from events order by 1")
        .fetch_all(&pool)
        .await
        .expect("events left");
    assert_eq!(
        left,
        ["m-edge", "m-replayed"],
        "nothing inside the window goes"
    );
    let dead_letters: Vec<String> =
        sqlx::query_scalar("select message_id from dead_letters order by 1")
            .fetch_all(&pool)
            .await
            .expect("dead letters left");
    assert_eq!(dead_letters, ["dl-2"]);
    assert!(!days(&pool).await.contains(&day_of(expired)));

    // The dropped day comes back if an event of that day arrives again, and inserts
    // go on while days are dropped.
    assert_eq!(
        store(&partitions, &pool, &[row("m-late", expired)]).await,
        1
    );

    // Days expire by the database's clock. Once the replayed row too is past the
    // retention, its day goes; with a retention of one day, so does the edge's.
    sqlx::query(
        "update events set stored_at = now() - interval '2 days' where message_id = 'm-replayed'",
    )
    .execute(&pool)
    .await
    .expect("backdate the replayed row");
    let short = DayPartitions::new(
        pool.clone(),
        Retention {
            events_days: Some(1),
            ..RETENTION
        },
    );
    let later = short.sweep(Utc::now()).await.expect("a later sweep");
    assert!(later.dropped.contains(&day_of(replayed_lately)));
    assert!(later.dropped.contains(&day_of(edge)));
}

#[tokio::test]
async fn a_replica_that_finds_the_sweep_taken_leaves_it_alone() {
    let pool = migrated("partitions-lock").await;
    let holder = pool.acquire().await;
    let mut holder = holder.expect("connection");
    let taken: bool =
        sqlx::query_scalar("select pg_try_advisory_lock(hashtext('hookline.events.sweep'))")
            .fetch_one(&mut *holder)
            .await
            .expect("take the sweep lock");
    assert!(taken);
    let partitions = DayPartitions::new(pool.clone(), RETENTION);
    let sweep = partitions.sweep(Utc::now()).await.expect("sweep");
    assert!(!sweep.swept, "another replica holds the sweep");
    assert!(
        !sweep.created.is_empty(),
        "the days ahead are made all the same"
    );
}

/// A fresh database migrated by the owner, and a pool of the consumer's login on it.
async fn as_consumer(prefix: &str) -> (PgPool, PgPool) {
    let owner_url = hookline_testkit::fresh_database(prefix).await;
    let owner = database::connect(&owner_url, 2)
        .await
        .expect("connect as the owner");
    schema::migrate(&owner).await.expect("migrate as the owner");
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
    let consumer = database::connect(&consumer_url, 4)
        .await
        .expect("connect as the consumer");
    (owner, consumer)
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
    schema::verify(&consumer)
        .await
        .expect("the schema is current");

    // What it needs: partitions ahead and on demand, inserts, the dedup probe of other
    // days, and the retention of a whole old day.
    let partitions = DayPartitions::new(consumer.clone(), RETENTION);
    let now = Utc::now();
    let sweep = partitions.sweep(now).await.expect("sweep as the consumer");
    assert!(sweep.swept && sweep.partitions >= 5);
    let old = now - Duration::days(40);
    let rows = [row("m-old", old), row("m-new", now)];
    assert_eq!(store(&partitions, &consumer, &rows).await, 2);
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
