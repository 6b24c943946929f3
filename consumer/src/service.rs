//! Wires the consumer together and runs it until shutdown: schema, registry follower
//! and mirror, the `events` and `retries` pipelines, and the operational endpoints.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::registry::RegistryUpdate;
use hookline_runtime::kafka::{self, KafkaConnection, reliable_producer_config};
use hookline_runtime::ops::{self, Readiness};
use hookline_runtime::producer::AckedProducer;
use hookline_runtime::registry_view::{FollowError, RegistryView};
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::webhook_labels::WebhookLabels;
use prometheus_client::registry::Registry;
use rdkafka::error::KafkaError;
use thiserror::Error;

use crate::config::RunArgs;
use crate::day_partitions::DayPartitions;
use crate::db::{self, DbError};
use crate::failure_routing::Routes;
use crate::metrics::Metrics;
use crate::mirror;
use crate::pipeline::{Pipeline, PipelineError, PipelineSettings};
use crate::processor::{DatabaseSettings, Processor};

/// How long Kafka may take to acknowledge a retry copy or dead letter before the batch
/// counts as hit by an outage.
const COPY_DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    KafkaSettings(#[from] hookline_runtime::kafka::KafkaSettingsError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot create the Kafka producer for retry copies and dead letters: {0}")]
    Producer(#[source] KafkaError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("a consumer pipeline crashed: {0}")]
    PipelineCrashed(#[source] tokio::task::JoinError),
    #[error("the registry follower stopped: {0}")]
    Registry(#[source] FollowError),
    #[error("cannot serve the operational endpoints: {0}")]
    Ops(#[source] std::io::Error),
    #[error("cannot list the events table's partitions: {0}")]
    Partitions(#[source] sqlx::Error),
    #[error(
        "--database-max-connections {max} is too few for --database-parallel-transactions \
         {parallel}: the events and retries pipelines need {parallel} each, plus 2 \
         (registry mirror, partition sweep)"
    )]
    TooFewConnections { max: u32, parallel: u32 },
}

/// Applies the schema, loads the registry, then consumes until `shutdown`. Ready once
/// Kafka answers, the registry is loaded and PostgreSQL answers.
pub async fn run(database_url: &str, args: RunArgs, shutdown: Shutdown) -> Result<(), RunError> {
    let (max, parallel) = (
        args.database_max_connections,
        args.database_parallel_transactions,
    );
    if max < 2 * parallel + 2 {
        return Err(RunError::TooFewConnections { max, parallel });
    }
    let readiness = Readiness::default();
    let mut metrics_registry = Registry::default();
    let view = RegistryView::default();
    view.register_metrics(&mut metrics_registry);
    let metrics = Metrics::register(
        metrics_registry.sub_registry_with_prefix("hookline_consumer"),
        WebhookLabels::new(args.webhook_metrics.per_webhook_metrics),
    );
    let kafka = args.kafka.connection()?;

    // The ops endpoints first: probes get answers (live, not ready) while PostgreSQL starts.
    let ops_server = tokio::spawn(ops::serve(
        args.ops.ops_addr,
        ops::router(readiness.clone(), Arc::new(metrics_registry)),
        shutdown.clone(),
    ));
    readiness.require(db::READINESS_CONDITION, "PostgreSQL not connected yet");
    let Some(pool) = db::connect_and_migrate(
        database_url,
        args.database_max_connections,
        args.schema,
        &readiness,
        &shutdown,
    )
    .await?
    else {
        return Ok(());
    };
    tracing::info!("database schema is current");
    tokio::spawn(kafka::watch_reachability(
        kafka.clone(),
        readiness.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(db::watch(pool.clone(), readiness.clone(), shutdown.clone()));
    let day_partitions = Arc::new(DayPartitions::new(pool.clone(), args.retention.retention()));
    tokio::spawn({
        let day_partitions = day_partitions.clone();
        let (interval, metrics, shutdown) = (
            args.retention.retention_interval,
            metrics.clone(),
            shutdown.clone(),
        );
        async move { day_partitions.run(interval, metrics, shutdown).await }
    });

    let (updates, mirrored) = tokio::sync::mpsc::unbounded_channel();
    // No keyring: the consumer mirrors entries without their secrets.
    let follow = hookline_runtime::registry_view::follow(
        kafka.clone(),
        args.registry_topic.clone(),
        None,
        view.clone(),
        readiness.clone(),
        shutdown.clone(),
        {
            let metrics = metrics.clone();
            move |update| {
                if let RegistryUpdate::Deleted { webhook_id } = update {
                    metrics.forget_webhook(webhook_id);
                }
                // The receiver lives as long as the service; a send after it is gone is moot.
                let _ = updates.send(update.clone());
            }
        },
    );
    let follower = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let result = follow.await;
            // Without the registry no event can be checked: stop rather than guess.
            shutdown.trigger();
            result
        }
    });
    tokio::spawn(mirror::run(
        pool.clone(),
        mirrored,
        metrics.clone(),
        shutdown.clone(),
    ));

    let loaded = tokio::select! {
        () = hookline_runtime::registry_view::loaded(&readiness) => true,
        () = shutdown.wait() => false,
    };
    let consumed = if loaded {
        consume(
            &args,
            &kafka,
            day_partitions,
            view,
            metrics,
            shutdown.clone(),
        )
        .await
    } else {
        Ok(())
    };
    shutdown.trigger();
    if let Ok(Err(err)) = follower.await {
        return Err(RunError::Registry(err));
    }
    consumed?;
    match ops_server.await {
        Ok(result) => result.map_err(RunError::Ops),
        Err(_) => Ok(()),
    }
}

/// Runs both pipelines until shutdown.
async fn consume(
    args: &RunArgs,
    kafka: &KafkaConnection,
    day_partitions: Arc<DayPartitions>,
    view: RegistryView,
    metrics: Metrics,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let producer = AckedProducer::new(
        &reliable_producer_config(kafka, "hookline-consumer", COPY_DELIVERY_TIMEOUT),
        "kafka-copies",
    )
    .map_err(RunError::Producer)?;
    let routes = Routes::new(
        &args.topics.events_topic,
        &args.retry_tier_delays.0,
        &args.dead_letter_topic,
    );
    let tier_topics: Vec<String> = routes.tier_topics().map(str::to_owned).collect();
    let processor = Arc::new(Processor::new(
        day_partitions,
        view,
        producer,
        routes,
        args.inject_failure_rate,
        DatabaseSettings {
            timeout: args.database_timeout,
            parallel_transactions: args.database_parallel_transactions as usize,
        },
        metrics.clone(),
    ));
    let settings = |source, group_id: String, topics, gated| PipelineSettings {
        source,
        kafka: kafka.clone(),
        group_id,
        group_instance_id: args.group_instance_id.clone(),
        session_timeout: args.session_timeout,
        topics,
        gated,
        batch_max_events: args.batch_max_events as usize,
        batch_max_wait: args.batch_max_wait,
    };
    let events = Pipeline::new(
        settings(
            "events",
            args.group_id.clone(),
            vec![args.topics.events_topic.clone()],
            false,
        ),
        processor.clone(),
        metrics.clone(),
        shutdown.clone(),
    )?;
    let retries = Pipeline::new(
        settings(
            "retries",
            format!("{}.retries", args.group_id),
            tier_topics,
            true,
        ),
        processor,
        metrics,
        shutdown.clone(),
    )?;
    let mut events = tokio::spawn(events.run());
    let mut retries = tokio::spawn(retries.run());
    // Both run until shutdown; one that ends first has panicked, and the service must
    // not go on half-alive.
    let (first, other) = tokio::select! {
        result = &mut events => (result, retries),
        result = &mut retries => (result, events),
    };
    shutdown.trigger();
    let second = other.await;
    first.and(second).map_err(RunError::PipelineCrashed)
}
