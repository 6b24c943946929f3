//! The local processes and their ports, kept in `<state dir>/pods.json` so that people
//! and tests can find a replica's endpoints (e.g. an emitter's /metrics) and process id.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use serde_json::json;

pub struct Inventory {
    file: PathBuf,
    pods: Mutex<BTreeMap<String, serde_json::Value>>,
}

impl Inventory {
    pub fn new(file: PathBuf) -> Self {
        Self {
            file,
            pods: Mutex::default(),
        }
    }

    /// Records a pod with its labels and container port -> local port map.
    pub fn set(
        &self,
        pod: &str,
        component: Option<String>,
        labels: BTreeMap<String, String>,
        ports: BTreeMap<i32, u16>,
    ) {
        let ports: BTreeMap<String, u16> =
            ports.into_iter().map(|(c, l)| (c.to_string(), l)).collect();
        let mut pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        pods.insert(
            pod.to_owned(),
            json!({"component": component, "labels": labels, "ports": ports}),
        );
        self.write(&pods);
    }

    /// Records the pod's current process id (chaos tests SIGKILL processes by it).
    pub fn set_pid(&self, pod: &str, pid: Option<u32>) {
        let mut pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = pods.get_mut(pod) {
            entry["pid"] = json!(pid);
            self.write(&pods);
        }
    }

    pub fn remove(&self, pod: &str) {
        let mut pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        if pods.remove(pod).is_some() {
            self.write(&pods);
        }
    }

    fn write(&self, pods: &BTreeMap<String, serde_json::Value>) {
        let body = serde_json::to_string_pretty(&json!({ "pods": pods })).unwrap_or_default();
        let temp = self.file.with_extension("json.tmp");
        if let Err(err) =
            std::fs::write(&temp, body).and_then(|()| std::fs::rename(&temp, &self.file))
        {
            tracing::warn!(%err, file = %self.file.display(), "cannot write the inventory");
        }
    }
}
