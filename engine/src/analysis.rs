//! What an analysis is: the [`Analyzer`] trait, the [`PacketMeta`] the engine works out for
//! each packet, the packet [`Kinds`] an analysis reads and what it gets at the end
//! ([`Finish`]). The engine's pipeline (`worker`, the flow table) depends on this module only;
//! the analyses themselves live in [`crate::analyzers`].

use crate::capture::ReadSummary;
use crate::config::Config;
use crate::decode::Packet;
use crate::flow::{Direction, FlowKey, FlowRecord, FlowTable};
use crate::report::Report;
use crate::tcp::TcpAnalysis;
pub use crate::worker::Walk;
use crate::Options;

/// DNS's well-known port.
pub const DNS_PORT: u16 = 53;

/// The protocol a frame counts for at layer 4. Fragmented datagrams count once, on the frame
/// that completes them, as tshark's reassembly does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer4 {
    Tcp,
    Udp,
    Icmp,
    Other,
}

/// What the engine worked out about a packet before the analyses see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PacketMeta {
    /// Symmetric 5-tuple and direction, for IP packets.
    pub flow: Option<(FlowKey, Direction)>,
    /// TCP stream and sequence-analysis flags (default for non-TCP packets).
    pub tcp: TcpAnalysis,
    pub layer4: Option<Layer4>,
    /// Slot of the packet's flow in the flow table (valid while the flow lives).
    pub flow_slot: u32,
    /// Unique id of the flow over the capture.
    pub flow_id: u64,
    /// This packet opened its flow.
    pub flow_new: bool,
    /// Timestamp and frame number of the flow's previous packet.
    pub flow_prev: Option<(i64, u64)>,
    /// The frame this packet is a recorded copy of (0 when it is not one; see [`crate::dedup`]).
    pub duplicate_of: u64,
    /// Where the frame's record lies in the (decompressed) file: first byte and length.
    pub record: (u64, u32),
}

/// What the analyses get at the end.
pub struct Finish<'a> {
    pub read: &'a ReadSummary,
    pub first_ts_ns: Option<i64>,
    pub last_ts_ns: Option<i64>,
    pub tcp_streams: u64,
    /// Flows still live at the end (evicted ones went through [`Analyzer::on_flow_end`]).
    pub flows: &'a FlowTable,
    pub config: &'a Config,
    pub options: &'a Options,
}

impl Finish<'_> {
    pub fn duration_s(&self) -> f64 {
        match (self.first_ts_ns, self.last_ts_ns) {
            (Some(a), Some(b)) => (b - a).max(0) as f64 / 1e9,
            _ => 0.0,
        }
    }
}

/// One analysis: sees every packet once, in order, then writes its section.
/// Analyses are `Send`: with two cores, two threads take turns running them.
pub trait Analyzer: Send {
    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta);
    /// Writes the analysis's section. Unless [`Analyzer::reads_report`], the report may hold
    /// only this section: the analyses finish on two threads, each into its own report.
    fn finish(self: Box<Self>, end: &Finish<'_>, report: &mut Report);
    /// Runs the analysis over a batch ([`Walk::run`]). Not to be overridden: as a provided
    /// method it is compiled for each analysis, which makes its calls to `on_packet` direct.
    fn walk(&mut self, batch: &Walk<'_, '_>) {
        batch.run(self);
    }
    /// The analysis reads other analyses' sections in `finish` (the health score): it finishes
    /// after all the others, with every section in the report.
    fn reads_report(&self) -> bool {
        false
    }
    /// A flow left the flow table before the end (evicted when idle); its totals are final.
    fn on_flow_end(&mut self, _flow: &FlowRecord) {}
    /// A packet a few places ahead of the next `on_packet` (analyses see packets in batches,
    /// see `worker`): an analysis with per-flow state asks the CPU to start loading that
    /// flow's state now ([`crate::flow::PerSlot::prefetch`]), so `on_packet` does not wait for
    /// memory. A hint only: it must not change any state. Called when [`Analyzer::prefetches`]
    /// says so, for the packets the analysis reads.
    fn prefetch(&self, _ahead: &PacketMeta) {}
    /// The first step of a two-step prefetch, twice as far ahead as [`Analyzer::prefetch`]
    /// (e.g. a per-flow pointer that `prefetch` then follows, such as a state behind a box).
    fn prefetch_far(&self, _ahead: &PacketMeta) {}
    /// A flow ending a few flow ends ahead of the next `on_flow_end`: as [`Analyzer::prefetch`],
    /// for an analysis that reads its state of the flow when it ends. Called when
    /// [`Analyzer::prefetches`] says any prefetch is taken.
    fn prefetch_end(&self, _ending: &FlowRecord) {}
    /// The packets this analysis reads: the others go by without a call to `on_packet`.
    fn packets(&self) -> Kinds {
        Kinds::ALL
    }
    /// Which of the prefetch steps this analysis implements.
    fn prefetches(&self) -> Prefetch {
        Prefetch::None
    }
}

/// Which prefetch steps an analysis takes (see [`Analyzer::prefetch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefetch {
    None,
    Near,
    NearAndFar,
}

/// Kinds of packets, for [`Analyzer::packets`]; a packet is of every kind that fits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds(u8);

impl Kinds {
    pub const NONE: Kinds = Kinds(0);
    pub const ALL: Kinds = Kinds(u8::MAX);
    pub const NOT_IP: Kinds = Kinds(1);
    pub const IP: Kinds = Kinds(1 << 1);
    pub const TCP: Kinds = Kinds(1 << 2);
    pub const UDP: Kinds = Kinds(1 << 3);
    pub const ICMP: Kinds = Kinds(1 << 4);
    /// TCP or UDP from or to port 53.
    pub const DNS: Kinds = Kinds(1 << 5);
    /// TCP with SYN set (SYN and SYN/ACK).
    pub const SYN: Kinds = Kinds(1 << 6);

    pub fn of(pkt: &Packet<'_>) -> Kinds {
        use crate::decode::{Transport, TCP_SYN};

        let dns = |sp: u16, dp: u16| Kinds::when(sp == DNS_PORT || dp == DNS_PORT, Kinds::DNS);
        let ip = pkt.ip().is_some();
        Kinds::when(ip, Kinds::IP)
            | Kinds::when(!ip, Kinds::NOT_IP)
            | match &pkt.transport {
                Transport::Tcp(t) => {
                    Kinds::TCP
                        | Kinds::when(t.has(TCP_SYN), Kinds::SYN)
                        | dns(t.src_port, t.dst_port)
                }
                Transport::Udp(u) => Kinds::UDP | dns(u.src_port, u.dst_port),
                Transport::Icmp(_) => Kinds::ICMP,
                Transport::Other | Transport::None => Kinds::NONE,
            }
    }

    /// `kind` when `condition` holds, no kind otherwise.
    fn when(condition: bool, kind: Kinds) -> Kinds {
        if condition {
            kind
        } else {
            Kinds::NONE
        }
    }

    /// True when the two share a kind.
    pub fn meets(self, other: Kinds) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for Kinds {
    type Output = Kinds;
    fn bitor(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }
}
