//! Who is asking: console users from a file (a Kubernetes Secret), signed session
//! cookies, HTTP Basic for scripts, or the user an authenticating proxy vouches for;
//! and the CSRF token every state-changing request must carry.
//!
//! A session cookie is `<username, base64url>.<role>.<expiry, unix s>.<nonce>.<mac>`,
//! the mac an HMAC-SHA256 under the session key; the CSRF token is the HMAC of the
//! session's nonce, so a page of another origin can neither read nor forge it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use hmac::{Hmac, Mac};
use hookline_core::source::Cidr;
use serde::Serialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;
use utoipa::ToSchema;

pub const SESSION_COOKIE: &str = "hookline_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
const MIN_KEY_BYTES: usize = 32;

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

    fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
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

#[derive(Debug, Error)]
pub enum AuthConfigError {
    #[error("cannot read the users file {path}: {source}")]
    ReadUsers {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "users file {path}, line {line}: {why} (expected username:role:password, role viewer or operator)"
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
    password: Vec<u8>,
}

/// The authenticating proxy in front, when there is one.
pub struct ProxyAuth {
    pub user_header: String,
    pub groups_header: Option<String>,
    pub operator_groups: Vec<String>,
    pub trusted: Vec<Cidr>,
}

pub struct Auth {
    users: HashMap<String, User>,
    key: Vec<u8>,
    lifetime: Duration,
    secure_cookie: bool,
    proxy: Option<ProxyAuth>,
}

type HmacSha256 = Hmac<Sha256>;

impl Auth {
    pub fn new(
        users_file: Option<&Path>,
        key_file: Option<&Path>,
        lifetime: Duration,
        secure_cookie: bool,
        proxy: Option<ProxyAuth>,
    ) -> Result<Self, AuthConfigError> {
        let users = match users_file {
            Some(path) => read_users(path)?,
            None => HashMap::new(),
        };
        if users.is_empty() && proxy.is_none() {
            return Err(AuthConfigError::NoWayIn);
        }
        let key = match key_file {
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
            None => {
                tracing::warn!(
                    "no --session-key-file: sessions are signed with a key of this process only"
                );
                rand::random::<[u8; 32]>().to_vec()
            }
        };
        Ok(Self {
            users,
            key,
            lifetime,
            secure_cookie,
            proxy,
        })
    }

    /// The user of a request: the proxy's (from a trusted peer), else the session
    /// cookie's, else HTTP Basic's. `None` when none of them holds.
    pub fn authenticate(&self, headers: &HeaderMap, peer: IpAddr) -> Option<Principal> {
        if let Some(proxy) = &self.proxy
            && proxy.trusted.iter().any(|cidr| cidr.contains(peer))
            && let Some(principal) = self.proxy_principal(proxy, headers)
        {
            return Some(principal);
        }
        self.session_principal(headers)
            .or_else(|| self.basic_principal(headers))
    }

    /// Checks a password; on success the principal and the Set-Cookie value of its session.
    pub fn log_in(&self, username: &str, password: &str) -> Option<(Principal, String)> {
        let role = self.check_password(username, password)?;
        let expires = Utc::now().timestamp() + self.lifetime.as_secs() as i64;
        let nonce = hex_encode(&rand::random::<[u8; 16]>());
        let name = URL_SAFE_NO_PAD.encode(username);
        let signed = format!("{name}.{}.{expires}.{nonce}", role.as_str());
        let cookie_value = format!("{signed}.{}", hex_encode(&self.mac("session", &signed)));
        let principal = Principal {
            username: username.to_owned(),
            role,
            csrf_token: self.csrf_token(&nonce),
        };
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        let cookie = format!(
            "{SESSION_COOKIE}={cookie_value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.lifetime.as_secs()
        );
        Some((principal, cookie))
    }

    /// The Set-Cookie value that ends a session in the browser.
    pub fn log_out_cookie(&self) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
    }

    /// Whether `token` is the CSRF token of `principal`.
    pub fn csrf_matches(principal: &Principal, token: &str) -> bool {
        principal
            .csrf_token
            .as_bytes()
            .ct_eq(token.as_bytes())
            .into()
    }

    fn check_password(&self, username: &str, password: &str) -> Option<Role> {
        let user = self.users.get(username)?;
        bool::from(user.password.ct_eq(password.as_bytes())).then_some(user.role)
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

    fn session_principal(&self, headers: &HeaderMap) -> Option<Principal> {
        let value = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == SESSION_COOKIE).then_some(value)
            })?;
        let (signed, mac) = value.rsplit_once('.')?;
        let mac = hex_decode(mac)?;
        if !bool::from(self.mac("session", signed).as_slice().ct_eq(&mac)) {
            return None;
        }
        let mut parts = signed.split('.');
        let name = parts.next()?;
        let role = Role::parse(parts.next()?)?;
        let expires: i64 = parts.next()?.parse().ok()?;
        let nonce = parts.next()?;
        if expires <= Utc::now().timestamp() {
            return None;
        }
        let username = String::from_utf8(URL_SAFE_NO_PAD.decode(name).ok()?).ok()?;
        // A user removed from the file loses their sessions at the console's next start.
        if !self.users.is_empty() && !self.users.contains_key(&username) {
            return None;
        }
        Some(Principal {
            username,
            role,
            csrf_token: self.csrf_token(nonce),
        })
    }

    fn basic_principal(&self, headers: &HeaderMap) -> Option<Principal> {
        let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (username, password) = decoded.split_once(':')?;
        let role = self.check_password(username, password)?;
        Some(Principal {
            username: username.to_owned(),
            role,
            csrf_token: self.csrf_token(&format!("basic:{username}")),
        })
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

fn read_users(path: &Path) -> Result<HashMap<String, User>, AuthConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthConfigError::ReadUsers {
        path: path.display().to_string(),
        source,
    })?;
    parse_users(&text).map_err(|(line, why)| AuthConfigError::BadUser {
        path: path.display().to_string(),
        line,
        why,
    })
}

fn parse_users(text: &str) -> Result<HashMap<String, User>, (usize, &'static str)> {
    let mut users = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let number = index + 1;
        let mut fields = line.splitn(3, ':');
        let (Some(name), Some(role), Some(password)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err((number, "not three fields"));
        };
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err((number, "empty username or one with spaces"));
        }
        let role = Role::parse(role).ok_or((number, "unknown role"))?;
        if password.len() < 8 {
            return Err((number, "password shorter than 8 characters"));
        }
        let user = User {
            role,
            password: password.as_bytes().to_vec(),
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

    fn auth(proxy: Option<ProxyAuth>) -> Auth {
        Auth {
            users: parse_users(
                "# people\nalice:operator:correct horse\nbob:viewer:battery staple\n",
            )
            .expect("users"),
            key: vec![7; 32],
            lifetime: Duration::from_secs(3600),
            secure_cookie: false,
            proxy,
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

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn a_session_cookie_signs_in_and_a_tampered_one_does_not() {
        let auth = auth(None);
        assert!(auth.log_in("alice", "wrong password").is_none());
        assert!(auth.log_in("nobody", "correct horse").is_none());
        let (principal, cookie) = auth.log_in("alice", "correct horse").expect("signed in");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let back = auth
            .authenticate(&with_cookie(&cookie), PEER)
            .expect("session");
        assert_eq!(back, principal);
        assert_eq!(back.role, Role::Operator);

        let promoted = with_cookie(&cookie.replacen(".operator.", ".viewer.", 1));
        assert!(auth.authenticate(&promoted, PEER).is_none(), "role changed");
        let (_, bob) = auth.log_in("bob", "battery staple").expect("bob");
        let bob_as_operator = with_cookie(&bob.replacen(".viewer.", ".operator.", 1));
        assert!(auth.authenticate(&bob_as_operator, PEER).is_none());
    }

    #[test]
    fn each_session_has_its_own_csrf_token() {
        let auth = auth(None);
        let (first, _) = auth.log_in("alice", "correct horse").expect("first");
        let (second, _) = auth.log_in("alice", "correct horse").expect("second");
        assert_ne!(first.csrf_token, second.csrf_token);
        assert!(Auth::csrf_matches(&first, &first.csrf_token));
        assert!(!Auth::csrf_matches(&first, &second.csrf_token));
        assert!(!Auth::csrf_matches(&first, ""));
    }

    #[test]
    fn basic_auth_checks_the_password() {
        let auth = auth(None);
        let mut headers = HeaderMap::new();
        let basic = |user_pass: &str| {
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(user_pass))).expect("ascii")
        };
        headers.insert(AUTHORIZATION, basic("bob:battery staple"));
        assert_eq!(
            auth.authenticate(&headers, PEER).map(|p| p.role),
            Some(Role::Viewer)
        );
        headers.insert(AUTHORIZATION, basic("bob:battery"));
        assert!(auth.authenticate(&headers, PEER).is_none());
    }

    #[test]
    fn a_proxy_user_is_believed_only_from_the_proxy() {
        let auth = auth(Some(ProxyAuth {
            user_header: "x-forwarded-user".into(),
            groups_header: Some("x-forwarded-groups".into()),
            operator_groups: vec!["sre".into()],
            trusted: vec!["10.0.0.0/8".parse().expect("cidr")],
        }));
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-user", HeaderValue::from_static("carol"));
        headers.insert("x-forwarded-groups", HeaderValue::from_static("dev, sre"));
        let proxy: IpAddr = "10.1.2.3".parse().expect("ip");
        let carol = auth.authenticate(&headers, proxy).expect("from the proxy");
        assert_eq!(
            (carol.username.as_str(), carol.role),
            ("carol", Role::Operator)
        );
        assert!(
            auth.authenticate(&headers, PEER).is_none(),
            "not from the proxy"
        );
        headers.insert("x-forwarded-groups", HeaderValue::from_static("dev"));
        assert_eq!(
            auth.authenticate(&headers, proxy).map(|p| p.role),
            Some(Role::Viewer)
        );
    }

    #[test]
    fn bad_users_files_name_the_line() {
        for (text, line, why) in [
            ("alice:operator", 1, "not three fields"),
            ("alice:admin:long enough", 1, "unknown role"),
            (
                "\nalice:viewer:short",
                2,
                "password shorter than 8 characters",
            ),
            (
                "a:viewer:12345678\na:viewer:12345678",
                2,
                "username listed twice",
            ),
            (" :viewer:12345678", 1, "empty username or one with spaces"),
        ] {
            assert_eq!(parse_users(text).err(), Some((line, why)), "{text:?}");
        }
        let users = parse_users("dave:viewer:pass:with:colons").expect("colons in passwords");
        assert_eq!(users["dave"].password, b"pass:with:colons");
    }
}
