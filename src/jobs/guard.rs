//! Keeps the thumbnail checker off the internal network.
//!
//! A thumbnail URL comes from whoever writes the catalogue, and the public feed
//! shows each check's outcome (a video with a broken thumbnail is left out or
//! given the fallback image), so a checker that fetched any URL would let a
//! writer probe hosts only this machine can reach. [`PublicOnly`] is the
//! checker's name resolver: it resolves as usual, then keeps only public
//! addresses; a host with none left is refused ([`Refused`]) without a
//! connection. Because ureq resolves every redirect's host through the same
//! resolver, a redirect to an internal address is refused too, and since the
//! connection goes to the address checked here, a DNS answer that changes
//! between a check and the connect (rebinding) cannot slip through.
//! `VIDEOFEED_CHECK_PRIVATE_HOSTS=1` turns this off (a CDN on a private
//! network, or tests against a local origin). Channel enrichment talks to the
//! one source URL the operator configured and is not guarded.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// Whether `ip` is an address of the public internet: not loopback, private
/// (RFC 1918), shared (RFC 6598), link-local, unique-local, unspecified,
/// multicast, broadcast or reserved, also when written as an IPv6 address that
/// embeds an IPv4 one: mapped, compatible, translated (`::ffff:0:a.b.c.d`),
/// NAT64 (`64:ff9b::/96`, local-use `64:ff9b:1::/48`), 6to4 (`2002::/16`) and
/// Teredo (`2001::/32`: its server and its client must both be public).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && ip.octets().get(2) == Some(&0)) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19))) // benchmarking
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let first = s.first().copied().unwrap_or(0);
    let embedded_v4 = || {
        let o = ip.octets();
        Ipv4Addr::new(
            o.get(12).copied().unwrap_or(0),
            o.get(13).copied().unwrap_or(0),
            o.get(14).copied().unwrap_or(0),
            o.get(15).copied().unwrap_or(0),
        )
    };
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible), ::ffff:0:a.b.c.d (translated),
    // 64:ff9b::a.b.c.d (NAT64) and 64:ff9b:1::a.b.c.d (local-use NAT64): judge the
    // IPv4 address in the last 32 bits.
    let mapped = s.get(..5) == Some(&[0, 0, 0, 0, 0][..]) && matches!(s.get(5), Some(0 | 0xffff));
    let translated = s.get(..6) == Some(&[0, 0, 0, 0, 0xffff, 0][..]);
    let nat64 = s.get(..6) == Some(&[0x64, 0xff9b, 0, 0, 0, 0][..]);
    let local_nat64 = s.get(..3) == Some(&[0x64, 0xff9b, 1][..]);
    if mapped || translated || nat64 || local_nat64 {
        return is_public_v4(embedded_v4());
    }
    let v4_of = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let seg = |i: usize| s.get(i).copied().unwrap_or(0);
    // 6to4 2002:AABB:CCDD::/48: the IPv4 address in bits 16-47.
    if first == 0x2002 {
        return is_public_v4(v4_of(seg(1), seg(2)));
    }
    // Teredo 2001:0::/32: the server's IPv4 in bits 32-63, the client's in the last 32
    // bits, inverted. Both must be public.
    if first == 0x2001 && seg(1) == 0 {
        return is_public_v4(v4_of(seg(2), seg(3))) && is_public_v4(v4_of(!seg(6), !seg(7)));
    }
    !((first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || first == 0x2001 && s.get(1) == Some(&0x0db8)) // documentation
}

/// What the guard makes of a URL's host when ureq will not resolve it (through a
/// proxy, ureq resolves only the proxy's host).
#[derive(Debug)]
pub enum Target {
    /// Every address the host has is public: it may be requested.
    Public,
    /// Some address is internal: not requested, not even through the proxy.
    Refused(Refused),
    /// The host could not be resolved here.
    Unresolved(String),
}

/// Resolves the host of `uri` and judges its addresses (all must be public, or
/// `VIDEOFEED_CHECK_PRIVATE_HOSTS`' test hook's one): for requests that go through a
/// proxy. The proxy resolves the name again itself, so a name whose answer changes
/// between the two (rebinding) is not caught: a proxy is named by the operator, who
/// trusts its resolver (decision 26).
pub fn check_target(uri: &Uri) -> Target {
    use std::net::ToSocketAddrs;
    let Some(host) = uri.host() else { return Target::Unresolved(format!("{uri} has no host")) };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    let addresses: Vec<IpAddr> = match (host, port).to_socket_addrs() {
        Ok(found) => found.map(|a| a.ip()).collect(),
        Err(e) => return Target::Unresolved(format!("{host}: {e}")),
    };
    if addresses.is_empty() {
        return Target::Unresolved(format!("{host}: no address"));
    }
    if addresses.iter().all(|ip| is_public(*ip) || test_public(*ip)) {
        Target::Public
    } else {
        let internal: Vec<IpAddr> = addresses.into_iter().filter(|ip| !is_public(*ip) && !test_public(*ip)).collect();
        Target::Refused(Refused { host: host.to_owned(), addresses: internal })
    }
}

/// How every refusal's text starts (what the checker records as the error).
pub const REFUSED: &str = "refused: ";

/// Why a URL was not fetched: its host resolves only to internal addresses.
#[derive(Debug)]
pub struct Refused {
    /// The host as written in the URL.
    pub host: String,
    /// What it resolved to.
    pub addresses: Vec<IpAddr>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.addresses.iter().map(ToString::to_string).collect();
        write!(
            f,
            "{REFUSED}{} is not a public address ({}); set VIDEOFEED_CHECK_PRIVATE_HOSTS=1 to check such hosts",
            self.host,
            list.join(", ")
        )
    }
}

impl std::error::Error for Refused {}

/// Whether `e` is a [`Refused`] from [`PublicOnly`] (possibly after redirects).
pub fn refusal(e: &ureq::Error) -> Option<&Refused> {
    match e {
        ureq::Error::Io(io) => io.get_ref().and_then(|inner| inner.downcast_ref::<Refused>()),
        _ => None,
    }
}

/// ureq's resolver, keeping only public addresses (see the module docs).
#[derive(Debug, Default)]
pub struct PublicOnly {
    inner: DefaultResolver,
}

impl Resolver for PublicOnly {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let all = self.inner.resolve(uri, config, timeout)?;
        let mut kept = self.empty();
        for addr in all.iter().filter(|a| is_public(a.ip()) || test_public(a.ip())) {
            kept.push(*addr);
        }
        if kept.is_empty() {
            let refused =
                Refused { host: uri.host().unwrap_or("").to_owned(), addresses: all.iter().map(|a| a.ip()).collect() };
            log::debug!("thumbnail check {refused}");
            return Err(ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, refused)));
        }
        Ok(kept)
    }
}

/// Test hook: `VIDEOFEED_TEST_PUBLIC_ADDR` names one loopback address to treat as
/// public, so a test can serve a "public" origin that redirects inward.
#[cfg(feature = "test-hooks")]
fn test_public(ip: IpAddr) -> bool {
    std::env::var("VIDEOFEED_TEST_PUBLIC_ADDR").is_ok_and(|a| a.parse::<IpAddr>().is_ok_and(|a| a == ip))
}

#[cfg(not(feature = "test-hooks"))]
fn test_public(_: IpAddr) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
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
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            // Issue 31: the rarer forms that embed an IPv4 address.
            "::ffff:0:10.0.0.1",                    // IPv4-translated
            "::ffff:0:127.0.0.1",                   // IPv4-translated
            "64:ff9b:1::10.0.0.1",                  // local-use NAT64
            "64:ff9b:1::a9fe:a9fe",                 // local-use NAT64, 169.254.169.254
            "2002:0a00:0001::1",                    // 6to4 of 10.0.0.1
            "2002:7f00:0001::",                     // 6to4 of 127.0.0.1
            "2001:0:4136:e378:8000:63bf:f5ff:fffe", // Teredo, client 10.0.0.1
            "2001:0:0a00:0001:8000:63bf:3fff:fdd2", // Teredo, server 10.0.0.1
        ] {
            let parsed: IpAddr = ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            assert!(!is_public(parsed), "{ip} counted as public");
        }
    }

    #[test]
    fn internet_addresses_are_public() {
        for ip in [
            "8.8.8.8",
            "142.250.74.46",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            // Issue 31: the same forms around a public IPv4 address.
            "::ffff:0:8.8.8.8",
            "64:ff9b:1::8.8.8.8",
            "2002:0808:0808::1",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7", // Teredo: server 65.54.227.120, client 8.8.8.8
        ] {
            let parsed: IpAddr = ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            assert!(is_public(parsed), "{ip} counted as internal");
        }
    }
}
