//! Two operator processes: the Lease lets exactly one act; when the leader is killed the
//! other takes over; on SIGTERM a leader releases the Lease.

use hookline_testkit::process::{Signal, send_signal};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hookline_api::webhook::Webhook;
use hookline_operator::metrics::LEADER;
use hookline_testkit::http;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;

use crate::common;
use hookline_testkit::eventually;

const WAIT: Duration = Duration::from_secs(30);

struct OperatorProcess {
    child: Child,
    identity: &'static str,
    port: u16,
}

impl OperatorProcess {
    fn start(namespace: &str, registry_topic: &str, identity: &'static str) -> Self {
        let stack = hookline_testkit::stack();
        let port = http::free_port();
        let key = hookline_core::registry::Keyring::generate_key();
        let keys = hookline_testkit::registry_keys_dir("k1", &[("k1", &key)]);
        let child = Command::new(env!("CARGO_BIN_EXE_hookline-operator"))
            .args([
                "--log-format",
                "text",
                "run",
                "--watch-namespace",
                namespace,
            ])
            .args([
                "--lease-namespace",
                namespace,
                "--lease-name",
                "operator-test",
            ])
            .args(["--lease-seconds", "3", "--identity", identity])
            .args(["--registry-topic", registry_topic])
            .args(["--public-base-url", "https://hooks.example.test"])
            .args(["--in-cluster-handler-url", "http://hookline-handler:8080"])
            .args(["--ops-addr", &format!("127.0.0.1:{port}")])
            .arg("--registry-keys-dir")
            .arg(&keys)
            .env("KUBECONFIG", &stack.kubeconfig)
            .envs(common::kafka().env_vars())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the operator binary");
        Self {
            child,
            identity,
            port,
        }
    }

    fn is_leader(&self) -> Option<bool> {
        let (_, body) = http::get(self.port, "/metrics")?;
        Some(hookline_testkit::prometheus::sample(&body, &LEADER.exported())? == 1.0)
    }

    fn signal(&self, signal: Signal) {
        assert!(send_signal(self.child.id(), signal), "{signal:?} delivered");
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("operator-test")
        .await
        .ok()??
        .spec?
        .holder_identity
}

#[tokio::test]
async fn one_of_two_replicas_acts_and_the_other_takes_over() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let namespace = common::namespace(&client, "leader").await;
    let ns = namespace.name.clone();
    let registry_topic = hookline_testkit::unique_name("registry");
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);

    let a = OperatorProcess::start(&ns, &registry_topic, "replica-a");
    let b = OperatorProcess::start(&ns, &registry_topic, "replica-b");
    let first = eventually("a Lease holder", WAIT, || async { holder(&leases).await }).await;
    let (mut leader, follower) = if first == a.identity { (a, b) } else { (b, a) };
    assert_eq!(first, leader.identity);
    eventually("the leader says so in /metrics", WAIT, || async {
        (leader.is_leader()? && follower.port != leader.port).then_some(())
    })
    .await;
    // The follower serves /healthz but does not act: it never reports leadership.
    assert_eq!(http::get(follower.port, "/healthz").map(|r| r.0), Some(200));
    assert_ne!(follower.is_leader(), Some(true));

    let webhooks: Api<Webhook> = Api::namespaced(client.clone(), &ns);
    let spec = || serde_json::json!({"customerId": "c", "emitter": {"enabled": false}});
    webhooks
        .create(&PostParams::default(), &common::webhook("one", spec()))
        .await
        .expect("create");
    let registered = |name: &'static str| {
        let webhooks = webhooks.clone();
        async move {
            let status = webhooks.get(name).await.ok()?.status?;
            status
                .conditions
                .iter()
                .any(|c| c.type_ == "Registered" && c.status == "True")
                .then_some(())
        }
    };
    eventually("reconciled by the leader", WAIT, || registered("one")).await;

    // The leader dies without releasing; the follower takes over once the Lease expires.
    leader.signal(Signal::Kill);
    let _ = leader.child.wait();
    eventually("the follower holds the Lease", WAIT, || async {
        (holder(&leases).await? == follower.identity).then_some(())
    })
    .await;
    webhooks
        .create(&PostParams::default(), &common::webhook("two", spec()))
        .await
        .expect("create");
    eventually("reconciled by the new leader", WAIT, || registered("two")).await;
    assert_eq!(follower.is_leader(), Some(true));

    webhooks
        .delete_collection(&Default::default(), &Default::default())
        .await
        .expect("delete the Webhooks");
    eventually("every Webhook finalized", WAIT, || async {
        webhooks
            .list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;

    // SIGTERM: the leader stops and gives the Lease up.
    follower.signal(Signal::Term);
    eventually("the Lease released", WAIT, || async {
        let spec = leases.get_opt("operator-test").await.ok()??.spec?;
        spec.holder_identity.is_none().then_some(())
    })
    .await;
    drop(follower);
    namespace.delete().await;
}
