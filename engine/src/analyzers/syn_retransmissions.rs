//! `syn_retransmissions`: connection attempts whose SYN was sent more than once (same stream, so
//! same 4-tuple and same ISN; a new ISN is a new stream), with the intervals between attempts
//! checked against RFC 6298: the initial RTO is at least 1 s (section 2.1, 5.7) and each timeout
//! doubles it (section 5.5, "back off the timer"), so consecutive intervals have a ratio near 2.
//!
//! An attempt is recorded when its SYN/ACK arrives after at least `syn_retrans_threshold`
//! seconds (or `--latency`) or after a retransmission; attempts still unanswered at the end with
//! a retransmission are "no_synack_received". Labels and severities are v5's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::config::Config;
use crate::decode::{Packet, TCP_ACK, TCP_SYN};
use crate::flow::{fast_map, Direction, FastMap, FlowKey};
use crate::report::{Report, MAX_FINDINGS};
use crate::stats::{round3, round6, Distribution, Summary};
use crate::Options;

/// v5: a SYN more than this after the previous attempt starts a new attempt.
const RETRY_WINDOW_NS: i64 = 10_000_000_000;
/// v5: attempts unanswered for this long are settled (bounds memory under a SYN scan).
const PENDING_TIMEOUT_NS: i64 = 60_000_000_000;
/// Attempts waiting for a SYN/ACK at once.
const MAX_PENDING: usize = 100_000;
/// SYN times kept per attempt (enough to see the backoff; Linux gives up after 6 retries).
const MAX_SYN_TIMES: usize = 8;
/// v5 lists the ten worst connections.
const TOP_CONNECTIONS: usize = 10;
/// RFC 6298 section 2.1: the initial RTO is 1 s. Captured intervals carry scheduling noise, so
/// 5 % below is still taken as 1 s.
const MIN_INITIAL_RTO_S: f64 = 0.95;
/// Backoff ratio accepted as "doubling" (v5's range).
const BACKOFF_RATIO: (f64, f64) = (1.8, 2.2);
/// v5's delay classes: total delay from the first SYN to the SYN/ACK.
const SEVERE_DELAY_S: f64 = 3.0;
const MODERATE_DELAY_S: f64 = 1.0;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RfcAnalysis {
    pub initial_rto_seconds: Option<f64>,
    pub backoff_ratios: Vec<f64>,
    pub initial_rto_ok: bool,
    pub backoff_ok: bool,
    pub rfc_6298_compliant: bool,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SynRetransmission {
    pub stream: u64,
    pub client: String,
    pub server: String,
    pub first_syn_packet_num: u64,
    pub first_syn_time_iso: String,
    pub synack_packet_num: Option<u64>,
    pub synack_time_iso: Option<String>,
    pub syn_attempts: u64,
    pub retransmission_count: u64,
    /// Seconds between consecutive SYNs.
    pub intervals_seconds: Vec<f64>,
    /// First SYN to SYN/ACK, or to the last SYN when none came.
    pub total_delay_seconds: f64,
    pub synack_received: bool,
    /// "no_synack_received", "server_delayed_response", "severe", "moderate" or "normal".
    pub issue_type: String,
    /// "critical", "high", "medium" or "low".
    pub severity: String,
    pub rfc_analysis: RfcAnalysis,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RetransmissionStatistics {
    pub connections: u64,
    pub max_retransmissions: u64,
    pub mean_retransmissions: f64,
    /// Retransmission count → connections.
    pub distribution: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rfc6298Analysis {
    /// Connections with at least one retransmission (so an RTO to judge).
    pub analyzed_connections: u64,
    pub compliant: u64,
    pub non_compliant: u64,
    pub compliance_rate_pct: f64,
    pub initial_rto_below_1s: u64,
    pub backoff_out_of_range: u64,
    /// Initial RTO observed (first interval), seconds.
    pub initial_rto_statistics: Summary,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SynRetransmissionsReport {
    /// SYN segments that repeated an earlier SYN.
    pub total_syn_retransmissions: u64,
    /// Connection attempts recorded (retransmitted or slow).
    pub total_connections_recorded: u64,
    pub threshold_seconds: f64,
    pub issue_distribution: BTreeMap<String, u64>,
    pub severity_distribution: BTreeMap<String, u64>,
    /// First SYN to SYN/ACK, seconds, over the answered recorded attempts.
    pub delay_statistics: Summary,
    pub retransmission_statistics: RetransmissionStatistics,
    pub rfc_6298_analysis: Rfc6298Analysis,
    pub top_problematic_connections: Vec<SynRetransmission>,
    /// The first recorded attempts in order of their first SYN.
    pub all_retransmissions: Vec<SynRetransmission>,
}

#[derive(Clone, Copy)]
struct Attempt {
    key: FlowKey,
    client: Direction,
    first_frame: u64,
    syn_times: [i64; MAX_SYN_TIMES],
    kept: u8,
    attempts: u32,
    last_syn: i64,
}

pub struct SynRetransmissions {
    threshold_s: f64,
    pending: FastMap<u64, Attempt>,
    syn_retransmissions: u64,
    recorded: u64,
    issues: BTreeMap<String, u64>,
    severities: BTreeMap<String, u64>,
    delays: Distribution,
    retrans_dist: BTreeMap<u64, u64>,
    retrans_sum: u64,
    retrans_max: u64,
    analyzed: u64,
    compliant: u64,
    rto_low: u64,
    backoff_bad: u64,
    initial_rto: Distribution,
    top: Vec<SynRetransmission>,
    all: Vec<SynRetransmission>,
}

fn near(x: f64, target: f64) -> bool {
    (x - target).abs() <= target * 0.25
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 3,
        "high" => 2,
        "medium" => 1,
        _ => 0,
    }
}

/// RFC 6298 judgement of the SYN intervals.
pub fn rfc_6298(intervals: &[f64]) -> RfcAnalysis {
    let mut a = RfcAnalysis {
        initial_rto_seconds: intervals.first().map(|v| round6(*v)),
        ..RfcAnalysis::default()
    };
    a.initial_rto_ok = intervals.first().is_some_and(|&i| i >= MIN_INITIAL_RTO_S);
    if !a.initial_rto_ok && !intervals.is_empty() {
        a.notes
            .push("initial RTO below 1 s (RFC 6298 section 2.1)".to_string());
    }
    a.backoff_ratios = intervals
        .windows(2)
        .filter(|w| w[0] > 0.0)
        .map(|w| round3(w[1] / w[0]))
        .collect();
    a.backoff_ok = a
        .backoff_ratios
        .iter()
        .all(|r| (BACKOFF_RATIO.0..=BACKOFF_RATIO.1).contains(r));
    if !a.backoff_ok {
        a.notes.push(
            "timer not doubled between attempts (RFC 6298 section 5.5, ratio outside 1.8-2.2)"
                .to_string(),
        );
    }
    a.rfc_6298_compliant = a.initial_rto_ok && a.backoff_ok;
    a
}

impl SynRetransmissions {
    pub fn new(config: &Config, options: &Options) -> Self {
        SynRetransmissions {
            threshold_s: options
                .latency
                .unwrap_or(config.thresholds.syn_retrans_threshold),
            pending: fast_map(),
            syn_retransmissions: 0,
            recorded: 0,
            issues: BTreeMap::new(),
            severities: BTreeMap::new(),
            delays: Distribution::default(),
            retrans_dist: BTreeMap::new(),
            retrans_sum: 0,
            retrans_max: 0,
            analyzed: 0,
            compliant: 0,
            rto_low: 0,
            backoff_bad: 0,
            initial_rto: Distribution::default(),
            top: Vec::new(),
            all: Vec::new(),
        }
    }

    /// Settles an attempt: answered by a SYN/ACK at `synack`, or not.
    fn settle(&mut self, stream: u64, a: Attempt, synack: Option<(i64, u64)>) {
        let retrans = u64::from(a.attempts.saturating_sub(1));
        let first = a.syn_times[0];
        let total_ns = match synack {
            Some((ts, _)) => ts - first,
            None => a.last_syn - first,
        };
        let total_s = total_ns.max(0) as f64 / 1e9;
        let record = match synack {
            Some(_) => retrans > 0 || total_s >= self.threshold_s,
            None => retrans > 0,
        };
        if !record {
            return;
        }
        let kept = usize::from(a.kept);
        let intervals: Vec<f64> = a.syn_times[..kept]
            .windows(2)
            .map(|w| round6((w[1] - w[0]).max(0) as f64 / 1e9))
            .collect();
        let issue = if synack.is_none() {
            "no_synack_received"
        } else if intervals.len() >= 2
            && near(intervals[0], 1.0)
            && near(intervals[1], 2.0)
            && total_s >= SEVERE_DELAY_S
        {
            // The client backed off by the book; the server answered only the third SYN.
            "server_delayed_response"
        } else if total_s >= SEVERE_DELAY_S {
            "severe"
        } else if total_s >= MODERATE_DELAY_S {
            "moderate"
        } else {
            "normal"
        };
        let severity = if synack.is_none() {
            "critical"
        } else if retrans >= 3 {
            "high"
        } else if retrans == 2 {
            "medium"
        } else {
            "low"
        };
        let rfc = rfc_6298(&intervals);
        if !intervals.is_empty() {
            self.analyzed += 1;
            if rfc.rfc_6298_compliant {
                self.compliant += 1;
            }
            if !rfc.initial_rto_ok {
                self.rto_low += 1;
            }
            if !rfc.backoff_ok {
                self.backoff_bad += 1;
            }
            self.initial_rto.add(intervals[0]);
        }
        self.recorded += 1;
        crate::stats::count(&mut self.issues, issue);
        crate::stats::count(&mut self.severities, severity);
        if synack.is_some() {
            self.delays.add(total_s);
        }
        *self.retrans_dist.entry(retrans).or_insert(0) += 1;
        self.retrans_sum += retrans;
        self.retrans_max = self.retrans_max.max(retrans);
        let (client, server) = a.key.endpoints(a.client);
        let row = SynRetransmission {
            stream,
            client,
            server,
            first_syn_packet_num: a.first_frame,
            first_syn_time_iso: crate::time::iso_utc(first),
            synack_packet_num: synack.map(|s| s.1),
            synack_time_iso: synack.map(|s| crate::time::iso_utc(s.0)),
            syn_attempts: u64::from(a.attempts),
            retransmission_count: retrans,
            intervals_seconds: intervals,
            total_delay_seconds: round6(total_s),
            synack_received: synack.is_some(),
            issue_type: issue.to_string(),
            severity: severity.to_string(),
            rfc_analysis: rfc,
            display_filter: format!("tcp.stream == {stream} && tcp.flags.syn == 1"),
        };
        if self.all.len() < MAX_FINDINGS {
            self.all.push(row.clone());
        }
        self.top.push(row);
        if self.top.len() >= 4 * TOP_CONNECTIONS {
            self.rank();
        }
    }

    fn rank(&mut self) {
        self.top.sort_by(|a, b| {
            severity_rank(&b.severity)
                .cmp(&severity_rank(&a.severity))
                .then(b.retransmission_count.cmp(&a.retransmission_count))
                .then(b.total_delay_seconds.total_cmp(&a.total_delay_seconds))
                .then(a.first_syn_packet_num.cmp(&b.first_syn_packet_num))
        });
        self.top.truncate(TOP_CONNECTIONS);
    }

    fn sweep(&mut self, now: i64) {
        let mut gone: Vec<(u64, Attempt)> = super::evict::drain_idle(
            &mut self.pending,
            now,
            MAX_PENDING,
            PENDING_TIMEOUT_NS,
            |a| a.last_syn,
        );
        gone.sort_by_key(|(s, _)| *s);
        for (s, a) in gone {
            self.settle(s, a, None);
        }
    }
}

impl Analyzer for SynRetransmissions {
    fn packets(&self) -> Kinds {
        Kinds::SYN
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        let Some(tcp) = pkt.tcp() else { return };
        let syn_ack = tcp.flags & (TCP_SYN | TCP_ACK);
        if syn_ack & TCP_SYN == 0 {
            return;
        }
        let Some((key, dir)) = meta.flow else { return };
        let stream = meta.tcp.stream;
        let now = pkt.ts_ns;
        if syn_ack == TCP_SYN | TCP_ACK {
            // The SYN/ACK answers the attempt when it comes from the other side.
            if self.pending.get(&stream).is_some_and(|a| a.client != dir) {
                if let Some(a) = self.pending.remove(&stream) {
                    self.settle(stream, a, Some((now, pkt.number)));
                }
            }
            return;
        }
        if let Some(a) = self.pending.get_mut(&stream) {
            if a.client == dir && now.saturating_sub(a.last_syn) <= RETRY_WINDOW_NS {
                a.attempts = a.attempts.saturating_add(1);
                a.last_syn = now;
                if usize::from(a.kept) < MAX_SYN_TIMES {
                    a.syn_times[usize::from(a.kept)] = now;
                    a.kept += 1;
                }
                self.syn_retransmissions += 1;
                return;
            }
            if let Some(old) = self.pending.remove(&stream) {
                self.settle(stream, old, None);
            }
        }
        if self.pending.len() >= MAX_PENDING {
            self.sweep(now);
        }
        let mut syn_times = [0; MAX_SYN_TIMES];
        syn_times[0] = now;
        self.pending.insert(
            stream,
            Attempt {
                key,
                client: dir,
                first_frame: pkt.number,
                syn_times,
                kept: 1,
                attempts: 1,
                last_syn: now,
            },
        );
    }

    fn finish(mut self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let mut left: Vec<(u64, Attempt)> = self.pending.drain().collect();
        left.sort_by_key(|(s, _)| *s);
        for (s, a) in left {
            self.settle(s, a, None);
        }
        self.rank();
        self.all.sort_by_key(|r| r.first_syn_packet_num);
        let connections = self.recorded;
        report.syn_retransmissions = Some(SynRetransmissionsReport {
            total_syn_retransmissions: self.syn_retransmissions,
            total_connections_recorded: connections,
            threshold_seconds: self.threshold_s,
            issue_distribution: self.issues,
            severity_distribution: self.severities,
            delay_statistics: self.delays.summary(),
            retransmission_statistics: RetransmissionStatistics {
                connections,
                max_retransmissions: self.retrans_max,
                mean_retransmissions: round3(self.retrans_sum as f64 / connections.max(1) as f64),
                distribution: self
                    .retrans_dist
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            },
            rfc_6298_analysis: Rfc6298Analysis {
                analyzed_connections: self.analyzed,
                compliant: self.compliant,
                non_compliant: self.analyzed - self.compliant,
                compliance_rate_pct: round3(
                    self.compliant as f64 * 100.0 / self.analyzed.max(1) as f64,
                ),
                initial_rto_below_1s: self.rto_low,
                backoff_out_of_range: self.backoff_bad,
                initial_rto_statistics: self.initial_rto.summary(),
            },
            top_problematic_connections: self.top,
            all_retransmissions: self.all,
        });
    }
}
