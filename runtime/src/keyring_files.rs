//! The registry keyring as the operator and the handlers hold it: a directory (a mounted
//! Secret) read at start and re-read while the service runs, since the kubelet changes
//! the files in place when someone rotates the keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hookline_core::registry::sealing::PRIMARY_FILE;
use hookline_core::registry::{Keyring, KeyringError};
use tokio::sync::watch;

use crate::shutdown::Shutdown;

/// Reads a keyring directory (a mounted Secret). Names starting with `.` are the
/// kubelet's bookkeeping and are skipped.
pub fn load_dir(dir: &Path) -> Result<Keyring, KeyringError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| KeyringError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let primary = read(&dir.join(PRIMARY_FILE))?;
    let entries = std::fs::read_dir(dir).map_err(|source| KeyringError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| KeyringError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == PRIMARY_FILE || entry.path().is_dir() {
            continue;
        }
        files.push((name, read(&entry.path())?));
    }
    Keyring::new(
        &primary,
        files.iter().map(|(id, key)| (id.as_str(), key.as_str())),
    )
}

/// Loads the keyring in `dir`, then reloads it every `interval` until shutdown: a
/// mounted Secret changes in place when someone rotates the keys. A reload that fails
/// (a half-written file) keeps the last good keyring and logs why.
pub async fn watch_dir(
    dir: PathBuf,
    interval: Duration,
    shutdown: Shutdown,
) -> Result<watch::Receiver<Arc<Keyring>>, KeyringError> {
    let first = load_dir(&dir)?;
    tracing::info!(primary = first.primary_id(), keys = first.key_ids().count(), dir = %dir.display(), "registry keyring loaded");
    let (sender, receiver) = watch::channel(Arc::new(first));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.wait() => return,
            }
            match load_dir(&dir) {
                Ok(keyring) if **sender.borrow() != keyring => {
                    tracing::info!(
                        primary = keyring.primary_id(),
                        ids = ?keyring.key_ids().collect::<Vec<_>>(),
                        "registry keyring changed"
                    );
                    sender.send_replace(Arc::new(keyring));
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "keeping the last registry keyring"),
            }
        }
    });
    Ok(receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_like_a_mounted_secret_loads() {
        let dir = std::env::temp_dir().join(format!("hookline-keyring-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("..2026_12_02_data")).unwrap();
        std::fs::write(dir.join(PRIMARY_FILE), "k2\n").unwrap();
        std::fs::write(dir.join("k1"), Keyring::generate_key()).unwrap();
        std::fs::write(dir.join("k2"), format!("{}\n", Keyring::generate_key())).unwrap();
        std::fs::write(dir.join("..data"), "kubelet bookkeeping").unwrap();
        let ring = load_dir(&dir).unwrap();
        assert_eq!(ring.primary_id(), "k2");
        assert_eq!(ring.key_ids().collect::<Vec<_>>(), ["k1", "k2"]);
        std::fs::remove_file(dir.join("k2")).unwrap();
        assert!(matches!(load_dir(&dir), Err(KeyringError::NoPrimary(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
