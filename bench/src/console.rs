//! The console stage: with `--events` (10 million) events stored over 30 simulated
//! days, how long the console's main queries take through its API (newest first, by
//! webhook, filtered by type, by provider event id, a time range, deep pages, the
//! Webhooks page's counts); and how soon the live tail shows an event after it was
//! stored while events are stored at `--live-rate` (2,000) per second.
//!
//! The rows are loaded the way a restore would: the migrations' secondary indexes are
//! dropped, the rows inserted, the same index definitions built again, then ANALYZE.
//! The console is the release binary on loopback with the stack's console login
//! (role hookline_console), reading a database of its own that is dropped afterwards.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use hookline_runtime::kafka::KafkaConnection;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::local::{
    create_database, drop_database, http_get_with, kafka_connection, start_ready, terminate,
    with_database,
};
use crate::report::{Report, round};

#[derive(clap::Args)]
pub struct Args {
    /// Events stored before the queries are measured.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Webhooks the events are spread over.
    #[arg(long, default_value_t = 20)]
    webhooks: u64,
    /// Requests measured per query.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Events stored per second while the live tail is measured.
    #[arg(long, default_value_t = 2_000)]
    live_rate: u64,
    /// Seconds the live tail is measured.
    #[arg(long, default_value_t = 30)]
    live_secs: u64,
    /// Loopback port of the console's API.
    #[arg(long, default_value_t = 19480)]
    port: u16,
    /// Loopback port of the console's /readyz and /metrics.
    #[arg(long, default_value_t = 19481)]
    ops_port: u16,
    /// Keep the database afterwards (for inspection).
    #[arg(long)]
    keep: bool,
}

const EVENT_TYPES: [&str; 8] = [
    "invoice.created",
    "invoice.paid",
    "invoice.voided",
    "customer.created",
    "customer.updated",
    "charge.succeeded",
    "charge.refunded",
    "payout.paid",
];
const USER: &str = "bench";
const PASSWORD: &str = "bench-console-password";
const SIMULATED_DAYS: u64 = 30;
const LOAD_CHUNK: u64 = 500_000;

pub async fn run(args: Args) -> anyhow::Result<Report> {
    let admin_url = env("DATABASE_URL")?;
    let console_login = env("CONSOLE_DATABASE_URL")?;
    let kafka = kafka_connection()?;
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let database = format!("hookline_bench_console_{suffix}");
    let database_url = create_database(&admin_url, &database).await?;
    let console_url = with_database(&console_login, &database, "CONSOLE_DATABASE_URL")?;
    let result = measure(&args, &database_url, &console_url, &kafka).await;
    if !args.keep {
        drop_database(&admin_url, &database).await?;
    }
    result
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set: source .stack/env (make stack-up) first"))
}

async fn measure(
    args: &Args,
    database_url: &str,
    console_database_url: &str,
    kafka: &KafkaConnection,
) -> anyhow::Result<Report> {
    let migrate =
        tokio::process::Command::new(std::env::current_exe()?.with_file_name("hookline-consumer"))
            .args([
                "--log-format",
                "text",
                "--database-url",
                database_url,
                "migrate",
            ])
            .status()
            .await?;
    if !migrate.success() {
        bail!("hookline-consumer migrate failed");
    }
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(database_url)
        .await?;
    let mut report = Report::new("console");
    report
        .figure("events", args.events)
        .figure("webhooks", args.webhooks)
        .figure("simulated_days", SIMULATED_DAYS);
    let load = load(&pool, args.events, args.webhooks).await?;
    report
        .figure("load_rows_per_s", round(load.rows_per_s))
        .figure("load_index_build_s", round(load.index_build_s))
        .figure("table_and_indexes_mb", load.size_mb);

    let users = std::env::temp_dir().join(format!(
        "hookline-bench-console-users-{}",
        std::process::id()
    ));
    std::fs::write(
        &users,
        format!("{USER}:operator:{}\n", cheap_hash(PASSWORD)?),
    )?;
    let console = start_ready(
        "console",
        |command| {
            command
                .args(["--log-format", "text"])
                .args(["--database-url", console_database_url])
                .args(["--kafka-bootstrap-servers", kafka.bootstrap_servers()])
                .envs(kafka.env_vars())
                .args(["--listen-addr", &format!("127.0.0.1:{}", args.port)])
                .args(["--ops-addr", &format!("127.0.0.1:{}", args.ops_port)])
                .arg("--users-file")
                .arg(&users);
        },
        args.ops_port,
    )
    .await;
    let _ = std::fs::remove_file(&users);
    let mut console = console?;
    let api = Api { port: args.port };

    let webhook = |n: u64| format!("bench-wh-{}", n % args.webhooks);
    let queries: Vec<(&str, PathOf<'_>)> = vec![
        (
            "events_newest",
            Box::new(|_| "/api/v1/events?limit=50".into()),
        ),
        (
            "events_by_webhook",
            Box::new(move |n| format!("/api/v1/events?limit=50&webhook_id={}", webhook(n))),
        ),
        (
            "events_by_webhook_and_type",
            Box::new(move |n| {
                format!(
                    "/api/v1/events?limit=50&webhook_id={}&event_type={}",
                    webhook(n),
                    EVENT_TYPES[(n % 8) as usize]
                )
            }),
        ),
        (
            "events_by_event_id",
            Box::new(move |n| format!("/api/v1/events?event_id=evt_{}", (n * 7_919) % args.events)),
        ),
        (
            "events_by_webhook_in_a_past_hour",
            Box::new(move |n| {
                let hour = Utc::now() - chrono::Duration::hours(1 + (n % 600) as i64);
                format!(
                    "/api/v1/events?limit=50&webhook_id={}&since={}&until={}",
                    webhook(n),
                    encode_time(hour),
                    encode_time(hour + chrono::Duration::hours(1))
                )
            }),
        ),
        (
            "search_body_of_a_webhook_in_a_past_hour",
            Box::new(move |n| {
                let hour = Utc::now() - chrono::Duration::hours(1 + (n % 600) as i64);
                format!(
                    "/api/v1/events?limit=50&webhook_id={}&q=acct_{}&since={}&until={}",
                    webhook(n),
                    n % 97,
                    encode_time(hour),
                    encode_time(hour + chrono::Duration::hours(1))
                )
            }),
        ),
    ];
    for (name, path) in &queries {
        let mut samples = Vec::with_capacity(args.requests);
        let mut empty = 0;
        for n in 0..args.requests as u64 {
            let (elapsed, page) = api.get(&path(n)).await.with_context(|| name.to_string())?;
            samples.push(elapsed);
            if page["items"].as_array().is_none_or(Vec::is_empty) {
                empty += 1;
            }
        }
        // Every query but the body search selects rows that exist: an empty answer
        // would time a query that found nothing.
        if empty > 0 && !name.starts_with("search") {
            bail!("{name}: {empty} of {} answers were empty", args.requests);
        }
        report
            .latencies(name, &mut samples)
            .figure(&format!("{name}_empty_answers"), empty);
        println!("{name}: measured");
    }
    // Deep pages: the 2nd to 21st page of one webhook, cursor after cursor.
    let mut deep = Vec::new();
    for n in 0..(args.requests as u64 / 20).max(1) {
        let mut path = format!("/api/v1/events?limit=50&webhook_id={}", webhook(n));
        for _ in 0..20 {
            let (elapsed, page) = api.get(&path).await?;
            deep.push(elapsed);
            let Some(cursor) = page["next_cursor"].as_str() else {
                break;
            };
            path = format!(
                "/api/v1/events?limit=50&webhook_id={}&cursor={cursor}",
                webhook(n)
            );
        }
    }
    report.latencies("events_deep_pages", &mut deep);
    let mut webhooks_page = Vec::new();
    for _ in 0..10 {
        webhooks_page.push(api.get("/api/v1/webhooks").await?.0);
    }
    report.latencies("stats_last_day_of_all_webhooks", &mut webhooks_page);

    let live = live_tail(&pool, &api, args.live_rate, args.live_secs).await?;
    report
        .figure("live_rate_per_s", round(live.stored_per_s))
        .latencies("live_shown_after_stored", &mut live.shown.clone())
        .figure("live_rate_samples", live.rate_samples);
    terminate(&mut console, Duration::from_secs(20)).await?;
    Ok(report)
}

/// The request path of the n-th request of a query.
/// The password's argon2id hash from `hookline-console hash-password`, with the cheapest
/// parameters: every API call below checks HTTP Basic, and the figures are the queries'.
fn cheap_hash(password: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    let binary = std::env::current_exe()?.with_file_name("hookline-console");
    let mut child = std::process::Command::new(&binary)
        .args(["hash-password", "--memory-kib", "8", "--iterations", "1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    child
        .stdin
        .take()
        .context("hash-password's stdin")?
        .write_all(format!("{password}\n").as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("hookline-console hash-password failed");
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

type PathOf<'a> = Box<dyn Fn(u64) -> String + 'a>;

fn encode_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

struct Api {
    port: u16,
}

impl Api {
    fn authorization() -> String {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        format!("Authorization: Basic {basic}\r\n")
    }

    /// One GET: its time and its JSON, after checking it answered 200.
    async fn get(&self, path: &str) -> anyhow::Result<(Duration, Value)> {
        let started = Instant::now();
        let (status, body) = http_get_with(self.port, path, &Self::authorization()).await?;
        let elapsed = started.elapsed();
        if status != 200 {
            bail!("GET {path} answered {status}: {body}");
        }
        Ok((elapsed, serde_json::from_str(&body)?))
    }
}

struct Load {
    rows_per_s: f64,
    index_build_s: f64,
    size_mb: i64,
}

/// Inserts `events` rows over the last 30 days, newest last, with the secondary indexes
/// dropped meanwhile and built again after.
async fn load(pool: &PgPool, events: u64, webhooks: u64) -> anyhow::Result<Load> {
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname, indexdef FROM pg_indexes \
         WHERE tablename = 'events' AND indexname <> 'events_pkey'",
    )
    .fetch_all(pool)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {name}")))
            .execute(pool)
            .await?;
    }
    let types = EVENT_TYPES.map(|t| format!("'{t}'")).join(",");
    let span_secs = (SIMULATED_DAYS * 86_400) as f64;
    // One partition per day of the simulated span (the consumer makes them in service).
    sqlx::query(
        "SELECT events_ensure_partition(d::date) \
         FROM generate_series((now() AT TIME ZONE 'UTC')::date - $1::int - 1, \
                              (now() AT TIME ZONE 'UTC')::date + 1, interval '1 day') AS d",
    )
    .bind(i32::try_from(SIMULATED_DAYS)?)
    .execute(pool)
    .await?;
    let started = Instant::now();
    let mut from = 0;
    while from < events {
        let to = (from + LOAD_CHUNK).min(events);
        // Row i was received span * (events - i) / events seconds ago.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO events (webhook_id, message_id, event_id, event_type, source_timestamp, \
               payload, body, content_type, request_headers, received_at, stored_at, attempts, \
               received_day) \
             SELECT 'bench-wh-' || (i % {webhooks}), 'msg_' || i, 'evt_' || i, \
               (ARRAY[{types}])[1 + i % 8], t, b::jsonb, convert_to(b, 'UTF8'), 'application/json', \
               jsonb_build_object('webhook-id', 'msg_' || i), t, t + interval '20 milliseconds', 1, \
               (t AT TIME ZONE 'UTC')::date \
             FROM (SELECT i, now() - make_interval(secs => {span_secs:.1} * ({events} - i) / {events}) AS t, \
                     json_build_object('type', (ARRAY[{types}])[1 + i % 8], 'id', 'evt_' || i, \
                       'data', json_build_object('account', 'acct_' || (i % 97), 'amount', i % 10000, \
                         'currency', 'eur', 'note', repeat('x', 120)))::text AS b \
                   FROM generate_series({from}, {last}) AS i) AS rows",
            last = to - 1
        )))
        .execute(pool)
        .await?;
        from = to;
        println!("loaded {from} of {events} events");
    }
    let rows_per_s = events as f64 / started.elapsed().as_secs_f64();
    let building = Instant::now();
    for (_, definition) in &indexes {
        // pg_indexes writes a partitioned table's index as `ON ONLY`, which would build
        // it for the parent alone, leaving every partition without it.
        let definition = definition.replacen(" ON ONLY ", " ON ", 1);
        sqlx::query(sqlx::AssertSqlSafe(definition))
            .execute(pool)
            .await?;
    }
    sqlx::query("ANALYZE events").execute(pool).await?;
    let index_build_s = building.elapsed().as_secs_f64();
    let size_mb: i64 = sqlx::query_scalar(
        "SELECT (sum(pg_total_relation_size(inhrelid)) / 1048576)::int8 \
         FROM pg_inherits WHERE inhparent = 'events'::regclass",
    )
    .fetch_one(pool)
    .await?;
    Ok(Load {
        rows_per_s,
        index_build_s,
        size_mb,
    })
}

struct Live {
    stored_per_s: f64,
    shown: Vec<Duration>,
    rate_samples: usize,
}

/// Stores `rate` events a second for `secs` seconds (a batch every 50 ms) while a live
/// tail reads them; each event it shows is timed from its stored_at to its arrival.
async fn live_tail(pool: &PgPool, api: &Api, rate: u64, secs: u64) -> anyhow::Result<Live> {
    let mut stream = TcpStream::connect(("127.0.0.1", api.port)).await?;
    stream
        .write_all(
            format!(
                "GET /api/v1/live?webhook_id=bench-live HTTP/1.0\r\nHost: localhost\r\n{}\r\n",
                Api::authorization()
            )
            .as_bytes(),
        )
        .await?;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        let mut shown = Vec::new();
        let mut rate_samples = 0;
        let mut event = String::new();
        loop {
            let line = tokio::select! {
                line = lines.next_line() => line,
                _ = &mut stopped => break,
            };
            let Ok(Some(line)) = line else {
                break;
            };
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let arrived = Utc::now();
                let Ok(value) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                match event.as_str() {
                    "stored" => {
                        if let Some(stored_at) = value["stored_at"]
                            .as_str()
                            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        {
                            let after = arrived - stored_at.with_timezone(&Utc);
                            shown.push(after.to_std().unwrap_or_default());
                        }
                    }
                    "rate" => rate_samples += 1,
                    _ => {}
                }
            }
        }
        (shown, rate_samples)
    });
    let per_batch = (rate / 20).max(1);
    let started = Instant::now();
    let mut stored = 0u64;
    let mut next = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        sqlx::query(
            "INSERT INTO events (webhook_id, message_id, body, received_at, received_day) \
             SELECT 'bench-live', 'live_' || $1 || '_' || i, '{}', now(), \
                    (now() AT TIME ZONE 'UTC')::date \
             FROM generate_series(1, $2) AS i",
        )
        .bind(stored as i64)
        .bind(per_batch as i64)
        .execute(pool)
        .await?;
        stored += per_batch;
        next += Duration::from_millis(50);
        tokio::time::sleep_until(next).await;
    }
    let stored_per_s = stored as f64 / started.elapsed().as_secs_f64();
    // The tail's last look and rate tick, then the stream is closed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(());
    let (shown, rate_samples) = reader.await?;
    if shown.is_empty() {
        bail!("the live tail showed no event while {stored} were stored");
    }
    Ok(Live {
        stored_per_s,
        shown,
        rate_samples,
    })
}
