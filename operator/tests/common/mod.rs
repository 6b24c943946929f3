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
