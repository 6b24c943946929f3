//! The signing secrets, read from the mounted Secret's files and read again when they
//! change (Kubernetes swaps the files in place on a rotation).

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hookline_core::signature::{Scheme, SecretError, SigningSecret};
use hookline_runtime::shutdown::Shutdown;
use thiserror::Error;

/// File names in the secret directory (the operator's signing Secret keys).
use hookline_api::emitter::secret as secret_files;

#[derive(Debug, Error)]
pub enum SecretFileError {
    #[error("cannot read the signing secret {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the signing secret in {path} is not usable: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: SecretError,
    },
}

/// The raw contents of the secret files, compared to notice a change.
#[derive(Clone, PartialEq, Eq)]
struct FileContents {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
    previous_expires_at: Option<Vec<u8>>,
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, SecretFileError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SecretFileError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn read_files(dir: &Path) -> Result<FileContents, SecretFileError> {
    let current_path = dir.join(secret_files::CURRENT);
    let current = std::fs::read(&current_path).map_err(|source| SecretFileError::Read {
        path: current_path,
        source,
    })?;
    Ok(FileContents {
        current,
        previous: read_optional(&dir.join(secret_files::PREVIOUS))?,
        previous_expires_at: read_optional(&dir.join(secret_files::PREVIOUS_EXPIRES_AT))?,
    })
}

/// The secrets to sign with: current first, then the previous one while it is valid.
fn parse(
    dir: &Path,
    scheme: Scheme,
    files: &FileContents,
    now: DateTime<Utc>,
) -> Result<Vec<SigningSecret>, SecretFileError> {
    let secret = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        let text = std::str::from_utf8(bytes).map_err(|_| SecretFileError::Invalid {
            path: path.clone(),
            source: SecretError::Empty,
        })?;
        SigningSecret::parse(scheme, text)
            .map_err(|source| SecretFileError::Invalid { path, source })
    };
    let mut secrets = vec![secret(secret_files::CURRENT, &files.current)?];
    let previous_expired = files
        .previous_expires_at
        .as_deref()
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|text| DateTime::parse_from_rfc3339(text.trim()).ok())
        .is_some_and(|at| at <= now);
    if let Some(previous) = files.previous.as_deref().filter(|bytes| !bytes.is_empty())
        && !previous_expired
    {
        secrets.push(secret(secret_files::PREVIOUS, previous)?);
    }
    Ok(secrets)
}

/// The live signing secrets, shared by the delivery workers.
#[derive(Clone)]
pub struct SigningKeys {
    dir: PathBuf,
    scheme: Scheme,
    state: Arc<RwLock<(FileContents, Arc<Vec<SigningSecret>>)>>,
}

impl SigningKeys {
    /// Reads the secrets once; a missing or unusable `current` file is an error.
    pub fn load(dir: &Path, scheme: Scheme) -> Result<Self, SecretFileError> {
        let files = read_files(dir)?;
        let secrets = parse(dir, scheme, &files, Utc::now())?;
        Ok(Self {
            dir: dir.to_owned(),
            scheme,
            state: Arc::new(RwLock::new((files, Arc::new(secrets)))),
        })
    }

    /// The secrets to sign the next attempt with.
    pub fn secrets(&self) -> Arc<Vec<SigningSecret>> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    /// Reads the files again; returns whether the secrets changed. On an error the
    /// secrets in use stay as they were.
    pub fn reload(&self) -> Result<bool, SecretFileError> {
        let files = read_files(&self.dir)?;
        let secrets = parse(&self.dir, self.scheme, &files, Utc::now())?;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let changed = state.0 != files || state.1.len() != secrets.len();
        if changed {
            *state = (files, Arc::new(secrets));
        }
        Ok(changed)
    }

    /// Re-reads the files every `interval` until shutdown.
    pub async fn watch(self, interval: Duration, shutdown: Shutdown) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.wait() => return,
            }
            match self.reload() {
                Ok(true) => {
                    tracing::info!(secrets = self.secrets().len(), "signing secrets reloaded")
                }
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "keeping the signing secrets in use"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const OTHER: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(hookline_testkit::unique_name("emitter-secrets"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn current_first_then_previous_until_it_expires() {
        let dir = dir();
        std::fs::write(dir.join(secret_files::CURRENT), SECRET).unwrap();
        let keys = SigningKeys::load(&dir, Scheme::Standard).expect("load");
        assert_eq!(keys.secrets().len(), 1);

        std::fs::write(dir.join(secret_files::PREVIOUS), OTHER).unwrap();
        std::fs::write(
            dir.join(secret_files::PREVIOUS_EXPIRES_AT),
            "2999-01-01T00:00:00Z",
        )
        .unwrap();
        assert!(keys.reload().expect("reload"), "the new file is noticed");
        assert_eq!(keys.secrets().len(), 2);
        assert!(!keys.reload().expect("reload"), "no change, no reload");

        std::fs::write(
            dir.join(secret_files::PREVIOUS_EXPIRES_AT),
            "2000-01-01T00:00:00Z",
        )
        .unwrap();
        assert!(keys.reload().expect("reload"));
        assert_eq!(
            keys.secrets().len(),
            1,
            "an expired previous secret is not used"
        );
    }

    #[test]
    fn a_missing_or_bad_current_secret_is_a_named_error_without_the_value() {
        let dir = dir();
        let err = SigningKeys::load(&dir, Scheme::Standard)
            .err()
            .expect("missing file");
        assert!(err.to_string().contains("current"), "{err}");

        std::fs::write(dir.join(secret_files::CURRENT), "not-a-whsec-secret").unwrap();
        let err = SigningKeys::load(&dir, Scheme::Standard)
            .err()
            .expect("bad secret")
            .to_string();
        assert!(
            err.contains("current") && !err.contains("not-a-whsec-secret"),
            "{err}"
        );

        std::fs::write(dir.join(secret_files::CURRENT), SECRET).unwrap();
        let keys = SigningKeys::load(&dir, Scheme::Standard).expect("load");
        std::fs::write(dir.join(secret_files::CURRENT), "broken").unwrap();
        assert!(keys.reload().is_err());
        assert_eq!(
            keys.secrets().len(),
            1,
            "a bad rewrite keeps the secrets in use"
        );
    }
}
