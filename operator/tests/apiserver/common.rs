//! Support for the operator's tests against the local stack's kube-apiserver.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// A client for the stack's API server, from the kubeconfig `make stack-up` wrote.
pub async fn client() -> Client {
    let path = &hookline_testkit::stack().kubeconfig;
    let kubeconfig = Kubeconfig::read_from(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("usable kubeconfig");
    Client::try_from(config).expect("kube client")
}

/// A namespace of its own for one test, deleted when dropped from the test's end.
pub async fn namespace(client: &Client, prefix: &str) -> TestNamespace {
    let name = hookline_testkit::unique_name(prefix);
    let api: Api<Namespace> = Api::all(client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.clone());
    api.create(&PostParams::default(), &namespace)
        .await
        .expect("create namespace");
    TestNamespace { api, name }
}

pub struct TestNamespace {
    api: Api<Namespace>,
    pub name: String,
}

impl TestNamespace {
    pub async fn delete(self) {
        self.api
            .delete(&self.name, &DeleteParams::default())
            .await
            .expect("delete namespace");
    }
}

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hookline_api::topics::TopicSpec;
use hookline_api::webhook::Webhook;
use hookline_core::ids::WebhookId;
use hookline_core::registry::{self, Keyring, RegistryUpdate};
use hookline_operator::desired::Settings;
use hookline_operator::metrics::Metrics;
use hookline_operator::reconcile::Context;
use hookline_operator::registry::RegistryPublisher;
use hookline_operator::service::run_controller;
use hookline_operator::test_support;
use hookline_runtime::kafka::{KafkaConnection, ensure_topics, manual_commit_consumer_config};
use hookline_runtime::registry_view::RegistryView;
use hookline_runtime::shutdown::Shutdown;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::wait::{await_condition, conditions};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::sync::OnceCell;

/// Applies the Webhook CRD once per test binary and waits until it is served.
pub async fn install_crd(client: &Client) {
    static INSTALLED: OnceCell<()> = OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            crds.patch(
                "webhooks.hookline.io",
                &PatchParams::apply("hookline-tests").force(),
                &Patch::Apply(hookline_api::webhook::definition()),
            )
            .await
            .expect("apply the Webhook CRD");
            tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(
                    crds,
                    "webhooks.hookline.io",
                    conditions::is_crd_established(),
                ),
            )
            .await
            .expect("CRD established within 30 s")
            .expect("watch the CRD");
        })
        .await;
}

/// A Secret lent to Webhooks (it carries `hookline.io/webhook-secret: "true"`), to be named
/// and filled by the caller.
pub fn lent_secret() -> k8s_openapi::api::core::v1::Secret {
    let mut secret = k8s_openapi::api::core::v1::Secret::default();
    secret.metadata.labels = Some(
        [(
            hookline_api::webhook::LENT_SECRET_LABEL.to_owned(),
            "true".to_owned(),
        )]
        .into(),
    );
    secret
}

/// A Webhook named `name` of `spec` (as a manifest writes it), to create.
pub fn webhook(name: &str, spec: serde_json::Value) -> Webhook {
    Webhook::new(name, serde_json::from_value(spec).expect("valid spec"))
}

/// The tests' usual settings; Webhook endpoints at `https://hooks.example.test`.
pub fn settings() -> Settings {
    Settings {
        public_base_url: "https://hooks.example.test".into(),
        ..test_support::settings()
    }
}

/// The local stack's Kafka, with the login its env file names.
pub fn kafka() -> KafkaConnection {
    KafkaConnection::from_vars(&hookline_testkit::stack().vars).expect("the stack's Kafka settings")
}

/// The operator's controller running in this test process for one namespace, publishing
/// to a registry topic of its own.
pub struct Operator {
    pub registry_topic: String,
    /// The keyring the publisher seals with; sending a new one rotates.
    pub keys: tokio::sync::watch::Sender<Arc<Keyring>>,
    /// The key `k1` the keyring starts with.
    pub first_key: String,
    pub metrics: Metrics,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    pub async fn start(client: &Client, namespace: &str) -> Self {
        Self::start_with(client, namespace, settings()).await
    }

    /// The controller with `settings` instead of the tests' usual ones.
    pub async fn start_with(client: &Client, namespace: &str, settings: Settings) -> Self {
        let registry_topic = hookline_testkit::unique_name("registry");
        ensure_topics(
            &kafka(),
            &[TopicSpec::registry(registry_topic.clone(), 1)],
            Duration::from_secs(10),
        )
        .await
        .expect("create the registry topic");
        let first_key = Keyring::generate_key();
        let first = Keyring::new("k1", [("k1", first_key.as_str())]).expect("a keyring");
        let (keys, receiver) = tokio::sync::watch::channel(Arc::new(first));
        let metrics = Metrics::register(&mut prometheus_client::registry::Registry::default());
        let publisher = Arc::new(
            RegistryPublisher::with_topic(
                &kafka(),
                &registry_topic,
                receiver,
                // The topic is new: nothing on it to follow.
                RegistryView::default(),
                metrics.registry_entries_sealed_with_old_key.clone(),
            )
            .expect("registry publisher"),
        );
        let shutdown = Shutdown::new();
        tokio::spawn(publisher.clone().reseal_on_rotation(shutdown.clone()));
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "hookline-operator-test".into(),
                instance: None,
            },
        );
        let ctx = Arc::new(Context::new(
            client.clone(),
            settings,
            publisher,
            metrics.clone(),
            recorder,
            Duration::from_secs(300),
        ));
        let task = tokio::spawn(run_controller(
            client.clone(),
            Some(namespace.to_owned()),
            0,
            ctx,
            shutdown.clone(),
        ));
        Self {
            registry_topic,
            keys,
            first_key,
            metrics,
            shutdown,
            task,
        }
    }

    /// A reader of this operator's registry topic, opening secrets with its keyring.
    pub fn registry_reader(&self) -> RegistryReader {
        RegistryReader::new(&self.registry_topic, self.keys.subscribe())
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("controller stops within 20 s")
            .expect("controller task");
    }
}

/// Follows a registry topic from its start and keeps the newest update per webhook,
/// and the raw value of each record.
pub struct RegistryReader {
    consumer: StreamConsumer,
    keys: tokio::sync::watch::Receiver<Arc<Keyring>>,
    latest: HashMap<WebhookId, RegistryUpdate>,
    /// The key id the newest record of each webhook was sealed under.
    latest_key: HashMap<WebhookId, String>,
    pub raw_values: Vec<Vec<u8>>,
}

impl RegistryReader {
    pub fn new(topic: &str, keys: tokio::sync::watch::Receiver<Arc<Keyring>>) -> Self {
        let consumer: StreamConsumer = manual_commit_consumer_config(
            &kafka(),
            "operator-test-reader",
            &hookline_testkit::unique_name("reader"),
        )
        .create()
        .expect("registry reader");
        consumer.subscribe(&[topic]).expect("subscribe");
        Self {
            consumer,
            keys,
            latest: HashMap::new(),
            latest_key: HashMap::new(),
            raw_values: Vec::new(),
        }
    }

    /// Reads until the newest update of `webhook_id` satisfies `accept`.
    pub async fn wait_for(
        &mut self,
        webhook_id: &str,
        timeout: Duration,
        accept: impl Fn(&RegistryUpdate) -> bool,
    ) -> RegistryUpdate {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(update) = self.latest.get(webhook_id).filter(|u| accept(u)) {
                return update.clone();
            }
            self.read_one(deadline, webhook_id).await;
        }
    }

    /// Reads until the newest record of `webhook_id` is sealed under `key_id`.
    pub async fn wait_for_key(&mut self, webhook_id: &str, key_id: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.latest_key.get(webhook_id).map(String::as_str) != Some(key_id) {
            self.read_one(deadline, webhook_id).await;
        }
    }

    async fn read_one(&mut self, deadline: tokio::time::Instant, webhook_id: &str) {
        let message = tokio::time::timeout_at(deadline, self.consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no acceptable registry update for {webhook_id} in time; newest: {:?} under {:?}",
                    self.latest.get(webhook_id),
                    self.latest_key.get(webhook_id)
                )
            })
            .expect("registry consumer");
        let keyring = self.keys.borrow().clone();
        let update = registry::decode(message.key(), message.payload(), Some(&keyring))
            .expect("valid registry record")
            .update;
        let id = match &update {
            RegistryUpdate::Upsert(entry) => entry.webhook_id.clone(),
            RegistryUpdate::Deleted { webhook_id } => webhook_id.clone(),
        };
        if let Some(value) = message.payload() {
            let sealed: serde_json::Value = serde_json::from_slice(value).expect("JSON");
            if let Some(key) = sealed["secrets"]["keyId"].as_str() {
                self.latest_key.insert(id.clone(), key.to_owned());
            }
            self.raw_values.push(value.to_vec());
        }
        self.latest.insert(id, update);
    }
}

/// Stands in for the kubelets this stack does not have: marks the pods matching
/// `selector` Running and Ready, so the ReplicaSet and Deployment controllers count
/// them as available. Returns how many pods it marked.
pub async fn mark_pods_ready(client: &Client, namespace: &str, selector: &str) -> usize {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ListParams;

    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list pods");
    let status = serde_json::json!({"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    }});
    for pod in &list.items {
        pods.patch_status(
            &pod.metadata.name.clone().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .expect("mark pod ready");
    }
    list.items.len()
}

/// Runs the stack's kubectl with `stdin` and returns (success, stdout + stderr).
pub fn kubectl(args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let stack = hookline_testkit::stack();
    let mut child = Command::new(&stack.kubectl)
        .args(args)
        .env("KUBECONFIG", &stack.kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("kubectl output");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}
