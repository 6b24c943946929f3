//! Console passwords as argon2id hashes in PHC string format
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), and `hookline-console
//! hash-password`, which makes one from a password read on stdin.
//!
//! The string carries its own parameters, so a hash made cheaply for a test verifies
//! with the same code as a production one.

use std::io::{BufRead, Write};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use thiserror::Error;

/// OWASP's argon2id minimum: 19 MiB, two passes, one lane. About 25 ms to verify on one
/// core of a release build, so a sign-in stays quick and a guess stays dear.
pub const DEFAULT_MEMORY_KIB: u32 = 19 * 1024;
pub const DEFAULT_ITERATIONS: u32 = 2;
pub const DEFAULT_PARALLELISM: u32 = 1;
pub const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Debug, Error)]
pub enum HashError {
    #[error("the password is shorter than {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("argon2id parameters refused: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("cannot read the password from stdin: {0}")]
    Stdin(#[source] std::io::Error),
    #[error("stdin held no password")]
    NoPassword,
}

/// Whether `phc` is an argon2id hash this console can check a password against.
pub fn is_argon2id(phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        hash.algorithm == Algorithm::Argon2id.ident()
            && hash.hash.is_some()
            && Params::try_from(&hash).is_ok()
    })
}

/// An argon2id PHC string of `password` under a fresh random salt.
pub fn hash(
    password: &str,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
) -> Result<String, HashError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(HashError::TooShort);
    }
    let params = Params::new(memory_kib, iterations, parallelism, None)
        .map_err(|err| HashError::Params(err.to_string()))?;
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|err| HashError::Hash(err.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| HashError::Hash(err.to_string()))
}

/// Whether `password` matches `phc` (compared in constant time by the argon2 crate).
/// CPU- and memory-bound for tens of milliseconds: call it on a blocking thread.
pub fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A hash of a random password with the parameters of `phc`: checked against when a
/// username is unknown, so that an unknown name takes as long to refuse as a known one.
pub fn decoy_like(phc: &str) -> Option<String> {
    let params = Params::try_from(&PasswordHash::new(phc).ok()?).ok()?;
    let password = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    hash(&password, params.m_cost(), params.t_cost(), params.p_cost()).ok()
}

/// `hookline-console hash-password`: reads a password from stdin (its first line) and
/// prints its argon2id hash, to put after `username:role:` in the users file.
#[derive(Debug, Parser)]
#[command(name = "hookline-console hash-password")]
pub struct HashPasswordArgs {
    /// Memory cost in KiB. Lower only for tests: the hash records it, and a low one is
    /// cheap to guess against.
    #[arg(long, default_value_t = DEFAULT_MEMORY_KIB)]
    pub memory_kib: u32,
    /// Number of passes over the memory.
    #[arg(long, default_value_t = DEFAULT_ITERATIONS)]
    pub iterations: u32,
    /// Number of lanes.
    #[arg(long, default_value_t = DEFAULT_PARALLELISM)]
    pub parallelism: u32,
}

impl HashPasswordArgs {
    pub fn run(&self, input: impl BufRead, mut output: impl Write) -> Result<(), HashError> {
        let mut line = String::new();
        let mut input = input;
        input.read_line(&mut line).map_err(HashError::Stdin)?;
        let password = line.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            return Err(HashError::NoPassword);
        }
        let phc = hash(password, self.memory_kib, self.iterations, self.parallelism)?;
        writeln!(output, "{phc}").map_err(HashError::Stdin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("correct horse", 8, 1, 1).expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(is_argon2id(&phc));
        assert!(verify(&phc, "correct horse"));
        assert!(!verify(&phc, "correct horse "));
        assert_ne!(phc, hash("correct horse", 8, 1, 1).expect("hash"), "salted");
    }

    #[test]
    fn clear_text_and_other_algorithms_are_not_hashes() {
        assert!(!is_argon2id("correct horse"));
        assert!(!is_argon2id(
            "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$3Ovb6dY6ZHBPsU6WhUMP6w"
        ));
        assert!(!verify("correct horse", "correct horse"));
        assert!(matches!(hash("short", 8, 1, 1), Err(HashError::TooShort)));
    }
}
