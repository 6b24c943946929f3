//! The controller runs as a ServiceAccount bound to exactly operator/rbac.yaml, and that
//! is enough for the whole lifecycle; grants it should not have are refused.

use std::time::Duration;

use hookline_api::webhook::Webhook;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::Deserialize;

use crate::common::{self, Operator};
use hookline_testkit::eventually;

const RULES: &str = include_str!("../../rbac.yaml");
const WAIT: Duration = Duration::from_secs(30);

/// A client that authenticates as `namespace/name` with a fresh token.
async fn client_as(admin: &Client, namespace: &str, name: &str) -> Client {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec!["https://kubernetes.default.svc".into()]),
            expiration_seconds: Some(3_600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("token for the ServiceAccount")
        .status
        .expect("token status")
        .token;
    let kubeconfig =
        Kubeconfig::read_from(&hookline_testkit::stack().kubeconfig).expect("kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    config.auth_info =
        serde_json::from_value(serde_json::json!({ "token": token })).expect("auth info");
    Client::try_from(config).expect("client")
}

#[tokio::test]
async fn the_documented_rules_are_enough_and_no_more() {
    let admin = common::client().await;
    common::install_crd(&admin).await;
    let namespace = common::namespace(&admin, "rbac").await;
    let ns = namespace.name.clone();

    let mut cluster_role: Option<ClusterRole> = None;
    let mut role: Option<Role> = None;
    for document in serde_yaml::Deserializer::from_str(RULES) {
        let value = serde_yaml::Value::deserialize(document).expect("YAML document");
        match value["kind"].as_str() {
            Some("ClusterRole") => {
                cluster_role = Some(serde_yaml::from_value(value).expect("ClusterRole"))
            }
            Some("Role") => role = Some(serde_yaml::from_value(value).expect("Role")),
            other => panic!("unexpected kind {other:?} in operator/rbac.yaml"),
        }
    }
    let mut cluster_role = cluster_role.expect("a ClusterRole");
    let mut role = role.expect("a Role");
    let cluster_role_name = format!("hookline-operator-{ns}");
    cluster_role.metadata.name = Some(cluster_role_name.clone());
    role.metadata.namespace = Some(ns.clone());
    let role_name = role.metadata.name.clone().expect("role name");
    let pp = PostParams::default();
    Api::<ClusterRole>::all(admin.clone())
        .create(&pp, &cluster_role)
        .await
        .expect("ClusterRole");
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&pp, &role)
        .await
        .expect("Role");
    let mut account = ServiceAccount::default();
    account.metadata.name = Some("operator".into());
    Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
        .create(&pp, &account)
        .await
        .expect("ServiceAccount");
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: "operator".into(),
        namespace: Some(ns.clone()),
        ..Subject::default()
    };
    let mut cluster_binding = ClusterRoleBinding {
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: cluster_role_name.clone(),
        },
        subjects: Some(vec![subject.clone()]),
        ..ClusterRoleBinding::default()
    };
    cluster_binding.metadata.name = Some(cluster_role_name.clone());
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&pp, &cluster_binding)
        .await
        .expect("ClusterRoleBinding");
    let mut binding = RoleBinding {
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: role_name,
        },
        subjects: Some(vec![subject]),
        ..RoleBinding::default()
    };
    binding.metadata.name = Some("operator-leader-election".into());
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&pp, &binding)
        .await
        .expect("RoleBinding");

    let who = format!("system:serviceaccount:{ns}:operator");
    for (allowed, verb, resource) in [
        (true, "patch", "webhooks.hookline.io"),
        (true, "patch", "deployments.apps"),
        (true, "create", "leases.coordination.k8s.io"),
        (true, "patch", "networkpolicies.networking.k8s.io"),
        (true, "create", "networkpolicies.networking.k8s.io"),
        (true, "delete", "networkpolicies.networking.k8s.io"),
        (false, "delete", "secrets"),
        (false, "delete", "deployments.apps"),
        (false, "update", "deployments.apps"),
        (false, "create", "pods"),
        (false, "create", "clusterroles.rbac.authorization.k8s.io"),
    ] {
        let (_, out) = common::kubectl(
            &["auth", "can-i", verb, resource, "-n", &ns, "--as", &who],
            "",
        );
        let expected = if allowed { "yes" } else { "no" };
        let answer = out.lines().next().unwrap_or_default().trim();
        assert_eq!(
            answer, expected,
            "can the operator {verb} {resource}? {out}"
        );
    }

    // The whole lifecycle as that ServiceAccount.
    let operator_client = client_as(&admin, &ns, "operator").await;
    let operator = Operator::start(&operator_client, &ns).await;
    let mut registry = operator.registry_reader();
    let webhooks: Api<Webhook> = Api::namespaced(admin.clone(), &ns);
    webhooks
        .create(
            &pp,
            &common::webhook("limited", serde_json::json!({"customerId": "c"})),
        )
        .await
        .expect("create Webhook");
    let id = eventually("registered as the ServiceAccount", WAIT, || async {
        let status = webhooks.get("limited").await.ok()?.status?;
        let registered = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Registered" && c.status == "True");
        registered.then_some(status.webhook_id?)
    })
    .await;
    registry.wait_for(&id, WAIT, |_| true).await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns);
    assert!(
        deployments
            .get_opt("limited-emitter")
            .await
            .expect("read")
            .is_some()
    );
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    assert!(
        secrets
            .get_opt("limited-signing")
            .await
            .expect("read")
            .is_some()
    );
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), &ns);
    assert!(
        policies
            .get_opt("limited-emitter")
            .await
            .expect("read")
            .is_some(),
        "the emitter's NetworkPolicy, written with exactly these grants"
    );
    webhooks
        .delete("limited", &DeleteParams::default())
        .await
        .expect("delete");
    registry
        .wait_for(&id, WAIT, |u| {
            matches!(u, hookline_core::registry::RegistryUpdate::Deleted { .. })
        })
        .await;
    eventually("finalizer removed", WAIT, || async {
        webhooks
            .get_opt("limited")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    operator.stop().await;
    Api::<ClusterRoleBinding>::all(admin.clone())
        .delete(&cluster_role_name, &DeleteParams::default())
        .await
        .expect("delete ClusterRoleBinding");
    Api::<ClusterRole>::all(admin.clone())
        .delete(&cluster_role_name, &DeleteParams::default())
        .await
        .expect("delete ClusterRole");
    namespace.delete().await;
}
