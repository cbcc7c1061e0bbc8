//! `icmp`: ICMP (RFC 792) and ICMPv6 (RFC 4443) messages. v5 only fed IPv4 ICMP to this
//! analysis; here both are counted, and error messages are explained from the datagram they quote:
//! destination unreachable by code, path MTU problems with the MTU the router announced
//! (RFC 1191 "fragmentation needed", RFC 8201 "packet too big"), and TTL/hop-limit exceeded with
//! the address of the router that sent it (one per hop of a traceroute).
//!
//! A fragmented ICMP message counts once, on its first fragment (the one with the ICMP header).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::decode::{IcmpInfo, Packet};
use crate::finding::{Cause, Evidence, Finding, Severity, MAX_FINDING_FRAMES};
use crate::flow::{fast_map, FastMap};
use crate::report::{Report, MAX_FINDINGS, MAX_RANKED};
use crate::Options;

/// Distinct unreachable destinations / reporting routers counted; a spoofed flood of errors
/// must not grow memory without bound.
const MAX_ADDRESSES: usize = 50_000;
/// v5 listed the 10 most unreachable destinations.
const TOP_UNREACHABLE: usize = 10;
/// Smallest IPv4 MTU a router may announce (RFC 791: every host accepts 68-byte datagrams).
const MIN_IPV4_MTU: u32 = 68;
/// IPv4 header (20) plus TCP header (20): what MSS clamping subtracts from the MTU.
const IPV4_TCP_OVERHEAD: u32 = 40;
/// IPv6 header (40) plus TCP header (20).
const IPV6_TCP_OVERHEAD: u32 = 60;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IcmpMessage {
    pub packet_num: u64,
    pub timestamp: String,
    pub ip_version: u8,
    /// Sender of the ICMP message (for errors: the router or host that reports).
    pub src_ip: String,
    pub dst_ip: String,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub type_name: String,
    pub code_name: String,
    /// "error", "warning" or "info".
    pub severity: String,
    /// From the datagram quoted by an error message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_src: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_dst: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_dst_port: Option<u16>,
    /// Next-hop MTU announced by a PMTU message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CountedAddress {
    pub ip: String,
    pub count: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IcmpReport {
    pub total_icmp_messages: u64,
    pub icmpv4_messages: u64,
    pub icmpv6_messages: u64,
    /// By type name ("Echo Request", "ICMPv6 Packet Too Big", ...).
    pub type_distribution: BTreeMap<String, u64>,
    pub echo_requests: u64,
    pub echo_replies: u64,
    pub dest_unreachable_count: u64,
    /// Destination unreachable by code name.
    pub unreachable_by_code: BTreeMap<String, u64>,
    pub pmtu_issues_count: u64,
    pub ttl_exceeded_count: u64,
    /// Distinct routers that sent TTL/hop-limit exceeded (traceroute hops).
    pub ttl_exceeded_routers: u64,
    pub redirect_count: u64,
    /// error, warning, info.
    pub severity_distribution: BTreeMap<String, u64>,
    /// Destinations (from the quoted datagram) reported unreachable most often.
    pub top_unreachable_destinations: Vec<CountedAddress>,
    /// Routers that reported TTL exceeded, in order of first report (a traceroute's path).
    pub ttl_exceeded_hops: Vec<CountedAddress>,
    /// The first error and warning messages (echo and neighbour discovery are left out).
    pub icmp_messages: Vec<IcmpMessage>,
    pub pmtu_issues: Vec<IcmpMessage>,
    pub dest_unreachable: Vec<IcmpMessage>,
    pub ttl_exceeded: Vec<IcmpMessage>,
    pub pmtu_suggestions: Vec<String>,
}

/// The header of the datagram an ICMP error quotes (RFC 792: IP header plus 64 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quoted {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    dst_port: Option<u16>,
    src_port: Option<u16>,
}

fn quoted(v6: bool, b: &[u8]) -> Option<Quoted> {
    if v6 {
        let h = b.get(..40)?;
        if h[0] >> 4 != 6 {
            return None;
        }
        let src: [u8; 16] = h[8..24].try_into().ok()?;
        let dst: [u8; 16] = h[24..40].try_into().ok()?;
        let proto = h[6];
        Some(Quoted {
            src: IpAddr::V6(Ipv6Addr::from(src)),
            dst: IpAddr::V6(Ipv6Addr::from(dst)),
            proto,
            dst_port: port_at(proto, b, 40),
            src_port: port_at(proto, b, 38),
        })
    } else {
        let h = b.get(..20)?;
        if h[0] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(h[0] & 0x0f) * 4;
        let proto = h[9];
        Some(Quoted {
            src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
            dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
            proto,
            dst_port: port_at(proto, b, ihl.max(20)),
            src_port: port_at(proto, b, ihl.max(20) - 2),
        })
    }
}

fn port_at(proto: u8, b: &[u8], at: usize) -> Option<u16> {
    if !matches!(proto, 6 | 17 | 132) {
        return None;
    }
    let p = b.get(at + 2..at + 4)?;
    Some(u16::from_be_bytes([p[0], p[1]]))
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        other => format!("protocol {other}"),
    }
}

/// What a message is: its kind for counting, names and severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    EchoRequest,
    EchoReply,
    Unreachable,
    Pmtu,
    TimeExceeded,
    Redirect,
    OtherError,
    Info,
}

fn classify(i: &IcmpInfo<'_>) -> (Kind, &'static str) {
    match (i.v6, i.icmp_type, i.code) {
        (false, 0, _) => (Kind::EchoReply, "Echo Reply"),
        (false, 8, _) => (Kind::EchoRequest, "Echo Request"),
        (false, 3, 4) => (Kind::Pmtu, "Destination Unreachable"),
        (false, 3, _) => (Kind::Unreachable, "Destination Unreachable"),
        (false, 4, _) => (Kind::OtherError, "Source Quench"),
        (false, 5, _) => (Kind::Redirect, "Redirect"),
        (false, 11, _) => (Kind::TimeExceeded, "Time Exceeded"),
        (false, 12, _) => (Kind::OtherError, "Parameter Problem"),
        (false, 9, _) => (Kind::Info, "Router Advertisement"),
        (false, 10, _) => (Kind::Info, "Router Solicitation"),
        (false, 13, _) => (Kind::Info, "Timestamp Request"),
        (false, 14, _) => (Kind::Info, "Timestamp Reply"),
        (false, _, _) => (Kind::Info, "Other ICMP"),
        (true, 1, _) => (Kind::Unreachable, "ICMPv6 Destination Unreachable"),
        (true, 2, _) => (Kind::Pmtu, "ICMPv6 Packet Too Big"),
        (true, 3, _) => (Kind::TimeExceeded, "ICMPv6 Time Exceeded"),
        (true, 4, _) => (Kind::OtherError, "ICMPv6 Parameter Problem"),
        (true, 128, _) => (Kind::EchoRequest, "ICMPv6 Echo Request"),
        (true, 129, _) => (Kind::EchoReply, "ICMPv6 Echo Reply"),
        (true, 130..=132 | 143, _) => (Kind::Info, "ICMPv6 Multicast Listener"),
        (true, 133, _) => (Kind::Info, "ICMPv6 Router Solicitation"),
        (true, 134, _) => (Kind::Info, "ICMPv6 Router Advertisement"),
        (true, 135, _) => (Kind::Info, "ICMPv6 Neighbor Solicitation"),
        (true, 136, _) => (Kind::Info, "ICMPv6 Neighbor Advertisement"),
        (true, 137, _) => (Kind::Redirect, "ICMPv6 Redirect"),
        (true, _, _) => (Kind::Info, "Other ICMPv6"),
    }
}

fn code_name(i: &IcmpInfo<'_>, kind: Kind) -> &'static str {
    match (i.v6, kind, i.code) {
        (false, Kind::Unreachable | Kind::Pmtu, c) => match c {
            0 => "Network Unreachable",
            1 => "Host Unreachable",
            2 => "Protocol Unreachable",
            3 => "Port Unreachable",
            4 => "Fragmentation Needed",
            5 => "Source Route Failed",
            6 => "Destination Network Unknown",
            7 => "Destination Host Unknown",
            9 | 10 => "Administratively Prohibited",
            11 | 12 => "Unreachable for TOS",
            13 => "Communication Administratively Prohibited",
            _ => "Other",
        },
        (true, Kind::Unreachable, c) => match c {
            0 => "No Route to Destination",
            1 => "Communication Administratively Prohibited",
            2 => "Beyond Scope of Source Address",
            3 => "Address Unreachable",
            4 => "Port Unreachable",
            5 => "Source Address Failed Ingress/Egress Policy",
            6 => "Reject Route to Destination",
            _ => "Other",
        },
        (_, Kind::Pmtu, _) => "Packet Too Big",
        (_, Kind::TimeExceeded, 0) => "TTL Exceeded in Transit",
        (_, Kind::TimeExceeded, _) => "Fragment Reassembly Time Exceeded",
        _ => "",
    }
}

/// v5's severities: unreachable codes 0, 1, 6, 7 and 13 are errors, port unreachable (3) a
/// warning; PMTU problems are errors. The ICMPv6 codes map the same way (RFC 4443 section 3.1).
fn severity(i: &IcmpInfo<'_>, kind: Kind) -> &'static str {
    match kind {
        Kind::Pmtu | Kind::OtherError => "error",
        Kind::Unreachable if !i.v6 && matches!(i.code, 0 | 1 | 6 | 7 | 13) => "error",
        Kind::Unreachable if i.v6 && matches!(i.code, 0 | 1 | 3 | 5 | 6) => "error",
        Kind::Unreachable | Kind::TimeExceeded | Kind::Redirect => "warning",
        _ => "info",
    }
}

pub struct Icmp {
    total: u64,
    v4: u64,
    v6: u64,
    types: BTreeMap<&'static str, u64>,
    echo_req: u64,
    echo_rep: u64,
    unreachable: u64,
    unreachable_codes: BTreeMap<&'static str, u64>,
    pmtu: u64,
    ttl: u64,
    redirects: u64,
    severity: BTreeMap<&'static str, u64>,
    unreachable_dst: FastMap<IpAddr, u64>,
    /// Router → (first frame, count): the order of first reports is a traceroute's path.
    routers: FastMap<IpAddr, (u64, u64)>,
    /// (IP version, MTU) announced → (count, first destination).
    mtus: BTreeMap<(u8, u32), (u64, String)>,
    messages: Vec<IcmpMessage>,
    pmtu_list: Vec<IcmpMessage>,
    unreachable_list: Vec<IcmpMessage>,
    /// Port unreachable sent back for a DNS answer: the asker had given up (frames).
    late_dns: Vec<u64>,
    late_dns_count: u64,
    /// Unreachable messages for anything but late DNS answers and traceroute probes: frames,
    /// count, and how many were port unreachable.
    unreachable_real: Vec<u64>,
    unreachable_real_count: u64,
    unreachable_port_count: u64,
    unreachable_hosts: Vec<String>,
    pmtu_frames: Vec<u64>,
    ttl_list: Vec<IcmpMessage>,
}

impl Icmp {
    pub fn new(_options: &Options) -> Self {
        Icmp {
            total: 0,
            v4: 0,
            v6: 0,
            types: BTreeMap::new(),
            echo_req: 0,
            echo_rep: 0,
            unreachable: 0,
            unreachable_codes: BTreeMap::new(),
            pmtu: 0,
            ttl: 0,
            redirects: 0,
            severity: BTreeMap::new(),
            unreachable_dst: fast_map(),
            routers: fast_map(),
            mtus: BTreeMap::new(),
            messages: Vec::new(),
            pmtu_list: Vec::new(),
            unreachable_list: Vec::new(),
            late_dns: Vec::new(),
            late_dns_count: 0,
            unreachable_real: Vec::new(),
            unreachable_real_count: 0,
            unreachable_port_count: 0,
            unreachable_hosts: Vec::new(),
            pmtu_frames: Vec::new(),
            ttl_list: Vec::new(),
        }
    }
}

impl Analyzer for Icmp {
    fn packets(&self) -> Kinds {
        Kinds::ICMP
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, _meta: &PacketMeta) {
        let (Some(ip), Some(i)) = (pkt.ip(), pkt.icmp()) else {
            return;
        };
        let (kind, type_name) = classify(i);
        let sev = severity(i, kind);
        self.total += 1;
        if i.v6 {
            self.v6 += 1;
        } else {
            self.v4 += 1;
        }
        *self.types.entry(type_name).or_insert(0) += 1;
        *self.severity.entry(sev).or_insert(0) += 1;
        let q = match kind {
            Kind::Unreachable
            | Kind::Pmtu
            | Kind::TimeExceeded
            | Kind::Redirect
            | Kind::OtherError => quoted(i.v6, i.payload),
            _ => None,
        };
        // RFC 1191: the next-hop MTU is in the low 16 bits of the second header word; RFC 4443
        // section 3.2: Packet Too Big carries a 32-bit MTU there. 0 means an old router that
        // did not say (RFC 1191 section 5), so the MTU is left unknown.
        let r = i.rest_of_header;
        let mtu = match kind {
            Kind::Pmtu if i.v6 => Some(u32::from_be_bytes(r)),
            Kind::Pmtu => Some(u32::from(u16::from_be_bytes([r[2], r[3]]))),
            _ => None,
        }
        .filter(|&m| m >= MIN_IPV4_MTU);
        match kind {
            Kind::EchoRequest => self.echo_req += 1,
            Kind::EchoReply => self.echo_rep += 1,
            Kind::Unreachable => {
                self.unreachable += 1;
                *self
                    .unreachable_codes
                    .entry(code_name(i, kind))
                    .or_insert(0) += 1;
                let dst = q.map(|q| q.dst).unwrap_or(ip.src);
                let port_unreachable = i.code == if i.v6 { 4 } else { 3 };
                let from_dns = q.is_some_and(|q| q.proto == 17 && q.src_port == Some(53));
                let traceroute = q.is_some_and(|q| {
                    q.proto == 17 && q.dst_port.is_some_and(|p| (33434..=33534).contains(&p))
                });
                if port_unreachable && from_dns {
                    self.late_dns_count += 1;
                    if self.late_dns.len() < MAX_FINDING_FRAMES {
                        self.late_dns.push(pkt.number);
                    }
                } else if !(port_unreachable && traceroute) {
                    self.unreachable_real_count += 1;
                    if port_unreachable {
                        self.unreachable_port_count += 1;
                    }
                    if self.unreachable_real.len() < MAX_FINDING_FRAMES {
                        self.unreachable_real.push(pkt.number);
                    }
                    let host = dst.to_string();
                    if self.unreachable_hosts.len() < MAX_FINDING_FRAMES
                        && !self.unreachable_hosts.contains(&host)
                    {
                        self.unreachable_hosts.push(host);
                    }
                }
                if self.unreachable_dst.len() < MAX_ADDRESSES
                    || self.unreachable_dst.contains_key(&dst)
                {
                    *self.unreachable_dst.entry(dst).or_insert(0) += 1;
                }
            }
            Kind::Pmtu => {
                self.pmtu += 1;
                if self.pmtu_frames.len() < MAX_FINDING_FRAMES {
                    self.pmtu_frames.push(pkt.number);
                }
                if let Some(m) = mtu {
                    let version = if i.v6 { 6 } else { 4 };
                    if self.mtus.len() < MAX_RANKED || self.mtus.contains_key(&(version, m)) {
                        let e = self.mtus.entry((version, m)).or_insert_with(|| {
                            (0, q.map(|q| q.dst.to_string()).unwrap_or_default())
                        });
                        e.0 += 1;
                    }
                }
            }
            Kind::TimeExceeded => {
                self.ttl += 1;
                if self.routers.len() < MAX_ADDRESSES || self.routers.contains_key(&ip.src) {
                    self.routers.entry(ip.src).or_insert((pkt.number, 0)).1 += 1;
                }
            }
            Kind::Redirect => self.redirects += 1,
            Kind::OtherError | Kind::Info => {}
        }
        if sev == "info" {
            return;
        }
        let wants = |l: &Vec<IcmpMessage>| l.len() < MAX_FINDINGS;
        let list_for_kind = match kind {
            Kind::Pmtu => wants(&self.pmtu_list),
            Kind::Unreachable => wants(&self.unreachable_list),
            Kind::TimeExceeded => wants(&self.ttl_list),
            _ => false,
        };
        if !wants(&self.messages) && !list_for_kind {
            return;
        }
        let filter_proto = if i.v6 { "icmpv6" } else { "icmp" };
        let m = IcmpMessage {
            packet_num: pkt.number,
            timestamp: crate::time::iso_utc(pkt.ts_ns),
            ip_version: if i.v6 { 6 } else { 4 },
            src_ip: ip.src.to_string(),
            dst_ip: ip.dst.to_string(),
            icmp_type: i.icmp_type,
            icmp_code: i.code,
            type_name: type_name.to_string(),
            code_name: code_name(i, kind).to_string(),
            severity: sev.to_string(),
            original_src: q.map(|q| q.src.to_string()),
            original_dst: q.map(|q| q.dst.to_string()),
            original_protocol: q.map(|q| proto_name(q.proto)),
            original_dst_port: q.and_then(|q| q.dst_port),
            mtu,
            display_filter: format!(
                "frame.number == {} || ({filter_proto}.type == {} && {filter_proto}.code == {})",
                pkt.number, i.icmp_type, i.code
            ),
        };
        if list_for_kind {
            let list = match kind {
                Kind::Pmtu => &mut self.pmtu_list,
                Kind::Unreachable => &mut self.unreachable_list,
                _ => &mut self.ttl_list,
            };
            list.push(m.clone());
        }
        if wants(&self.messages) {
            self.messages.push(m);
        }
    }

    fn finish(self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let mut top: Vec<CountedAddress> = self
            .unreachable_dst
            .iter()
            .map(|(ip, &count)| CountedAddress {
                ip: ip.to_string(),
                count,
            })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.ip.cmp(&b.ip)));
        top.truncate(TOP_UNREACHABLE);
        let mut hops: Vec<(u64, CountedAddress)> = self
            .routers
            .iter()
            .map(|(ip, &(first, count))| {
                (
                    first,
                    CountedAddress {
                        ip: ip.to_string(),
                        count,
                    },
                )
            })
            .collect();
        hops.sort_by_key(|(first, _)| *first);
        let hops: Vec<CountedAddress> = hops.into_iter().take(MAX_RANKED).map(|h| h.1).collect();
        let pmtu_suggestions = self
            .mtus
            .iter()
            .map(|(&(version, mtu), (count, dst))| {
                let overhead = if version == 6 {
                    IPV6_TCP_OVERHEAD
                } else {
                    IPV4_TCP_OVERHEAD
                };
                let to = if dst.is_empty() {
                    String::new()
                } else {
                    format!(" towards {dst}")
                };
                format!(
                    "IPv{version} path MTU{to} is {mtu} bytes ({count} message(s)): clamp TCP MSS to {} \
                     or lower the interface MTU, and let ICMP {} through firewalls so PMTU discovery works",
                    mtu.saturating_sub(overhead),
                    if version == 6 {
                        "type 2 (Packet Too Big)"
                    } else {
                        "type 3 code 4"
                    }
                )
            })
            .collect();
        report.findings.extend(self.findings());
        let own = |m: BTreeMap<&'static str, u64>| -> BTreeMap<String, u64> {
            m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
        report.icmp = Some(IcmpReport {
            total_icmp_messages: self.total,
            icmpv4_messages: self.v4,
            icmpv6_messages: self.v6,
            type_distribution: own(self.types),
            echo_requests: self.echo_req,
            echo_replies: self.echo_rep,
            dest_unreachable_count: self.unreachable,
            unreachable_by_code: own(self.unreachable_codes),
            pmtu_issues_count: self.pmtu,
            ttl_exceeded_count: self.ttl,
            ttl_exceeded_routers: self.routers.len() as u64,
            redirect_count: self.redirects,
            severity_distribution: own(self.severity),
            top_unreachable_destinations: top,
            ttl_exceeded_hops: hops,
            icmp_messages: self.messages,
            pmtu_issues: self.pmtu_list,
            dest_unreachable: self.unreachable_list,
            ttl_exceeded: self.ttl_list,
            pmtu_suggestions,
        });
    }
}

impl Icmp {
    /// Late DNS answers (the asker's port was already closed: the resolver is too slow for
    /// it), unreachable destinations (traceroute's own probes left out), and routers asking
    /// for a smaller packet size.
    fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if self.late_dns_count > 0 {
            let sev = if self.late_dns_count >= 3 {
                Severity::Medium
            } else {
                Severity::Low
            };
            out.push(
                Finding::new(
                    "icmp",
                    sev,
                    format!(
                        "{} DNS answer{} came back after the asker had given up: it answered with ICMP port unreachable (frame {})",
                        self.late_dns_count,
                        if self.late_dns_count == 1 { "" } else { "s" },
                        self.late_dns[0]
                    ),
                )
                .cause(Cause::DnsSlow)
                .evidence(Evidence::new().with("late_dns_answers", self.late_dns_count as f64))
                .frames(self.late_dns.clone())
                .filter("icmp.type == 3 && icmp.code == 3 && udp.srcport == 53"),
            );
        }
        if self.unreachable_real_count > 0 {
            let hard = self.unreachable_real_count - self.unreachable_port_count;
            let sev = if hard >= 3 {
                Severity::Medium
            } else if self.unreachable_real_count >= 3 {
                Severity::Low
            } else {
                Severity::Info
            };
            out.push(
                Finding::new(
                    "icmp",
                    sev,
                    format!(
                        "{} ICMP destination unreachable message{} ({} for closed ports), for {}",
                        self.unreachable_real_count,
                        if self.unreachable_real_count == 1 {
                            ""
                        } else {
                            "s"
                        },
                        self.unreachable_port_count,
                        self.unreachable_hosts.join(", ")
                    ),
                )
                .cause(Cause::IcmpUnreachable)
                .evidence(
                    Evidence::new()
                        .with("unreachable", self.unreachable_real_count as f64)
                        .with("port_unreachable", self.unreachable_port_count as f64),
                )
                .hosts(self.unreachable_hosts.clone())
                .frames(self.unreachable_real.clone())
                .filter("icmp.type == 3 || icmpv6.type == 1"),
            );
        }
        if self.pmtu > 0 {
            out.push(
                Finding::new(
                    "icmp",
                    Severity::Info,
                    format!(
                        "{} router message{} asked for smaller packets (path MTU discovery working)",
                        self.pmtu,
                        if self.pmtu == 1 { "" } else { "s" }
                    ),
                )
                .evidence(Evidence::new().with("pmtu_messages", self.pmtu as f64))
                .frames(self.pmtu_frames.clone())
                .filter("(icmp.type == 3 && icmp.code == 4) || icmpv6.type == 2"),
            );
        }
        out
    }
}
