//! # pcap-analyzer engine
//!
//! One pass over a capture, streaming, in bounded memory:
//!
//! ```text
//! impl Read ─> capture::CaptureReader ─> decode::decode ─> tcp::TcpTracker ─┬─> analyzers (registry)
//!   (pcap / pcapng / gzip)   (frames)      (Packet)         (stream, flags)  └─> Report (JSON/HTML/CSV)
//! ```
//!
//! The reader yields frames from any [`std::io::Read`] (a file, an S3 body, a gzip stream);
//! decoding never fails (what cannot be decoded is counted); the TCP tracker assigns
//! Wireshark-compatible stream numbers and `tcp.analysis` flags; each analysis in
//! [`analyzers::registry`] sees every packet once and fills its typed section of [`Report`].
//! Analyses take packets in batches of 512, one analysis at a time, shared by two threads
//! when the machine has two cores (`worker`), and finish on both; per-flow state lives on the
//! flow table's slots ([`flow::PerSlot`]), is prefetched a few packets ahead, and is summed up
//! when the flow ends.
//!
//! ```
//! let capture = engine::sample::sample_capture();
//! let report = engine::analyze(&capture[..], &engine::Config::default(), &engine::Options::default())
//!     .expect("a valid capture");
//! assert_eq!(report.metadata.total_packets, capture_packets());
//! # fn capture_packets() -> u64 { engine::sample::SAMPLE_PACKETS }
//! ```
#![deny(unsafe_code)]

pub mod analysis;
pub mod analyzers;
pub mod capture;
pub mod config;
pub mod decode;
pub mod dedup;
pub mod diagnosis;
pub mod error;
pub mod finding;
pub mod flow;
pub mod render;
pub mod report;
pub mod sample;
pub mod slice;
pub mod stats;
pub mod tcp;
pub mod time;
mod worker;

use std::io::Read;

use analysis::{Finish, Layer4, PacketMeta};
pub use config::Config;
use decode::{Network, Transport};
pub use error::{Error, NotACapture};
use flow::{FastMap, FlowKey};
pub use report::Report;

/// Version of the JSON report layout; bumped when a field changes meaning or is removed.
pub const SCHEMA_VERSION: &str = "1.0";

/// How an analysis is run (the CLI flags that are not thresholds).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `-l/--latency`: gap threshold in seconds; when set, replaces the per-protocol defaults.
    pub latency: Option<f64>,
    /// Security detectors also look at 127.0.0.0/8 and ::1.
    pub include_localhost: bool,
    /// Name shown in the report (`metadata.pcap_file`).
    pub file_name: String,
    /// Size of the input in bytes, when known (for progress).
    pub file_size: Option<u64>,
    /// Report keys of the analyses to run (see [`analyzers::ALL`]); empty runs them all.
    pub analyses: Vec<String>,
    /// Run every analysis on the reading thread (by default it shares them with a second thread
    /// when the machine has two cores or more; the report is the same either way).
    pub single_thread: bool,
    /// Give every analysis every packet with its payloads in full, instead of only the kinds of
    /// packets it reads and the payload bytes analyses use (see `worker`): slower, and the same
    /// report. For the test that checks that those shortcuts change nothing.
    #[doc(hidden)]
    pub unfiltered: bool,
    /// Limits of one analysis; past one, [`Error::OverBudget`] (none by default, as for the CLI).
    pub budget: Budget,
}

/// What one analysis may spend. The service sets them so that a hostile or huge capture ends
/// its task with a clear message instead of running its function out of time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Budget {
    pub max_packets: Option<u64>,
    /// Bytes of the capture read (decompressed, for gzip).
    pub max_bytes: Option<u64>,
    pub max_duration: Option<std::time::Duration>,
}

impl Budget {
    /// Frames between two looks at the clock.
    const CLOCK_EVERY: u64 = 4096;

    fn check(&self, frame: u64, pos: u64, started: std::time::Instant) -> Result<(), Error> {
        if let Some(max) = self.max_packets.filter(|&m| frame > m) {
            return Err(Error::OverBudget(format!(
                "more than {max} packets (stopped at frame {frame})"
            )));
        }
        if let Some(max) = self.max_bytes.filter(|&m| pos > m) {
            return Err(Error::OverBudget(format!(
                "more than {} MiB read (stopped at frame {frame}, byte {pos})",
                max >> 20
            )));
        }
        if let Some(max) = self.max_duration {
            if frame % Self::CLOCK_EVERY == 0 && started.elapsed() > max {
                return Err(Error::OverBudget(format!(
                    "more than {} s of analysis (stopped at frame {frame}, byte {pos})",
                    max.as_secs()
                )));
            }
        }
        Ok(())
    }
}

/// Analyzes a whole capture.
pub fn analyze<R: Read + Send>(
    input: R,
    config: &Config,
    options: &Options,
) -> Result<Report, Error> {
    analyze_with_progress(input, config, options, |_| {})
}

/// Analyzes a whole capture, calling `progress` with the number of bytes read so far (at most
/// every 64 frames).
pub fn analyze_with_progress<R: Read + Send>(
    input: R,
    config: &Config,
    options: &Options,
    progress: impl FnMut(u64),
) -> Result<Report, Error> {
    analyze_inner(input, config, options, None, progress).map(|(report, _)| report)
}

/// As [`analyze_with_progress`], also building the [`slice::Index`] of the capture's TCP
/// streams (`capture_bytes`, when known, sizes its budget: see [`slice::INDEX_MAX_SHARE`]).
pub fn analyze_indexed<R: Read + Send>(
    input: R,
    config: &Config,
    options: &Options,
    progress: impl FnMut(u64),
) -> Result<(Report, slice::Index), Error> {
    let index = slice::IndexBuilder::new(options.file_size);
    let (report, index) = analyze_inner(input, config, options, Some(index), progress)?;
    Ok((report, index.expect("an index was asked for")))
}

fn analyze_inner<R: Read + Send>(
    input: R,
    config: &Config,
    options: &Options,
    index: Option<slice::IndexBuilder>,
    mut progress: impl FnMut(u64),
) -> Result<(Report, Option<slice::Index>), Error> {
    let started = std::time::Instant::now();
    let reader = capture::CaptureReader::new(input)?;
    let mut core = Core::new(config, options);
    core.index = index;
    let budget = options.budget;
    let read = reader.try_for_each_frame(|frame, pos| {
        budget.check(frame.number, pos, started)?;
        core.frame(frame);
        if frame.number % 64 == 0 {
            progress(pos);
        }
        Ok(())
    })?;
    progress(read.bytes_read);
    // The last packets reach the index with the last batch.
    if !core.batch.is_empty() {
        core.flush();
    }
    let index = core.index.take();
    let header_blocks = read.header_blocks.clone();
    let report = core.finish(read, started.elapsed());
    Ok((report, index.map(|ix| ix.finish(&header_blocks))))
}

/// The per-packet pipeline shared by every analysis.
struct Core<'a> {
    config: &'a Config,
    options: &'a Options,
    /// The analyses, with their index in report order, when they run on this thread alone.
    analyzers: worker::Analyses,
    /// Packets queued for the analyses (see [`worker`]).
    batch: worker::Batch,
    /// The analyses, when this thread and a second one share them.
    pool: Option<worker::Pool>,
    /// Every set of packet kinds the analyses read, for indexing batches.
    kinds: Vec<analysis::Kinds>,
    tcp: tcp::TcpTracker,
    flows: flow::FlowTable,
    fragments: Fragments,
    dedup: dedup::Dedup,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    undecoded: u64,
    link_types: Vec<u32>,
    /// Where each TCP stream's records lie, when asked for ([`analyze_indexed`]).
    index: Option<slice::IndexBuilder>,
}

impl<'a> Core<'a> {
    fn new(config: &'a Config, options: &'a Options) -> Self {
        let analyses: worker::Analyses = analyzers::registry(config, options)
            .into_iter()
            .map(|(_, analyzer)| analyzer)
            .enumerate()
            .collect();
        let kinds = worker::kinds_read(&analyses, options.unfiltered);
        let parallel = !options.single_thread
            && !analyses.is_empty()
            && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
        let (analyzers, pool) = match parallel {
            true => (
                Vec::new(),
                Some(worker::Pool::spawn(analyses, options.unfiltered)),
            ),
            false => (analyses, None),
        };
        Core {
            config,
            options,
            analyzers,
            batch: worker::Batch::default(),
            pool,
            kinds,
            tcp: tcp::TcpTracker::default(),
            flows: flow::FlowTable::default(),
            fragments: Fragments::default(),
            dedup: dedup::Dedup::default(),
            first_ts: None,
            last_ts: None,
            undecoded: 0,
            link_types: Vec::new(),
            index: None,
        }
    }

    fn frame(&mut self, frame: &capture::Frame<'_>) {
        if !self.link_types.contains(&frame.linktype) && self.link_types.len() < 16 {
            self.link_types.push(frame.linktype);
        }
        let pkt = decode::decode(frame);
        if self.first_ts.is_none() {
            self.first_ts = Some(pkt.ts_ns);
        }
        self.last_ts = Some(pkt.ts_ns);
        let mut meta = PacketMeta {
            record: frame.record,
            ..PacketMeta::default()
        };
        if pkt.network == Network::None {
            self.undecoded += 1;
        }
        if let Some(ip) = pkt.ip() {
            // `meta.duplicate_of` is found a batch at a time (`Batch::find_copies`).
            meta.flow = FlowKey::of_packet(&pkt);
            meta.layer4 = match ip.fragment {
                Some(frag) => self
                    .fragments
                    .add(ip, frag, pkt.ts_ns)
                    .then(|| layer4_of_proto(ip.proto)),
                None => Some(match pkt.transport {
                    Transport::Tcp(_) => Layer4::Tcp,
                    Transport::Udp(_) => Layer4::Udp,
                    Transport::Icmp(_) => Layer4::Icmp,
                    Transport::Other | Transport::None => layer4_of_proto(ip.proto),
                }),
            };
            if let Some((key, dir)) = meta.flow {
                let touch = self
                    .flows
                    .touch(key, dir, pkt.ts_ns, pkt.number, pkt.wire_len);
                meta.flow_slot = touch.slot;
                meta.flow_id = touch.id;
                meta.flow_new = touch.is_new;
                meta.flow_prev = touch.prev;
                // `meta.tcp` is filled a batch at a time (`Batch::track_tcp`), before any analysis.
            }
        }
        self.batch.push(&pkt, meta, self.options.unfiltered);
        let batch = &mut self.batch;
        self.flows
            .sweep(pkt.ts_ns, |_, record| batch.flow_ended(record));
        if self.batch.is_full() {
            self.flush();
        }
    }

    /// Hands the queued packets to the analyses.
    fn flush(&mut self) {
        self.batch.find_copies(&mut self.dedup);
        self.batch.track_tcp(&mut self.tcp);
        if let Some(index) = &mut self.index {
            self.batch.index_streams(index);
        }
        self.batch.index(&self.kinds);
        match &mut self.pool {
            Some(pool) => self.batch = pool.push(std::mem::take(&mut self.batch)),
            None => {
                worker::run(&mut self.analyzers, &self.batch, self.options.unfiltered);
                self.batch.clear();
            }
        }
    }

    fn finish(mut self, read: capture::ReadSummary, elapsed: std::time::Duration) -> Report {
        if !self.batch.is_empty() {
            self.flush();
        }
        if let Some(pool) = self.pool.take() {
            self.analyzers = pool.finish();
        }
        let mut report = Report::new(&self.options.file_name);
        let end = Finish {
            read: &read,
            first_ts_ns: self.first_ts,
            last_ts_ns: self.last_ts,
            tcp_streams: self.tcp.streams(),
            flows: &self.flows,
            config: self.config,
            options: self.options,
        };
        let (late, early): (worker::Analyses, worker::Analyses) = self
            .analyzers
            .into_iter()
            .partition(|(_, a)| a.reads_report());
        match self.options.single_thread {
            true => early
                .into_iter()
                .for_each(|(_, a)| a.finish(&end, &mut report)),
            false => worker::finish_on_two_threads(early, &end, &mut report),
        }
        // The findings in report order (the two threads finished in turns), worst first
        // within an analysis; the diagnosis reads them, the health score reads the diagnosis.
        let order = |key: &str| analyzers::ALL.iter().position(|k| *k == key);
        report.findings.sort_by(|a, b| {
            order(&a.analysis)
                .cmp(&order(&b.analysis))
                .then(b.severity.cmp(&a.severity))
        });
        report.diagnosis = Some(diagnosis::diagnose(&report.findings));
        for (_, a) in late {
            a.finish(&end, &mut report);
        }
        let m = &mut report.metadata;
        m.total_packets = read.frames;
        m.capture_duration = stats::round6(end.duration_s());
        m.first_timestamp = self.first_ts.map(time::iso_utc);
        m.last_timestamp = self.last_ts.map(time::iso_utc);
        m.format = read.format.to_string();
        m.bytes_read = read.bytes_read;
        m.link_types = self.link_types.iter().map(|&l| linktype_name(l)).collect();
        m.undecoded_packets = self.undecoded;
        m.flows_evicted = self.flows.evicted;
        m.warnings = read.warnings.clone();
        m.analysis_seconds = stats::round3(elapsed.as_secs_f64());
        report
    }
}

fn layer4_of_proto(proto: u8) -> Layer4 {
    match proto {
        6 => Layer4::Tcp,
        17 => Layer4::Udp,
        1 | 58 => Layer4::Icmp,
        _ => Layer4::Other,
    }
}

fn linktype_name(l: u32) -> String {
    use decode::linktype::*;
    match l {
        NULL => "NULL".into(),
        ETHERNET => "ETHERNET".into(),
        RAW | RAW_OPENBSD | RAW_BSDOS => "RAW".into(),
        LOOP => "LOOP".into(),
        LINUX_SLL => "LINUX_SLL".into(),
        LINUX_SLL2 => "LINUX_SLL2".into(),
        IPV4 => "IPV4".into(),
        IPV6 => "IPV6".into(),
        105 => "IEEE802_11".into(),
        127 => "IEEE802_11_RADIOTAP".into(),
        other => format!("LINKTYPE_{other}"),
    }
}

/// Tracks IP fragments until their datagram is complete, so the datagram's transport protocol
/// counts once (on the completing frame), as with tshark's default reassembly.
#[derive(Default)]
struct Fragments {
    pending: FastMap<(std::net::IpAddr, std::net::IpAddr, u32, u8), PendingDatagram>,
}

#[derive(Default)]
struct PendingDatagram {
    received_bytes: u32,
    total_bytes: Option<u32>,
    first_ts: i64,
}

/// Fragments of one datagram are expected within this time (Linux `ipfrag_time` is 30 s).
const FRAGMENT_TIMEOUT_NS: i64 = 30 * 1_000_000_000;
/// Datagrams being reassembled at once; beyond this, the oldest are dropped (a fragment flood
/// must not grow memory without bound).
const MAX_PENDING_DATAGRAMS: usize = flow::table_cap(1 << 14);

impl Fragments {
    /// Adds a fragment; true when it completes its datagram.
    fn add(&mut self, ip: &decode::IpInfo, frag: decode::Fragment, ts: i64) -> bool {
        if self.pending.len() >= MAX_PENDING_DATAGRAMS {
            self.pending
                .retain(|_, d| ts - d.first_ts < FRAGMENT_TIMEOUT_NS);
            if self.pending.len() >= MAX_PENDING_DATAGRAMS {
                self.pending.clear();
            }
        }
        let key = (ip.src, ip.dst, frag.id, ip.proto);
        let d = self.pending.entry(key).or_insert_with(|| PendingDatagram {
            first_ts: ts,
            ..Default::default()
        });
        d.received_bytes = d.received_bytes.saturating_add(ip.payload_wire_len);
        if !frag.more {
            d.total_bytes = Some(frag.offset.saturating_add(ip.payload_wire_len));
        }
        if d.total_bytes.is_some_and(|t| d.received_bytes >= t) {
            self.pending.remove(&key);
            return true;
        }
        false
    }
}
