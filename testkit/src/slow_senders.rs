//! The slow-sender attack on a webhook receiver, and what a valid sender sees during
//! it: many real TCP connections on one webhook URL, each sending its headers and then
//! a body byte every half second (reconnecting when answered), while a valid sender
//! posts to another URL at a steady rate. Used by the handler's test and its benchmark.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The attack and the valid sender's part in it.
#[derive(Debug, Clone)]
pub struct Attack {
    /// The receiver's webhook port.
    pub addr: SocketAddr,
    /// The URL path the slow senders hold, e.g. `/webhooks/<id>`.
    pub victim_path: String,
    pub slow_senders: usize,
    /// The slow senders come from this many addresses (203.0.113.1 up), named in
    /// `X-Forwarded-For` as a proxy in front of the receiver would.
    pub attacker_addresses: usize,
    /// How long the slow senders hold on, from their start.
    pub duration: Duration,
    /// How long they have alone before the valid sender starts.
    pub head_start: Duration,
    /// The valid sender's URL path and its period.
    pub valid_path: String,
    pub valid_interval: Duration,
    /// The valid sender's address in `X-Forwarded-For`.
    pub valid_forwarded_for: String,
}

/// What the valid sender saw, and what the slow senders were answered.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub sent: usize,
    pub accepted: usize,
    pub p50: Duration,
    pub p99: Duration,
    /// The valid sender's answers other than 202, by status (0: no answer).
    pub refused: BTreeMap<u16, usize>,
    /// The slow senders' answers, by status.
    pub attacker_answers: BTreeMap<u16, usize>,
}

impl Figures {
    /// The valid sender's share of 202 answers, 0 to 1.
    pub fn accepted_share(&self) -> f64 {
        self.accepted as f64 / self.sent.max(1) as f64
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "valid sender: {} requests sent, 202 share {:.2} %, p50 {:.1} ms, p99 {:.1} ms, \
             refused {:?}; answers the slow senders got: {:?}",
            self.sent,
            self.accepted_share() * 100.0,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.refused,
            self.attacker_answers,
        )
    }
}

/// Runs `attack`; `valid_request` gives each of the valid sender's requests (headers
/// without `Content-Length`, and the body), signed as it is sent.
pub async fn run(
    attack: &Attack,
    mut valid_request: impl FnMut() -> (Vec<(&'static str, String)>, Vec<u8>),
) -> Figures {
    let until = Instant::now() + attack.duration;
    let attackers: Vec<_> = (0..attack.slow_senders)
        .map(|i| {
            let forwarded_for = format!("203.0.113.{}", i % attack.attacker_addresses.max(1) + 1);
            tokio::spawn(slow_sender(
                attack.addr,
                attack.victim_path.clone(),
                forwarded_for,
                until,
            ))
        })
        .collect();
    tokio::time::sleep(attack.head_start).await;

    let mut figures = Figures::default();
    let mut latencies = Vec::new();
    let mut ticks = tokio::time::interval(attack.valid_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < until {
        ticks.tick().await;
        let (mut headers, body) = valid_request();
        headers.push(("x-forwarded-for", attack.valid_forwarded_for.clone()));
        let started = Instant::now();
        let status = post(attack.addr, &attack.valid_path, &headers, &body).await;
        latencies.push(started.elapsed());
        figures.sent += 1;
        if status == 202 {
            figures.accepted += 1;
        } else {
            *figures.refused.entry(status).or_default() += 1;
        }
    }
    for attacker in attackers {
        for status in attacker.await.unwrap_or_default() {
            *figures.attacker_answers.entry(status).or_default() += 1;
        }
    }
    latencies.sort_unstable();
    figures.p50 = percentile(&latencies, 0.50);
    figures.p99 = percentile(&latencies, 0.99);
    figures
}

/// The nearest-rank `q` quantile of `sorted` samples (zero for none); the benchmarks'
/// too.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Keeps one slow request open on `path` until `until`: headers, then one body byte
/// every 500 ms; when the server answers or closes, a new connection after 100 ms.
/// The statuses the server answered.
async fn slow_sender(
    addr: SocketAddr,
    path: String,
    forwarded_for: String,
    until: Instant,
) -> Vec<u16> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\
         Content-Type: application/json\r\nX-Forwarded-For: {forwarded_for}\r\n\r\n"
    );
    let mut answered = Vec::new();
    while Instant::now() < until {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if stream.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        let mut answer = [0u8; 256];
        loop {
            let read = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut answer));
            match read.await {
                // Silence: the server waits for the body, so send a byte of it.
                Err(_) if Instant::now() < until => {
                    if stream.write_all(b"{").await.is_err() {
                        break;
                    }
                }
                Err(_) => return answered,
                Ok(Ok(n)) if n > 0 => {
                    answered.push(status_of(&answer[..n]));
                    break;
                }
                Ok(_) => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    answered
}

/// One POST on a new connection; the answer's status, 0 when there is none.
async fn post(addr: SocketAddr, path: &str, headers: &[(&str, String)], body: &[u8]) -> u16 {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        std::io::Result::Ok(status_of(&answer))
    };
    match tokio::time::timeout(Duration::from_secs(30), exchange).await {
        Ok(Ok(status)) => status,
        _ => 0,
    }
}

fn status_of(answer: &[u8]) -> u16 {
    std::str::from_utf8(&answer[..answer.len().min(32)])
        .ok()
        .and_then(|text| text.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&sorted, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
    }

    #[test]
    fn statuses_are_read_from_the_status_line() {
        assert_eq!(status_of(b"HTTP/1.1 503 Service Unavailable\r\n"), 503);
        assert_eq!(status_of(b""), 0);
    }
}
