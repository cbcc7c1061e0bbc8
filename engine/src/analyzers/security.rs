//! Vocabulary shared by the security detectors (`*_detection`): severities and their
//! breakdown, which addresses are internal, and the localhost rule. Not an analysis itself.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::decode::IpInfo;

pub use crate::finding::Severity;

/// v5's `severity_breakdown{critical,high,medium,low}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityBreakdown {
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
}

impl SeverityBreakdown {
    pub fn add(&mut self, s: Severity) {
        match s {
            Severity::Critical => self.critical += 1,
            Severity::High => self.high += 1,
            Severity::Medium => self.medium += 1,
            // v5 had no info level; its lowest bucket takes it.
            Severity::Low | Severity::Info => self.low += 1,
        }
    }

    pub fn of<'a>(severities: impl IntoIterator<Item = &'a Severity>) -> Self {
        let mut b = SeverityBreakdown::default();
        for s in severities {
            b.add(*s);
        }
        b
    }
}

/// Loopback: 127.0.0.0/8 and ::1 (also IPv4-mapped loopback).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// True when a detector must ignore the packet: either end is localhost and the user did not ask
/// for `--include-localhost`.
pub fn excluded(ip: &IpInfo, include_localhost: bool) -> bool {
    !include_localhost && (is_loopback(ip.src) || is_loopback(ip.dst))
}

/// Internal addresses: RFC 1918 private IPv4, RFC 3927 link-local, RFC 4193 unique local
/// (fc00::/7) and RFC 4291 link-local (fe80::/10) IPv6, and loopback.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_private() || a.is_link_local() || a.is_loopback(),
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || a.is_loopback()
                || a.to_ipv4_mapped()
                    .is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// Group destinations: multicast (224.0.0.0/4, ff00::/8), the limited broadcast
/// 255.255.255.255 and the `.255` broadcast of an internal /24. Announcements (SSDP, mDNS,
/// NetBIOS, LLMNR) go there; no attacker's server lives there, so they are neither external nor a
/// controller.
pub fn is_group(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            a.is_multicast()
                || a.is_broadcast()
                || (a.octets()[3] == 255 && is_internal(IpAddr::V4(a)))
        }
        IpAddr::V6(a) => {
            a.is_multicast()
                || a.to_ipv4_mapped()
                    .is_some_and(|v4| is_group(IpAddr::V4(v4)))
        }
    }
}

/// An address as one integer (IPv4 as IPv4-mapped IPv6), a cheaper hash key than `IpAddr`.
pub fn addr_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address back from [`addr_key`].
pub fn key_addr(k: u128) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(k);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// The Wireshark field for an address (`ip.addr` or `ipv6.addr`, with `.src`/`.dst` variants).
pub fn ip_field(ip: IpAddr, which: &str) -> String {
    let base = if ip.is_ipv6() { "ipv6" } else { "ip" };
    format!("{base}.{which} == {ip}")
}

/// Severity order for findings: worst first, then by `tie`.
pub fn worst_first<T>(
    items: &mut [T],
    severity: impl Fn(&T) -> Severity,
    tie: impl Fn(&T) -> f64,
    first_packet: impl Fn(&T) -> u64,
) {
    // The first packet settles the remaining ties: events come out of hash maps, whose order
    // changes from run to run.
    items.sort_by(|a, b| {
        severity(b)
            .cmp(&severity(a))
            .then(
                tie(b)
                    .partial_cmp(&tie(a))
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
            .then(first_packet(a).cmp(&first_packet(b)))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_unique_local_and_link_local_are_internal_and_public_is_not() {
        for a in [
            "10.1.2.3",
            "172.16.0.8",
            "192.168.1.1",
            "169.254.1.1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(is_internal(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "64.13.134.52", "2001:db8::1", "172.32.0.1"] {
            assert!(!is_internal(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn multicast_and_broadcast_are_group_addresses_and_unicast_is_not() {
        for a in [
            "239.255.255.250",
            "224.0.0.251",
            "255.255.255.255",
            "192.168.1.255",
            "ff02::fb",
            "ff02::1:3",
        ] {
            assert!(is_group(a.parse().unwrap()), "{a}");
        }
        for a in ["172.16.0.111", "8.8.8.8", "2001:db8::1", "fe80::1"] {
            assert!(!is_group(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn a_bump_never_goes_past_critical() {
        assert_eq!(Severity::Low.bump(), Severity::Medium);
        assert_eq!(Severity::Critical.bump(), Severity::Critical);
    }
}
