//! Reads what a LocalSpec refers to in the API (Secrets, fields) and lays Secret volumes
//! out as files, the way a kubelet would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Api;
use kube::api::PostParams;
use thiserror::Error;

use crate::spec::{EnvSource, LocalSpec, rewrite_address, rewrite_path};

#[derive(Debug, Error)]
pub enum ResolveError {
    #[error("cannot get a token for ServiceAccount {name}: {source}")]
    Token {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot read Secret {name}: {source}")]
    Secret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("Secret {name} does not exist")]
    SecretMissing { name: String },
    #[error("Secret {name} has no key {key}")]
    KeyMissing { name: String, key: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

async fn secret_data(
    secrets: &Api<Secret>,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>, ResolveError> {
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|source| ResolveError::Secret {
            name: name.to_owned(),
            source,
        })?
        .ok_or_else(|| ResolveError::SecretMissing {
            name: name.to_owned(),
        })?;
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (k, v) in secret.string_data.unwrap_or_default() {
        data.insert(k, v.into_bytes());
    }
    Ok(data)
}

/// Writes every key of each mounted Secret as a file under `pod_dir`, replacing files
/// atomically and removing keys that went away. Returns (mount path, local dir) pairs.
pub async fn materialize_secrets(
    secrets: &Api<Secret>,
    spec: &LocalSpec,
    pod_dir: &Path,
) -> Result<Vec<(String, String)>, ResolveError> {
    let mut mounts = Vec::new();
    for (index, mount) in spec.secret_mounts.iter().enumerate() {
        let data = secret_data(secrets, &mount.secret).await?;
        let dir = pod_dir.join(format!("secret-{index}-{}", mount.secret));
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| ResolveError::Write { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
        for (key, value) in &data {
            let path = dir.join(key);
            if std::fs::read(&path).ok().as_deref() == Some(value.as_slice()) {
                continue;
            }
            let temp = dir.join(format!(".{key}.tmp"));
            std::fs::write(&temp, value).map_err(write_err(&temp))?;
            std::fs::rename(&temp, &path).map_err(write_err(&path))?;
        }
        for entry in std::fs::read_dir(&dir).map_err(write_err(&dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && !data.contains_key(&name) {
                std::fs::remove_file(entry.path()).map_err(write_err(&entry.path()))?;
            }
        }
        mounts.push((mount.mount_path.clone(), dir.display().to_string()));
    }
    Ok(mounts)
}

/// The process environment: literal values, Secret keys and fields, then listen
/// addresses moved to the local ports and mount paths to the local directories.
pub async fn environment(
    secrets: &Api<Secret>,
    spec: &LocalSpec,
    ports: &BTreeMap<i32, u16>,
    mounts: &[(String, String)],
) -> Result<Vec<(String, String)>, ResolveError> {
    let mut env = Vec::new();
    for name in &spec.env_from_secrets {
        for (key, value) in secret_data(secrets, name).await? {
            env.push((key, String::from_utf8_lossy(&value).into_owned()));
        }
    }
    for (name, source) in &spec.env {
        let value = match source {
            EnvSource::Value(value) => value.clone(),
            EnvSource::Secret { name: secret, key } => {
                let data = secret_data(secrets, secret).await?;
                let bytes = data.get(key).ok_or_else(|| ResolveError::KeyMissing {
                    name: secret.clone(),
                    key: key.clone(),
                })?;
                String::from_utf8_lossy(bytes).into_owned()
            }
            EnvSource::Field(path) => match path.as_str() {
                "metadata.name" => spec.pod.clone(),
                "metadata.namespace" => spec.namespace.clone(),
                "status.podIP" | "status.hostIP" => "127.0.0.1".into(),
                _ => String::new(),
            },
        };
        env.push((
            name.clone(),
            rewrite_path(&rewrite_address(&value, ports), mounts),
        ));
    }
    Ok(env)
}

/// The API server as the runner reaches it: what a process's kubeconfig points at.
#[derive(Clone)]
pub struct ApiServer {
    pub server: String,
    pub certificate_authority_data: Option<String>,
}

/// Gives the process the identity of its ServiceAccount, as a kubelet's projected token
/// would: a fresh token in `<pod dir>/serviceaccount/token` and a kubeconfig reading it.
/// Returns the kubeconfig's path.
pub async fn service_account_kubeconfig(
    accounts: &Api<ServiceAccount>,
    api: &ApiServer,
    spec: &LocalSpec,
    account: &str,
    pod_dir: &Path,
) -> Result<PathBuf, ResolveError> {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec!["https://kubernetes.default.svc".into()]),
            expiration_seconds: Some(3_600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token = accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .map_err(|source| ResolveError::Token {
            name: account.to_owned(),
            source,
        })?
        .status
        .and_then(|s| s.token)
        .unwrap_or_default();
    let dir = pod_dir.join("serviceaccount");
    let write = |path: &Path, body: &[u8]| {
        std::fs::write(path, body).map_err(|source| ResolveError::Write {
            path: path.to_owned(),
            source,
        })
    };
    std::fs::create_dir_all(&dir).map_err(|source| ResolveError::Write {
        path: dir.clone(),
        source,
    })?;
    let token_path = dir.join("token");
    write(&token_path, token.as_bytes())?;
    let mut cluster = serde_json::json!({"server": api.server});
    if let Some(ca) = &api.certificate_authority_data {
        cluster["certificate-authority-data"] = serde_json::json!(ca);
    }
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": account, "user": {"tokenFile": token_path.display().to_string()}}],
        "contexts": [{"name": "pod", "context": {"cluster": "local", "user": account, "namespace": spec.namespace}}],
        "current-context": "pod",
    });
    let path = dir.join("kubeconfig.json");
    write(&path, kubeconfig.to_string().as_bytes())?;
    Ok(path)
}
