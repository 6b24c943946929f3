//! Fault scenarios against the whole system during steady traffic, and the accounting
//! that says whether an acknowledged event was lost.
//!
//! Each scenario gets a Webhook of its own whose emitter sends at [`RATE`] events per
//! second with a patient retry policy (a 503 or a refused connection is retried for
//! over a minute). The fault is injected while traffic flows; when it has ended, the
//! recovery time runs until every event acknowledged by then is stored and new ones
//! are acknowledged again. Then the emitter is stopped and its own tally (emitted,
//! delivered = answered 2xx, failed, abandoned) is compared with PostgreSQL.

use hookline_testkit::process::{Signal, send_signal};
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::system::{System, repo_root};
use hookline_testkit::eventually;
use hookline_testkit::prometheus::family_sum;

/// Events per second of each scenario's emitter.
pub const RATE: f64 = 50.0;
/// Longest wait for the system to recover after a fault ends.
const RECOVERY_LIMIT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    ConsumerKills,
    HandlerKills,
    KafkaKill,
    PostgresRestart,
    PostgresSlow,
    OperatorKill,
    OperatorPair,
    TargetUnreachable,
}

impl Scenario {
    pub const ALL: [Self; 8] = [
        Self::ConsumerKills,
        Self::HandlerKills,
        Self::KafkaKill,
        Self::PostgresRestart,
        Self::PostgresSlow,
        Self::OperatorKill,
        Self::OperatorPair,
        Self::TargetUnreachable,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            Self::ConsumerKills => "consumer-kills",
            Self::HandlerKills => "handler-kills",
            Self::KafkaKill => "kafka-kill",
            Self::PostgresRestart => "postgres-restart",
            Self::PostgresSlow => "postgres-slow",
            Self::OperatorKill => "operator-kill",
            Self::OperatorPair => "operator-pair",
            Self::TargetUnreachable => "target-unreachable",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.slug() == slug)
    }

    /// What the fault is, for the report.
    pub fn fault(self) -> &'static str {
        match self {
            Self::ConsumerKills => "a consumer SIGKILLed every 4 s, 6 times",
            Self::HandlerKills => "a handler SIGKILLed every 3 s with requests in flight, 6 times",
            Self::KafkaKill => "the Kafka broker SIGKILLed, restarted 10 s later",
            Self::PostgresRestart => "PostgreSQL stopped for 15 s, then started",
            Self::PostgresSlow => {
                "PostgreSQL slow: a transaction holds an exclusive lock on `events` for 20 s"
            }
            Self::OperatorKill => {
                "the operator SIGKILLed right after 5 Webhooks were applied (mid-reconcile)"
            }
            Self::OperatorPair => "two operator replicas; the leader SIGKILLed",
            Self::TargetUnreachable => "the emitters' target (nginx) down for 60 s",
        }
    }

    /// Whether the scenario stops a service of the shared stack (Kafka, PostgreSQL):
    /// such a scenario must not run beside other tests.
    pub fn touches_shared_stack(self) -> bool {
        matches!(
            self,
            Self::KafkaKill | Self::PostgresRestart | Self::PostgresSlow
        )
    }
}

/// One row of docs/RELIABILITY.md.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: Scenario,
    pub emitted: u64,
    /// Answered 2xx: the system acknowledged them.
    pub acknowledged: u64,
    /// Given up by the emitter after its retries (or refused for good).
    pub not_delivered: u64,
    pub stored: i64,
    pub dead_lettered: i64,
    /// Message ids both stored and dead-lettered.
    pub duplicates: i64,
    /// Stored or dead-lettered events the emitter never saw acknowledged (an answer
    /// lost with its handler, then the retry given up): not lost, not duplicated.
    pub beyond_acknowledged: i64,
    /// Acknowledged but neither stored nor dead-lettered.
    pub lost: i64,
    pub recovery: Option<Duration>,
    pub note: String,
}

impl Row {
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.not_delivered == 0
            && self.acknowledged > 0
            && self.recovery.is_some()
    }

    pub fn verdict(&self) -> String {
        if self.passed() {
            return "pass".into();
        }
        let mut why = Vec::new();
        if self.lost > 0 {
            why.push(format!("{} lost", self.lost));
        }
        if self.duplicates > 0 {
            why.push(format!("{} duplicated", self.duplicates));
        }
        if self.not_delivered > 0 {
            why.push(format!("{} not delivered", self.not_delivered));
        }
        if self.recovery.is_none() {
            why.push("did not recover".into());
        }
        if self.acknowledged == 0 {
            why.push("no traffic".into());
        }
        format!("FAIL: {}", why.join(", "))
    }
}

/// The Webhook spec of a scenario's traffic: 20 retries, exponential from 200 ms to
/// 10 s. With equal jitter a delay is half to all of its nominal value, so the budget
/// spans 76 to 153 s: longer than the longest outage here (60 s). With a 5 s cap it
/// spans 40 to 81 s, and events at the head of a 60 s outage ran out of retries.
pub fn traffic_spec(rate: f64) -> Value {
    json!({
        "customerId": "chaos",
        "emitter": {"enabled": true, "ratePerSecond": rate, "replicas": 1},
        "delivery": {"retry": 20, "backoffPolicy": "exponential", "backoffDelayMs": 200, "maxBackoffDelayMs": 10000, "deadLetter": true},
        "rateLimit": {"requestsPerSecond": 5000, "burst": 5000},
    })
}

/// What injecting a fault reported: when it ended, when the control plane was ready
/// again (for faults of the control plane), and what happened.
struct Injected {
    ended: Instant,
    ready: Option<Instant>,
    note: String,
}

/// Runs one scenario and accounts for every event of its Webhook.
pub async fn run(system: &System, scenario: Scenario) -> Row {
    let name = format!("chaos-{}", scenario.slug());
    let id = system.create_webhook(&name, traffic_spec(RATE)).await;
    system.wait_delivered(&name, RATE * 2.0).await;
    let injected = inject(system, scenario).await;
    let acknowledged_at_end = system.emitter_counts(&name).1;
    let caught_up = tokio::time::timeout(RECOVERY_LIMIT, async {
        loop {
            let (_, delivered, _) = system.emitter_counts(&name);
            let stored = system.stored(&id).await + system.dead_lettered(&id).await;
            if delivered > acknowledged_at_end && stored as f64 >= acknowledged_at_end {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .ok();
    let recovery = caught_up.map(|at| {
        let data = at - injected.ended;
        let control = injected
            .ready
            .map_or(Duration::ZERO, |r| r - injected.ended);
        data.max(control)
    });
    // A little steady traffic after recovery, then the emitter's own account.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let summary = system.disable_and_collect(&name).await;
    let acknowledged = i64::try_from(summary.delivered).unwrap_or(i64::MAX);
    let settle = Duration::from_secs(120);
    let (stored, dead_lettered) = tokio::time::timeout(settle, async {
        loop {
            let counts = (system.stored(&id).await, system.dead_lettered(&id).await);
            if counts.0 + counts.1 >= acknowledged {
                return counts;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .unwrap_or((system.stored(&id).await, system.dead_lettered(&id).await));
    let duplicates = system
        .count(
            "select count(*) from events e join dead_letters d using (webhook_id, message_id) where e.webhook_id = $1",
            &id,
        )
        .await;
    let distinct = stored + dead_lettered - duplicates;
    Row {
        scenario,
        emitted: summary.emitted,
        acknowledged: summary.delivered,
        not_delivered: summary.failed + summary.abandoned,
        stored,
        dead_lettered,
        duplicates,
        beyond_acknowledged: (distinct - acknowledged).max(0),
        lost: (acknowledged - distinct).max(0),
        recovery,
        note: injected.note,
    }
}

async fn inject(system: &System, scenario: Scenario) -> Injected {
    match scenario {
        Scenario::ConsumerKills => {
            kill_repeatedly(system, "consumer", 6, Duration::from_secs(4)).await
        }
        Scenario::HandlerKills => {
            kill_repeatedly(system, "handler", 6, Duration::from_secs(3)).await
        }
        Scenario::KafkaKill => {
            stack_component("kafka.sh", "kill");
            tokio::time::sleep(Duration::from_secs(10)).await;
            stack_component("kafka.sh", "start");
            done("broker back (kafka.sh start returned)")
        }
        Scenario::PostgresRestart => {
            stack_component("postgres.sh", "stop");
            tokio::time::sleep(Duration::from_secs(15)).await;
            stack_component("postgres.sh", "start");
            done("server back (postgres.sh start returned)")
        }
        Scenario::PostgresSlow => postgres_slow(system).await,
        Scenario::OperatorKill => operator_kill(system).await,
        Scenario::OperatorPair => operator_pair(system).await,
        Scenario::TargetUnreachable => target_unreachable(system).await,
    }
}

fn done(note: &str) -> Injected {
    Injected {
        ended: Instant::now(),
        ready: None,
        note: note.to_owned(),
    }
}

fn sigkill(pid: u32) -> bool {
    send_signal(pid, Signal::Kill)
}

/// SIGKILLs one process of `component` every `every`, `times` times, taking turns
/// among the replicas; dev-pod-runner restarts them as the kubelet would.
async fn kill_repeatedly(
    system: &System,
    component: &str,
    times: usize,
    every: Duration,
) -> Injected {
    let mut killed = 0;
    for round in 0..times {
        let mut pids = system.pids_of(component);
        pids.sort_unstable();
        if let Some(pid) = pids.get(round % pids.len().max(1))
            && sigkill(*pid)
        {
            killed += 1;
        }
        tokio::time::sleep(every).await;
    }
    let replicas = system.pids_of(component).len();
    eventually(
        &format!("{component} processes running again"),
        RECOVERY_LIMIT,
        || async { (system.pids_of(component).len() >= replicas.max(1)).then_some(()) },
    )
    .await;
    done(&format!("{killed} of {times} SIGKILLs landed"))
}

/// Runs one of the stack's component scripts (dev/components/*.sh).
fn stack_component(script: &str, action: &str) {
    let status = Command::new("bash")
        .arg(repo_root().join("dev/components").join(script))
        .arg(action)
        .status()
        .expect("run a stack component script");
    assert!(status.success(), "{script} {action} failed");
}

/// A transaction takes an ACCESS EXCLUSIVE lock on `events` and sleeps with it: every
/// consumer insert waits, as behind a long migration or a stuck batch job. Writes
/// stall completely for the duration, which is slowness at its worst.
async fn postgres_slow(system: &System) -> Injected {
    let mut tx = system.db.begin().await.expect("begin");
    sqlx::query("lock table events in access exclusive mode")
        .execute(&mut *tx)
        .await
        .expect("lock events");
    sqlx::query("select pg_sleep(20)")
        .execute(&mut *tx)
        .await
        .expect("hold the lock");
    let waiting: i64 = sqlx::query_scalar(
        "select count(*) from pg_locks where relation = 'events'::regclass and not granted",
    )
    .fetch_one(&mut *tx)
    .await
    .expect("count waiters");
    tx.rollback().await.expect("release the lock");
    done(&format!(
        "lock held 20 s; {waiting} writer(s) were waiting on it at the end"
    ))
}

/// Applies five Webhooks and SIGKILLs the operator while it reconciles them; the pod
/// runner restarts it. Ready: all five reconciled (Ready condition True).
async fn operator_kill(system: &System) -> Injected {
    let names: Vec<String> = (0..5).map(|i| format!("chaos-reconciled-{i}")).collect();
    for name in &names {
        let spec = serde_json::from_value(json!({
            "customerId": "chaos",
            "emitter": {"enabled": false},
        }))
        .expect("spec");
        system
            .webhooks
            .create(
                &kube::api::PostParams::default(),
                &hookline_api::webhook::Webhook::new(name, spec),
            )
            .await
            .expect("create Webhook");
    }
    let pids = system.pids_of("operator");
    let killed = pids.iter().filter(|pid| sigkill(**pid)).count();
    let ended = Instant::now();
    let mut ready_when_killed = 0;
    for name in &names {
        let ready = system
            .webhooks
            .get(name)
            .await
            .ok()
            .and_then(|w| w.status)
            .is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
        ready_when_killed += usize::from(ready);
    }
    eventually(
        "all five Webhooks Ready after the restart",
        RECOVERY_LIMIT,
        || async {
            let mut ready = 0;
            for name in &names {
                let status = system.webhooks.get(name).await.ok()?.status?;
                if status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                {
                    ready += 1;
                }
            }
            (ready == names.len()).then_some(())
        },
    )
    .await;
    let ready = Instant::now();
    for name in &names {
        let _ = system.webhooks.delete(name, &Default::default()).await;
    }
    Injected {
        ended,
        ready: Some(ready),
        note: format!(
            "{killed} operator process killed with {ready_when_killed} of 5 Webhooks Ready; all 5 Ready {:.1} s later",
            (ready - ended).as_secs_f64()
        ),
    }
}

/// The `hookline_operator_leader` gauge of every operator process: (pid, value).
fn leaders(system: &System) -> Vec<(u32, f64)> {
    system
        .pods(|labels| labels["app.kubernetes.io/component"] == "operator")
        .iter()
        .filter_map(|p| {
            let pid = u32::try_from(p["pid"].as_u64()?).ok()?;
            let port = u16::try_from(p["ports"]["9090"].as_u64()?).ok()?;
            let (_, body) = hookline_testkit::http::get(port, "/metrics")?;
            Some((pid, family_sum(&body, "hookline_operator_leader")))
        })
        .collect()
}

/// Two operator replicas: exactly one leads; its SIGKILL hands the Lease to the other
/// (or back to the restarted one) and never to both.
async fn operator_pair(system: &System) -> Injected {
    system.helm_set(&["operator.replicas=2"], "hookline-operator");
    let leader = eventually(
        "two operators, exactly one leading",
        RECOVERY_LIMIT,
        || async {
            let gauges = leaders(system);
            let leading: Vec<u32> = gauges
                .iter()
                .filter(|(_, v)| *v == 1.0)
                .map(|(p, _)| *p)
                .collect();
            (gauges.len() == 2 && leading.len() == 1).then(|| leading[0])
        },
    )
    .await;
    sigkill(leader);
    let ended = Instant::now();
    let most_leaders = std::cell::Cell::new(0);
    let new_leader = eventually("a new leader after the SIGKILL", RECOVERY_LIMIT, || async {
        let gauges = leaders(system);
        let leading: Vec<u32> = gauges
            .iter()
            .filter(|(_, v)| *v == 1.0)
            .map(|(p, _)| *p)
            .collect();
        most_leaders.set(most_leaders.get().max(leading.len()));
        (gauges.len() == 2 && leading.len() == 1).then(|| leading[0])
    })
    .await;
    let ready = Instant::now();
    // Watch a while longer: two leaders at any sample is a failure.
    for _ in 0..20 {
        let leading = leaders(system).iter().filter(|(_, v)| *v == 1.0).count();
        most_leaders.set(most_leaders.get().max(leading));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let most_leaders = most_leaders.get();
    assert!(
        most_leaders <= 1,
        "{most_leaders} operators reported leading at once"
    );
    system.helm_set(&["operator.replicas=1"], "hookline-operator");
    Injected {
        ended,
        ready: Some(ready),
        note: format!(
            "exactly one of 2 reported hookline_operator_leader 1 at every sample; leader pid {leader} killed, pid {new_leader} leading {:.1} s later",
            (ready - ended).as_secs_f64()
        ),
    }
}

/// Stops the proxy (connections refused) for 60 s and starts it again the way
/// dev/run.sh does, so `dev/run.sh down` still finds it.
async fn target_unreachable(system: &System) -> Injected {
    let name = format!("nginx-{}", system.namespace);
    let nginx_dir = system.run_dir().join("nginx");
    let lib = repo_root().join("dev/lib.sh");
    let daemon = |command: String| {
        let status = Command::new("bash")
            .arg("-c")
            .arg(format!("source {} && {command}", lib.display()))
            .status()
            .expect("bash");
        assert!(status.success(), "{command}");
    };
    daemon(format!("stop_daemon {name} 10"));
    tokio::time::sleep(Duration::from_secs(60)).await;
    daemon(format!(
        "start_daemon {name} nginx -p {dir} -c {dir}/nginx.conf",
        dir = nginx_dir.display()
    ));
    done("nginx stopped 60 s (connections refused), then started")
}

/// docs/RELIABILITY.md from the rows.
pub fn report(rows: &[Row], date: &str, commit: &str, bin_dir: &str) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Reliability under faults\n\n\
         Generated by `make chaos` (dev/chaos.sh) on {date} at commit `{commit}`, with the \
         binaries of `{bin_dir}`. Do not edit by hand.\n\n\
         Each scenario runs the whole system as `make run` does (dev/run.sh up in namespace \
         `hookline-chaos`: three handlers behind nginx, two consumers, the operator, the \
         stack's Kafka and PostgreSQL) with one Webhook whose emitter sends {RATE} events/s \
         and retries 20 times (exponential from 200 ms up to 10 s, 76 to 153 s in all with jitter) on 5xx, 429 and network \
         errors. The fault is injected during that traffic.\n\n\
         - **sent**: events the emitter generated; **acknowledged**: answered 2xx (the \
         handler answers only after Kafka has the event).\n\
         - **stored** / **dead-lettered**: rows in `events` / `dead_letters` for the \
         Webhook. **duplicates**: message ids in both (a message id is the primary key of \
         each table, so a second row in one table is impossible).\n\
         - **beyond ack**: rows for events the emitter never saw acknowledged (the answer \
         died with its handler and a retry's answer settled it, or the emitter gave up \
         after the event was stored).\n\
         - **lost**: acknowledged but neither stored nor dead-lettered. **not delivered**: \
         events the emitter gave up on.\n\
         - **recovery**: from the fault's end until every event acknowledged by then is \
         stored and new events are acknowledged again (for control-plane faults: until \
         the Webhooks are Ready or a leader acts, whichever is later). No process was \
         restarted by hand: dev-pod-runner restarts what dies, as the kubelet does.\n"
    );
    let _ = writeln!(
        text,
        "| scenario | fault | sent | acknowledged | stored | dead-lettered | duplicates | beyond ack | lost | not delivered | recovery | verdict |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for row in rows {
        let recovery = row.recovery.map_or_else(
            || "none".to_owned(),
            |d| format!("{:.1} s", d.as_secs_f64()),
        );
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario.slug(),
            row.scenario.fault(),
            row.emitted,
            row.acknowledged,
            row.stored,
            row.dead_lettered,
            row.duplicates,
            row.beyond_acknowledged,
            row.lost,
            row.not_delivered,
            recovery,
            row.verdict(),
        );
    }
    let missing: Vec<&str> = Scenario::ALL
        .iter()
        .filter(|s| !rows.iter().any(|r| r.scenario == **s))
        .map(|s| s.slug())
        .collect();
    if !missing.is_empty() {
        let _ = writeln!(
            text,
            "\nNot run in this generation: {} (`make chaos SCENARIOS=\"...\"` ran a subset).",
            missing.join(", ")
        );
    }
    let _ = writeln!(text, "\n## What happened\n");
    for row in rows {
        let _ = writeln!(text, "- **{}**: {}", row.scenario.slug(), row.note);
    }
    text
}
