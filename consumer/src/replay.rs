//! `hookline-consumer replay`: re-publishes dead letters to the events topic with a
//! fresh retry budget, through the replay the console uses too
//! (`hookline_store::dead_letter_replay`), and says how many on stdout.

use hookline_store::database::{self, DbError};
use hookline_store::dead_letter_replay::{ReplayError, Replayer, Selection};
use thiserror::Error;

use crate::config::ReplayArgs;

#[derive(Debug, Error)]
pub enum ReplayCommandError {
    #[error(transparent)]
    Connect(#[from] DbError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    KafkaSettings(#[from] hookline_runtime::kafka::KafkaSettingsError),
}

/// The `replay` subcommand: connects, replays, and says how many on stdout.
pub async fn command(database_url: &str, args: &ReplayArgs) -> Result<(), ReplayCommandError> {
    let kafka = args.kafka.connection()?;
    let pool = database::connect(database_url, 2).await?;
    let replayer = Replayer::new(
        &kafka,
        "hookline-consumer-replay",
        &args.topics.events_topic,
    )?;
    let replayed = replayer
        .replay(&pool, &selection(args), &args.requested_by)
        .await?;
    println!(
        "replayed {} dead letters to {} (replay {})",
        replayed.count,
        replayer.events_topic(),
        replayed.replay_id
    );
    Ok(())
}

/// The filters of the flags; `--all` is the selection without any.
fn selection(args: &ReplayArgs) -> Selection {
    Selection {
        ids: None,
        webhook_id: args.webhook.clone(),
        reason: args.reason.clone(),
        since: args.since,
        until: args.until,
    }
}
