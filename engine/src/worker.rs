//! Batches of packets, and the second analysis thread.
//!
//! The reading thread decodes each frame, keeps the flow and TCP tables, and queues the decoded
//! packet (detached from its frame), its payloads and what it worked out ([`PacketMeta`]) in a
//! [`Batch`], with the flows that ended in between. A full batch goes through the analyses of
//! the reading thread, then to the second thread (when there is one) for the others. Each
//! analysis takes a batch in turn ([`run`]): it sees the same packets and flow ends, in the
//! same order, as it would one packet at a time, while its code and tables stay hot and it can
//! prefetch the state of the packets ahead ([`Analyzer::prefetch`]). Results do not depend on
//! how the analyses are split between the threads.
//!
//! Analyses see ICMP payloads in full (the quoted headers of errors), TCP and UDP payloads in
//! full only for DNS (port 53) and otherwise their first [`PAYLOAD_HEAD`] bytes (enough for
//! status lines and protocol signatures): copying every segment's data cost a quarter of the
//! reading thread's time.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::analyzers::{Analyzer, Kinds, PacketMeta, Prefetch};
use crate::decode::{Packet, Payloads};
use crate::flow::FlowRecord;
use crate::tcp::TcpTracker;

/// Packets per batch: large enough that the channel costs nothing per packet, small enough that
/// a batch stays in the CPU's cache and the two threads overlap.
const BATCH_PACKETS: usize = 2_048;
/// Bytes of a TCP or UDP payload (other than DNS's) the analyses see.
pub const PAYLOAD_HEAD: usize = 64;
/// Batches in flight: bounds the memory the copies take (a few MiB).
const BATCHES_IN_FLIGHT: usize = 4;
/// Packets ahead whose state an analysis prefetches: far enough for memory to answer before
/// `on_packet` needs it, near enough that it is still cached.
const PREFETCH_DISTANCE: usize = 8;

pub(crate) type Analyses = Vec<(usize, Box<dyn Analyzer>)>;

struct Queued {
    packet: Packet<'static>,
    /// The payloads' copies in the batch's bytes.
    tcp_payload: (u32, u32),
    transport_payload: (u32, u32),
    meta: PacketMeta,
}

#[derive(Default)]
pub(crate) struct Batch {
    bytes: Vec<u8>,
    packets: Vec<Queued>,
    /// Each queued packet's kinds, apart: every analysis scans them.
    kinds: Vec<Kinds>,
    /// Flows that ended, with the number of packets of the batch before them.
    ended: Vec<(usize, FlowRecord)>,
}

impl Batch {
    /// Queues a packet with what the reading thread worked out about it (`unfiltered`: with its
    /// payloads in full).
    pub(crate) fn push<'a>(&mut self, pkt: &Packet<'a>, meta: PacketMeta, unfiltered: bool) {
        let (packet, payloads) = pkt.detach();
        let kinds = Kinds::of(pkt);
        let head = |bytes: &'a [u8]| match unfiltered || kinds.meets(Kinds::DNS) {
            true => bytes,
            false => &bytes[..bytes.len().min(PAYLOAD_HEAD)],
        };
        let tcp_payload = self.copy(head(payloads.tcp));
        let transport = match pkt.udp() {
            Some(_) => head(payloads.transport),
            None => payloads.transport,
        };
        let transport_payload = self.copy(transport);
        self.packets.push(Queued {
            packet,
            tcp_payload,
            transport_payload,
            meta,
        });
        self.kinds.push(kinds);
    }

    /// A flow ended after the last queued packet.
    pub(crate) fn flow_ended(&mut self, record: FlowRecord) {
        self.ended.push((self.packets.len(), record));
    }

    /// Runs the TCP tracker over the queued packets, in order and with the flow ends at their
    /// places, and puts its findings in their meta: done a batch at a time, the tracker can
    /// prefetch each conversation's state (two steps: the table entry, then the state behind it).
    pub(crate) fn track_tcp(&mut self, tcp: &mut TcpTracker) {
        let mut ended = self.ended.iter().peekable();
        let is_tcp = |q: &Queued| q.packet.tcp().is_some() && q.meta.flow.is_some();
        for i in 0..self.packets.len() {
            while let Some((_, record)) = ended.next_if(|(at, _)| *at == i) {
                tcp.forget(record.slot);
            }
            for (ahead, far) in [(2 * PREFETCH_DISTANCE, true), (PREFETCH_DISTANCE, false)] {
                if let Some(q) = self.packets.get(i + ahead).filter(|q| is_tcp(q)) {
                    tcp.prefetch(q.meta.flow_slot, far);
                }
            }
            let q = &mut self.packets[i];
            if let (Some(_), Some((_, dir))) = (q.packet.tcp(), q.meta.flow) {
                q.meta.tcp = tcp.analyze(&q.packet, q.meta.flow_slot, dir);
            }
        }
        for (_, record) in ended {
            tcp.forget(record.slot);
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.packets.len() >= BATCH_PACKETS
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.packets.is_empty() && self.ended.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.packets.clear();
        self.kinds.clear();
        self.ended.clear();
    }

    /// Positions of the queued packets of any of these kinds.
    fn positions(&self, kinds: Kinds) -> Vec<u32> {
        (0u32..)
            .zip(&self.kinds)
            .filter(|(_, k)| k.meets(kinds))
            .map(|(i, _)| i)
            .collect()
    }

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

/// Runs the batch through each analysis in turn (`unfiltered`: every packet to every analysis).
///
/// Each analysis walks only the packets of the kinds it reads: the positions of those packets
/// are listed once per batch for each set of kinds asked for (most analyses share a few), so an
/// analysis of ICMP or SYN packets does not step over the whole batch.
pub(crate) fn run(analyses: &mut Analyses, batch: &Batch, unfiltered: bool) {
    if analyses.is_empty() {
        return;
    }
    let packets: Vec<Packet<'_>> = batch
        .packets
        .iter()
        .map(|q| {
            let payloads = Payloads {
                tcp: batch.slice(q.tcp_payload),
                transport: batch.slice(q.transport_payload),
            };
            Packet::attach(&q.packet, payloads)
        })
        .collect();
    let mut lists: Vec<(Kinds, Vec<u32>)> = Vec::new();
    for (_, a) in analyses.iter_mut() {
        let wanted = match unfiltered {
            true => Kinds::ALL,
            false => a.packets(),
        };
        let at = match lists.iter().position(|(kinds, _)| *kinds == wanted) {
            Some(at) => at,
            None => {
                lists.push((wanted, batch.positions(wanted)));
                lists.len() - 1
            }
        };
        run_one(a.as_mut(), batch, &packets, &lists[at].1);
    }
}

/// Runs one analysis over the packets at `positions` (in order), with the flow ends at their
/// places.
fn run_one(a: &mut dyn Analyzer, batch: &Batch, packets: &[Packet<'_>], positions: &[u32]) {
    let prefetch = a.prefetches();
    let meta = |k: usize| positions.get(k).map(|&i| &batch.packets[i as usize].meta);
    let mut ended = batch.ended.iter().peekable();
    for (k, &i) in positions.iter().enumerate() {
        let i = i as usize;
        while let Some((_, record)) = ended.next_if(|(at, _)| *at <= i) {
            a.on_flow_end(record);
        }
        if prefetch == Prefetch::NearAndFar {
            if let Some(far) = meta(k + 2 * PREFETCH_DISTANCE) {
                a.prefetch_far(far);
            }
        }
        if prefetch != Prefetch::None {
            if let Some(near) = meta(k + PREFETCH_DISTANCE) {
                a.prefetch(near);
            }
        }
        a.on_packet(&packets[i], &batch.packets[i].meta);
    }
    for (_, record) in ended {
        a.on_flow_end(record);
    }
}

/// The second thread, with its analyses.
pub(crate) struct Worker {
    sender: Option<SyncSender<Batch>>,
    recycled: Receiver<Batch>,
    handle: Option<JoinHandle<Analyses>>,
}

impl Worker {
    pub(crate) fn spawn(mut analyses: Analyses, unfiltered: bool) -> Self {
        let (sender, receiver) = sync_channel::<Batch>(BATCHES_IN_FLIGHT);
        let (give_back, recycled) = sync_channel::<Batch>(BATCHES_IN_FLIGHT + 1);
        let handle = std::thread::Builder::new()
            .name("pcap-analyses".into())
            .spawn(move || {
                for mut batch in receiver {
                    run(&mut analyses, &batch, unfiltered);
                    batch.clear();
                    let _ = give_back.try_send(batch);
                }
                analyses
            })
            .ok();
        Worker {
            sender: Some(sender),
            recycled,
            handle,
        }
    }

    /// Hands a batch over; returns an empty one to fill next (a recycled one when available).
    pub(crate) fn send(&mut self, batch: Batch) -> Batch {
        if let Some(s) = &self.sender {
            let _ = s.send(batch);
        }
        self.recycled.try_recv().unwrap_or_default()
    }

    /// Waits for the thread and returns its analyses.
    pub(crate) fn join(mut self) -> Analyses {
        self.sender = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(analyses)) => analyses,
            // A panic in an analysis is a bug: surface it as on a single thread.
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Vec::new(),
        }
    }
}
