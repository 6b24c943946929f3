//! Wires the consumer together and runs it until shutdown: schema, registry follower
//! and mirror, the `events` and `retries` pipelines, and the operational endpoints.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::registry::RegistryUpdate;
use hookline_runtime::kafka::{KafkaConnection, reliable_producer_config};
use hookline_runtime::producer::AckedProducer;
use hookline_runtime::registry_view::{self, FollowError, RegistryView};
use hookline_runtime::service::{OpsBindError, RunningService, Service, bind_ops};
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::webhook_labels::WebhookLabels;
use hookline_store::database::{self, DbError};
use hookline_store::day_partitions::DayPartitions;
use rdkafka::error::KafkaError;
use thiserror::Error;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::config::RunArgs;
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
    #[error(transparent)]
    Ops(#[from] OpsBindError),
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
    let kafka = args.kafka.connection()?;
    let listener = bind_ops(args.ops.ops_addr).await?;
    let mut service = Service::new(shutdown);
    let view = RegistryView::default();
    view.register_metrics(&mut service.metrics);
    let metrics = Metrics::register(
        &mut service.metrics,
        WebhookLabels::new(args.webhook_metrics.per_webhook_metrics),
    );
    service.readiness.require(
        database::READINESS_CONDITION,
        "PostgreSQL not connected yet",
    );
    service.watch_kafka(kafka.clone());
    // Updates wait in the channel until PostgreSQL is there to mirror them. No keyring:
    // the consumer mirrors entries without their secrets.
    let (updates, mirrored) = mpsc::unbounded_channel();
    let follower = service.follow_registry(
        kafka.clone(),
        args.registry_topic.clone(),
        None,
        view.clone(),
        forward_updates(metrics.clone(), updates),
    );
    // The ops endpoints before PostgreSQL: probes get answers (live, not ready) while it starts.
    let service = service.serve_ops(listener);
    let consumed = connect_and_consume(
        database_url,
        &args,
        &kafka,
        view,
        metrics,
        mirrored,
        &service,
    )
    .await;
    // Consuming ended (shutdown, or a pipeline crashed): the follower stops with it.
    service.shutdown.trigger();
    if let Ok(Err(err)) = follower.await {
        return Err(RunError::Registry(err));
    }
    consumed?;
    service.stopped().await;
    Ok(())
}

/// What the registry follower does with each update it applied: a deleted Webhook's
/// series go, and the mirror gets the update.
fn forward_updates(
    metrics: Metrics,
    updates: UnboundedSender<RegistryUpdate>,
) -> impl Fn(&RegistryUpdate) + Send + 'static {
    move |update| {
        if let RegistryUpdate::Deleted { webhook_id } = update {
            metrics.forget_webhook(webhook_id);
        }
        // The receiver lives as long as the service; a send after it is gone is moot.
        let _ = updates.send(update.clone());
    }
}

/// Connects PostgreSQL (waiting while it cannot be reached) with the schema current,
/// starts what keeps it (readiness, day partitions, the registry mirror), then consumes
/// once the registry is loaded. Returns at shutdown.
async fn connect_and_consume(
    database_url: &str,
    args: &RunArgs,
    kafka: &KafkaConnection,
    view: RegistryView,
    metrics: Metrics,
    mirrored: UnboundedReceiver<RegistryUpdate>,
    service: &RunningService,
) -> Result<(), RunError> {
    let (readiness, shutdown) = (&service.readiness, &service.shutdown);
    let Some(pool) = database::connect_with_schema(
        database_url,
        args.database_max_connections,
        args.schema,
        readiness,
        shutdown,
    )
    .await?
    else {
        return Ok(());
    };
    tracing::info!("database schema is current");
    tokio::spawn(database::watch(
        pool.clone(),
        database::PING,
        readiness.clone(),
        shutdown.clone(),
    ));
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
    tokio::spawn(mirror::run(
        pool,
        mirrored,
        metrics.clone(),
        shutdown.clone(),
    ));
    tokio::select! {
        () = registry_view::loaded(readiness) => {
            consume(args, kafka, day_partitions, view, metrics, shutdown.clone()).await
        }
        () = shutdown.wait() => Ok(()),
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
