//! The second analysis thread. The reading thread decodes each frame, keeps the flow and TCP
//! tables, and runs its share of the analyses; it copies the frame with what it worked out
//! ([`PacketMeta`]) into a batch for this thread, which decodes the copy again (cheap) and runs
//! the other analyses, in the same order, with the same flow-end events at the same points.
//! Results do not depend on the split: every analysis sees exactly the packets and events it
//! would see on one thread.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::analyzers::{Analyzer, PacketMeta};
use crate::capture::Frame;
use crate::decode;
use crate::flow::FlowRecord;

/// Frames per batch: large enough that the channel costs nothing per packet, small enough that
/// the two threads overlap.
const BATCH_FRAMES: usize = 2_048;
/// Batches in flight: bounds the memory the copies take (a few MiB).
const BATCHES_IN_FLIGHT: usize = 4;

type Analyses = Vec<(usize, Box<dyn Analyzer>)>;

struct FrameCopy {
    number: u64,
    ts_ns: i64,
    ts_known: bool,
    linktype: u32,
    wire_len: u32,
    start: usize,
    end: usize,
    meta: PacketMeta,
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

    pub(crate) fn push(&mut self, frame: &Frame<'_>, meta: PacketMeta) {
        let start = self.batch.bytes.len();
        self.batch.bytes.extend_from_slice(frame.data);
        self.batch.frames.push(FrameCopy {
            number: frame.number,
            ts_ns: frame.ts_ns,
            ts_known: frame.ts_known,
            linktype: frame.linktype,
            wire_len: frame.wire_len,
            start,
            end: self.batch.bytes.len(),
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
        let frame = Frame {
            number: f.number,
            ts_ns: f.ts_ns,
            ts_known: f.ts_known,
            linktype: f.linktype,
            data: &batch.bytes[f.start..f.end],
            wire_len: f.wire_len,
        };
        let pkt = decode::decode(&frame);
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
