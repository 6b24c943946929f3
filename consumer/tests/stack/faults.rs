//! Faults in the middle of a stream: the database stops, the consumer is killed, a
//! second consumer joins. Every event is stored exactly once, by its first attempt.

use hookline_testkit::process::{Signal, send_signal};
use std::process::Stdio;
use std::time::Duration;

use hookline_consumer::metrics::{
    ASSIGNED_PARTITIONS, CONSUMED, DUPLICATES, INFRASTRUCTURE_FAILURES, PAUSED, STORED,
};
use hookline_core::retry::DeliveryPolicy;
use hookline_testkit::postgres::PrivatePostgres;
use hookline_testkit::{eventually, http};

use crate::common::{Harness, assert_stored_once_without_retries, entry, series};

const BIN: &str = env!("CARGO_BIN_EXE_hookline-consumer");

async fn wait_until_stored(h: &Harness, at_least: i64, timeout: Duration) -> i64 {
    eventually(&format!("{at_least} events stored"), timeout, || async {
        let count = h.count_events().await;
        (count >= at_least).then_some(count)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_mid_stream_loses_and_dead_letters_nothing() {
    // A private cluster: the stack's PostgreSQL is shared with every other test.
    let postgres = tokio::task::spawn_blocking(PrivatePostgres::start)
        .await
        .expect("start a private PostgreSQL");
    let h = Harness::with_database("consumer-outage", 2, postgres.url()).await;
    h.register(&entry("wh-o", DeliveryPolicy::default())).await;
    let consumer = h.start(&["--batch-max-events", "200"]).await;

    let producing = {
        let h = h.clone();
        tokio::spawn(async move { h.produce_paced("paced", &["wh-o"], 6_000, 1_000).await })
    };
    wait_until_stored(&h, 500, Duration::from_secs(20)).await;

    let postgres = tokio::task::spawn_blocking(move || {
        postgres.stop();
        postgres
    })
    .await
    .expect("stop PostgreSQL");
    // Down long enough for /readyz to notice (it checks every 5 s) while events arrive.
    eventually(
        "/readyz reporting the database outage",
        Duration::from_secs(15),
        || async {
            let port = consumer.ops_port;
            let answer = tokio::task::spawn_blocking(move || http::get(port, "/readyz"))
                .await
                .expect("probe");
            matches!(&answer, Some((503, body)) if body.contains("database")).then_some(())
        },
    )
    .await;
    // The consumer meets the outage with a batch in hand and pauses.
    eventually("the consumer paused", Duration::from_secs(20), || async {
        (consumer.metric(&series(PAUSED, r#"source="events""#)).await >= 1.0).then_some(())
    })
    .await;
    assert!(
        consumer
            .metric(&series(INFRASTRUCTURE_FAILURES, r#"kind="database""#))
            .await
            >= 1.0
    );
    let postgres = tokio::task::spawn_blocking(move || {
        postgres.start_again();
        postgres
    })
    .await
    .expect("start PostgreSQL again");

    let ids = producing.await.expect("producer task");
    h.wait_for_events(ids.len() as i64, Duration::from_secs(60))
        .await;
    assert_stored_once_without_retries(&h, &ids).await;
    assert_eq!(
        consumer.metric(&series(PAUSED, r#"source="events""#)).await,
        0.0
    );
    consumer.stop().await;
    drop(postgres);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_started_before_its_database_waits_unready_then_stores() {
    let postgres = tokio::task::spawn_blocking(PrivatePostgres::start)
        .await
        .expect("start a private PostgreSQL");
    let h = Harness::with_database("consumer-db-late", 1, postgres.url()).await;
    h.register(&entry("wh-late", DeliveryPolicy::default()))
        .await;
    let postgres = tokio::task::spawn_blocking(move || {
        postgres.stop();
        postgres
    })
    .await
    .expect("stop PostgreSQL");

    // As in a cluster where the consumer's pod starts first: alive, not ready, no exit.
    let consumer = h.spawn(&[]);
    let port = consumer.ops_port;
    eventually(
        "live but not ready, naming the database",
        Duration::from_secs(20),
        || async {
            let (ready, live) = tokio::task::spawn_blocking(move || {
                (http::get(port, "/readyz"), http::get(port, "/healthz"))
            })
            .await
            .expect("probe");
            matches!(
                (&ready, &live),
                (Some((503, body)), Some((200, _))) if body.contains("database")
            )
            .then_some(())
        },
    )
    .await;
    // Several connection attempts fail meanwhile; the consumer keeps waiting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!consumer.has_exited(), "the consumer gave up on PostgreSQL");

    let postgres = tokio::task::spawn_blocking(move || {
        postgres.start_again();
        postgres
    })
    .await
    .expect("start PostgreSQL again");
    consumer.wait_ready().await;
    let ids = h.produce_paced("late", &["wh-late"], 50, 500).await;
    h.wait_for_events(ids.len() as i64, Duration::from_secs(30))
        .await;
    assert_stored_once_without_retries(&h, &ids).await;
    consumer.stop().await;
    drop(postgres);
}

/// The real binary, run as a child process of the test.
struct Child {
    process: tokio::process::Child,
}

impl Child {
    fn spawn(h: &Harness, log: &std::path::Path) -> Self {
        let ops_port = http::free_port();
        let args = h.run_args(
            ops_port,
            &[
                "--group-instance-id",
                "crash-test",
                "--batch-max-events",
                "300",
            ],
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let process = tokio::process::Command::new(BIN)
            .args(["--log-format", "text"])
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start the consumer binary");
        Self { process }
    }

    async fn sigterm_and_wait(mut self) {
        let pid = self.process.id().expect("running");
        assert!(send_signal(pid, Signal::Term), "SIGTERM delivered");
        let exit = tokio::time::timeout(Duration::from_secs(30), self.process.wait())
            .await
            .expect("exited within 30 s after SIGTERM")
            .expect("exit status");
        assert!(exit.success(), "exit after SIGTERM: {exit}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_mid_batch_again_and_again_stores_every_event_once() {
    let h = Harness::new("consumer-crash", 3).await;
    h.register(&entry("wh-k", DeliveryPolicy::default())).await;
    let log = std::env::temp_dir().join(format!("{}.log", h.events_topic));
    // A backlog, so that every process is busy with full batches when it is killed;
    // more events keep arriving meanwhile.
    let mut ids = h.produce_paced("backlog", &["wh-k"], 30_000, 50_000).await;
    let total = ids.len() as i64 + 3_000;
    let producing = {
        let h = h.clone();
        tokio::spawn(async move { h.produce_paced("live", &["wh-k"], 3_000, 1_000).await })
    };

    let mut kills_mid_stream = 0;
    for round in 0..4u64 {
        let before = h.count_events().await;
        let mut child = Child::spawn(&h, &log);
        // Kill it at a point that varies by round, once it stores.
        wait_until_stored(&h, before + 1, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(50 + 75 * round)).await;
        child.process.start_kill().expect("SIGKILL");
        child.process.wait().await.expect("reaped");
        let at_kill = h.count_events().await;
        if at_kill > before && at_kill < total {
            kills_mid_stream += 1;
        }
    }
    assert!(
        kills_mid_stream >= 3,
        "only {kills_mid_stream} kills hit a running stream"
    );

    let last = Child::spawn(&h, &log);
    ids.extend(producing.await.expect("producer task"));
    h.wait_for_events(total, Duration::from_secs(60)).await;
    last.sigterm_and_wait().await;
    assert_stored_once_without_retries(&h, &ids).await;
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_in_one_group_split_the_partitions_without_duplicates() {
    let h = Harness::new("consumer-group", 4).await;
    let webhooks: Vec<String> = (0..8).map(|i| format!("wh-{i}")).collect();
    for webhook in &webhooks {
        h.register(&entry(webhook, DeliveryPolicy::default())).await;
    }
    let first = h.start(&[]).await;
    let producing = {
        let h = h.clone();
        let webhooks = webhooks.clone();
        tokio::spawn(async move {
            let ids: Vec<&str> = webhooks.iter().map(String::as_str).collect();
            h.produce_paced("paced", &ids, 6_000, 1_500).await
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = h.start(&[]).await;

    let mut ids = producing.await.expect("producer task");

    let assigned = &series(ASSIGNED_PARTITIONS, r#"source="events""#);
    let consumed = &series(CONSUMED, r#"source="events""#);
    // A cooperative rebalance hands partitions over in steps, and under load it can end
    // after the first events are all stored: more events once the split is done give
    // both consumers some.
    eventually(
        "the partitions split between the two consumers",
        Duration::from_secs(30),
        || async {
            let (a, b) = (first.metric(assigned).await, second.metric(assigned).await);
            (a >= 1.0 && b >= 1.0 && a + b == 4.0).then_some(())
        },
    )
    .await;
    let webhook_ids: Vec<&str> = webhooks.iter().map(String::as_str).collect();
    ids.extend(h.produce_paced("split", &webhook_ids, 800, 1_500).await);
    h.wait_for_events(ids.len() as i64, Duration::from_secs(60))
        .await;
    assert_stored_once_without_retries(&h, &ids).await;
    assert!(first.metric(consumed).await > 0.0 && second.metric(consumed).await > 0.0);
    let stored = first.metric_sum(STORED).await + second.metric_sum(STORED).await;
    assert_eq!(stored, ids.len() as f64);
    let duplicates =
        first.metric(&DUPLICATES.exported()).await + second.metric(&DUPLICATES.exported()).await;
    assert_eq!(
        duplicates, 0.0,
        "no event was processed twice across the rebalance"
    );
    second.stop().await;
    first.stop().await;
}
