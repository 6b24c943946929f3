//! The events table's day partitions (migration 0004): created days ahead and for any
//! day a batch holds, so an insert never finds its day missing; dropped whole once
//! older than the retention, never deleted row by row. Dead letters expire by their own
//! retention, row by row (they are few, and a partition per day would be mostly empty).

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use hookline_runtime::shutdown::Shutdown;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{AssertSqlSafe, ConnectOptions as _, Connection as _};

use crate::dead_letters;

/// Replicas take turns sweeping; creating partitions has its own lock in SQL.
const SWEEP_LOCK: &str = "hookline.events.sweep";

/// How long stored rows are kept; `None` keeps them forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub events_days: Option<u32>,
    pub dead_letter_days: Option<u32>,
    /// Days after today whose partitions exist before their first event.
    pub days_ahead: u32,
    /// Days before an event's own whose partitions are searched for its key (a sender's
    /// retry received on a later day); the same day's is the primary key's.
    pub dedup_window_days: u32,
}

/// The days a batch is written to and the earlier days its keys are looked for in.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchDays {
    pub created: Vec<NaiveDate>,
    pub searched: Vec<NaiveDate>,
}

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// False when another replica was sweeping (this one only made sure of the days ahead).
    pub swept: bool,
    pub created: Vec<NaiveDate>,
    pub dropped: Vec<NaiveDate>,
    pub dead_letters_expired: u64,
    pub partitions: usize,
}

/// Where [`DayPartitions::run`] tells what each sweep did: the service's metrics.
pub trait SweepReport {
    fn swept(&self, sweep: &Sweep);
    /// A sweep failed (it is logged too); the next one tries again.
    fn failed(&self);
}

pub struct DayPartitions {
    pool: PgPool,
    retention: Retention,
    /// Days known to have a partition: a batch of known days costs no statement.
    known: Mutex<HashSet<NaiveDate>>,
}

/// The UTC day `time` falls on: the partition it belongs to.
pub fn day_of(time: DateTime<Utc>) -> NaiveDate {
    time.date_naive()
}

/// The partition of `day`, as `events_ensure_partition` names it. Built from a date
/// only, so it is safe to write into a statement.
pub fn partition_name(day: NaiveDate) -> String {
    format!("events_p{}", day.format("%Y%m%d"))
}

impl DayPartitions {
    pub fn new(pool: PgPool, retention: Retention) -> Self {
        Self {
            pool,
            retention,
            known: Mutex::new(HashSet::new()),
        }
    }

    /// The pool partitions are created in, which the events are written through too.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<NaiveDate>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates the partitions missing for `times` (a batch's received_at): today's and
    /// the days ahead exist already, so this matters for a replayed old dead letter or
    /// a sender's clock far off. Returns the days it created and the existing earlier
    /// days within the dedup window, whose partitions the insert searches.
    pub async fn ensure_for(
        &self,
        times: impl IntoIterator<Item = DateTime<Utc>>,
    ) -> Result<BatchDays, sqlx::Error> {
        let days: HashSet<NaiveDate> = times.into_iter().map(day_of).collect();
        let missing: Vec<NaiveDate> = {
            let known = self.known();
            days.iter()
                .filter(|day| !known.contains(day))
                .copied()
                .collect()
        };
        let mut batch = BatchDays::default();
        for day in missing {
            if self.ensure(day).await? {
                batch.created.push(day);
            }
        }
        let known = self.known();
        let mut searched: Vec<NaiveDate> = days
            .iter()
            .flat_map(|day| {
                (1..=i64::from(self.retention.dedup_window_days))
                    .map(move |back| *day - chrono::Duration::days(back))
            })
            .filter(|day| known.contains(day))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        searched.sort_unstable();
        batch.searched = searched;
        Ok(batch)
    }

    /// Lists the partitions again: after an insert named one that another replica's
    /// sweep had dropped.
    pub async fn reload(&self) -> Result<(), sqlx::Error> {
        let days: Vec<NaiveDate> =
            sqlx::query_scalar("SELECT day FROM events_partitions() WHERE NOT detach_pending")
                .fetch_all(&self.pool)
                .await?;
        *self.known() = days.into_iter().collect();
        Ok(())
    }

    async fn ensure(&self, day: NaiveDate) -> Result<bool, sqlx::Error> {
        let created: bool = sqlx::query_scalar("SELECT events_ensure_partition($1)")
            .bind(day)
            .fetch_one(&self.pool)
            .await?;
        self.known().insert(day);
        if created {
            tracing::info!(%day, "created the events partition of a day");
        }
        Ok(created)
    }

    /// One pass: the partitions of yesterday to `days_ahead` after today, then (unless
    /// another replica holds the sweep) the expired partitions dropped and the expired
    /// dead letters deleted.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<Sweep, sqlx::Error> {
        let today = day_of(now);
        let mut sweep = Sweep::default();
        for offset in -1..=i64::from(self.retention.days_ahead) {
            let day = today + chrono::Duration::days(offset);
            if self.ensure(day).await? {
                sweep.created.push(day);
            }
        }
        // A connection of its own: the session's advisory lock and lock_timeout end with it.
        let mut connection = self.pool.connect_options().connect().await?;
        let result = self.sweep_locked(&mut connection, now, &mut sweep).await;
        let closed = connection.close().await;
        result?;
        closed?;
        Ok(sweep)
    }

    async fn sweep_locked(
        &self,
        connection: &mut PgConnection,
        now: DateTime<Utc>,
        sweep: &mut Sweep,
    ) -> Result<(), sqlx::Error> {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(SWEEP_LOCK)
            .fetch_one(&mut *connection)
            .await?;
        let partitions: Vec<(NaiveDate, bool)> =
            sqlx::query_as("SELECT day, detach_pending FROM events_partitions()")
                .fetch_all(&mut *connection)
                .await?;
        sweep.partitions = partitions.len();
        self.known().extend(
            partitions
                .iter()
                .filter(|(_, pending)| !pending)
                .map(|(day, _)| *day),
        );
        if !locked {
            return Ok(());
        }
        sweep.swept = true;
        sqlx::raw_sql("SET lock_timeout = '30s'")
            .execute(&mut *connection)
            .await?;
        if let Some(days) = self.retention.events_days {
            self.expire_days(connection, &partitions, days, sweep)
                .await?;
        }
        analyze_recent_days(connection, &partitions, day_of(now)).await?;
        if let Some(days) = self.retention.dead_letter_days {
            let cutoff = now - chrono::Duration::days(i64::from(days));
            sweep.dead_letters_expired = dead_letters::expire(connection, cutoff).await?;
        }
        sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
            .bind(SWEEP_LOCK)
            .execute(&mut *connection)
            .await?;
        Ok(())
    }

    /// Drops the `partitions` past a retention of `days`, and finishes the detaches
    /// left interrupted.
    async fn expire_days(
        &self,
        connection: &mut PgConnection,
        partitions: &[(NaiveDate, bool)],
        days: u32,
        sweep: &mut Sweep,
    ) -> Result<(), sqlx::Error> {
        for (day, detach_pending) in partitions {
            if *detach_pending {
                // A detach interrupted earlier (its lock wait timed out): finish it.
                finish_detach(connection, *day).await?;
                self.forget(*day, sweep);
                continue;
            }
            // The function checks that the whole day, and every row stored in it (a
            // replayed old dead letter is kept for the whole retention too), is past
            // the retention; it runs as the owner, so the consumer's role need not.
            let expired: bool =
                sqlx::query_scalar("SELECT events_expire_day($1, make_interval(days => $2))")
                    .bind(*day)
                    .bind(i32::try_from(days).unwrap_or(i32::MAX))
                    .fetch_one(&mut *connection)
                    .await?;
            if expired {
                self.forget(*day, sweep);
            }
        }
        Ok(())
    }

    fn forget(&self, day: NaiveDate, sweep: &mut Sweep) {
        self.known().remove(&day);
        sweep.dropped.push(day);
        sweep.partitions -= 1;
        tracing::info!(%day, "dropped the events partition of a day past the retention");
    }

    /// Sweeps at start and every `interval` until shutdown. A failed sweep is logged
    /// and reported; the next one tries again (inserts create their own days meanwhile).
    pub async fn run(&self, interval: Duration, report: impl SweepReport, shutdown: Shutdown) {
        while !shutdown.is_triggered() {
            match self.sweep(Utc::now()).await {
                Ok(sweep) => report.swept(&sweep),
                Err(err) => {
                    report.failed();
                    tracing::warn!(%err, "the partition and retention sweep failed");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.wait() => {}
            }
        }
    }
}

/// Fresh statistics for the days being written (today and yesterday): a partition
/// without them makes the planner scan the newest-first index of every day for a search
/// by event id (measured: 100+ ms instead of 1 ms). Autovacuum gets there too, but a day
/// filling fast can be hours ahead of it.
async fn analyze_recent_days(
    connection: &mut PgConnection,
    partitions: &[(NaiveDate, bool)],
    today: NaiveDate,
) -> Result<(), sqlx::Error> {
    for (day, pending) in partitions {
        if !pending && (*day == today || *day + chrono::Duration::days(1) == today) {
            sqlx::query("SELECT events_analyze_day($1)")
                .bind(*day)
                .execute(&mut *connection)
                .await?;
        }
    }
    Ok(())
}

/// Completes a detach that an earlier version (DETACH ... CONCURRENTLY) left
/// interrupted, then drops the partition. Needs the owner: a least-privileged consumer
/// reports the failure and an owner's run finishes it.
async fn finish_detach(connection: &mut PgConnection, day: NaiveDate) -> Result<(), sqlx::Error> {
    let name = partition_name(day);
    sqlx::raw_sql(AssertSqlSafe(format!(
        "ALTER TABLE events DETACH PARTITION {name} FINALIZE"
    )))
    .execute(&mut *connection)
    .await?;
    sqlx::raw_sql(AssertSqlSafe(format!("DROP TABLE {name}")))
        .execute(&mut *connection)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_the_utc_day() {
        let late = DateTime::parse_from_rfc3339("2026-12-01T23:59:59.999-05:00")
            .expect("a time")
            .with_timezone(&Utc);
        let day = day_of(late);
        assert_eq!(day, NaiveDate::from_ymd_opt(2026, 12, 2).expect("a day"));
        assert_eq!(partition_name(day), "events_p20261202");
    }
}
