//! `data_exfiltration_detection`: large uploads from an internal host to an external one.
//!
//! Internal means RFC 1918, link-local or, for IPv6, RFC 4193 unique local (v5 looked at IPv4
//! only, so exfiltration over IPv6 went unseen). Bytes are frame lengths, per (internal,
//! external) pair and direction. Three findings, as in v5:
//! * `large_upload`: at least `exfil_large_upload_mb` MB uploaded within `exfil_window` seconds
//!   (a sliding window of ten buckets); severity by the peak window (≥ 100 / 200 / 500 MB);
//! * `suspicious_ratio`: at least 10 MB uploaded with an upload/download ratio of at least
//!   `exfil_ratio` (≥ 10 medium, ≥ 20 high, nothing downloaded critical);
//! * `unusual_protocol`: at least 5 MB uploaded to a port often used by proxies, tunnels and
//!   backdoors (high).
//!
//! Group destinations (multicast, broadcast) are not external hosts: announcements to them are
//! never uploads.
//!
//! Unlike v5, the severity of the ratio and port findings is also capped by the volume
//! ([`volume_severity`]): any TCP upload is lopsided (the other way carries only ACKs, a ratio
//! of 20 or more), a capture of one direction shows nothing coming back, and 8080, 8443 and 3128
//! are ordinary web and proxy ports, so a 10 MB file upload is not more than low. The classic
//! backdoor ports (4444, 31337...) keep v5's high.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::security::{
    addr_key, excluded, ip_field, is_group, is_internal, key_addr, worst_first, Severity,
    SeverityBreakdown,
};
use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::config::Config;
use crate::decode::Packet;
use crate::finding::{Cause, Evidence, Finding};
use crate::flow::{fast_map, FastMap};
use crate::report::{Report, MAX_FINDINGS};
use crate::stats::round3;
use crate::Options;

const MB: f64 = 1_000_000.0;
/// The sliding window is kept as this many buckets.
const BUCKETS: usize = 10;
/// v5: suspicious ratio needs at least this much upload.
const RATIO_MIN_BYTES: u64 = 10_000_000;
/// v5: unusual-port uploads from this volume.
const UNUSUAL_MIN_BYTES: u64 = 5_000_000;
/// v5's list of ports used by proxies, tunnels and backdoors.
const UNUSUAL_PORTS: [u16; 13] = [
    8080, 8443, 8888, 9000, 9001, 3128, 8123, 4444, 5555, 6666, 7777, 31337, 12345,
];
/// Ports of v5's list that web servers and proxies use every day.
const WEB_PORTS: [u16; 6] = [8080, 8443, 8888, 9000, 3128, 8123];

/// The most a finding can be for the bytes uploaded: low under 50 MB, medium from 50, high from
/// 200, critical from 500.
pub fn volume_severity(bytes: u64) -> Severity {
    Severity::by_thresholds(
        bytes as f64 / MB,
        [Some(0.0), Some(50.0), Some(200.0), Some(500.0)],
    )
}

/// (internal, external) pairs followed; past this, pairs that uploaded less than
/// [`PRUNE_BELOW_BYTES`] are dropped, then new pairs are not followed.
const MAX_PAIRS: usize = 25_000;
const PRUNE_BELOW_BYTES: u64 = 1_000_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExfiltrationEvent {
    pub source_ip: String,
    pub destination_ip: String,
    /// "large_upload", "suspicious_ratio" or "unusual_protocol".
    pub exfil_type: String,
    pub severity: Severity,
    pub bytes_uploaded: u64,
    pub bytes_downloaded: u64,
    pub mb_uploaded: f64,
    /// Upload/download; `null` when nothing came back.
    pub upload_download_ratio: Option<f64>,
    /// Most bytes uploaded within one window.
    pub peak_window_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub start_time: String,
    pub duration: f64,
    pub first_packet: u64,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExfiltrationThresholds {
    pub large_upload_mb: f64,
    pub time_window: f64,
    pub ratio_threshold: f64,
    pub ratio_min_mb: f64,
    pub unusual_protocol_min_mb: f64,
    pub unusual_ports: Vec<u16>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DataExfiltrationReport {
    pub total_exfiltration_detected: u64,
    pub severity_breakdown: SeverityBreakdown,
    pub exfil_type_breakdown: BTreeMap<String, u64>,
    /// Worst first, at most `MAX_FINDINGS`.
    pub exfiltration_events: Vec<ExfiltrationEvent>,
    pub total_bytes_uploaded: u64,
    pub pairs_not_tracked: u64,
    pub detection_thresholds: ExfiltrationThresholds,
}

#[derive(Default)]
struct Pair {
    up: u64,
    down: u64,
    unusual_up: u64,
    unusual_port: u16,
    buckets: [u64; BUCKETS],
    bucket_index: i64,
    /// Sum of `buckets`.
    window: u64,
    peak_window: u64,
    first_ns: i64,
    last_ns: i64,
    first_frame: u64,
}

pub struct DataExfiltrationDetection {
    large_bytes: u64,
    window_ns: i64,
    ratio: f64,
    include_localhost: bool,
    pairs: FastMap<(u128, u128), Pair>,
    uploaded: u64,
    not_tracked: u64,
}

impl DataExfiltrationDetection {
    pub fn new(config: &Config, options: &Options) -> Self {
        let t = &config.thresholds;
        DataExfiltrationDetection {
            large_bytes: (t.exfil_large_upload_mb * MB) as u64,
            window_ns: ((t.exfil_window * 1e9) as i64).max(BUCKETS as i64),
            ratio: t.exfil_ratio,
            include_localhost: options.include_localhost,
            pairs: fast_map(),
            uploaded: 0,
            not_tracked: 0,
        }
    }

    fn events(&self, (inside, outside): (u128, u128), p: &Pair) -> Vec<ExfiltrationEvent> {
        let ratio = (p.down > 0).then(|| p.up as f64 / p.down as f64);
        let large = p.peak_window >= self.large_bytes;
        let lopsided = p.up >= RATIO_MIN_BYTES && ratio.is_none_or(|r| r >= self.ratio);
        let unusual = p.unusual_up >= UNUSUAL_MIN_BYTES;
        if !(large || lopsided || unusual) {
            // Most pairs: nothing to write out.
            return Vec::new();
        }
        let (inside, outside) = (key_addr(inside), key_addr(outside));
        let base = ExfiltrationEvent {
            source_ip: inside.to_string(),
            destination_ip: outside.to_string(),
            bytes_uploaded: p.up,
            bytes_downloaded: p.down,
            mb_uploaded: round3(p.up as f64 / MB),
            upload_download_ratio: ratio.map(round3),
            peak_window_bytes: p.peak_window,
            start_time: crate::time::iso_utc(p.first_ns),
            duration: round3((p.last_ns - p.first_ns) as f64 / 1e9),
            first_packet: p.first_frame,
            display_filter: format!(
                "{} && {}",
                ip_field(inside, "src"),
                ip_field(outside, "dst")
            ),
            ..Default::default()
        };
        let mut out = Vec::new();
        if large {
            let mb = p.peak_window as f64 / MB;
            let severity = match mb {
                m if m >= 500.0 => Severity::Critical,
                m if m >= 200.0 => Severity::High,
                m if m >= 100.0 => Severity::Medium,
                _ => Severity::Low,
            };
            out.push(ExfiltrationEvent {
                exfil_type: "large_upload".into(),
                severity,
                ..base.clone()
            });
        }
        if lopsided {
            let severity = match ratio {
                None => Severity::Critical,
                Some(r) if r >= 20.0 => Severity::High,
                Some(r) if r >= 10.0 => Severity::Medium,
                Some(_) => Severity::Low,
            }
            .min(volume_severity(p.up));
            out.push(ExfiltrationEvent {
                exfil_type: "suspicious_ratio".into(),
                severity,
                ..base.clone()
            });
        }
        if unusual {
            let severity = if WEB_PORTS.contains(&p.unusual_port) {
                volume_severity(p.unusual_up).min(Severity::High)
            } else {
                Severity::High
            };
            out.push(ExfiltrationEvent {
                exfil_type: "unusual_protocol".into(),
                severity,
                port: Some(p.unusual_port),
                display_filter: format!(
                    "{} && (tcp.port == {port} || udp.port == {port})",
                    base.display_filter,
                    port = p.unusual_port
                ),
                ..base
            });
        }
        out
    }
}

impl Analyzer for DataExfiltrationDetection {
    fn packets(&self) -> Kinds {
        Kinds::IP
    }

    fn on_packet(&mut self, pkt: &Packet<'_>, _meta: &PacketMeta) {
        let Some(ip) = pkt.ip() else { return };
        let (src_in, dst_in) = (is_internal(ip.src), is_internal(ip.dst));
        if src_in == dst_in
            || excluded(ip, self.include_localhost)
            || is_group(ip.dst)
            || is_group(ip.src)
        {
            return;
        }
        let upload = src_in;
        let (s, d) = (addr_key(ip.src), addr_key(ip.dst));
        let key = if upload { (s, d) } else { (d, s) };
        if self.pairs.len() >= MAX_PAIRS && !self.pairs.contains_key(&key) {
            self.pairs.retain(|_, p| p.up >= PRUNE_BELOW_BYTES);
            if self.pairs.len() >= MAX_PAIRS {
                self.not_tracked += 1;
                return;
            }
        }
        let bytes = u64::from(pkt.wire_len);
        let p = self.pairs.entry(key).or_default();
        if p.first_frame == 0 {
            p.first_frame = pkt.number;
            p.first_ns = pkt.ts_ns;
        }
        p.last_ns = pkt.ts_ns;
        if !upload {
            p.down += bytes;
            return;
        }
        p.up += bytes;
        self.uploaded += bytes;
        let dport = match (pkt.tcp(), pkt.udp()) {
            (Some(t), _) => t.dst_port,
            (_, Some(u)) => u.dst_port,
            _ => 0,
        };
        if UNUSUAL_PORTS.contains(&dport) {
            p.unusual_up += bytes;
            p.unusual_port = dport;
        }
        // Sliding window over BUCKETS buckets of window/BUCKETS each.
        let bucket_ns = self.window_ns / BUCKETS as i64;
        let index = pkt.ts_ns.div_euclid(bucket_ns);
        let step = index - p.bucket_index;
        if p.up == bytes || step >= BUCKETS as i64 {
            p.buckets = [0; BUCKETS];
            p.window = 0;
        } else {
            for i in 1..=step.max(0) {
                let b = &mut p.buckets[((p.bucket_index + i).rem_euclid(BUCKETS as i64)) as usize];
                p.window -= *b;
                *b = 0;
            }
        }
        if step > 0 || p.up == bytes {
            p.bucket_index = index;
        }
        let slot = (p.bucket_index.rem_euclid(BUCKETS as i64)) as usize;
        p.buckets[slot] += bytes;
        p.window += bytes;
        p.peak_window = p.peak_window.max(p.window);
    }

    fn finish(self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let mut events: Vec<ExfiltrationEvent> = self
            .pairs
            .iter()
            .flat_map(|(k, p)| self.events(*k, p))
            .collect();
        worst_first(
            &mut events,
            |e| e.severity,
            |e| e.bytes_uploaded as f64,
            |e| e.first_packet,
        );
        let mut exfil_type_breakdown = BTreeMap::new();
        for e in &events {
            *exfil_type_breakdown
                .entry(e.exfil_type.clone())
                .or_insert(0) += 1;
        }
        let severity_breakdown = SeverityBreakdown::of(events.iter().map(|e| &e.severity));
        let total = events.len() as u64;
        events.truncate(MAX_FINDINGS);
        report.findings.extend(events.iter().map(finding));
        report.data_exfiltration_detection = Some(DataExfiltrationReport {
            total_exfiltration_detected: total,
            severity_breakdown,
            exfil_type_breakdown,
            exfiltration_events: events,
            total_bytes_uploaded: self.uploaded,
            pairs_not_tracked: self.not_tracked,
            detection_thresholds: ExfiltrationThresholds {
                large_upload_mb: self.large_bytes as f64 / MB,
                time_window: self.window_ns as f64 / 1e9,
                ratio_threshold: self.ratio,
                ratio_min_mb: RATIO_MIN_BYTES as f64 / MB,
                unusual_protocol_min_mb: UNUSUAL_MIN_BYTES as f64 / MB,
                unusual_ports: UNUSUAL_PORTS.to_vec(),
            },
        });
    }
}

/// The typed finding of one upload.
fn finding(e: &ExfiltrationEvent) -> Finding {
    let what = match e.exfil_type.as_str() {
        "large_upload" => format!(
            "{:.1} MB within one window",
            e.peak_window_bytes as f64 / MB
        ),
        "suspicious_ratio" => match e.upload_download_ratio {
            Some(r) => format!("{r:.1} times more up than down"),
            None => "nothing came back".to_string(),
        },
        _ => format!("to port {}", e.port.unwrap_or(0)),
    };
    let summary = format!(
        "Possible data exfiltration: {} uploaded {:.1} MB to {} in {:.0} s ({what})",
        e.source_ip, e.mb_uploaded, e.destination_ip, e.duration
    );
    let mut evidence = Evidence::new()
        .with("bytes_uploaded", e.bytes_uploaded as f64)
        .with("bytes_downloaded", e.bytes_downloaded as f64)
        .with("peak_window_bytes", e.peak_window_bytes as f64)
        .with("duration_s", e.duration);
    if let Some(r) = e.upload_download_ratio {
        evidence = evidence.with("upload_download_ratio", r);
    }
    Finding::new("data_exfiltration_detection", e.severity, summary)
        .cause(Cause::DataExfiltration)
        .evidence(evidence)
        .hosts([e.source_ip.clone(), e.destination_ip.clone()])
        .frames([e.first_packet])
        .filter(e.display_filter.clone())
}
