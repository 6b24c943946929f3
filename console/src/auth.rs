//! Who is asking: console users from a file (a Kubernetes Secret, re-read when it
//! changes), server-side sessions, HTTP Basic for scripts (off behind an authenticating
//! proxy), or the user such a proxy vouches for; the CSRF token every state-changing
//! request must carry; and the throttling of failed sign-ins.
//!
//! A session cookie holds only `<session id>.<mac>`: 256 random bits and their
//! HMAC-SHA256 under the session key. The session itself (user, CSRF token, when it
//! started and was last used) lives in this process, and the role is looked up in the
//! current users on every request: a role change, a removed user or a sign-out holds
//! from the next request on. The chart runs one console replica for this reason.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use hookline_core::source::Cidr;
use hookline_runtime::shutdown::Shutdown;
use serde::Serialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use crate::password;
use crate::throttle::{Throttle, ThrottleSettings};

pub const SESSION_COOKIE: &str = "hookline_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
const MIN_KEY_BYTES: usize = 32;
/// Sessions held at most; beyond, the least recently used one ends.
const MAX_SESSIONS: usize = 10_000;
/// Password checks running at once: each holds its hash's memory (19 MiB by default)
/// and a core for tens of milliseconds, so a flood of sign-ins queues here instead of
/// exhausting the pod.
const CONCURRENT_VERIFICATIONS: usize = 2;

/// What a user may do: viewers read; operators also replay dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
}

impl Role {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            _ => None,
        }
    }
}

/// The signed-in user of a request.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Principal {
    pub username: String,
    pub role: Role,
    /// To send back as the X-CSRF-Token header of every POST and DELETE.
    pub csrf_token: String,
}

/// Why a request or a sign-in is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials, or a session that is unknown, ended or expired.
    Unauthenticated,
    /// A wrong username or password.
    InvalidCredentials,
    /// Too many failed sign-ins for the username or from the address: try again after.
    Throttled(Duration),
}

#[derive(Debug, Error)]
pub enum AuthConfigError {
    #[error("cannot read the users file {path}: {source}")]
    ReadUsers {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "users file {path}, line {line}: {why} (expected username:role:argon2id-hash, role viewer or operator, the hash from `hookline-console hash-password`)"
    )]
    BadUser {
        path: String,
        line: usize,
        why: &'static str,
    },
    #[error("cannot read the session key file {path}: {source}")]
    ReadKey {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the session key in {path} has {len} bytes; at least {MIN_KEY_BYTES} are needed")]
    ShortKey { path: String, len: usize },
    #[error("nobody could sign in: give --users-file or --auth-proxy-user-header")]
    NoWayIn,
}

struct User {
    role: Role,
    /// An argon2id PHC string.
    hash: String,
}

#[derive(Default)]
struct Users {
    by_name: HashMap<String, User>,
    /// Checked for unknown usernames (same parameters as the users' hashes).
    decoy: Option<String>,
    /// The file as last read, to tell a change.
    text: String,
}

struct Session {
    username: String,
    csrf_token: String,
    started: Instant,
    last_used: Instant,
}

/// The authenticating proxy in front, when there is one.
pub struct ProxyAuth {
    pub user_header: String,
    pub groups_header: Option<String>,
    pub operator_groups: Vec<String>,
    pub trusted: Vec<Cidr>,
}

/// How the console signs people in, from its flags.
pub struct AuthSettings {
    pub users_file: Option<PathBuf>,
    pub session_key_file: Option<PathBuf>,
    /// A session ends this long after the sign-in, used or not.
    pub session_lifetime: Duration,
    /// A session ends when unused for this long.
    pub session_idle_timeout: Duration,
    pub secure_cookie: bool,
    pub proxy: Option<ProxyAuth>,
    pub throttle: ThrottleSettings,
}

pub struct Auth {
    users_file: Option<PathBuf>,
    users: RwLock<Arc<Users>>,
    sessions: Mutex<HashMap<String, Session>>,
    key: Vec<u8>,
    lifetime: Duration,
    idle_timeout: Duration,
    secure_cookie: bool,
    proxy: Option<ProxyAuth>,
    throttle: Throttle,
    verifying: Semaphore,
}

type HmacSha256 = Hmac<Sha256>;

impl Auth {
    /// Reads the users and the session key; refuses a users file with a line that is
    /// not `username:role:argon2id-hash` (a password in clear, above all).
    pub fn new(settings: AuthSettings) -> Result<Self, AuthConfigError> {
        let users = match &settings.users_file {
            Some(path) => read_users(path)?,
            None => Users::default(),
        };
        if users.by_name.is_empty() && settings.proxy.is_none() {
            return Err(AuthConfigError::NoWayIn);
        }
        let key = match &settings.session_key_file {
            Some(path) => {
                let key = std::fs::read(path).map_err(|source| AuthConfigError::ReadKey {
                    path: path.display().to_string(),
                    source,
                })?;
                if key.len() < MIN_KEY_BYTES {
                    return Err(AuthConfigError::ShortKey {
                        path: path.display().to_string(),
                        len: key.len(),
                    });
                }
                key
            }
            None => rand::random::<[u8; 32]>().to_vec(),
        };
        Ok(Self {
            users_file: settings.users_file,
            users: RwLock::new(Arc::new(users)),
            sessions: Mutex::new(HashMap::new()),
            key,
            lifetime: settings.session_lifetime,
            idle_timeout: settings.session_idle_timeout,
            secure_cookie: settings.secure_cookie,
            proxy: settings.proxy,
            throttle: Throttle::new(settings.throttle),
            verifying: Semaphore::new(CONCURRENT_VERIFICATIONS),
        })
    }

    /// The user of a request: the proxy's (from a trusted peer), else the session
    /// cookie's, else HTTP Basic's, which is off when a proxy signs people in.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: IpAddr,
    ) -> Result<Principal, Refusal> {
        if let Some(proxy) = &self.proxy {
            if proxy.trusted.iter().any(|cidr| cidr.contains(peer))
                && let Some(principal) = self.proxy_principal(proxy, headers)
            {
                return Ok(principal);
            }
            return self
                .session_principal(headers)
                .ok_or(Refusal::Unauthenticated);
        }
        if let Some(principal) = self.session_principal(headers) {
            return Ok(principal);
        }
        let Some((username, password)) = basic_credentials(headers) else {
            return Err(Refusal::Unauthenticated);
        };
        let role = match self.check_password(&username, &password, peer).await {
            Ok(role) => role,
            Err(Refusal::InvalidCredentials) => return Err(Refusal::Unauthenticated),
            Err(refusal) => return Err(refusal),
        };
        Ok(Principal {
            csrf_token: self.csrf_token(&format!("basic:{username}")),
            username,
            role,
        })
    }

    /// Checks a password; on success a new session: its principal and the Set-Cookie
    /// value carrying its id.
    pub async fn log_in(
        &self,
        username: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<(Principal, String), Refusal> {
        let role = self.check_password(username, password, peer).await?;
        let id = hex_encode(&rand::random::<[u8; 32]>());
        let csrf_token = hex_encode(&rand::random::<[u8; 32]>());
        let now = Instant::now();
        {
            let mut sessions = self.sessions();
            if sessions.len() >= MAX_SESSIONS {
                self.end_oldest(&mut sessions, now);
            }
            sessions.insert(
                id.clone(),
                Session {
                    username: username.to_owned(),
                    csrf_token: csrf_token.clone(),
                    started: now,
                    last_used: now,
                },
            );
        }
        let cookie = format!(
            "{SESSION_COOKIE}={id}.{}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            hex_encode(&self.mac("session", &id)),
            self.lifetime.as_secs(),
            self.secure_attribute()
        );
        let principal = Principal {
            username: username.to_owned(),
            role,
            csrf_token,
        };
        Ok((principal, cookie))
    }

    /// Ends the request's session here (its cookie is refused from now on) and returns
    /// the Set-Cookie value that clears it in the browser.
    pub fn log_out(&self, headers: &HeaderMap) -> String {
        if let Some(id) = self.session_id(headers) {
            self.sessions().remove(id);
        }
        format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            self.secure_attribute()
        )
    }

    /// Whether `token` is the CSRF token of `principal`.
    pub fn csrf_matches(principal: &Principal, token: &str) -> bool {
        principal
            .csrf_token
            .as_bytes()
            .ct_eq(token.as_bytes())
            .into()
    }

    /// Re-reads the users file when its content changed: roles change and removed
    /// users' sessions end. `Ok(true)` when it changed; on an error the users stay.
    /// Blocking (a file read and one argon2 hash): run it on a blocking thread.
    pub fn reload_users(&self) -> Result<bool, AuthConfigError> {
        let Some(path) = &self.users_file else {
            return Ok(false);
        };
        let text = read_users_text(path)?;
        if text == self.users().text {
            return Ok(false);
        }
        let users = Arc::new(parse_users(path, text)?);
        *self.users.write().unwrap_or_else(PoisonError::into_inner) = users.clone();
        self.sessions()
            .retain(|_, session| users.by_name.contains_key(&session.username));
        Ok(true)
    }

    /// Looks at the users file every `interval` until shutdown (a mounted Secret is
    /// replaced by the kubelet, a file by whoever edits it).
    pub async fn watch_users(self: Arc<Self>, interval: Duration, shutdown: Shutdown) {
        if self.users_file.is_none() {
            return;
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.wait() => return,
            }
            let auth = self.clone();
            match tokio::task::spawn_blocking(move || auth.reload_users()).await {
                Ok(Ok(true)) => {
                    tracing::info!(users = self.users().by_name.len(), "users file re-read");
                }
                Ok(Ok(false)) => {}
                Ok(Err(err)) => {
                    tracing::warn!(%err, "users file not taken; the previous users stay");
                }
                Err(err) => tracing::warn!(%err, "re-reading the users file failed"),
            }
        }
    }

    /// The role of `username` if `password` is theirs, counting failures against the
    /// username and the peer; refused without checking while either is locked.
    async fn check_password(
        &self,
        username: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<Role, Refusal> {
        self.throttle
            .check(username, peer)
            .map_err(Refusal::Throttled)?;
        // A few checks at a time, each holding its permit until its failure is counted,
        // and the lock looked at again once it is this attempt's turn: guesses sent all
        // at once would otherwise all pass the look above before the first failure.
        let Ok(_permit) = self.verifying.acquire().await else {
            return Err(Refusal::InvalidCredentials);
        };
        self.throttle
            .check(username, peer)
            .map_err(Refusal::Throttled)?;
        let users = self.users();
        let (hash, role) = match users.by_name.get(username) {
            Some(user) => (user.hash.clone(), Some(user.role)),
            None => (users.decoy.clone().unwrap_or_default(), None),
        };
        let matches = !hash.is_empty() && verify(hash, password.to_owned()).await;
        match role.filter(|_| matches) {
            Some(role) => {
                self.throttle.succeeded(username);
                Ok(role)
            }
            None => {
                self.throttle.failed(username, peer);
                Err(Refusal::InvalidCredentials)
            }
        }
    }

    fn proxy_principal(&self, proxy: &ProxyAuth, headers: &HeaderMap) -> Option<Principal> {
        let username = headers
            .get(proxy.user_header.as_str())?
            .to_str()
            .ok()?
            .trim();
        if username.is_empty() {
            return None;
        }
        let groups = proxy
            .groups_header
            .as_deref()
            .and_then(|name| headers.get(name))
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let operator = groups
            .split(',')
            .map(str::trim)
            .any(|group| proxy.operator_groups.iter().any(|op| op == group));
        Some(Principal {
            username: username.to_owned(),
            role: if operator {
                Role::Operator
            } else {
                Role::Viewer
            },
            csrf_token: self.csrf_token(&format!("proxy:{username}")),
        })
    }

    /// The id of the request's session cookie, when its mac holds.
    fn session_id<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        let value = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == SESSION_COOKIE).then_some(value)
            })?;
        let (id, mac) = value.split_once('.')?;
        let mac = hex_decode(mac)?;
        bool::from(self.mac("session", id).as_slice().ct_eq(&mac)).then_some(id)
    }

    fn session_principal(&self, headers: &HeaderMap) -> Option<Principal> {
        let id = self.session_id(headers)?;
        let now = Instant::now();
        let users = self.users();
        let mut sessions = self.sessions();
        let session = sessions.get_mut(id)?;
        let role = users.by_name.get(&session.username).map(|user| user.role);
        let (false, Some(role)) = (self.expired(session, now), role) else {
            sessions.remove(id);
            return None;
        };
        session.last_used = now;
        Some(Principal {
            username: session.username.clone(),
            role,
            csrf_token: session.csrf_token.clone(),
        })
    }

    fn expired(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.started) >= self.lifetime
            || now.duration_since(session.last_used) >= self.idle_timeout
    }

    /// Makes room for one more session: the expired ones end, else the least recently used.
    fn end_oldest(&self, sessions: &mut HashMap<String, Session>, now: Instant) {
        sessions.retain(|_, session| !self.expired(session, now));
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, session)| session.last_used)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
    }

    fn users(&self) -> Arc<Users> {
        self.users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves sessions that are still sessions.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn secure_attribute(&self) -> &'static str {
        if self.secure_cookie { "; Secure" } else { "" }
    }

    fn csrf_token(&self, nonce: &str) -> String {
        hex_encode(&self.mac("csrf", nonce))
    }

    fn mac(&self, purpose: &str, value: &str) -> Vec<u8> {
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(purpose.as_bytes());
        mac.update(b"|");
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// argon2 on a blocking thread, so a sign-in never stalls the threads serving other
/// requests.
async fn verify(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || password::verify(&hash, &password))
        .await
        .unwrap_or(false)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some((username.to_owned(), password.to_owned()))
}

fn read_users_text(path: &Path) -> Result<String, AuthConfigError> {
    std::fs::read_to_string(path).map_err(|source| AuthConfigError::ReadUsers {
        path: path.display().to_string(),
        source,
    })
}

fn read_users(path: &Path) -> Result<Users, AuthConfigError> {
    parse_users(path, read_users_text(path)?)
}

fn parse_users(path: &Path, text: String) -> Result<Users, AuthConfigError> {
    let by_name = parse_user_lines(&text).map_err(|(line, why)| AuthConfigError::BadUser {
        path: path.display().to_string(),
        line,
        why,
    })?;
    let decoy = by_name
        .values()
        .next()
        .and_then(|user| password::decoy_like(&user.hash));
    Ok(Users {
        by_name,
        decoy,
        text,
    })
}

fn parse_user_lines(text: &str) -> Result<HashMap<String, User>, (usize, &'static str)> {
    let mut users = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let number = index + 1;
        let mut fields = line.splitn(3, ':');
        let (Some(name), Some(role), Some(hash)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err((number, "not three fields"));
        };
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err((number, "empty username or one with spaces"));
        }
        let role = Role::parse(role).ok_or((number, "unknown role"))?;
        if !password::is_argon2id(hash) {
            return Err((
                number,
                "the password is not an argon2id hash (passwords in clear are refused)",
            ));
        }
        let user = User {
            role,
            hash: hash.to_owned(),
        };
        if users.insert(name.to_owned(), user).is_some() {
            return Err((number, "username listed twice"));
        }
    }
    Ok(users)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn cheap(password: &str) -> String {
        password::hash(password, 8, 1, 1).expect("hash")
    }

    fn auth(proxy: Option<ProxyAuth>) -> Auth {
        let text = format!(
            "# people\nalice:operator:{}\nbob:viewer:{}\n",
            cheap("correct horse"),
            cheap("battery staple")
        );
        let users = parse_users(Path::new("users"), text).expect("users");
        Auth {
            users_file: None,
            users: RwLock::new(Arc::new(users)),
            sessions: Mutex::new(HashMap::new()),
            key: vec![7; 32],
            lifetime: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(600),
            secure_cookie: true,
            proxy,
            throttle: Throttle::new(ThrottleSettings {
                max_failures_per_user: 5,
                max_failures_per_source: 20,
                window: Duration::from_secs(60),
            }),
            verifying: Semaphore::new(CONCURRENT_VERIFICATIONS),
        }
    }

    fn with_cookie(set_cookie: &str) -> HeaderMap {
        let pair = set_cookie.split(';').next().expect("name=value");
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("other=1; {pair}")).expect("ascii"),
        );
        headers
    }

    fn basic(user_pass: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(user_pass))).expect("ascii"),
        );
        headers
    }

    #[tokio::test]
    async fn a_session_cookie_holds_only_an_id_and_a_tampered_one_is_refused() {
        let auth = auth(None);
        assert_eq!(
            auth.log_in("alice", "wrong password", PEER).await.err(),
            Some(Refusal::InvalidCredentials)
        );
        assert_eq!(
            auth.log_in("nobody", "correct horse", PEER).await.err(),
            Some(Refusal::InvalidCredentials)
        );
        let (principal, cookie) = auth
            .log_in("alice", "correct horse", PEER)
            .await
            .expect("signed in");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.contains("; Secure"));
        assert!(!cookie.contains("alice") && !cookie.contains("operator"));
        let back = auth
            .authenticate(&with_cookie(&cookie), PEER)
            .await
            .expect("session");
        assert_eq!(back, principal);

        let (id, mac) = cookie
            .split(';')
            .next()
            .and_then(|pair| pair.split_once('='))
            .and_then(|(_, value)| value.split_once('.'))
            .expect("id.mac");
        assert_eq!(id.len(), 64, "256 bits");
        let other = if id.starts_with('a') { 'b' } else { 'a' };
        let forged = format!("{SESSION_COOKIE}={other}{}.{mac}", &id[1..]);
        assert!(
            auth.authenticate(&with_cookie(&forged), PEER)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn each_session_has_its_own_csrf_token() {
        let auth = auth(None);
        let (first, _) = auth
            .log_in("alice", "correct horse", PEER)
            .await
            .expect("first");
        let (second, _) = auth
            .log_in("alice", "correct horse", PEER)
            .await
            .expect("second");
        assert_ne!(first.csrf_token, second.csrf_token);
        assert!(Auth::csrf_matches(&first, &first.csrf_token));
        assert!(!Auth::csrf_matches(&first, &second.csrf_token));
        assert!(!Auth::csrf_matches(&first, ""));
    }

    #[tokio::test]
    async fn basic_auth_checks_the_password() {
        let auth = auth(None);
        assert_eq!(
            auth.authenticate(&basic("bob:battery staple"), PEER)
                .await
                .map(|p| p.role),
            Ok(Role::Viewer)
        );
        assert!(
            auth.authenticate(&basic("bob:battery"), PEER)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_proxy_user_is_believed_only_from_the_proxy_and_basic_is_off() {
        let auth = auth(Some(ProxyAuth {
            user_header: "x-forwarded-user".into(),
            groups_header: Some("x-forwarded-groups".into()),
            operator_groups: vec!["sre".into()],
            trusted: vec!["10.1.2.3/32".parse().expect("cidr")],
        }));
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-user", HeaderValue::from_static("carol"));
        headers.insert("x-forwarded-groups", HeaderValue::from_static("dev, sre"));
        let proxy: IpAddr = "10.1.2.3".parse().expect("ip");
        let carol = auth
            .authenticate(&headers, proxy)
            .await
            .expect("from the proxy");
        assert_eq!(
            (carol.username.as_str(), carol.role),
            ("carol", Role::Operator)
        );
        let neighbour: IpAddr = "10.1.2.4".parse().expect("ip");
        assert!(auth.authenticate(&headers, neighbour).await.is_err());
        headers.insert("x-forwarded-groups", HeaderValue::from_static("dev"));
        assert_eq!(
            auth.authenticate(&headers, proxy).await.map(|p| p.role),
            Ok(Role::Viewer)
        );
        assert_eq!(
            auth.authenticate(&basic("bob:battery staple"), PEER).await,
            Err(Refusal::Unauthenticated)
        );
    }

    fn session_of(cookie: &str) -> String {
        let pair = cookie.split(';').next().expect("name=value");
        let (_, value) = pair.split_once('=').expect("=");
        value.split_once('.').expect("id.mac").0.to_owned()
    }

    #[tokio::test]
    async fn a_session_ends_when_unused_for_its_idle_timeout() {
        let mut auth = auth(None);
        auth.idle_timeout = Duration::from_millis(200);
        let (_, cookie) = auth
            .log_in("bob", "battery staple", PEER)
            .await
            .expect("in");
        let started = Instant::now();
        let mut last_use = started;
        while started.elapsed() < Duration::from_millis(400) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            last_use = Instant::now();
            assert!(
                auth.authenticate(&with_cookie(&cookie), PEER).await.is_ok(),
                "used every 10 ms, it lives past its idle timeout"
            );
        }
        // Looked at without being used, until it has been idle too long (10 s at most).
        let id = session_of(&cookie);
        loop {
            let expired = {
                let sessions = auth.sessions();
                let session = sessions.get(&id).expect("still held");
                auth.expired(session, Instant::now())
            };
            if expired {
                break;
            }
            assert!(last_use.elapsed() < Duration::from_secs(10), "never idle");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(last_use.elapsed() >= Duration::from_millis(200));
        assert!(
            auth.authenticate(&with_cookie(&cookie), PEER)
                .await
                .is_err()
        );
        assert!(auth.sessions().is_empty(), "an ended session is dropped");
    }

    #[tokio::test]
    async fn a_session_ends_after_its_lifetime_however_used() {
        let mut auth = auth(None);
        auth.lifetime = Duration::from_millis(300);
        let started = Instant::now();
        let (_, cookie) = auth
            .log_in("bob", "battery staple", PEER)
            .await
            .expect("in");
        while auth.authenticate(&with_cookie(&cookie), PEER).await.is_ok() {
            assert!(started.elapsed() < Duration::from_secs(10), "never expired");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn guesses_sent_all_at_once_are_throttled_too() {
        let auth = Arc::new(auth(None));
        let guesses = (0..40).map(|n| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.log_in("alice", &format!("guess {n}"), PEER).await })
        });
        let mut invalid = 0;
        for guess in futures::future::join_all(guesses).await {
            match guess.expect("a guess").err() {
                Some(Refusal::InvalidCredentials) => invalid += 1,
                Some(Refusal::Throttled(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(
            invalid <= 5 + CONCURRENT_VERIFICATIONS,
            "{invalid} passwords checked with a limit of 5"
        );
    }

    #[test]
    fn bad_users_files_name_the_line() {
        let hash = cheap("long enough");
        for (text, line, why) in [
            ("alice:operator".to_owned(), 1, "not three fields"),
            (format!("alice:admin:{hash}"), 1, "unknown role"),
            (
                "\nalice:viewer:long enough in clear".to_owned(),
                2,
                "the password is not an argon2id hash (passwords in clear are refused)",
            ),
            (
                format!("a:viewer:{hash}\na:viewer:{hash}"),
                2,
                "username listed twice",
            ),
            (
                format!(" :viewer:{hash}"),
                1,
                "empty username or one with spaces",
            ),
        ] {
            assert_eq!(parse_user_lines(&text).err(), Some((line, why)), "{text:?}");
        }
    }
}
