//! Against the real kube-apiserver of the local stack: a CRD generated from Rust types
//! is installed, becomes established, and a custom object round-trips through it.

use crate::common;

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "smoke.hookline.io",
    version = "v1",
    kind = "Probe",
    namespaced
)]
struct ProbeSpec {
    message: String,
    count: i32,
}

#[tokio::test]
async fn crd_is_installed_and_a_custom_object_reads_back() {
    let client = common::client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = Probe::crd();
    let crd_name = crd.name_any();
    crds.patch(
        &crd_name,
        &PatchParams::apply("hookline-smoke-test").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, &crd_name, conditions::is_crd_established()),
    )
    .await
    .expect("CRD established within 30 s")
    .expect("watch CRD");

    let namespace = common::namespace(&client, "smoke").await;
    let probes: Api<Probe> = Api::namespaced(client.clone(), &namespace.name);
    let spec = ProbeSpec {
        message: "hello".into(),
        count: 3,
    };
    let created = probes
        .create(&PostParams::default(), &Probe::new("first", spec.clone()))
        .await
        .expect("create custom object");
    assert!(created.metadata.uid.is_some(), "the server assigned a uid");

    let read = probes.get("first").await.expect("read back");
    assert_eq!(read.spec, spec);
    assert_eq!(read.metadata.uid, created.metadata.uid);
    namespace.delete().await;
}
