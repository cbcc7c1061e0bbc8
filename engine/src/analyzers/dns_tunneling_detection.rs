//! `dns_tunneling_detection`: data smuggled in DNS query names (iodine, dnscat2, DNSExfiltrator).
//!
//! Queries (UDP and single-segment TCP, port 53) are grouped per (client, base domain = last two
//! labels), skipping v5's whitelist of busy legitimate zones. A group with at least 3 queries is
//! reported when at least 2 of these indicators hold (v5's list):
//! * average name length above `dns_tunnel_avg_length`;
//! * average Shannon entropy of the subdomain part above `dns_tunnel_entropy` bits per character;
//! * more than `dns_tunnel_queries_per_minute` queries per minute (over at least one second);
//! * encoded labels (base64 ≥ 32 characters with high entropy, long hex, UUIDs, random ≥ 40
//!   characters) in at least 30 % of the queries;
//! * TXT or NULL queries above 30 % (they carry the most data back).
//!
//! The score adds the indicators' weights; the severity comes from the score. Without a sign that
//! the names carry data (high entropy or encoded labels), a group is at most low: long names at a
//! high rate are also what reverse lookups, DNS-SD browsing and busy CDNs look like, and a TXT
//! lookup burst is what mail servers checking SPF/DKIM do.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::dns::{parse_message_into, Message, DNS_PORT};
use super::security::{excluded, ip_field, worst_first, Severity, SeverityBreakdown};
use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::config::Config;
use crate::decode::Packet;
use crate::finding::{Cause, Evidence, Finding};
use crate::flow::{fast_map, FastMap};
use crate::report::{Report, MAX_FINDINGS};
use crate::stats::round3;
use crate::Options;

/// (client, base domain) groups followed; past this, groups with a single query are dropped,
/// then new groups are not followed.
const MAX_GROUPS: usize = 20_000;
const MIN_QUERIES: u64 = 3;
// A reported group has its name (written on its second query).
const _: () = assert!(MIN_QUERIES >= 2);
const MIN_INDICATORS: usize = 2;
/// Share of queries above which TXT/NULL use or encoded labels count as an indicator.
const SHARE_INDICATOR: f64 = 0.3;
/// Long or encoded names kept as examples per group.
const SAMPLE_NAMES: usize = 5;
/// v5's encoding patterns.
const BASE64_MIN_LEN: usize = 32;
const BASE64_MIN_ENTROPY: f64 = 5.0;
const HEX_MIN_LEN: usize = 32;
const RANDOM_MIN_LEN: usize = 40;
const QTYPE_NULL: u16 = 10;
const QTYPE_TXT: u16 = 16;

/// Zones that legitimately produce long, random-looking names (v5's whitelist).
const WHITELIST: [&str; 24] = [
    "google.com",
    "googleapis.com",
    "gstatic.com",
    "googlevideo.com",
    "microsoft.com",
    "windows.com",
    "windowsupdate.com",
    "office.com",
    "office365.com",
    "live.com",
    "azure.com",
    "azureedge.net",
    "amazonaws.com",
    "amazon.com",
    "cloudfront.net",
    "akamai.net",
    "akamaiedge.net",
    "akamaihd.net",
    "fastly.net",
    "cloudflare.com",
    "apple.com",
    "icloud.com",
    "cluster.local",
    "in-addr.arpa",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TunnelingEvent {
    pub source_ip: String,
    pub domain: String,
    pub severity: Severity,
    pub score: u32,
    pub indicators: Vec<String>,
    pub query_count: u64,
    pub avg_query_length: f64,
    pub max_query_length: u64,
    /// Bits per character of the subdomain part, averaged over queries.
    pub avg_entropy: f64,
    pub queries_per_minute: f64,
    pub txt_null_ratio: f64,
    pub encoded_ratio: f64,
    pub start_time: String,
    pub duration: f64,
    pub first_packet: u64,
    pub sample_queries: Vec<String>,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TunnelingThresholds {
    pub avg_length: f64,
    pub entropy: f64,
    pub queries_per_minute: f64,
    pub min_queries: u64,
    pub min_indicators: usize,
    pub txt_null_ratio: f64,
    pub whitelist: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DnsTunnelingReport {
    pub total_tunneling_detected: u64,
    pub severity_breakdown: SeverityBreakdown,
    /// How many reported groups show each indicator.
    pub indicator_breakdown: BTreeMap<String, u64>,
    /// Worst first, at most `MAX_FINDINGS`.
    pub tunneling_events: Vec<TunnelingEvent>,
    pub queries_examined: u64,
    pub whitelisted_queries: u64,
    pub groups_not_tracked: u64,
    pub detection_thresholds: TunnelingThresholds,
}

struct Group {
    /// Hash of (source, base domain): the group's key in the index.
    key: u64,
    src: IpAddr,
    /// Written on the group's second query: most groups see one query, never reach
    /// MIN_QUERIES and are never reported, so their name is never copied.
    base: String,
    queries: u64,
    length_sum: u64,
    max_length: u64,
    entropy_sum: f64,
    txt_null: u64,
    encoded: u64,
    first_ns: i64,
    last_ns: i64,
    first_frame: u64,
    samples: Vec<String>,
}

pub struct DnsTunnelingDetection {
    avg_length: f64,
    entropy: f64,
    qpm: f64,
    include_localhost: bool,
    /// Group by hash of (source, base domain), as an index into `group_list`: the index's
    /// small entries stay in cache, and only the matching group is read.
    groups: FastMap<u64, u32>,
    group_list: Vec<Group>,
    hasher: foldhash::fast::RandomState,
    /// The message being read, kept so its name's allocation is reused.
    message: Message,
    examined: u64,
    whitelisted: u64,
    not_tracked: u64,
}

/// Last two labels of a name ("a.b.example.com" → "example.com"), and the part before them.
fn split_base(name: &str) -> (&str, &str) {
    let name = name.trim_end_matches('.');
    let mut dots = name.rmatch_indices('.');
    let _ = dots.next();
    match dots.next() {
        Some((i, _)) => (&name[..i], &name[i + 1..]),
        None => ("", name),
    }
}

/// Shannon entropy in bits per character, label separators (dots) left out.
///
/// Computed as `log2(n) − Σ k·log2(k) / n` over the symbol counts `k`, with `k·log2(k)` from a
/// table: one logarithm per name instead of one per distinct symbol.
pub fn shannon_entropy(s: &[u8]) -> f64 {
    static K_LOG2_K: std::sync::LazyLock<[f64; 256]> = std::sync::LazyLock::new(|| {
        std::array::from_fn(|k| {
            if k < 2 {
                0.0
            } else {
                k as f64 * (k as f64).log2()
            }
        })
    });
    let table = &*K_LOG2_K;
    let k_log2_k = |k: u32| match table.get(k as usize) {
        Some(v) => *v,
        None => f64::from(k) * f64::from(k).log2(),
    };
    let mut counts = [0u32; 256];
    let mut total = 0u32;
    for &c in s.iter().filter(|&&c| c != b'.') {
        counts[usize::from(c)] += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    // Only the symbols present contribute; walking the input again avoids scanning 256 slots.
    let mut sum = 0.0;
    for &c in s.iter().filter(|&&c| c != b'.') {
        let k = &mut counts[usize::from(c)];
        if *k > 0 {
            sum += k_log2_k(*k);
            *k = 0;
        }
    }
    let n = f64::from(total);
    (n.log2() - sum / n).max(0.0)
}

/// One of v5's encoding patterns in a label.
fn encoded_label(label: &[u8]) -> bool {
    let len = label.len();
    let is_hex = |c: &u8| c.is_ascii_hexdigit();
    let is_b64 =
        |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'-' | b'_');
    if len >= HEX_MIN_LEN && label.iter().all(is_hex) {
        return true;
    }
    if len == 36
        && label.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                is_hex(c)
            }
        })
    {
        return true;
    }
    if len >= BASE64_MIN_LEN && label.iter().all(is_b64) {
        if shannon_entropy(label) > BASE64_MIN_ENTROPY {
            return true;
        }
        // "Random": long, mixed letters and digits, no vowel-rich words.
        let digits = label.iter().filter(|c| c.is_ascii_digit()).count();
        return len >= RANDOM_MIN_LEN && digits * 5 >= len;
    }
    false
}

impl DnsTunnelingDetection {
    pub fn new(config: &Config, options: &Options) -> Self {
        let t = &config.thresholds;
        DnsTunnelingDetection {
            avg_length: t.dns_tunnel_avg_length,
            entropy: t.dns_tunnel_entropy,
            qpm: t.dns_tunnel_queries_per_minute,
            include_localhost: options.include_localhost,
            groups: fast_map(),
            group_list: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
            message: Message::default(),
            examined: 0,
            whitelisted: 0,
            not_tracked: 0,
        }
    }

    fn on_query(&mut self, src: IpAddr, name: &str, qtype: u16, pkt: &Packet<'_>) {
        self.examined += 1;
        let (sub, base) = split_base(name);
        if base.is_empty() || WHITELIST.iter().any(|w| base.eq_ignore_ascii_case(w)) {
            self.whitelisted += 1;
            return;
        }
        let key = self.hasher.hash_one((src, base));
        if self.groups.len() >= MAX_GROUPS && !self.groups.contains_key(&key) {
            self.group_list.retain(|g| g.queries > 1);
            self.groups.clear();
            for (i, g) in self.group_list.iter().enumerate() {
                self.groups.insert(g.key, i as u32);
            }
            if self.groups.len() >= MAX_GROUPS {
                self.not_tracked += 1;
                return;
            }
        }
        let list = &mut self.group_list;
        let index = *self.groups.entry(key).or_insert_with(|| {
            list.push(Group {
                key,
                src,
                base: String::new(),
                queries: 0,
                length_sum: 0,
                max_length: 0,
                entropy_sum: 0.0,
                txt_null: 0,
                encoded: 0,
                first_ns: pkt.ts_ns,
                last_ns: pkt.ts_ns,
                first_frame: pkt.number,
                samples: Vec::new(),
            });
            (list.len() - 1) as u32
        });
        let g = &mut self.group_list[index as usize];
        // A 64-bit hash collision (odds about 1e-11 at the table's size) would merge two
        // groups; the source is checked, the name is not (reading it costs a cache miss).
        if g.src != src {
            return;
        }
        let len = name.len() as u64;
        g.queries += 1;
        if g.queries == 2 {
            g.base = base.to_string();
        }
        g.length_sum += len;
        g.max_length = g.max_length.max(len);
        g.entropy_sum += shannon_entropy(sub.as_bytes());
        if qtype == QTYPE_TXT || qtype == QTYPE_NULL {
            g.txt_null += 1;
        }
        let encoded = sub.split('.').any(|l| encoded_label(l.as_bytes()));
        if encoded {
            g.encoded += 1;
        }
        g.last_ns = pkt.ts_ns;
        // Examples only of names that look like payload: ordinary names are never copied.
        let suspicious = encoded || len as f64 > self.avg_length;
        if suspicious && g.samples.len() < SAMPLE_NAMES {
            g.samples.push(name.to_string());
        }
    }

    fn event(&self, g: &Group) -> Option<TunnelingEvent> {
        if g.queries < MIN_QUERIES {
            return None;
        }
        let n = g.queries as f64;
        let avg_len = g.length_sum as f64 / n;
        let avg_entropy = g.entropy_sum / n;
        let duration = (g.last_ns - g.first_ns) as f64 / 1e9;
        let qpm = if duration >= 1.0 {
            n * 60.0 / duration
        } else {
            0.0
        };
        let txt = g.txt_null as f64 / n;
        let enc = g.encoded as f64 / n;
        let checks: [(&str, bool, u32); 5] = [
            ("long_queries", avg_len > self.avg_length, 25),
            ("high_entropy", avg_entropy > self.entropy, 25),
            ("high_query_rate", qpm > self.qpm, 15),
            ("encoded_labels", enc >= SHARE_INDICATOR, 20),
            ("txt_null_records", txt > SHARE_INDICATOR, 15),
        ];
        let indicators: Vec<String> = checks
            .iter()
            .filter(|c| c.1)
            .map(|c| c.0.to_string())
            .collect();
        if indicators.len() < MIN_INDICATORS {
            return None;
        }
        let score: u32 = checks.iter().filter(|c| c.1).map(|c| c.2).sum();
        let mut severity = match score {
            s if s >= 80 => Severity::Critical,
            s if s >= 60 => Severity::High,
            s if s >= 40 => Severity::Medium,
            _ => Severity::Low,
        };
        if !(checks[1].1 || checks[3].1) {
            severity = severity.min(Severity::Low);
        }
        Some(TunnelingEvent {
            source_ip: g.src.to_string(),
            domain: g.base.clone(),
            severity,
            score,
            indicators,
            query_count: g.queries,
            avg_query_length: round3(avg_len),
            max_query_length: g.max_length,
            avg_entropy: round3(avg_entropy),
            queries_per_minute: round3(qpm),
            txt_null_ratio: round3(txt),
            encoded_ratio: round3(enc),
            start_time: crate::time::iso_utc(g.first_ns),
            duration: round3(duration),
            first_packet: g.first_frame,
            sample_queries: g.samples.clone(),
            display_filter: format!(
                "{} && dns.qry.name contains \"{}\"",
                ip_field(g.src, "src"),
                g.base
            ),
        })
    }
}

impl Analyzer for DnsTunnelingDetection {
    fn packets(&self) -> Kinds {
        Kinds::DNS
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let payload = if let Some(u) = pkt.udp() {
            if u.dst_port != DNS_PORT {
                return;
            }
            u.payload
        } else if let Some(t) = pkt.tcp() {
            // A query in one segment: 2-byte length prefix (RFC 1035 section 4.2.2).
            if t.dst_port != DNS_PORT || pkt.tcp_payload.len() < 14 || meta.tcp.is_retransmission()
            {
                return;
            }
            &pkt.tcp_payload[2..]
        } else {
            return;
        };
        // Only queries (QR bit clear) are read, so responses cost nothing.
        if payload.len() < 12 || payload[2] & 0x80 != 0 {
            return;
        }
        let Some(ip) = pkt.ip() else { return };
        if excluded(ip, self.include_localhost) {
            return;
        }
        let mut m = std::mem::take(&mut self.message);
        if parse_message_into(payload, &mut m) && !m.qname.is_empty() && m.qname != "." {
            self.on_query(ip.src, &m.qname, m.qtype, pkt);
        }
        self.message = m;
    }

    fn finish(self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let mut events: Vec<TunnelingEvent> = self
            .group_list
            .iter()
            .filter_map(|g| self.event(g))
            .collect();
        worst_first(
            &mut events,
            |e| e.severity,
            |e| e.query_count as f64,
            |e| e.first_packet,
        );
        let mut indicator_breakdown = BTreeMap::new();
        for e in &events {
            for i in &e.indicators {
                *indicator_breakdown.entry(i.clone()).or_insert(0) += 1;
            }
        }
        let severity_breakdown = SeverityBreakdown::of(events.iter().map(|e| &e.severity));
        let total = events.len() as u64;
        events.truncate(MAX_FINDINGS);
        report.findings.extend(events.iter().map(finding));
        report.dns_tunneling_detection = Some(DnsTunnelingReport {
            total_tunneling_detected: total,
            severity_breakdown,
            indicator_breakdown,
            tunneling_events: events,
            queries_examined: self.examined,
            whitelisted_queries: self.whitelisted,
            groups_not_tracked: self.not_tracked,
            detection_thresholds: TunnelingThresholds {
                avg_length: self.avg_length,
                entropy: self.entropy,
                queries_per_minute: self.qpm,
                min_queries: MIN_QUERIES,
                min_indicators: MIN_INDICATORS,
                txt_null_ratio: SHARE_INDICATOR,
                whitelist: WHITELIST.iter().map(|w| w.to_string()).collect(),
            },
        });
    }
}

/// The typed finding of one (client, domain) group.
fn finding(e: &TunnelingEvent) -> Finding {
    let summary = format!(
        "Possible DNS tunnel: {} sent {} queries under {} ({}), names {:.0} characters on average, {:.2} bits/character",
        e.source_ip,
        e.query_count,
        e.domain,
        e.indicators.join(", "),
        e.avg_query_length,
        e.avg_entropy
    );
    let evidence = Evidence::new()
        .with("queries", e.query_count as f64)
        .with("avg_query_length", e.avg_query_length)
        .with("max_query_length", e.max_query_length as f64)
        .with("avg_entropy", e.avg_entropy)
        .with("queries_per_minute", e.queries_per_minute)
        .with("encoded_ratio", e.encoded_ratio)
        .with("txt_null_ratio", e.txt_null_ratio)
        .with("score", e.score);
    Finding::new("dns_tunneling_detection", e.severity, summary)
        .cause(Cause::DnsTunneling)
        .evidence(evidence)
        .hosts([e.source_ip.clone()])
        .frames([e.first_packet])
        .filter(e.display_filter.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_domain_is_the_last_two_labels() {
        assert_eq!(split_base("a.b.example.com"), ("a.b", "example.com"));
        assert_eq!(split_base("example.com."), ("", "example.com"));
        assert_eq!(split_base("localhost"), ("", "localhost"));
    }

    #[test]
    fn entropy_of_four_equally_likely_symbols_is_two_bits() {
        assert!((shannon_entropy(b"abcdabcd") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn hex_and_uuid_labels_are_encoded_and_words_are_not() {
        assert!(encoded_label(b"4a6f686e20446f6520736563726574206b6579"));
        assert!(encoded_label(b"123e4567-e89b-12d3-a456-426614174000"));
        assert!(!encoded_label(b"www"));
        assert!(!encoded_label(
            b"thisisaverylonglabelmadeofplainenglishwords"
        ));
    }
}
