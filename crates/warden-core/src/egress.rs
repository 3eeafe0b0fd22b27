//! Outbound HTTP as the grant sees it: the origins a manifest requests and a site policy allows
//! (scheme, host and port, nothing looser), the one strict URL parser every `http` call goes
//! through, and which addresses a resolved name may be dialled at.
//!
//! The parser is deliberately narrower than a browser's: user info (`http://a@b/`), numeric host
//! spellings other than a canonical dotted quad (`2130706433`, `0177.0.0.1`, `0x7f.1`) and
//! anything but `http`/`https` are refused, so what the allow-list compared is exactly what is
//! dialled. The address check runs on what the name resolved to, after the allow-list: a granted
//! name that resolves to loopback or a private range is refused unless the site policy names
//! that range, and some ranges (the cloud metadata address above all) are never dialled.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpScheme {
    Http,
    Https,
}

impl HttpScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpScheme::Http => "http",
            HttpScheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            HttpScheme::Http => 80,
            HttpScheme::Https => 443,
        }
    }
}

/// A host as written in a URL, parsed: a DNS name (lower-cased) or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HttpHost {
    Name(String),
    Ip(IpAddr),
}

impl std::fmt::Display for HttpHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpHost::Name(n) => f.write_str(n),
            HttpHost::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            HttpHost::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// Scheme, host and port: what a manifest requests, a policy allows and a call is checked
/// against. Written `https://psa.example.com` or `http://127.0.0.1:8080` (the scheme is
/// required; the port defaults to the scheme's).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpOrigin {
    pub scheme: HttpScheme,
    pub host: HttpHost,
    pub port: u16,
}

impl std::fmt::Display for HttpOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

impl From<HttpOrigin> for String {
    fn from(o: HttpOrigin) -> String {
        o.to_string()
    }
}

impl TryFrom<String> for HttpOrigin {
    type Error = String;
    fn try_from(s: String) -> Result<HttpOrigin, String> {
        s.parse()
    }
}

impl std::str::FromStr for HttpOrigin {
    type Err = String;
    /// An origin entry: a URL with nothing after the authority but an optional `/`.
    fn from_str(s: &str) -> Result<HttpOrigin, String> {
        let url = HttpUrl::parse(s).map_err(|e| {
            format!(
                "`{}`: {e} (write an origin such as `https://psa.example.com` or `http://10.0.0.5:8080`)",
                s.escape_debug()
            )
        })?;
        if url.path_and_query != "/" {
            return Err(format!(
                "`{}`: an origin has no path or query; the whole origin is granted",
                s.escape_debug()
            ));
        }
        Ok(url.origin)
    }
}

/// A URL an `http` call names, split into what the grant checks and what is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub origin: HttpOrigin,
    /// Starts with `/`; the fragment is dropped (it is never sent).
    pub path_and_query: String,
}

/// Longest URL accepted.
pub const MAX_URL_BYTES: usize = 8192;

impl HttpUrl {
    /// Parse `url` strictly; the error says what is refused and why.
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        if url.len() > MAX_URL_BYTES {
            return Err(format!("the URL is longer than {MAX_URL_BYTES} bytes"));
        }
        if url.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'\\') {
            return Err("the URL has a space, a control character or a backslash".into());
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("the URL must start with `http://` or `https://`")?;
        let scheme = if scheme.eq_ignore_ascii_case("http") {
            HttpScheme::Http
        } else if scheme.eq_ignore_ascii_case("https") {
            HttpScheme::Https
        } else {
            return Err(format!(
                "scheme `{}` is not http or https",
                scheme.escape_debug()
            ));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err(
                "user info (`user@host`) in the URL is refused: put credentials in a header".into(),
            );
        }
        let (host, port) = split_host_port(authority)?;
        let host = parse_host(host)?;
        let port = match port {
            None => scheme.default_port(),
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("port `{}` is not 1 to 65535", p.escape_debug()))?,
        };
        let tail = tail.split('#').next().unwrap_or_default();
        let path_and_query = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        Ok(HttpUrl {
            origin: HttpOrigin { scheme, host, port },
            path_and_query,
        })
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (inside, after) = v6.split_once(']').ok_or("an IPv6 host lacks its `]`")?;
        return match after {
            "" => Ok((authority.get(..inside.len() + 2).unwrap_or(authority), None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((
                    authority.get(..inside.len() + 2).unwrap_or(authority),
                    Some(port),
                )),
                None => Err("unexpected text after an IPv6 host".into()),
            },
        };
    }
    match authority.split_once(':') {
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((authority, None)),
    }
}

/// A host: `[v6]`, a canonical dotted-quad IPv4, or a DNS name. A name whose last label starts
/// with a digit is an IPv4 spelling to a resolver (`2130706433`, `0177.0.0.1`, `127.1`), so only
/// the canonical dotted quad is accepted among those.
fn parse_host(host: &str) -> Result<HttpHost, String> {
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    if let Some(inside) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inside
            .parse::<Ipv6Addr>()
            .map(|a| HttpHost::Ip(IpAddr::V6(a)))
            .map_err(|_| format!("`{}` is not an IPv6 address", inside.escape_debug()));
    }
    let last_label = host.rsplit('.').next().unwrap_or(host);
    if last_label.starts_with(|c: char| c.is_ascii_digit()) {
        return match host.parse::<Ipv4Addr>() {
            Ok(a) if a.to_string() == host => Ok(HttpHost::Ip(IpAddr::V4(a))),
            _ => Err(format!(
                "numeric host `{}` is not a canonical dotted-quad IPv4 address",
                host.escape_debug()
            )),
        };
    }
    crate::names::validate_host_name(host)?;
    Ok(HttpHost::Name(host.to_ascii_lowercase()))
}

/// An address range of the site policy's `http-networks`, `10.0.0.0/8` or `fd00::/8` (a bare
/// address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Cidr, String> {
        let bad = || {
            format!(
                "`{}` is not an address range such as `10.0.0.0/8`",
                s.escape_debug()
            )
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.as_str(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Cidr { addr, prefix })
    }
}

/// What an address is, for the dial decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// A public address: dialled when the origin is granted.
    Public,
    /// Loopback, link-local, private (RFC 1918, ULA, shared CGNAT space): dialled only when the
    /// site policy's `http-networks` names a range holding it. The text names the class.
    Restricted(&'static str),
    /// Never dialled, whatever the policy says.
    Forbidden(&'static str),
}

/// IPv4 ranges never dialled: `(network, prefix, why)`.
const FORBIDDEN_V4: [(Ipv4Addr, u8, &str); 9] = [
    (
        Ipv4Addr::new(169, 254, 169, 254),
        32,
        "the cloud metadata address",
    ),
    (
        Ipv4Addr::new(100, 100, 100, 200),
        32,
        "a cloud metadata address",
    ),
    (
        Ipv4Addr::new(0, 0, 0, 0),
        8,
        "unspecified (\"this network\")",
    ),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "a documentation range"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "a documentation range"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "a documentation range"),
];

/// IPv4 ranges dialled only where the policy names them.
const RESTRICTED_V4: [(Ipv4Addr, u8, &str); 8] = [
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private (RFC 1918)"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private (RFC 1918)"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private (RFC 1918)"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared address space (RFC 6598)",
    ),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignments"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking (RFC 2544)"),
];

/// The address `ip` stands for: an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`)
/// or NAT64 (`64:ff9b::a.b.c.d`) IPv6 address reaches the IPv4 address inside it.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let embedded = Ipv4Addr::from((u128::from(v6) & 0xffff_ffff) as u32);
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return IpAddr::V4(embedded);
    }
    // `::a.b.c.d` (deprecated); `::` and `::1` are themselves.
    if s[..6] == [0; 6] && u128::from(v6) > 1 {
        return IpAddr::V4(embedded);
    }
    ip
}

fn in_v4(a: Ipv4Addr, (net, prefix, _): &(Ipv4Addr, u8, &str)) -> bool {
    Cidr {
        addr: IpAddr::V4(*net),
        prefix: *prefix,
    }
    .contains(IpAddr::V4(a))
}

/// Classify `ip` (after [`canonical`]).
pub fn classify(ip: IpAddr) -> AddressClass {
    match canonical(ip) {
        IpAddr::V4(a) => {
            if let Some((_, _, why)) = FORBIDDEN_V4.iter().find(|r| in_v4(a, r)) {
                return AddressClass::Forbidden(why);
            }
            match RESTRICTED_V4.iter().find(|r| in_v4(a, r)) {
                Some((_, _, why)) => AddressClass::Restricted(why),
                None => AddressClass::Public,
            }
        }
        IpAddr::V6(a) => classify_v6(a),
    }
}

fn classify_v6(a: Ipv6Addr) -> AddressClass {
    let s = a.segments();
    if a == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return AddressClass::Forbidden("the cloud metadata address");
    }
    if a.is_unspecified() {
        return AddressClass::Forbidden("unspecified");
    }
    if a.is_multicast() {
        return AddressClass::Forbidden("multicast");
    }
    if (s[0], s[1]) == (0x2001, 0x0db8) || s[0] & 0xfff0 == 0x3ff0 {
        return AddressClass::Forbidden("a documentation range");
    }
    if s[..4] == [0x100, 0, 0, 0] {
        return AddressClass::Forbidden("the discard range");
    }
    if a.is_loopback() {
        return AddressClass::Restricted("loopback");
    }
    if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
        return AddressClass::Restricted("link-local");
    }
    if s[0] & 0xfe00 == 0xfc00 {
        return AddressClass::Restricted("unique local (ULA)");
    }
    AddressClass::Public
}

/// Whether `ip` may be dialled under `networks` (the policy's `http-networks`): `Err` names the
/// address and why not.
pub fn check_address(ip: IpAddr, networks: &[Cidr]) -> Result<(), String> {
    let seen = canonical(ip);
    match classify(ip) {
        AddressClass::Public => Ok(()),
        AddressClass::Forbidden(why) => Err(format!("{ip} is {why}, never dialled")),
        AddressClass::Restricted(why) => {
            if networks.iter().any(|n| n.contains(seen) || n.contains(ip)) {
                Ok(())
            } else {
                Err(format!(
                    "{ip} is {why}, not in the site policy's allow.http-networks"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn urls_are_split_and_tricks_refused() {
        let u = HttpUrl::parse("HTTPS://API.Example.com:8443/x?y#frag").expect("valid");
        assert_eq!(u.origin.to_string(), "https://api.example.com:8443");
        assert_eq!(u.path_and_query, "/x?y");
        let u = HttpUrl::parse("http://[::1]:80").expect("valid");
        assert_eq!(u.origin.host, HttpHost::Ip(ip("::1")));
        assert_eq!(u.path_and_query, "/");
        for (bad, why) in [
            ("http://allowed.example@127.0.0.1/", "user info"),
            ("http://a@b@c/", "user info"),
            ("http://2130706433/", "canonical"),
            ("http://0177.0.0.1/", "canonical"),
            ("http://0x7f.0.0.1/", "canonical"),
            ("http://127.1/", "canonical"),
            ("http://127.0.0.1.", "host name"),
            ("ftp://x/", "scheme"),
            ("http:///nohost", "no host"),
            ("http://x:0/", "port"),
            ("http://x:99999/", "port"),
            ("http://x /", "space"),
            ("http://x\\y/", "backslash"),
            ("http://[::1/", "]"),
            ("http://[::ffff:zz]/", "IPv6"),
        ] {
            let err = HttpUrl::parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        let o: HttpOrigin = "https://psa.example.com/".parse().expect("valid");
        assert_eq!(o.port, 443);
        assert_eq!(o.to_string(), "https://psa.example.com");
        let o: HttpOrigin = "http://[::1]:8080".parse().expect("valid");
        assert_eq!(o.to_string(), "http://[::1]:8080");
        assert!("psa.example.com".parse::<HttpOrigin>().is_err());
        assert!("https://psa.example.com/api".parse::<HttpOrigin>().is_err());
    }

    #[test]
    fn metadata_and_documentation_are_never_dialled() {
        let everything = [
            Cidr::try_from("0.0.0.0/0".to_string()).expect("v4"),
            Cidr::try_from("::/0".to_string()).expect("v6"),
        ];
        for forbidden in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::169.254.169.254",
            "fd00:ec2::254",
            "0.0.0.0",
            "::",
            "255.255.255.255",
            "224.0.0.1",
            "ff02::1",
            "192.0.2.1",
            "2001:db8::1",
        ] {
            let err = check_address(ip(forbidden), &everything).expect_err(forbidden);
            assert!(err.contains("never dialled"), "{forbidden}: {err}");
        }
    }

    #[test]
    fn private_ranges_need_the_policy_to_name_them() {
        let loopback = [Cidr::try_from("127.0.0.0/8".to_string()).expect("cidr")];
        for restricted in [
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "::1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "fe80::1",
            "fd12::1",
            "100.64.0.1",
        ] {
            let err = check_address(ip(restricted), &[]).expect_err(restricted);
            assert!(err.contains("allow.http-networks"), "{restricted}: {err}");
        }
        assert!(check_address(ip("127.0.0.1"), &loopback).is_ok());
        assert!(check_address(ip("::ffff:127.0.0.1"), &loopback).is_ok());
        assert!(
            check_address(ip("::1"), &loopback).is_err(),
            "::1 is not in 127/8"
        );
        assert!(check_address(ip("10.0.0.1"), &loopback).is_err());
        for public in ["1.1.1.1", "2606:4700::1111", "172.32.0.1"] {
            assert!(check_address(ip(public), &[]).is_ok(), "{public}");
        }
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let c = Cidr::try_from("10.0.0.0/8".to_string()).expect("cidr");
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        let one = Cidr::try_from("fd00::5".to_string()).expect("cidr");
        assert_eq!(one.prefix, 128);
        assert!(one.contains(ip("fd00::5")) && !one.contains(ip("fd00::6")));
        for bad in ["10.0.0.0/33", "x/8", "::/129", ""] {
            assert!(Cidr::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }
}
