//! `asymmetric_traffic`: flows (TCP and UDP 5-tuples) whose bytes go mostly one way. A flow of at
//! least `asymmetry_min_bytes` is asymmetric when the smaller direction carries less than
//! `asymmetry_threshold` times the larger one. Bytes are frame lengths on the wire. v5 shipped this
//! section as an empty placeholder.

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Kinds, PacketMeta};
use crate::config::Config;
use crate::decode::Packet;
use crate::flow::{Direction, FlowRecord};
use crate::report::{Report, MAX_RANKED};
use crate::stats::{round3, round6};
use crate::Options;

/// Flows followed at once; past this, the idlest are judged early (they still count).

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AsymmetricFlow {
    pub flow: String,
    pub protocol: String,
    /// The side that sent first.
    pub src: String,
    pub dst: String,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub total_bytes: u64,
    /// Smaller direction / larger direction.
    pub ratio: f64,
    /// "src_to_dst" or "dst_to_src".
    pub dominant_direction: String,
    pub display_filter: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AsymmetryThresholds {
    pub asymmetry_threshold: f64,
    pub asymmetry_min_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AsymmetricTrafficReport {
    pub asymmetric_flows: u64,
    /// Flows with at least `asymmetry_min_bytes`.
    pub total_flows_analyzed: u64,
    pub total_flows: u64,
    /// Asymmetric flows per analyzed flow, percent.
    pub asymmetry_rate: f64,
    pub thresholds: AsymmetryThresholds,
    /// Lowest ratio first, then most bytes.
    pub worst_asymmetric_flows: Vec<AsymmetricFlow>,
}

pub struct AsymmetricTraffic {
    threshold: f64,
    min_bytes: u64,
    total: u64,
    analyzed: u64,
    asymmetric: u64,
    worst: Vec<AsymmetricFlow>,
    /// (ratio, bytes) of the last flow kept when `worst` was last cut to MAX_RANKED: a flow
    /// ranked after it can no longer make the list, and is not written out.
    floor: Option<(f64, u64)>,
}

impl AsymmetricTraffic {
    pub fn new(config: &Config, _options: &Options) -> Self {
        AsymmetricTraffic {
            threshold: config.thresholds.asymmetry_threshold,
            min_bytes: config.thresholds.asymmetry_min_bytes,
            total: 0,
            analyzed: 0,
            asymmetric: 0,
            worst: Vec::new(),
            floor: None,
        }
    }

    fn rank(&mut self) {
        self.worst.sort_by(|a, b| {
            a.ratio
                .total_cmp(&b.ratio)
                .then(b.total_bytes.cmp(&a.total_bytes))
                .then(a.flow.cmp(&b.flow))
        });
        self.worst.truncate(MAX_RANKED);
        if self.worst.len() == MAX_RANKED {
            self.floor = self.worst.last().map(|w| (w.ratio, w.total_bytes));
        }
    }

    /// Judges a finished flow, with its totals from the shared flow table.
    fn finish_flow(&mut self, f: &FlowRecord) {
        let key = f.key;
        if key.proto != 6 && key.proto != 17 {
            return;
        }
        self.total += 1;
        let total = f.bytes[0] + f.bytes[1];
        if total < self.min_bytes {
            return;
        }
        self.analyzed += 1;
        let (sent, received) = match f.first_dir {
            Direction::AtoB => (f.bytes[0], f.bytes[1]),
            Direction::BtoA => (f.bytes[1], f.bytes[0]),
        };
        let ratio = sent.min(received) as f64 / sent.max(received).max(1) as f64;
        if ratio >= self.threshold {
            return;
        }
        self.asymmetric += 1;
        let rounded = round6(ratio);
        if let Some((floor_ratio, floor_bytes)) = self.floor {
            // Ranked by ratio, then bytes (most first), then the flow's text: only a tie on
            // both needs the text.
            if rounded > floor_ratio || (rounded == floor_ratio && total < floor_bytes) {
                return;
            }
        }
        let (src, dst) = key.endpoints(f.first_dir);
        self.worst.push(AsymmetricFlow {
            flow: format!("{src} <-> {dst}"),
            protocol: if key.proto == 6 { "TCP" } else { "UDP" }.to_string(),
            src,
            dst,
            bytes_sent: sent,
            bytes_received: received,
            total_bytes: total,
            ratio: rounded,
            dominant_direction: if sent >= received {
                "src_to_dst"
            } else {
                "dst_to_src"
            }
            .to_string(),
            display_filter: key.display_filter(),
        });
        if self.worst.len() >= 4 * MAX_RANKED {
            self.rank();
        }
    }
}

impl Analyzer for AsymmetricTraffic {
    fn packets(&self) -> Kinds {
        Kinds::NONE
    }

    fn on_packet(&mut self, _pkt: &Packet<'_>, _meta: &PacketMeta) {}

    fn on_flow_end(&mut self, flow: &FlowRecord) {
        self.finish_flow(flow);
    }

    fn finish(mut self: Box<Self>, end: &Finish<'_>, report: &mut Report) {
        let mut left: Vec<&FlowRecord> = end.flows.records().collect();
        left.sort_by_key(|f| f.key);
        for f in left {
            self.finish_flow(f);
        }
        self.rank();
        report.asymmetric_traffic = Some(AsymmetricTrafficReport {
            asymmetric_flows: self.asymmetric,
            total_flows_analyzed: self.analyzed,
            total_flows: self.total,
            asymmetry_rate: round3(self.asymmetric as f64 * 100.0 / self.analyzed.max(1) as f64),
            thresholds: AsymmetryThresholds {
                asymmetry_threshold: self.threshold,
                asymmetry_min_bytes: self.min_bytes,
            },
            worst_asymmetric_flows: self.worst,
        });
    }
}
