//! Where a request comes from: CIDR ranges, and the client address behind trusted
//! reverse proxies, for a Webhook's `allowedSourceRanges`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use thiserror::Error;

/// An IPv4 or IPv6 network, e.g. `10.0.0.0/8`; a bare address is a network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{value:?} is not a CIDR range ({why}): expected e.g. 10.0.0.0/8 or 2001:db8::/32")]
pub struct BadCidr {
    value: String,
    why: &'static str,
}

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadCidr {
            value: value.to_owned(),
            why,
        };
        let (address, prefix) = match value.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (value, None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad("bad address"))?;
        let max = max_prefix(network);
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad("bad prefix length"))?,
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    /// Whether `address` is inside this network. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.1.2.3`) count as their IPv4 address.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

fn max_prefix(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy and sent
/// `X-Forwarded-For`; then the right-most address in that list that is not a trusted
/// proxy (the entries left of it were written by the client and prove nothing).
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |address: IpAddr| trusted.iter().any(|cidr| cidr.contains(address));
    let Some(forwarded_for) = forwarded_for.filter(|_| is_trusted(peer)) else {
        return peer;
    };
    let mut client = peer;
    for hop in forwarded_for.rsplit(',') {
        let Ok(address) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = address.to_canonical();
        if !is_trusted(client) {
            break;
        }
    }
    client
}

/// Whether a Webhook's `allowedSourceRanges` admit `address`. No ranges admit every
/// address; a range that does not parse admits none (the operator validates them, so
/// this only guards against a bad registry record).
pub fn allowed(ranges: &[String], address: IpAddr) -> bool {
    ranges.is_empty()
        || ranges.iter().any(|range| {
            range
                .parse::<Cidr>()
                .is_ok_and(|cidr| cidr.contains(address))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_contain_their_addresses_only() {
        assert!(cidr("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!cidr("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(cidr("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!cidr("192.0.2.7").contains(ip("192.0.2.8")));
        assert!(cidr("2001:db8::/32").contains(ip("2001:db8:1::5")));
        assert!(!cidr("2001:db8::/32").contains(ip("2001:db9::5")));
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!cidr("10.0.0.0/8").contains(ip("2001:db8::1")));
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn bad_cidrs_are_named() {
        for bad in ["", "10.0.0.0/33", "10.0.0/8", "::/129", "x/1", "10.0.0.0/"] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = [cidr("127.0.0.1"), cidr("10.0.0.0/8")];
        let xff = Some("198.51.100.1, 203.0.113.5, 10.1.1.1");
        // Untrusted peer: its own address, whatever it claims.
        assert_eq!(
            client_address(ip("192.0.2.9"), xff, &proxies),
            ip("192.0.2.9")
        );
        // Trusted peer: right-most untrusted hop; the left-most is the client's own claim.
        assert_eq!(
            client_address(ip("127.0.0.1"), xff, &proxies),
            ip("203.0.113.5")
        );
        // No proxies configured: the header is ignored.
        assert_eq!(client_address(ip("127.0.0.1"), xff, &[]), ip("127.0.0.1"));
        // Garbage stops the walk at the last good hop.
        assert_eq!(
            client_address(ip("127.0.0.1"), Some("junk, 10.2.2.2"), &proxies),
            ip("10.2.2.2")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), None, &proxies),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn empty_ranges_allow_all_and_bad_ranges_allow_none() {
        assert!(allowed(&[], ip("203.0.113.5")));
        let ranges = vec!["10.0.0.0/8".to_owned(), "192.0.2.0/24".to_owned()];
        assert!(allowed(&ranges, ip("192.0.2.200")));
        assert!(!allowed(&ranges, ip("198.51.100.1")));
        assert!(!allowed(&["not a range".to_owned()], ip("10.0.0.1")));
    }
}
