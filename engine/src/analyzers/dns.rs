//! `dns`: DNS over UDP and TCP on port 53. Queries and responses are counted per frame (as
//! tshark's `dns.flags.response`), matched by conversation and transaction id (the latest query
//! with that id, like tshark's `dns.time`), and classified: success, slow (above
//! `dns_response_critical`), error (by rcode), timeout (unanswered while DNS traffic went on for
//! `dns_timeout` seconds).
//!
//! The parser reads the 12-byte header and the first question (RFC 1035 section 4.1) with the
//! limits below; anything malformed is counted, never trusted.

use std::collections::BTreeMap;

use std::hash::BuildHasher;

use crate::finding::{Cause, Evidence, Finding, Severity};
use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::config::Config;
use crate::decode::Packet;
use crate::flow::{fast_map, Direction, FastMap, FlowKey};
use crate::report::{Report, MAX_FINDINGS, MAX_RANKED};
use crate::stats::{round3, Distribution, Summary};
use crate::Options;

/// RFC 1035 section 2.3.4: names are at most 255 octets.
const MAX_NAME_BYTES: usize = 255;
/// Compression pointers followed per name before giving up (a loop would never end).
const MAX_POINTERS: usize = 16;
/// Largest DNS message over TCP (the 2-byte length prefix), RFC 1035 section 4.2.2.
const MAX_TCP_MESSAGE: usize = 65_535;
/// Queries waiting for an answer; past this the oldest are counted as unanswered.
const MAX_PENDING: usize = 100_000;
/// Distinct names tracked for the problem ranking and repeat detection.
const MAX_NAMES: usize = 50_000;
/// Smallest size of the repeat-detection table at which it is pruned.
const PRUNE_ASKED_MIN: usize = 1_024;
/// v5: the same name and type asked again within this time is a repeated query.
const REPEAT_WINDOW_NS: i64 = 2_000_000_000;
pub use crate::analysis::DNS_PORT;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub id: u16,
    pub is_response: bool,
    pub opcode: u8,
    pub rcode: u8,
    pub qname: String,
    pub qtype: u16,
    pub answers: u16,
}

/// Parses a DNS message for the analysis: a query with its first question, a response with its
/// header only (its question is the query's, already known), which saves an allocation per
/// response.
fn parse_for_analysis(b: &[u8]) -> Option<Message> {
    if b.get(2).is_some_and(|flags| flags & 0x80 != 0) {
        parse_header(b)
    } else {
        parse_message(b)
    }
}

/// Parses a DNS message header only (`qname` left empty).
pub fn parse_header(b: &[u8]) -> Option<Message> {
    if b.len() < 12 {
        return None;
    }
    Some(Message {
        id: u16::from_be_bytes([b[0], b[1]]),
        is_response: b[2] & 0x80 != 0,
        opcode: (b[2] >> 3) & 0x0f,
        rcode: b[3] & 0x0f,
        qname: String::new(),
        qtype: 0,
        answers: u16::from_be_bytes([b[6], b[7]]),
    })
}

/// Parses a DNS message header and its first question.
pub fn parse_message(b: &[u8]) -> Option<Message> {
    let mut m = Message::default();
    parse_message_into(b, &mut m).then_some(m)
}

/// [`parse_message`] into `m`, reusing its name's allocation: for an analysis that only looks
/// at each name, this saves an allocation per query. False when `b` is not a DNS message.
pub fn parse_message_into(b: &[u8], m: &mut Message) -> bool {
    if b.len() < 12 {
        return false;
    }
    m.id = u16::from_be_bytes([b[0], b[1]]);
    m.is_response = b[2] & 0x80 != 0;
    m.opcode = (b[2] >> 3) & 0x0f;
    m.rcode = b[3] & 0x0f;
    m.answers = u16::from_be_bytes([b[6], b[7]]);
    m.qname.clear();
    m.qtype = 0;
    let qdcount = u16::from_be_bytes([b[4], b[5]]);
    if qdcount > 0 {
        // Room for most names at once: growing from empty cost three reallocations a query.
        m.qname.reserve(64);
        match read_name(b, 12, &mut m.qname) {
            Some(end) => {
                if let Some(t) = b.get(end..end + 2) {
                    m.qtype = u16::from_be_bytes([t[0], t[1]]);
                }
            }
            None => m.qname.clear(),
        }
    }
    true
}

/// Appends the name at `pos` to `name` (empty beforehand) and returns where the name ends in
/// the message; None when it is malformed.
fn read_name(b: &[u8], mut pos: usize, name: &mut String) -> Option<usize> {
    let mut end = None;
    let mut pointers = 0;
    loop {
        let len = *b.get(pos)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => {
                if name.is_empty() {
                    name.push('.');
                }
                return Some(end.unwrap_or(pos + 1));
            }
            0x00 => {
                let label = b.get(pos + 1..pos + 1 + len)?;
                if name.len() + len + 1 > MAX_NAME_BYTES {
                    return None;
                }
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(
                    label
                        .iter()
                        .map(|&c| if c.is_ascii_graphic() { c as char } else { '?' }),
                );
                pos += 1 + len;
            }
            0xc0 => {
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return None;
                }
                let lo = *b.get(pos + 1)? as usize;
                end.get_or_insert(pos + 2);
                pos = ((len & 0x3f) << 8) | lo;
            }
            _ => return None,
        }
    }
}

pub fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        6 => "YXDOMAIN".into(),
        7 => "YXRRSET".into(),
        8 => "NXRRSET".into(),
        9 => "NOTAUTH".into(),
        10 => "NOTZONE".into(),
        other => format!("RCODE{other}"),
    }
}

pub fn qtype_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        10 => "NULL".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        65 => "HTTPS".into(),
        252 => "AXFR".into(),
        255 => "ANY".into(),
        other => format!("TYPE{other}"),
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DnsTransaction {
    pub query_packet: u64,
    pub response_packet: Option<u64>,
    pub client: String,
    pub server: String,
    pub transaction_id: u16,
    pub query_name: String,
    pub query_type: String,
    pub response_time_ms: Option<f64>,
    pub rcode: Option<String>,
    pub status: String,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DomainProblems {
    pub domain: String,
    pub errors: u64,
    pub timeouts: u64,
    pub slow: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DnsThresholds {
    pub dns_response_warning: f64,
    pub dns_response_critical: f64,
    pub dns_timeout: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DnsReport {
    /// Frames carrying a DNS query (port 53, UDP and TCP).
    pub total_queries: u64,
    /// Frames carrying a DNS response.
    pub total_responses: u64,
    pub total_transactions: u64,
    pub successful_transactions: u64,
    pub slow_transactions: u64,
    pub warning_transactions: u64,
    pub error_transactions: u64,
    pub timeout_transactions: u64,
    /// Queries never answered but not (yet) timed out when the capture ended.
    pub unanswered_queries: u64,
    pub repeated_queries: u64,
    pub malformed_messages: u64,
    pub k8s_expected_errors: u64,
    pub real_errors: u64,
    /// Response times in milliseconds.
    pub response_time_statistics: Summary,
    /// (upper edge in ms, responses) for a chart.
    pub response_time_histogram: Vec<(f64, u64)>,
    pub error_types_breakdown: BTreeMap<String, u64>,
    pub query_types: BTreeMap<String, u64>,
    pub thresholds: DnsThresholds,
    pub top_problematic_domains: Vec<DomainProblems>,
    pub error_transactions_details: Vec<DnsTransaction>,
    pub slow_transactions_details: Vec<DnsTransaction>,
    pub timeout_details: Vec<DnsTransaction>,
}

#[derive(Clone)]
struct PendingQuery {
    key: FlowKey,
    ts: i64,
    frame: u64,
    client_dir: Direction,
    qname: String,
    qtype: u16,
}

pub struct Dns {
    warning_ms: f64,
    critical_ms: f64,
    timeout_ns: i64,
    queries: u64,
    responses: u64,
    transactions: u64,
    success: u64,
    slow: u64,
    warning: u64,
    errors: u64,
    timeouts: u64,
    unanswered: u64,
    repeated: u64,
    malformed: u64,
    k8s: u64,
    times: Distribution,
    rcodes: BTreeMap<String, u64>,
    qtypes: BTreeMap<u16, u64>,
    name_hasher: foldhash::quality::RandomState,
    /// Unanswered queries by (flow id, DNS id): the flow id is unique over the capture and
    /// cheaper to hash than the 5-tuple.
    pending: FastMap<(u64, u16), PendingQuery>,
    /// Hash of (source, name, type) → last time asked.
    last_asked: FastMap<u64, i64>,
    /// Size of `last_asked` at which its stale entries are dropped.
    prune_asked_at: usize,
    problems: FastMap<String, DomainProblems>,
    last_dns_ts: i64,
    error_details: Vec<DnsTransaction>,
    slow_details: Vec<DnsTransaction>,
    timeout_details: Vec<DnsTransaction>,
    tcp_buffers: FastMap<(FlowKey, Direction), Vec<u8>>,
}

impl Dns {
    pub fn new(config: &Config, _options: &Options) -> Self {
        let t = &config.thresholds;
        Dns {
            warning_ms: t.dns_response_warning * 1000.0,
            critical_ms: t.dns_response_critical * 1000.0,
            timeout_ns: (t.dns_timeout * 1e9) as i64,
            queries: 0,
            responses: 0,
            transactions: 0,
            success: 0,
            slow: 0,
            warning: 0,
            errors: 0,
            timeouts: 0,
            unanswered: 0,
            repeated: 0,
            malformed: 0,
            k8s: 0,
            times: Distribution::default(),
            rcodes: BTreeMap::new(),
            qtypes: BTreeMap::new(),
            name_hasher: Default::default(),
            pending: fast_map(),
            last_asked: fast_map(),
            prune_asked_at: PRUNE_ASKED_MIN,
            problems: fast_map(),
            last_dns_ts: 0,
            error_details: Vec::new(),
            slow_details: Vec::new(),
            timeout_details: Vec::new(),
            tcp_buffers: fast_map(),
        }
    }

    fn problem(&mut self, name: &str) -> Option<&mut DomainProblems> {
        if !self.problems.contains_key(name) && self.problems.len() >= MAX_NAMES {
            return None;
        }
        Some(
            self.problems
                .entry(name.to_string())
                .or_insert_with(|| DomainProblems {
                    domain: name.to_string(),
                    ..Default::default()
                }),
        )
    }

    fn transaction(key: &FlowKey, q: &PendingQuery, id: u16) -> DnsTransaction {
        let (c, cp, s, sp) = key.oriented(q.client_dir);
        DnsTransaction {
            query_packet: q.frame,
            response_packet: None,
            client: crate::flow::endpoint(c, cp),
            server: crate::flow::endpoint(s, sp),
            transaction_id: id,
            query_name: q.qname.clone(),
            query_type: qtype_name(q.qtype),
            response_time_ms: None,
            rcode: None,
            status: String::new(),
            display_filter: format!("dns.id == 0x{id:04x} && ip.addr == {c}"),
        }
    }

    /// Queries older than the timeout, with DNS traffic seen since, are timeouts.
    fn expire(&mut self, now: i64, force_all: bool) {
        let timeout = self.timeout_ns;
        let expired: Vec<(u64, u16)> = self
            .pending
            .iter()
            .filter(|(_, q)| force_all || now - q.ts >= timeout)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some(q) = self.pending.remove(&k) {
                self.transactions += 1;
                if self.last_dns_ts - q.ts >= timeout {
                    self.timeouts += 1;
                    if let Some(p) = self.problem(&q.qname) {
                        p.timeouts += 1;
                    }
                    if self.timeout_details.len() < MAX_FINDINGS {
                        let mut t = Self::transaction(&q.key, &q, k.1);
                        t.status = "timeout".into();
                        self.timeout_details.push(t);
                    }
                } else {
                    self.unanswered += 1;
                }
            }
        }
    }

    fn maybe_expire(&mut self, pkt: &Packet<'_>) {
        if pkt.number % 4096 == 0 {
            let now = pkt.ts_ns;
            // Expire on capture time only once the timeout has passed for the oldest queries.
            self.expire(now - self.timeout_ns * 2, false);
        }
    }

    fn on_message(&mut self, m: Message, pkt: &Packet<'_>, flow: (FlowKey, Direction, u64)) {
        let (key, dir, flow_id) = flow;
        if !m.is_response {
            *self.qtypes.entry(m.qtype).or_insert(0) += 1;
            if let Some(ip) = pkt.ip() {
                if self.last_asked.len() >= self.prune_asked_at {
                    // Only the last REPEAT_WINDOW_NS matter: pruning whenever the table has
                    // doubled keeps it about twice the queries of one window, small enough to
                    // stay in cache, at an amortised constant cost per query.
                    let now = pkt.ts_ns;
                    self.last_asked.retain(|_, t| now - *t < REPEAT_WINDOW_NS);
                    if self.last_asked.len() >= MAX_NAMES {
                        self.last_asked.clear();
                    }
                    self.prune_asked_at =
                        (self.last_asked.len() * 2).clamp(PRUNE_ASKED_MIN, MAX_NAMES);
                }
                // One 64-bit hash of (source, name, type) as the key: a collision (odds about
                // 1e-13 at this table's size) would count one query as repeated.
                let asked = self.name_hasher.hash_one((ip.src, &m.qname, m.qtype));
                if let Some(prev) = self.last_asked.insert(asked, pkt.ts_ns) {
                    if pkt.ts_ns - prev < REPEAT_WINDOW_NS {
                        self.repeated += 1;
                    }
                }
            }
            if self.pending.len() >= MAX_PENDING {
                self.expire(pkt.ts_ns, true);
            }
            let q = PendingQuery {
                key,
                ts: pkt.ts_ns,
                frame: pkt.number,
                client_dir: dir,
                qname: m.qname,
                qtype: m.qtype,
            };
            if self.pending.insert((flow_id, m.id), q).is_some() {
                // A retransmitted query (same id): tshark times the answer from the latest one.
            }
            return;
        }
        let Some(q) = self.pending.remove(&(flow_id, m.id)) else {
            return;
        };
        self.transactions += 1;
        let ms = (pkt.ts_ns - q.ts) as f64 / 1e6;
        self.times.add(ms);
        let details = |status: &str| {
            let mut t = Self::transaction(&key, &q, m.id);
            t.response_packet = Some(pkt.number);
            t.response_time_ms = Some(round3(ms));
            t.rcode = Some(rcode_name(m.rcode));
            t.status = status.into();
            t
        };
        if m.rcode != 0 {
            self.errors += 1;
            *self.rcodes.entry(rcode_name(m.rcode)).or_insert(0) += 1;
            if m.rcode == 3 && q.qname.ends_with(".cluster.local") {
                self.k8s += 1;
            }
            if let Some(p) = self.problem(&q.qname) {
                p.errors += 1;
            }
            if self.error_details.len() < MAX_FINDINGS {
                self.error_details.push(details("error"));
            }
        } else if ms > self.critical_ms {
            self.slow += 1;
            if let Some(p) = self.problem(&q.qname) {
                p.slow += 1;
            }
            let rounded = Some(round3(ms));
            if self.slow_details.len() < MAX_FINDINGS
                || self
                    .slow_details
                    .last()
                    .is_some_and(|l| l.response_time_ms < rounded)
            {
                self.slow_details.push(details("slow"));
                self.slow_details.sort_by(|a, b| {
                    b.response_time_ms
                        .partial_cmp(&a.response_time_ms)
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
                self.slow_details.truncate(MAX_FINDINGS);
            }
        } else {
            self.success += 1;
            if ms > self.warning_ms {
                self.warning += 1;
            }
        }
    }
}

impl Analyzer for Dns {
    fn packets(&self) -> Kinds {
        Kinds::DNS
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let Some((key, dir)) = meta.flow else { return };
        let mut messages: Vec<Message> = Vec::new();
        if let Some(u) = pkt.udp() {
            if u.src_port != DNS_PORT && u.dst_port != DNS_PORT {
                return;
            }
            // One message per datagram: handled without collecting.
            let Some(m) = parse_for_analysis(u.payload) else {
                self.malformed += 1;
                return;
            };
            self.last_dns_ts = pkt.ts_ns;
            if m.is_response {
                self.responses += 1;
            } else {
                self.queries += 1;
            }
            self.on_message(m, pkt, (key, dir, meta.flow_id));
            self.maybe_expire(pkt);
            return;
        } else if let Some(t) = pkt.tcp() {
            if t.src_port != DNS_PORT && t.dst_port != DNS_PORT || pkt.tcp_payload.is_empty() {
                return;
            }
            if meta.tcp.is_retransmission() {
                return;
            }
            let buf = self.tcp_buffers.entry((key, dir)).or_default();
            buf.extend_from_slice(pkt.tcp_payload);
            loop {
                if buf.len() < 2 {
                    break;
                }
                let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
                if buf.len() < 2 + len {
                    break;
                }
                match parse_for_analysis(&buf[2..2 + len]) {
                    Some(m) => messages.push(m),
                    None => self.malformed += 1,
                }
                buf.drain(..2 + len);
            }
            if buf.len() > MAX_TCP_MESSAGE + 2 {
                buf.clear();
            }
            if buf.is_empty() {
                self.tcp_buffers.remove(&(key, dir));
            }
            if messages.is_empty() {
                return;
            }
        } else {
            return;
        }
        self.last_dns_ts = pkt.ts_ns;
        if messages.iter().any(|m| !m.is_response) {
            self.queries += 1;
        }
        if messages.iter().any(|m| m.is_response) {
            self.responses += 1;
        }
        for m in messages {
            self.on_message(m, pkt, (key, dir, meta.flow_id));
        }
        self.maybe_expire(pkt);
    }

    fn finish(mut self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let now = self.last_dns_ts;
        self.expire(now, true);
        let mut problems: Vec<DomainProblems> =
            std::mem::take(&mut self.problems).into_values().collect();
        problems.sort_by(|a, b| {
            (b.errors + b.timeouts + b.slow)
                .cmp(&(a.errors + a.timeouts + a.slow))
                .then(a.domain.cmp(&b.domain))
        });
        problems.truncate(MAX_RANKED);
        let p90 = self.times.quantile(0.9);
        let max_ms = self.times.max();
        report.dns = Some(DnsReport {
            total_queries: self.queries,
            total_responses: self.responses,
            total_transactions: self.transactions,
            successful_transactions: self.success,
            slow_transactions: self.slow,
            warning_transactions: self.warning,
            error_transactions: self.errors,
            timeout_transactions: self.timeouts,
            unanswered_queries: self.unanswered,
            repeated_queries: self.repeated,
            malformed_messages: self.malformed,
            k8s_expected_errors: self.k8s,
            real_errors: self.errors - self.k8s,
            response_time_statistics: self.times.summary(),
            response_time_histogram: self
                .times
                .histogram(20)
                .into_iter()
                .map(|(e, n)| (round3(e), n))
                .collect(),
            error_types_breakdown: self.rcodes,
            query_types: self
                .qtypes
                .iter()
                .map(|(t, n)| (qtype_name(*t), *n))
                .collect(),
            thresholds: DnsThresholds {
                dns_response_warning: self.warning_ms / 1000.0,
                dns_response_critical: self.critical_ms / 1000.0,
                dns_timeout: self.timeout_ns as f64 / 1e9,
            },
            top_problematic_domains: problems,
            error_transactions_details: self.error_details,
            slow_transactions_details: self.slow_details,
            timeout_details: self.timeout_details,
        });
        if let Some(dns) = &report.dns {
            report.findings.extend(findings(dns, p90, max_ms));
        }
    }
}

/// DNS failures (error answers other than Kubernetes search-path misses, and queries never
/// answered) and slowness (the 90th percentile of the answer time), each by its share of the
/// transactions: one NXDOMAIN among many lookups is worth knowing, not a problem.
fn findings(dns: &DnsReport, p90_ms: f64, max_ms: f64) -> Vec<Finding> {
    let mut out = Vec::new();
    let transactions = dns.total_transactions.max(1) as f64;
    let failed = dns.real_errors + dns.timeout_transactions;
    if failed > 0 {
        let share = failed as f64 / transactions;
        let hard = dns.timeout_transactions
            + dns
                .error_types_breakdown
                .iter()
                .filter(|(rcode, _)| rcode.as_str() != "NXDOMAIN")
                .map(|(_, n)| n)
                .sum::<u64>();
        let mut sev = if failed < 2 {
            Severity::Info
        } else {
            Severity::by_thresholds(share, [Some(0.25), Some(0.5), None, None])
        };
        if hard * 2 > failed && failed >= 3 && share >= 0.5 {
            sev = sev.max(Severity::High);
        }
        let mut rcodes: Vec<String> = dns
            .error_types_breakdown
            .iter()
            .map(|(r, n)| format!("{n}×{r}"))
            .collect();
        if dns.timeout_transactions > 0 {
            rcodes.push(format!("{} unanswered", dns.timeout_transactions));
        }
        let details = dns
            .error_transactions_details
            .iter()
            .chain(&dns.timeout_details);
        let frames: Vec<u64> = details
            .clone()
            .map(|t| t.response_packet.unwrap_or(t.query_packet))
            .collect();
        let mut hosts: Vec<String> = Vec::new();
        for t in details {
            if !hosts.contains(&t.server) {
                hosts.push(t.server.clone());
            }
        }
        out.push(
            Finding::new(
                "dns",
                sev,
                format!(
                    "{failed} of {} DNS lookups failed ({})",
                    dns.total_transactions,
                    rcodes.join(", ")
                ),
            )
            .cause(Cause::DnsFailure)
            .evidence(
                Evidence::new()
                    .with("failed_lookups", failed as f64)
                    .with("lookups", dns.total_transactions as f64)
                    .with("unanswered", dns.timeout_transactions as f64),
            )
            .hosts(hosts)
            .frames(frames)
            .filter("dns.flags.rcode != 0 || (dns.flags.response == 0 && !dns.response_in)"),
        );
    }
    let answered = dns.total_transactions - dns.timeout_transactions - dns.unanswered_queries;
    if answered > 0 && max_ms >= 300.0 {
        let slow = &dns.slow_transactions_details;
        let mut sev =
            Severity::by_thresholds(p90_ms, [Some(300.0), Some(800.0), Some(2000.0), None]);
        if answered < 3 || dns.slow_transactions + dns.warning_transactions < 2 {
            sev = sev.min(Severity::Info);
        }
        out.push(
            Finding::new(
                "dns",
                sev,
                format!(
                    "DNS answers took {p90_ms:.0} ms at the 90th percentile (slowest {max_ms:.0} ms, {} over {:.0} ms)",
                    dns.slow_transactions,
                    dns.thresholds.dns_response_critical * 1000.0
                ),
            )
            .cause(Cause::DnsSlow)
            .evidence(
                Evidence::new()
                    .with("p90_ms", round3(p90_ms))
                    .with("max_ms", round3(max_ms))
                    .with("slow_answers", dns.slow_transactions as f64)
                    .with("answers", answered as f64),
            )
            .frames(slow.iter().filter_map(|t| t.response_packet))
            .filter(format!(
                "dns.time > {}",
                dns.thresholds.dns_response_warning
            )),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_header_and_question_are_read() {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        let m = parse_message(&q).unwrap();
        assert_eq!(m.id, 0x1234);
        assert!(!m.is_response);
        assert_eq!(m.qname, "example.com");
        assert_eq!(m.qtype, 1);
    }

    #[test]
    fn a_compression_loop_is_refused_not_followed_forever() {
        let mut q = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(&[0xc0, 12]);
        let m = parse_message(&q).unwrap();
        assert_eq!(m.qname, "");
    }
}
