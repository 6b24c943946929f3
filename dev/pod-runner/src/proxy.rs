//! The reverse proxy in front of the handler replicas: nginx, its upstream list written
//! from the handler Pods that are ready, reloaded when that list changes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Ready handler replicas by Pod name, and where to write them for nginx.
pub struct Proxy {
    upstream_file: PathBuf,
    reload: Vec<String>,
    ready: Mutex<BTreeMap<String, u16>>,
}

impl Proxy {
    pub fn new(upstream_file: PathBuf, reload: Vec<String>) -> Self {
        Self {
            upstream_file,
            reload,
            ready: Mutex::default(),
        }
    }

    /// Writes the current list (at start: the placeholder) and reloads.
    pub fn publish(&self) {
        let body = upstream_config(
            &self
                .ready
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        self.write_and_reload(body, "start", None);
    }

    /// Records whether `pod` (listening on `port`) serves; rewrites nginx's upstream
    /// list and reloads nginx when the set changed.
    pub fn set(&self, pod: &str, port: Option<u16>) {
        let body = {
            let mut ready = self
                .ready
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let changed = match port {
                Some(port) => ready.insert(pod.to_owned(), port) != Some(port),
                None => ready.remove(pod).is_some(),
            };
            if !changed {
                return;
            }
            upstream_config(&ready)
        };
        self.write_and_reload(body, pod, port);
    }

    fn write_and_reload(&self, body: String, pod: &str, port: Option<u16>) {
        if let Err(err) = std::fs::write(&self.upstream_file, body) {
            tracing::error!(%err, file = %self.upstream_file.display(), "cannot write the proxy's upstreams");
            return;
        }
        if let Some((program, args)) = self.reload.split_first() {
            match std::process::Command::new(program).args(args).status() {
                Ok(status) if status.success() => {
                    tracing::info!(pod, ?port, "proxy upstreams updated")
                }
                Ok(status) => tracing::warn!(%status, "the proxy reload command failed"),
                Err(err) => tracing::warn!(%err, "cannot run the proxy reload command"),
            }
        }
    }
}

/// nginx's `upstream handlers` block. With no replica ready, a closed port stands in so
/// the configuration stays valid and requests get 502 until one is.
pub fn upstream_config(ready: &BTreeMap<String, u16>) -> String {
    let mut out = String::from("upstream handlers {\n    keepalive 64;\n");
    if ready.is_empty() {
        out.push_str("    server 127.0.0.1:1 down;\n");
    }
    for (pod, port) in ready {
        out.push_str(&format!(
            "    server 127.0.0.1:{port} max_fails=1 fail_timeout=2s; # {pod}\n"
        ));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_list_every_ready_replica_or_a_placeholder() {
        let none = upstream_config(&BTreeMap::new());
        assert!(none.contains("127.0.0.1:1 down"), "{none}");
        let two = upstream_config(&BTreeMap::from([
            ("h-a".into(), 4001),
            ("h-b".into(), 4002),
        ]));
        assert!(
            two.contains("127.0.0.1:4001")
                && two.contains("127.0.0.1:4002")
                && !two.contains("down"),
            "{two}"
        );
    }
}
