//! The storage stage: `--events` events stored over `--days` simulated days through the
//! consumer's own insert (day partitions, the dedup window's searches, batches of
//! `--batch`), while the consumer's sweep runs beside the traffic with a retention of
//! `--retention-days`. After each simulated day it measures the console's main
//! queries (the statements console/src/events.rs builds): a Webhook's newest events,
//! a Webhook's events in an hour, an event by the provider's id, and the newest events
//! of all Webhooks. Figures: the insert rate and each query's p50/p99 per day (they
//! stay flat when the table's growth does not show), the partitions the sweep dropped
//! while inserts ran, and whether every event of the retention window is still there.
//!
//! The days are simulated forward from today (each row's `stored_at` is the real
//! clock), so the sweep, told the simulated time, finds the early days past the
//! retention and stored long enough ago.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use chrono::{DateTime, NaiveDate, Utc};
use hookline_consumer::event::EventRow;
use hookline_store::day_partitions::{DayPartitions, Retention, Sweep, day_of};
use hookline_store::events::{self, EventColumns};
use hookline_store::schema;
use sqlx::PgPool;

use crate::local::{create_database, drop_database};
use crate::report::{Report, round};

#[derive(clap::Args)]
pub struct Args {
    /// Events stored in all.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Simulated days they are spread over.
    #[arg(long, default_value_t = 40)]
    days: u32,
    /// The retention the sweep enforces meanwhile, in days.
    #[arg(long, default_value_t = 30)]
    retention_days: u32,
    /// Events per insert statement (the consumer's default batch).
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Webhooks the events belong to.
    #[arg(long, default_value_t = 100)]
    webhooks: u64,
    /// Bytes of every event body.
    #[arg(long, default_value_t = 256)]
    body_bytes: usize,
    /// Runs of each query per measurement.
    #[arg(long, default_value_t = 30)]
    query_runs: usize,
    /// Keep the database afterwards (for inspection).
    #[arg(long)]
    keep: bool,
}

/// One measurement after a simulated day.
struct DayFigures {
    day: u32,
    rows_in_table: i64,
    insert_rows_per_s: f64,
    queries: Vec<(&'static str, f64, f64)>,
}

pub async fn run(args: Args) -> anyhow::Result<Report> {
    let admin_url = std::env::var("DATABASE_URL")
        .context("DATABASE_URL is not set: source .stack/env (make stack-up) first")?;
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let database = format!("hookline_bench_storage_{suffix}");
    let database_url = create_database(&admin_url, &database).await?;
    let result = measure(&args, &database_url).await;
    if args.keep {
        println!("kept database {database}");
    } else {
        drop_database(&admin_url, &database).await?;
    }
    result
}

async fn measure(args: &Args, database_url: &str) -> anyhow::Result<Report> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(database_url)
        .await?;
    schema::migrate(&pool).await?;
    let retention = Retention {
        events_days: Some(args.retention_days),
        dead_letter_days: None,
        days_ahead: 3,
        dedup_window_days: 3,
    };
    let partitions = Arc::new(DayPartitions::new(pool.clone(), retention));
    let per_day = args.events / u64::from(args.days);
    let first_day = day_of(Utc::now());
    let body = format!(
        "{{\"type\":\"invoice.paid\",\"note\":\"{}\"}}",
        "x".repeat(args.body_bytes.saturating_sub(32))
    );
    let mut figures = Vec::new();
    let mut dropped: Vec<NaiveDate> = Vec::new();
    let mut stored = 0u64;
    let mut last_day_end = Utc::now();
    for day in 0..args.days {
        let date = first_day + chrono::Duration::days(i64::from(day));
        let midnight = date.and_hms_opt(0, 0, 0).context("midnight")?.and_utc();
        let day_end = midnight + chrono::Duration::days(1);
        last_day_end = day_end;
        // The sweep of the simulated day's first minute, beside its traffic: it drops
        // the day past the retention and analyzes the day that just ended.
        let sweep = tokio::spawn({
            let partitions = partitions.clone();
            async move {
                partitions
                    .sweep(midnight + chrono::Duration::minutes(1))
                    .await
            }
        });
        let started = Instant::now();
        let mut next = 0u64;
        while next < per_day {
            let rows: Vec<EventRow> = (next..(next + args.batch as u64).min(per_day))
                .map(|i| {
                    let n = stored + i;
                    let received_at = midnight
                        + chrono::Duration::milliseconds((i * 86_400_000 / per_day) as i64);
                    event_row(n, n % args.webhooks, received_at, &body)
                })
                .collect();
            let days = partitions
                .ensure_for(rows.iter().map(|r| r.received_at))
                .await?;
            let mut connection = pool.acquire().await?;
            let inserted = events::insert(
                &mut connection,
                &rows.iter().collect::<EventColumns>(),
                &days.searched,
            )
            .await?
            .total();
            if inserted != rows.len() as u64 {
                bail!("{} of {} new events inserted", inserted, rows.len());
            }
            next += rows.len() as u64;
        }
        let insert_rows_per_s = per_day as f64 / started.elapsed().as_secs_f64();
        let swept: Sweep = sweep.await??;
        dropped.extend(&swept.dropped);
        stored += per_day;
        let rows_in_table: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&pool)
            .await?;
        let queries = time_queries(&pool, args, stored, per_day, day_end).await?;
        println!(
            "day {day}: {rows_in_table} rows, {insert_rows_per_s:.0} inserted/s, dropped {:?}, {}",
            swept.dropped,
            queries
                .iter()
                .map(|(name, _, p99)| format!("{name} p99 {p99:.2} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        figures.push(DayFigures {
            day,
            rows_in_table,
            insert_rows_per_s,
            queries,
        });
    }

    // The last day's end: the window is then exactly the retention.
    dropped.extend(partitions.sweep(last_day_end).await?.dropped);

    // Every day of the window is whole; every day before it is gone.
    let last_day = first_day + chrono::Duration::days(i64::from(args.days) - 1);
    let per_day_rows: Vec<(NaiveDate, i64)> =
        sqlx::query_as("SELECT received_day, count(*) FROM events GROUP BY 1 ORDER BY 1")
            .fetch_all(&pool)
            .await?;
    let window_start = last_day - chrono::Duration::days(i64::from(args.retention_days) - 1);
    for (date, count) in &per_day_rows {
        if *date >= window_start && *count != per_day as i64 {
            bail!("{date} holds {count} of its {per_day} events");
        }
    }
    if let Some((date, count)) = per_day_rows.iter().find(|(d, _)| *d < window_start) {
        bail!("{date}, before the retention window, still holds {count} events");
    }
    let kept_days = per_day_rows
        .iter()
        .filter(|(d, _)| *d >= window_start)
        .count();
    if kept_days != args.retention_days.min(args.days) as usize {
        bail!("{kept_days} days of the window are kept");
    }

    let mut report = Report::new("storage");
    report
        .figure("events", stored)
        .figure("simulated_days", args.days)
        .figure("retention_days", args.retention_days)
        .figure("events_per_day", per_day)
        .figure("batch", args.batch)
        .figure("body_bytes", args.body_bytes)
        .figure("partitions_dropped_during_traffic", dropped.len())
        .figure("window_intact", true)
        .figure("rows_at_end", figures.last().map_or(0, |f| f.rows_in_table));
    let quarter = (figures.len() / 4).max(1);
    let mean = |slice: &[DayFigures], f: &dyn Fn(&DayFigures) -> f64| {
        slice.iter().map(f).sum::<f64>() / slice.len() as f64
    };
    let (early, late) = (&figures[..quarter], &figures[figures.len() - quarter..]);
    report
        .figure(
            "insert_rows_per_s_first_days",
            round(mean(early, &|f| f.insert_rows_per_s)),
        )
        .figure(
            "insert_rows_per_s_last_days",
            round(mean(late, &|f| f.insert_rows_per_s)),
        );
    for (index, (name, _, _)) in figures[0].queries.iter().enumerate() {
        report
            .figure(
                &format!("{name}_p99_ms_first_days"),
                round(mean(early, &|f| f.queries[index].2)),
            )
            .figure(
                &format!("{name}_p99_ms_last_days"),
                round(mean(late, &|f| f.queries[index].2)),
            );
    }
    report.figure(
        "per_day",
        serde_json::Value::from(
            figures
                .iter()
                .map(|f| {
                    let mut day = serde_json::json!({
                        "day": f.day,
                        "rows_in_table": f.rows_in_table,
                        "insert_rows_per_s": round(f.insert_rows_per_s),
                    });
                    for (name, p50, p99) in &f.queries {
                        day[format!("{name}_p50_ms")] = round(*p50).into();
                        day[format!("{name}_p99_ms")] = round(*p99).into();
                    }
                    day
                })
                .collect::<Vec<_>>(),
        ),
    );
    pool.close().await;
    Ok(report)
}

fn event_row(n: u64, webhook: u64, received_at: DateTime<Utc>, body: &str) -> EventRow {
    EventRow {
        webhook_id: format!("bench-wh-{webhook}"),
        message_id: format!("msg_{n}"),
        event_id: Some(format!("evt_{n}")),
        event_type: Some("invoice.paid".into()),
        source_timestamp: Some(received_at),
        body: body.as_bytes().to_vec(),
        payload: Some(body.to_owned()),
        content_type: Some("application/json".into()),
        request_headers: Some(format!("{{\"webhook-id\":\"msg_{n}\"}}")),
        received_at,
        attempts: 1,
    }
}

/// p50 and p99 in ms of each of the console's main queries, on events of the window.
async fn time_queries(
    pool: &PgPool,
    args: &Args,
    stored: u64,
    per_day: u64,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<(&'static str, f64, f64)>> {
    const COLUMNS: &str =
        "webhook_id, message_id, event_id, event_type, received_at, stored_at, attempts";
    let retained = per_day * u64::from(args.retention_days);
    let oldest = stored.saturating_sub(retained.min(stored));
    let mut results = Vec::new();
    for name in ["webhook_newest", "webhook_hour", "event_id", "all_newest"] {
        let mut samples = Vec::with_capacity(args.query_runs);
        for run in 0..args.query_runs as u64 {
            // Spread over the window: a Webhook, an hour, an event that exist.
            let n = oldest + (run * 7_919 + 13) % (stored - oldest).max(1);
            let webhook = format!("bench-wh-{}", n % args.webhooks);
            let hour_end = now - chrono::Duration::hours((run % 24) as i64);
            let started = Instant::now();
            let rows = match name {
                "webhook_newest" => {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM events WHERE webhook_id = $1 \
                     ORDER BY received_at DESC, message_id DESC LIMIT 51"
                    )))
                    .bind(&webhook)
                    .fetch_all(pool)
                    .await?
                }
                "webhook_hour" => {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM events WHERE webhook_id = $1 \
                     AND received_at >= $2 AND received_at < $3 \
                     ORDER BY received_at DESC, message_id DESC LIMIT 51"
                    )))
                    .bind(&webhook)
                    .bind(hour_end - chrono::Duration::hours(1))
                    .bind(hour_end)
                    .fetch_all(pool)
                    .await?
                }
                "event_id" => {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM events WHERE event_id = $1 \
                     ORDER BY received_at DESC, webhook_id DESC, message_id DESC LIMIT 51"
                    )))
                    .bind(format!("evt_{n}"))
                    .fetch_all(pool)
                    .await?
                }
                _ => {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM events \
                     ORDER BY received_at DESC, webhook_id DESC, message_id DESC LIMIT 51"
                    )))
                    .fetch_all(pool)
                    .await?
                }
            };
            samples.push(started.elapsed());
            if rows.is_empty() {
                bail!("query {name} found nothing (run {run})");
            }
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[index].as_secs_f64() * 1_000.0
        };
        results.push((name, at(0.5), at(0.99)));
    }
    Ok(results)
}
