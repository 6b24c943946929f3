//! The SSRF guard: unless allowed, the emitter connects only to public addresses. The
//! check runs on the addresses a host name resolved to, at connect time (so a name
//! that later resolves to 10.0.0.1 or 169.254.169.254 is caught too), and on IP
//! literals in the URL before any packet is sent.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpStream;
use tower::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "{host} is {addr}, a private, loopback or link-local address (EMITTER_ALLOW_PRIVATE_TARGETS allows it)"
)]
pub struct PrivateTargetRefused {
    pub host: String,
    pub addr: IpAddr,
}

/// True for addresses anyone on the internet could reach: not loopback, private,
/// link-local (cloud metadata lives there), shared (CGNAT), unspecified, multicast,
/// broadcast or documentation ranges, also when wrapped in an IPv4-mapped IPv6 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    let this_network = a == 0;
    let reserved = a >= 240;
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || shared
        || this_network
        || reserved)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    let documentation = first == 0x2001 && ip.segments()[1] == 0x0db8;
    // NAT64 (64:ff9b::/96) reaches IPv4 addresses, private ones included.
    let nat64 = first == 0x0064 && ip.segments()[1] == 0xff9b;
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || unique_local
        || link_local
        || documentation
        || nat64)
}

/// Keeps the public addresses of a resolved name; refuses the name when none is left.
pub fn public_only(
    host: &str,
    addrs: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, PrivateTargetRefused> {
    let first = addrs.first().map(SocketAddr::ip);
    let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public(a.ip())).collect();
    match (public.is_empty(), first) {
        (true, Some(addr)) => Err(PrivateTargetRefused {
            host: host.to_owned(),
            addr,
        }),
        _ => Ok(public),
    }
}

/// A resolver that drops private answers unless they are allowed.
#[derive(Clone)]
pub struct GuardedResolver {
    gai: GaiResolver,
    allow_private: bool,
}

impl Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.gai.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolving = self.gai.call(name.clone());
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = resolving.await?.collect();
            if allow_private {
                return Ok(addrs.into_iter());
            }
            Ok(public_only(name.as_str(), addrs)?.into_iter())
        })
    }
}

/// hyper's HTTP connector behind the guard: names go through [`GuardedResolver`], IP
/// literals (which skip resolution) are checked here.
#[derive(Clone)]
pub struct GuardedConnector {
    inner: HttpConnector<GuardedResolver>,
    allow_private: bool,
}

impl GuardedConnector {
    pub fn new(allow_private: bool) -> Self {
        let resolver = GuardedResolver {
            gai: GaiResolver::new(),
            allow_private,
        };
        Self {
            inner: HttpConnector::new_with_resolver(resolver),
            allow_private,
        }
    }

    /// The wrapped connector, for its timeouts and socket options.
    pub fn http(&mut self) -> &mut HttpConnector<GuardedResolver> {
        &mut self.inner
    }
}

impl Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if !self.allow_private
            && let Some(host) = uri.host()
            && let Ok(addr) = host.trim_start_matches('[').trim_end_matches(']').parse()
            && !is_public(addr)
        {
            let refused = PrivateTargetRefused {
                host: host.to_owned(),
                addr,
            };
            return Box::pin(async move { Err(refused.into()) });
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

/// The refusal somewhere in an error's chain, if that is why a request failed.
pub fn refusal_in<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a PrivateTargetRefused> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(refused) = err.downcast_ref::<PrivateTargetRefused>() {
            return Some(refused);
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_loopback_and_metadata_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(private)), "{private}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(ip(public)), "{public}");
        }
    }

    #[test]
    fn a_name_with_any_public_answer_keeps_only_those() {
        let addrs = vec![
            SocketAddr::new(ip("10.0.0.1"), 443),
            SocketAddr::new(ip("1.1.1.1"), 443),
        ];
        assert_eq!(
            public_only("mixed.example", addrs),
            Ok(vec![SocketAddr::new(ip("1.1.1.1"), 443)])
        );
        assert_eq!(
            public_only(
                "internal.example",
                vec![SocketAddr::new(ip("192.168.0.9"), 80)]
            ),
            Err(PrivateTargetRefused {
                host: "internal.example".into(),
                addr: ip("192.168.0.9")
            })
        );
    }
}
