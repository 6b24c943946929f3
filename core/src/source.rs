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

/// Which forwarding header a trusted proxy writes. Only that one is read: a client can
/// send the other, and a proxy that does not write it passes the client's copy on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardingHeader {
    /// `X-Forwarded-For`: every line, joined in order, comma-separated addresses.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded`: the `for=` parameter of every element of every line.
    Forwarded,
}

impl ForwardingHeader {
    /// The header's name, lowercase.
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }

    /// The forwarded chain of the header's `lines` (in the order received), client end
    /// first. An entry that names no usable address (`unknown`, an obfuscated
    /// identifier, garbage, text that is not UTF-8) is `None`.
    pub fn chain<'a>(self, lines: impl Iterator<Item = &'a [u8]>) -> Vec<Option<IpAddr>> {
        let mut chain = Vec::new();
        for line in lines {
            let Ok(line) = std::str::from_utf8(line) else {
                chain.push(None);
                continue;
            };
            match self {
                Self::XForwardedFor => chain.extend(line.split(',').map(node_address)),
                Self::Forwarded => chain.extend(split_unquoted(line, ',').map(forwarded_for)),
            }
        }
        chain
    }
}

impl FromStr for ForwardingHeader {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err(format!("{value:?}: expected x-forwarded-for or forwarded")),
        }
    }
}

/// The proxies in front of the service whose forwarding header is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    /// Hops whose address is in one of these are proxies.
    pub cidrs: Vec<Cidr>,
    /// The nearest `hops` hops (the TCP peer first) are proxies, whatever their address.
    pub hops: u32,
}

impl TrustedProxies {
    /// Whether the hop `distance` hops from this service (the peer is 0) is a proxy.
    fn trusts(&self, distance: usize, address: IpAddr) -> bool {
        distance < self.hops as usize || self.cidrs.iter().any(|cidr| cidr.contains(address))
    }

    pub fn is_empty(&self) -> bool {
        self.cidrs.is_empty() && self.hops == 0
    }
}

/// Where a request comes from, as far as the trusted proxies say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Address(IpAddr),
    /// The first untrusted hop named no usable address (`unknown`, an obfuscated
    /// identifier, garbage); `via` is the trusted proxy that reported it.
    Unknown {
        via: IpAddr,
    },
}

impl Client {
    /// The address limits are counted under: the client's, or the reporting proxy's.
    pub fn accountable(self) -> IpAddr {
        match self {
            Self::Address(address) | Self::Unknown { via: address } => address,
        }
    }
}

/// The client behind the TCP `peer`: the chain `forwarded` (client end first, as
/// [`ForwardingHeader::chain`] gives it) is walked from the right, starting at the
/// peer, skipping trusted proxies; the first untrusted hop is the client. Entries left
/// of it were written by the client and prove nothing. The header is not looked at
/// unless the peer itself is trusted. When every hop is trusted, the left-most is it.
pub fn client_address(
    peer: IpAddr,
    forwarded: &[Option<IpAddr>],
    trusted: &TrustedProxies,
) -> Client {
    let mut client = peer.to_canonical();
    if !trusted.trusts(0, client) {
        return Client::Address(client);
    }
    for (index, hop) in forwarded.iter().rev().enumerate() {
        let Some(address) = hop else {
            return Client::Unknown { via: client };
        };
        client = address.to_canonical();
        if !trusted.trusts(index + 1, client) {
            break;
        }
    }
    Client::Address(client)
}

/// An address as forwarding headers write it: bare, `1.2.3.4:80`, `[2001:db8::1]`,
/// `[2001:db8::1]:80`, surrounded by blanks.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Ok(address) = node.parse() {
        return Some(address);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (address, port) = rest.split_once(']')?;
        return (port.is_empty() || valid_port(port.strip_prefix(':')?))
            .then(|| address.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6))
            .flatten();
    }
    let (address, port) = node.rsplit_once(':')?;
    valid_port(port)
        .then(|| address.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4))
        .flatten()
}

fn valid_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

/// The `for=` address of one `Forwarded` element (`for=192.0.2.1;proto=https`,
/// `For="[2001:db8::1]:4711"`); `None` without one, or when it is `unknown` or an
/// obfuscated identifier (`_hidden`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = split_unquoted(element, ';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then_some(value.trim())
    })?;
    let value = match value.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => value,
    };
    node_address(value)
}

/// `text` split at `separator`s outside double quotes.
fn split_unquoted(text: &str, separator: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    text.split(move |c: char| {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        }
        !quoted && c == separator
    })
}

/// Whether a Webhook's `allowedSourceRanges` admit `client`. No ranges admit every
/// address; a range that does not parse admits none (the operator validates them, so
/// this only guards against a bad registry record).
/// A client whose address is unknown is admitted only where every address is.
pub fn allowed(ranges: &[String], client: Client) -> bool {
    if ranges.is_empty() {
        return true;
    }
    let Client::Address(address) = client else {
        return false;
    };
    ranges.iter().any(|range| {
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

    fn xff(lines: &[&str]) -> Vec<Option<IpAddr>> {
        ForwardingHeader::XForwardedFor.chain(lines.iter().map(|line| line.as_bytes()))
    }

    fn fwd(lines: &[&str]) -> Vec<Option<IpAddr>> {
        ForwardingHeader::Forwarded.chain(lines.iter().map(|line| line.as_bytes()))
    }

    fn cidrs(list: &[&str]) -> TrustedProxies {
        TrustedProxies {
            cidrs: list.iter().map(|c| cidr(c)).collect(),
            hops: 0,
        }
    }

    fn at(s: &str) -> Client {
        Client::Address(ip(s))
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = cidrs(&["127.0.0.1", "10.0.0.0/8"]);
        let chain = xff(&["198.51.100.1, 203.0.113.5, 10.1.1.1"]);
        // Untrusted peer: its own address, whatever it claims.
        assert_eq!(
            client_address(ip("192.0.2.9"), &chain, &proxies),
            at("192.0.2.9")
        );
        // Trusted peer: right-most untrusted hop; the left-most is the client's own claim.
        assert_eq!(
            client_address(ip("127.0.0.1"), &chain, &proxies),
            at("203.0.113.5")
        );
        // No proxies configured: the header is ignored.
        let none = TrustedProxies::default();
        assert_eq!(
            client_address(ip("127.0.0.1"), &chain, &none),
            at("127.0.0.1")
        );
        // Garbage is a hop that names nobody: the client is unknown, not the proxy.
        assert_eq!(
            client_address(ip("127.0.0.1"), &xff(&["junk, 10.2.2.2"]), &proxies),
            Client::Unknown {
                via: ip("10.2.2.2")
            }
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), &[], &proxies),
            at("127.0.0.1")
        );
        // Every hop trusted: the left-most is the client.
        assert_eq!(
            client_address(ip("127.0.0.1"), &xff(&["10.9.9.9"]), &proxies),
            at("10.9.9.9")
        );
    }

    #[test]
    fn every_forwarded_for_line_counts_in_order() {
        // The client's forged line first, the proxy's appended line second.
        let chain = xff(&["10.1.2.3", "198.51.100.7"]);
        assert_eq!(chain, vec![Some(ip("10.1.2.3")), Some(ip("198.51.100.7"))]);
        let proxies = cidrs(&["127.0.0.1"]);
        assert_eq!(
            client_address(ip("127.0.0.1"), &chain, &proxies),
            at("198.51.100.7")
        );
        // Ports and brackets as some proxies write them.
        assert_eq!(
            xff(&["192.0.2.1:4711, [2001:db8::1]:80", "[2001:db8::2]"]),
            vec![
                Some(ip("192.0.2.1")),
                Some(ip("2001:db8::1")),
                Some(ip("2001:db8::2"))
            ]
        );
        assert_eq!(xff(&["2001:db8::1:80"]), vec![Some(ip("2001:db8::1:80"))]);
        assert_eq!(xff(&["192.0.2.1:x", "[::1]x"]), vec![None, None]);
    }

    #[test]
    fn forwarded_elements_give_their_for_address() {
        let chain = fwd(&[
            r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#,
            r#"for=unknown, for=_hidden, proto=https, for="198.51.100.7""#,
            r#"for="10.0.0.1;still quoted, here""#,
        ]);
        assert_eq!(
            chain,
            vec![
                Some(ip("192.0.2.60")),
                Some(ip("2001:db8:cafe::17")),
                None,
                None,
                None,
                Some(ip("198.51.100.7")),
                None,
            ]
        );
        let proxies = cidrs(&["127.0.0.1"]);
        let two = fwd(&["for=10.1.2.3", "for=198.51.100.7"]);
        assert_eq!(
            client_address(ip("127.0.0.1"), &two, &proxies),
            at("198.51.100.7")
        );
        assert_eq!(
            client_address(
                ip("127.0.0.1"),
                &fwd(&["for=10.1.2.3, for=unknown"]),
                &proxies
            ),
            Client::Unknown {
                via: ip("127.0.0.1")
            }
        );
    }

    #[test]
    fn a_hop_count_trusts_the_nearest_hops_whatever_their_address() {
        let one = TrustedProxies {
            cidrs: Vec::new(),
            hops: 1,
        };
        let chain = xff(&["10.1.2.3, 198.51.100.7"]);
        assert_eq!(
            client_address(ip("192.0.2.9"), &chain, &one),
            at("198.51.100.7")
        );
        let two = TrustedProxies {
            hops: 2,
            ..one.clone()
        };
        assert_eq!(
            client_address(ip("192.0.2.9"), &chain, &two),
            at("10.1.2.3")
        );
        // Hops and ranges together: a hop is a proxy if either says so.
        let both = TrustedProxies {
            cidrs: vec![cidr("198.51.100.0/24")],
            hops: 1,
        };
        assert_eq!(
            client_address(ip("192.0.2.9"), &chain, &both),
            at("10.1.2.3")
        );
        assert!(!one.is_empty() && TrustedProxies::default().is_empty());
    }

    #[test]
    fn the_header_to_read_is_named() {
        assert_eq!("Forwarded".parse(), Ok(ForwardingHeader::Forwarded));
        assert_eq!(
            "x-forwarded-for".parse(),
            Ok(ForwardingHeader::XForwardedFor)
        );
        assert!("x-real-ip".parse::<ForwardingHeader>().is_err());
    }

    #[test]
    fn empty_ranges_allow_all_and_bad_ranges_allow_none() {
        let unknown = Client::Unknown {
            via: ip("10.0.0.1"),
        };
        assert!(allowed(&[], at("203.0.113.5")));
        assert!(allowed(&[], unknown));
        let ranges = vec!["10.0.0.0/8".to_owned(), "192.0.2.0/24".to_owned()];
        assert!(allowed(&ranges, at("192.0.2.200")));
        assert!(!allowed(&ranges, at("198.51.100.1")));
        assert!(!allowed(&ranges, unknown));
        assert!(!allowed(&["not a range".to_owned()], at("10.0.0.1")));
    }
}
