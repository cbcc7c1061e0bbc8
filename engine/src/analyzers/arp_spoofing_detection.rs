//! `arp_spoofing_detection`: a station that claims IPv4 addresses it does not own (ARP cache
//! poisoning, RFC 826 has no authentication), to put itself between two hosts.
//!
//! Per claiming MAC (the sender hardware address of ARP requests and replies), three kinds of
//! evidence:
//! * *binding change*: the MAC claims an address that an earlier ARP packet, or earlier IP
//!   traffic from that address, tied to another MAC;
//! * *traffic takeover*: after its claim, IP traffic that came from other MACs now comes from or
//!   goes to this MAC (frames of a source address arrive with this MAC as the Ethernet source
//!   where they had another before, or frames for an address bound to another MAC are sent to
//!   this one). A poisoned gateway looks like this: the Internet hosts' packets switch to the
//!   attacker's MAC right after its ARP claim for the gateway address;
//! * *several addresses*: one MAC claims more than one address; and *gratuitous storms*: at
//!   least [`STORM_GRATUITOUS`] gratuitous or unsolicited ARP replies in [`STORM_WINDOW_NS`].
//!
//! Severity: high for a takeover of at least [`MIN_TAKEOVER_FRAMES`] frames by a MAC whose claims
//! are suspect (unsolicited or gratuitous replies, a binding change, or several addresses: what
//! poisoning tools send); medium for a takeover by a MAC that only asked and answered (a second
//! router taking part of the traffic looks so), for a binding change or a storm alone; low for a
//! MAC with several addresses and nothing else. ARP refreshes
//! from the same MAC, probes from 0.0.0.0 (RFC 5227) and IPv6 (neighbour discovery) are not
//! evidence.
//!
//! Cost: the bindings are one hash map by address, too large to stay cached on a busy
//! capture. Each direction of a flow remembers the MACs of its last frame and the bindings'
//! generation then: a frame with the same MACs while no
//! binding or claim changed needs no look-up of its addresses.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::security::{addr_key, is_loopback, worst_first, Severity, SeverityBreakdown};
use super::{Analyzer, Finish, Kinds, PacketMeta, Prefetch};
use crate::decode::{mac_text, ArpInfo, Network, Packet};
use crate::finding::{Cause, Evidence, Finding, MAX_FINDING_FRAMES};
use crate::flow::{fast_map, table_cap, FastMap, FlowRecord, PerFlow};
use crate::report::{Report, MAX_FINDINGS};
use crate::Options;

/// Addresses whose MAC is remembered; past this, new addresses are not followed.
const MAX_BINDINGS: usize = table_cap(1 << 16);
/// Claiming MACs followed.
const MAX_CLAIMANTS: usize = 4096;
/// Addresses listed per claimant.
const MAX_LISTED: usize = 20;
/// Frames through the new MAC that make a takeover.
pub const MIN_TAKEOVER_FRAMES: u64 = 3;
/// Gratuitous or unsolicited replies from one MAC within [`STORM_WINDOW_NS`] that make a storm.
pub const STORM_GRATUITOUS: usize = 10;
pub const STORM_WINDOW_NS: i64 = 60 * 1_000_000_000;
/// A reply within this time of a request for its address is solicited.
const SOLICITED_NS: i64 = 5 * 1_000_000_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArpSpoofingEvent {
    /// The claiming MAC.
    pub mac: String,
    /// "traffic_takeover", "binding_change", "gratuitous_storm" or "multiple_addresses".
    pub event_type: String,
    pub severity: Severity,
    /// Addresses the MAC claimed in ARP, in order.
    pub claimed_ips: Vec<String>,
    /// Claimed addresses that were tied to another MAC before, with that MAC (`ip=mac`).
    pub binding_changes: Vec<String>,
    /// MACs the traffic came through before the takeover.
    pub previous_macs: Vec<String>,
    /// IP frames through this MAC that went through another before.
    pub frames_taken_over: u64,
    /// Addresses whose traffic moved to this MAC.
    pub addresses_taken_over: Vec<String>,
    pub arp_packets: u64,
    pub gratuitous_arps: u64,
    pub start_time: String,
    pub first_packet: u64,
    pub display_filter: String,
    /// First claim frames and first frames taken over.
    pub frames: Vec<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArpSpoofingThresholds {
    pub min_takeover_frames: u64,
    pub storm_gratuitous: u64,
    pub storm_window_seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArpSpoofingReport {
    pub total_spoofing_detected: u64,
    pub severity_breakdown: SeverityBreakdown,
    pub arp_packets: u64,
    pub arp_requests: u64,
    pub arp_replies: u64,
    pub gratuitous_arps: u64,
    /// Distinct addresses with a known MAC (from ARP and IP traffic).
    pub addresses_bound: u64,
    /// Worst first, at most `MAX_FINDINGS`.
    pub spoofing_events: Vec<ArpSpoofingEvent>,
    pub detection_thresholds: ArpSpoofingThresholds,
}

#[derive(Default)]
struct Claimant {
    first_ns: i64,
    first_frame: u64,
    /// When the MAC first claimed an address.
    claimed_ns: i64,
    ips: Vec<Ipv4Addr>,
    changes: Vec<(Ipv4Addr, [u8; 6])>,
    arp_packets: u64,
    gratuitous: u64,
    gratuitous_times: Vec<i64>,
    storm: bool,
    taken_frames: u64,
    taken_ips: Vec<IpAddr>,
    previous_macs: Vec<[u8; 6]>,
    frames: Vec<u64>,
    takeover_frames: Vec<u64>,
}

pub struct ArpSpoofingDetection {
    /// Address → the MAC it comes from (IP sources) or claims it (ARP).
    bindings: FastMap<u128, [u8; 6]>,
    claimants: FastMap<[u8; 6], Claimant>,
    /// (asker, asked address) → time of the request.
    requests: FastMap<(Ipv4Addr, Ipv4Addr), i64>,
    /// Counts the changes that can alter what a frame's addresses are found bound to: every
    /// ARP packet, every binding that changes, and a new binding once some MAC claims.
    generation: u64,
    /// Per direction of a flow, the MACs of its last frame, checked at this generation.
    checked: PerFlow<Checked>,
    arp: u64,
    requests_seen: u64,
    replies: u64,
    gratuitous: u64,
    include_localhost: bool,
}

/// The MACs a flow direction's last frame came from and went to, and the bindings'
/// generation when its addresses were checked against them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checked {
    src: [u8; 6],
    dst: [u8; 6],
    generation: u64,
}

fn unicast_mac(m: &[u8; 6]) -> bool {
    *m != [0; 6] && m[0] & 1 == 0
}

impl ArpSpoofingDetection {
    pub fn new(options: &Options) -> Self {
        ArpSpoofingDetection {
            bindings: fast_map(),
            claimants: fast_map(),
            requests: fast_map(),
            generation: 0,
            checked: PerFlow::default(),
            arp: 0,
            requests_seen: 0,
            replies: 0,
            gratuitous: 0,
            include_localhost: options.include_localhost,
        }
    }

    fn bind(&mut self, ip: u128, mac: [u8; 6]) -> Option<[u8; 6]> {
        if self.bindings.len() >= MAX_BINDINGS && !self.bindings.contains_key(&ip) {
            return None;
        }
        let previous = self.bindings.insert(ip, mac);
        if previous.is_some_and(|old| old != mac)
            || (previous.is_none() && !self.claimants.is_empty())
        {
            self.generation += 1;
        }
        previous
    }

    fn on_arp(&mut self, a: &ArpInfo, pkt: &Packet<'_>) {
        self.arp += 1;
        self.generation += 1;
        let now = pkt.ts_ns;
        let unsolicited = match a.op {
            ArpInfo::REQUEST => {
                self.requests_seen += 1;
                if self.requests.len() >= MAX_BINDINGS {
                    self.requests.retain(|_, t| now - *t < SOLICITED_NS);
                    if self.requests.len() >= MAX_BINDINGS / 2 {
                        // A request storm: forget them all rather than sweep on every one.
                        self.requests.clear();
                    }
                }
                self.requests.insert((a.sender_ip, a.target_ip), now);
                false
            }
            ArpInfo::REPLY => {
                self.replies += 1;
                self.requests
                    .get(&(a.target_ip, a.sender_ip))
                    .is_none_or(|t| now - *t > SOLICITED_NS)
            }
            _ => false,
        };
        // Probes (RFC 5227) claim nothing.
        if a.sender_ip.is_unspecified() || !unicast_mac(&a.sender_mac) {
            return;
        }
        let gratuitous = a.is_gratuitous() || unsolicited;
        if gratuitous {
            self.gratuitous += 1;
        }
        let previous = self.bind(addr_key(IpAddr::V4(a.sender_ip)), a.sender_mac);
        if self.claimants.len() >= MAX_CLAIMANTS && !self.claimants.contains_key(&a.sender_mac) {
            return;
        }
        let c = self.claimants.entry(a.sender_mac).or_default();
        if c.arp_packets == 0 {
            c.first_ns = now;
            c.first_frame = pkt.number;
            c.claimed_ns = now;
        }
        c.arp_packets += 1;
        if !c.ips.contains(&a.sender_ip) {
            if c.ips.len() < MAX_LISTED {
                c.ips.push(a.sender_ip);
            }
            if c.frames.len() < MAX_FINDING_FRAMES {
                c.frames.push(pkt.number);
            }
        }
        if let Some(old) = previous.filter(|old| *old != a.sender_mac) {
            if c.changes.len() < MAX_LISTED && !c.changes.iter().any(|(ip, _)| *ip == a.sender_ip) {
                c.changes.push((a.sender_ip, old));
                if c.frames.len() < MAX_FINDING_FRAMES {
                    c.frames.push(pkt.number);
                }
            }
        }
        if gratuitous {
            c.gratuitous += 1;
            c.gratuitous_times.retain(|t| now - *t < STORM_WINDOW_NS);
            c.gratuitous_times.push(now);
            if c.gratuitous_times.len() >= STORM_GRATUITOUS {
                c.storm = true;
            }
        }
    }

    /// Notes that the traffic of `ip` went through `old` and now goes through `mac`.
    fn taken_over(&mut self, mac: [u8; 6], old: [u8; 6], ip: IpAddr, pkt: &Packet<'_>) {
        let Some(c) = self.claimants.get_mut(&mac) else {
            return;
        };
        if pkt.ts_ns < c.claimed_ns {
            return;
        }
        if c.taken_ips.len() < MAX_LISTED && !c.taken_ips.contains(&ip) {
            c.taken_ips.push(ip);
        }
        if c.previous_macs.len() < MAX_LISTED && !c.previous_macs.contains(&old) {
            c.previous_macs.push(old);
        }
    }

    fn on_ip(&mut self, src: IpAddr, dst: IpAddr, pkt: &Packet<'_>, meta: &PacketMeta) {
        let (smac, dmac) = (pkt.eth_src, pkt.eth_dst);
        if !unicast_mac(&smac) {
            return;
        }
        let now = Checked {
            src: smac,
            dst: dmac,
            generation: self.generation,
        };
        let unchanged = matches!(self.checked.direction(meta), Some(Some(c)) if *c == now);
        if !unchanged {
            self.check_bindings(src, dst, pkt);
            // Checking may itself change a binding (this frame's, seen at once).
            if let Some(last) = self.checked.direction(meta) {
                *last = Some(Checked {
                    generation: self.generation,
                    ..now
                });
            }
        }
        if self.claimants.is_empty() {
            return;
        }
        // Every frame of a taken-over address through the claimant counts.
        self.count_taken_over(smac, dmac, src, dst, pkt);
    }

    /// Checks a frame's source address against the MAC it is bound to (binding it if new), and
    /// its destination when it goes to a claimant.
    fn check_bindings(&mut self, src: IpAddr, dst: IpAddr, pkt: &Packet<'_>) {
        let (smac, dmac) = (pkt.eth_src, pkt.eth_dst);
        let src_key = addr_key(src);
        match self.bindings.get(&src_key).copied() {
            Some(old) if old != smac => {
                self.taken_over(smac, old, src, pkt);
                self.bind(src_key, smac);
            }
            Some(_) => {}
            None => {
                self.bind(src_key, smac);
            }
        }
        if self.claimants.is_empty() {
            // No ARP seen yet: only the bindings to learn.
            return;
        }
        // Sent to a claimant for an address that comes from another MAC.
        if unicast_mac(&dmac) && self.claimants.contains_key(&dmac) {
            if let Some(bound) = self.bindings.get(&addr_key(dst)).copied() {
                if bound != dmac {
                    self.taken_over(dmac, bound, dst, pkt);
                }
            }
        }
    }

    /// Counts a frame of a taken-over address that goes through its claimant.
    fn count_taken_over(
        &mut self,
        smac: [u8; 6],
        dmac: [u8; 6],
        src: IpAddr,
        dst: IpAddr,
        pkt: &Packet<'_>,
    ) {
        for (mac, ip) in [(smac, src), (dmac, dst)] {
            if let Some(c) = self.claimants.get_mut(&mac) {
                if c.taken_ips.contains(&ip) {
                    c.taken_frames += 1;
                    if c.takeover_frames.len() < MAX_FINDING_FRAMES {
                        c.takeover_frames.push(pkt.number);
                    }
                    break;
                }
            }
        }
    }

    fn event(mac: &[u8; 6], c: &Claimant) -> Option<ArpSpoofingEvent> {
        let takeover = c.taken_frames >= MIN_TAKEOVER_FRAMES;
        let suspect = c.gratuitous > 0 || !c.changes.is_empty() || c.ips.len() > 1;
        let (event_type, severity) = if takeover {
            let s = if suspect {
                Severity::High
            } else {
                Severity::Medium
            };
            ("traffic_takeover", s)
        } else if !c.changes.is_empty() {
            ("binding_change", Severity::Medium)
        } else if c.storm {
            ("gratuitous_storm", Severity::Medium)
        } else if c.ips.len() > 1 {
            ("multiple_addresses", Severity::Low)
        } else {
            return None;
        };
        let m = mac_text(mac);
        let mut frames = c.frames.clone();
        if takeover {
            // The claims first, then the first frames taken over.
            let room = MAX_FINDING_FRAMES.saturating_sub(frames.len()).min(5);
            frames.extend(c.takeover_frames.iter().take(room).copied());
        }
        frames.sort_unstable();
        frames.dedup();
        frames.truncate(MAX_FINDING_FRAMES);
        Some(ArpSpoofingEvent {
            mac: m.clone(),
            event_type: event_type.to_string(),
            severity,
            claimed_ips: c.ips.iter().map(Ipv4Addr::to_string).collect(),
            binding_changes: c
                .changes
                .iter()
                .map(|(ip, old)| format!("{ip}={}", mac_text(old)))
                .collect(),
            previous_macs: if takeover {
                c.previous_macs.iter().map(mac_text).collect()
            } else {
                Vec::new()
            },
            frames_taken_over: c.taken_frames,
            addresses_taken_over: if takeover {
                c.taken_ips.iter().map(IpAddr::to_string).collect()
            } else {
                Vec::new()
            },
            arp_packets: c.arp_packets,
            gratuitous_arps: c.gratuitous,
            start_time: crate::time::iso_utc(c.first_ns),
            first_packet: c.first_frame,
            display_filter: format!("arp.src.hw_mac == {m} || eth.addr == {m}"),
            frames,
        })
    }
}

impl Analyzer for ArpSpoofingDetection {
    fn packets(&self) -> Kinds {
        Kinds::ALL
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        match &pkt.network {
            Network::Arp(Some(a)) => self.on_arp(a, pkt),
            Network::Ip(ip) => {
                if !self.include_localhost && (is_loopback(ip.src) || is_loopback(ip.dst)) {
                    return;
                }
                self.on_ip(ip.src, ip.dst, pkt, meta);
            }
            _ => {}
        }
    }

    fn prefetches(&self) -> Prefetch {
        Prefetch::Near
    }

    fn prefetch(&self, ahead: &PacketMeta) {
        self.checked.prefetch(ahead);
    }

    fn on_flow_end(&mut self, flow: &FlowRecord) {
        self.checked.take(flow.slot);
    }

    fn finish(self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let mut events: Vec<ArpSpoofingEvent> = self
            .claimants
            .iter()
            .filter_map(|(mac, c)| Self::event(mac, c))
            .collect();
        worst_first(
            &mut events,
            |e| e.severity,
            |e| e.frames_taken_over as f64,
            |e| e.first_packet,
        );
        let severity_breakdown = SeverityBreakdown::of(events.iter().map(|e| &e.severity));
        let total = events.len() as u64;
        events.truncate(MAX_FINDINGS);
        report.findings.extend(events.iter().map(finding));
        report.arp_spoofing_detection = Some(ArpSpoofingReport {
            total_spoofing_detected: total,
            severity_breakdown,
            arp_packets: self.arp,
            arp_requests: self.requests_seen,
            arp_replies: self.replies,
            gratuitous_arps: self.gratuitous,
            addresses_bound: self.bindings.len() as u64,
            spoofing_events: events,
            detection_thresholds: ArpSpoofingThresholds {
                min_takeover_frames: MIN_TAKEOVER_FRAMES,
                storm_gratuitous: STORM_GRATUITOUS as u64,
                storm_window_seconds: (STORM_WINDOW_NS / 1_000_000_000) as f64,
            },
        });
    }
}

/// The typed finding of one claiming MAC.
fn finding(e: &ArpSpoofingEvent) -> Finding {
    let claimed = e.claimed_ips.join(", ");
    let what = match e.event_type.as_str() {
        "traffic_takeover" => format!(
            "claims {claimed} in ARP, then the traffic of {}, which went through {}, goes through it ({} frames)",
            e.addresses_taken_over.join(", "),
            e.previous_macs.join(", "),
            e.frames_taken_over
        ),
        "binding_change" => format!(
            "claims {claimed} in ARP, taking over from {}",
            e.binding_changes.join(", ")
        ),
        "gratuitous_storm" => format!(
            "sends {} gratuitous or unsolicited ARP replies for {claimed}",
            e.gratuitous_arps
        ),
        _ => format!("claims several addresses: {claimed}"),
    };
    let summary = format!("ARP spoofing: MAC {} {what}", e.mac);
    let evidence = Evidence::new()
        .with("claimed_addresses", e.claimed_ips.len() as f64)
        .with("binding_changes", e.binding_changes.len() as f64)
        .with("frames_taken_over", e.frames_taken_over as f64)
        .with("addresses_taken_over", e.addresses_taken_over.len() as f64)
        .with("arp_packets", e.arp_packets as f64)
        .with("gratuitous_arps", e.gratuitous_arps as f64);
    let mut hosts = vec![e.mac.clone()];
    hosts.extend(e.claimed_ips.iter().cloned());
    hosts.extend(e.previous_macs.iter().cloned());
    Finding::new("arp_spoofing_detection", e.severity, summary)
        .cause(Cause::ArpSpoofing)
        .evidence(evidence)
        .hosts(hosts)
        .frames(e.frames.iter().copied())
        .filter(e.display_filter.clone())
}
