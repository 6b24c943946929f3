//! What a Pod asks for, turned into what a local process needs. Pure: the API reads
//! (Secrets) happen in `resolve`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("pod {0} has no containers")]
    NoContainer(String),
    #[error("container {container} of pod {pod} has no image")]
    NoImage { pod: String, container: String },
}

/// Where an environment variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    Value(String),
    Secret {
        name: String,
        key: String,
    },
    /// `metadata.name`, `metadata.namespace`, `status.podIP`, ...
    Field(String),
}

/// A Secret volume mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    pub secret: String,
    pub mount_path: String,
}

/// The local process one Pod's first container becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSpec {
    pub pod: String,
    pub namespace: String,
    pub container: String,
    /// The binary's file name: the image name without registry and tag.
    pub binary: String,
    pub args: Vec<String>,
    pub env: Vec<(String, EnvSource)>,
    /// Every key of these Secrets becomes a variable (`envFrom`).
    pub env_from_secrets: Vec<String>,
    pub secret_mounts: Vec<SecretMount>,
    /// Container ports by name and number.
    pub ports: Vec<(Option<String>, i32)>,
    /// The readiness probe's HTTP path and port (name or number), if it has one.
    pub readiness: Option<(String, PortRef)>,
    pub termination_grace_seconds: i64,
    pub labels: BTreeMap<String, String>,
    /// The ServiceAccount whose token the process gets, unless automounting is off.
    pub service_account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    Number(i32),
    Name(String),
}

/// `registry.example/hookline-handler:0.1.0` is the binary `hookline-handler`.
pub fn binary_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let without_digest = last.split('@').next().unwrap_or(last);
    without_digest
        .split(':')
        .next()
        .unwrap_or(without_digest)
        .to_owned()
}

/// Reads the first container of `pod`.
pub fn local_spec(pod: &Pod) -> Result<LocalSpec, SpecError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let container: Container = spec
        .containers
        .first()
        .cloned()
        .ok_or_else(|| SpecError::NoContainer(name.clone()))?;
    let image = container.image.clone().ok_or_else(|| SpecError::NoImage {
        pod: name.clone(),
        container: container.name.clone(),
    })?;
    let env = container
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|var| {
            let source = match (var.value, var.value_from) {
                (Some(value), _) => EnvSource::Value(value),
                (None, Some(from)) => {
                    if let Some(secret) = from.secret_key_ref {
                        EnvSource::Secret {
                            name: secret.name,
                            key: secret.key,
                        }
                    } else if let Some(field) = from.field_ref {
                        EnvSource::Field(field.field_path)
                    } else {
                        return None;
                    }
                }
                (None, None) => EnvSource::Value(String::new()),
            };
            Some((var.name, source))
        })
        .collect();
    let env_from_secrets = container
        .env_from
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|from| from.secret_ref.map(|s| s.name))
        .collect();
    let secret_volumes: BTreeMap<String, String> = spec
        .volumes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| Some((v.name, v.secret?.secret_name?)))
        .collect();
    let secret_mounts = container
        .volume_mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| {
            Some(SecretMount {
                secret: secret_volumes.get(&m.name)?.clone(),
                mount_path: m.mount_path,
            })
        })
        .collect();
    let ports = container
        .ports
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name, p.container_port))
        .collect();
    let readiness = container
        .readiness_probe
        .as_ref()
        .and_then(|probe| probe.http_get.as_ref())
        .map(|get| {
            let port = match &get.port {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => {
                    PortRef::Number(*n)
                }
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => {
                    PortRef::Name(s.clone())
                }
            };
            (get.path.clone().unwrap_or_else(|| "/".into()), port)
        });
    Ok(LocalSpec {
        pod: name,
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        container: container.name.clone(),
        binary: binary_name(&image),
        args: container.args.clone().unwrap_or_default(),
        env,
        env_from_secrets,
        secret_mounts,
        ports,
        readiness,
        termination_grace_seconds: spec.termination_grace_period_seconds.unwrap_or(30),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        service_account: if spec.automount_service_account_token == Some(false) {
            None
        } else {
            Some(
                spec.service_account_name
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            )
        },
    })
}

impl LocalSpec {
    /// The container port a probe names.
    pub fn container_port(&self, port: &PortRef) -> Option<i32> {
        match port {
            PortRef::Number(n) => Some(*n),
            PortRef::Name(name) => self
                .ports
                .iter()
                .find(|(n, _)| n.as_deref() == Some(name.as_str()))
                .map(|(_, p)| *p),
        }
    }
}

/// Rewrites a listen address on a container port (`0.0.0.0:8080`, `:8080`,
/// `127.0.0.1:8080`) to the local port the process got, so that several replicas can
/// run side by side on one machine. Other values pass unchanged.
pub fn rewrite_address(value: &str, ports: &BTreeMap<i32, u16>) -> String {
    let Some((host, port)) = value.rsplit_once(':') else {
        return value.to_owned();
    };
    let listens_everywhere = matches!(host, "" | "0.0.0.0" | "127.0.0.1" | "[::]" | "localhost");
    match (
        listens_everywhere,
        port.parse::<i32>().ok().and_then(|p| ports.get(&p)),
    ) {
        (true, Some(local)) => format!("127.0.0.1:{local}"),
        _ => value.to_owned(),
    }
}

/// Replaces a Secret mount path (or a path below it) with the local directory holding it.
pub fn rewrite_path(value: &str, mounts: &[(String, String)]) -> String {
    for (mount_path, local) in mounts {
        if value == mount_path {
            return local.clone();
        }
        if let Some(rest) = value.strip_prefix(&format!("{mount_path}/")) {
            return format!("{local}/{rest}");
        }
    }
    value.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_names_drop_registry_tag_and_digest() {
        assert_eq!(binary_name("hookline-handler:0.1.0"), "hookline-handler");
        assert_eq!(
            binary_name("ghcr.io/acme/hookline-emitter:dev"),
            "hookline-emitter"
        );
        assert_eq!(
            binary_name("localhost:5000/hookline-consumer@sha256:abc"),
            "hookline-consumer"
        );
        assert_eq!(binary_name("hookline-operator"), "hookline-operator");
    }

    #[test]
    fn listen_addresses_on_container_ports_move_to_local_ports() {
        let ports = BTreeMap::from([(8080, 41000u16), (9090, 41001)]);
        assert_eq!(rewrite_address("0.0.0.0:8080", &ports), "127.0.0.1:41000");
        assert_eq!(rewrite_address(":9090", &ports), "127.0.0.1:41001");
        assert_eq!(
            rewrite_address("0.0.0.0:7000", &ports),
            "0.0.0.0:7000",
            "not a container port"
        );
        assert_eq!(
            rewrite_address("kafka:9090", &ports),
            "kafka:9090",
            "another host"
        );
        assert_eq!(rewrite_address("http://x", &ports), "http://x");
    }

    #[test]
    fn mount_paths_move_to_local_directories() {
        let mounts = vec![(
            "/var/run/hookline/signing".to_owned(),
            "/tmp/p/signing".to_owned(),
        )];
        assert_eq!(
            rewrite_path("/var/run/hookline/signing", &mounts),
            "/tmp/p/signing"
        );
        assert_eq!(
            rewrite_path("/var/run/hookline/signing/current", &mounts),
            "/tmp/p/signing/current"
        );
        assert_eq!(
            rewrite_path("/var/run/hookline/signingx", &mounts),
            "/var/run/hookline/signingx"
        );
    }

    #[test]
    fn a_pod_of_the_emitter_deployment_becomes_a_local_spec() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "invoices-emitter-abc", "namespace": "shop"},
            "spec": {
                "containers": [{
                    "name": "emitter",
                    "image": "hookline-emitter:0.1.0",
                    "args": ["--log-format", "text"],
                    "env": [
                        {"name": "WEBHOOK_SECRET_DIR", "value": "/var/run/hookline/signing"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}
                    ],
                    "envFrom": [{"secretRef": {"name": "extra"}}],
                    "ports": [{"name": "ops", "containerPort": 9090}],
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": "ops"}},
                    "volumeMounts": [{"name": "signing", "mountPath": "/var/run/hookline/signing"}]
                }],
                "volumes": [{"name": "signing", "secret": {"secretName": "invoices-signing"}}],
                "terminationGracePeriodSeconds": 20
            }
        }))
        .expect("pod");
        let spec = local_spec(&pod).expect("spec");
        assert_eq!(spec.binary, "hookline-emitter");
        assert_eq!(spec.args, ["--log-format", "text"]);
        assert_eq!(
            spec.env[1],
            ("POD_NAME".into(), EnvSource::Field("metadata.name".into()))
        );
        assert_eq!(
            spec.env[2].1,
            EnvSource::Secret {
                name: "db".into(),
                key: "url".into()
            }
        );
        assert_eq!(spec.env_from_secrets, ["extra"]);
        assert_eq!(
            spec.secret_mounts,
            [SecretMount {
                secret: "invoices-signing".into(),
                mount_path: "/var/run/hookline/signing".into()
            }]
        );
        let (path, port) = spec.readiness.clone().expect("probe");
        assert_eq!(
            (path.as_str(), spec.container_port(&port)),
            ("/readyz", Some(9090))
        );
        assert_eq!(spec.termination_grace_seconds, 20);
        assert_eq!(spec.service_account.as_deref(), Some("default"));
    }
}
