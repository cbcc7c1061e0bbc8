//! The second analysis thread. The reading thread decodes each frame, keeps the flow and TCP
//! tables, and runs its share of the analyses; it copies the decoded packet (detached from the
//! frame), its payloads and what it worked out ([`PacketMeta`]) into a batch for this thread,
//! which puts the packet back together over the copies (no second decoding) and runs the other
//! analyses, in the same order, with the same flow-end events at the same points.
//!
//! Analyses here see UDP and ICMP payloads in full, but TCP payloads in full only for DNS
//! (port 53) and otherwise their first [`TCP_PAYLOAD_HEAD`] bytes (enough for status lines and
//! protocol signatures): copying every TCP segment's data cost the reading thread a quarter of
//! its time. An analysis that reads further into TCP payloads belongs on the reading thread
//! ([`crate::analyzers::ON_READER_THREAD`]); the test comparing one and two threads on every
//! capture holds this.
//! Results do not depend on the split: every analysis sees exactly the packets and events it
//! would see on one thread.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::analyzers::{Analyzer, PacketMeta};
use crate::decode::{Packet, Payloads};
use crate::flow::FlowRecord;

/// Frames per batch: large enough that the channel costs nothing per packet, small enough that
/// the two threads overlap.
const BATCH_FRAMES: usize = 2_048;
/// Bytes of a TCP payload (other than DNS's) copied for this thread.
pub const TCP_PAYLOAD_HEAD: usize = 64;
const DNS_PORT: u16 = 53;
/// Batches in flight: bounds the memory the copies take (a few MiB).
const BATCHES_IN_FLIGHT: usize = 4;

type Analyses = Vec<(usize, Box<dyn Analyzer>)>;

struct FrameCopy {
    packet: Packet<'static>,
    /// The payloads' copies in the batch's bytes.
    tcp_payload: (u32, u32),
    transport_payload: (u32, u32),
    meta: PacketMeta,
}

impl Batch {
    /// Appends `bytes`; returns where they are.
    fn copy(&mut self, bytes: &[u8]) -> (u32, u32) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        (start as u32, self.bytes.len() as u32)
    }

    fn slice(&self, (start, end): (u32, u32)) -> &[u8] {
        &self.bytes[start as usize..end as usize]
    }
}

#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    frames: Vec<FrameCopy>,
    /// Flows that ended, with the number of frames of the batch processed before.
    ended: Vec<(usize, FlowRecord)>,
}

pub(crate) struct Worker {
    batch: Batch,
    sender: Option<SyncSender<Batch>>,
    recycled: Receiver<Batch>,
    handle: Option<JoinHandle<Analyses>>,
}

impl Worker {
    pub(crate) fn spawn(mut analyses: Analyses) -> Self {
        let (sender, receiver) = sync_channel::<Batch>(BATCHES_IN_FLIGHT);
        let (give_back, recycled) = sync_channel::<Batch>(BATCHES_IN_FLIGHT + 1);
        let handle = std::thread::Builder::new()
            .name("pcap-analyses".into())
            .spawn(move || {
                for mut batch in receiver {
                    run(&mut analyses, &batch);
                    batch.bytes.clear();
                    batch.frames.clear();
                    batch.ended.clear();
                    let _ = give_back.try_send(batch);
                }
                analyses
            })
            .ok();
        Worker {
            batch: Batch::default(),
            sender: Some(sender),
            recycled,
            handle,
        }
    }

    /// Queues a packet (with what the reading thread worked out about it).
    pub(crate) fn push(&mut self, pkt: &Packet<'_>, meta: PacketMeta) {
        let (packet, payloads) = pkt.detach();
        let dns = pkt
            .tcp()
            .is_some_and(|t| t.src_port == DNS_PORT || t.dst_port == DNS_PORT);
        let tcp = match dns {
            true => payloads.tcp,
            false => &payloads.tcp[..payloads.tcp.len().min(TCP_PAYLOAD_HEAD)],
        };
        let tcp_payload = self.batch.copy(tcp);
        let transport_payload = self.batch.copy(payloads.transport);
        self.batch.frames.push(FrameCopy {
            packet,
            tcp_payload,
            transport_payload,
            meta,
        });
        if self.batch.frames.len() >= BATCH_FRAMES {
            self.send();
        }
    }

    /// A flow ended after the last pushed frame.
    pub(crate) fn flow_ended(&mut self, record: FlowRecord) {
        let at = self.batch.frames.len();
        self.batch.ended.push((at, record));
    }

    fn send(&mut self) {
        let next = self.recycled.try_recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.batch, next);
        if let Some(s) = &self.sender {
            let _ = s.send(full);
        }
    }

    /// Sends what is left, waits for the thread and returns its analyses.
    pub(crate) fn join(mut self) -> Analyses {
        if !self.batch.frames.is_empty() || !self.batch.ended.is_empty() {
            self.send();
        }
        self.sender = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(analyses)) => analyses,
            // A panic in an analysis is a bug: surface it as on a single thread.
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Vec::new(),
        }
    }
}

fn run(analyses: &mut Analyses, batch: &Batch) {
    let mut ended = batch.ended.iter().peekable();
    for (i, f) in batch.frames.iter().enumerate() {
        while let Some((_, record)) = ended.next_if(|(at, _)| *at == i) {
            for (_, a) in analyses.iter_mut() {
                a.on_flow_end(record);
            }
        }
        let payloads = Payloads {
            tcp: batch.slice(f.tcp_payload),
            transport: batch.slice(f.transport_payload),
        };
        let pkt = Packet::attach(&f.packet, payloads);
        for (_, a) in analyses.iter_mut() {
            a.on_packet(&pkt, &f.meta);
        }
    }
    for (_, record) in ended {
        for (_, a) in analyses.iter_mut() {
            a.on_flow_end(record);
        }
    }
}
