//! Batches of packets, and the two threads that share the analyses.
//!
//! The reading thread decodes each frame, keeps the flow and TCP tables, and queues the decoded
//! packet (detached from its frame), its payloads and what it worked out ([`PacketMeta`]) in a
//! [`Batch`], with the flows that ended in between. Each analysis takes the batches in turn
//! ([`run`], [`Pool`]): it sees the same packets and flow ends, in the same order, as it would
//! one packet at a time, while its code and tables stay hot and it can prefetch the state of
//! the packets ahead ([`Analyzer::prefetch`]). With two cores, a second thread runs analyses
//! on the queued batches while the reading thread reads, and the reading thread joins in when
//! the queue is full: the work splits itself, and results do not depend on the split. Each
//! analysis walks a batch in its own compiled loop ([`Walk`], through `Analyzer::walk`), so
//! its per-packet calls are direct. At the end the analyses finish on both threads too
//! ([`finish_on_two_threads`]).
//!
//! Analyses see ICMP payloads in full (the quoted headers of errors), TCP and UDP payloads in
//! full only for DNS (port 53) and otherwise their first [`PAYLOAD_HEAD`] bytes (enough for
//! status lines and protocol signatures): copying every segment's data cost a quarter of the
//! reading thread's time.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

use crate::analysis::{Analyzer, Finish, Kinds, PacketMeta, Prefetch};
use crate::decode::{Packet, Payloads};
use crate::dedup::{fingerprint, Dedup, Fingerprint};
use crate::flow::FlowRecord;
use crate::report::Report;
use crate::tcp::TcpTracker;

/// Packets per batch: large enough that handing batches over costs nothing per packet, small
/// enough that a batch (about 200 KiB) stays in a core's L2 cache while every analysis walks it
/// in turn (2,048 packets cost about 2 % more CPU on the 1 GB benchmark).
const BATCH_PACKETS: usize = 512;
/// Bytes of a TCP or UDP payload (other than DNS's) the analyses see.
pub const PAYLOAD_HEAD: usize = 64;
/// Batches the analyses may be behind the reading thread before it helps them: bounds the
/// memory the copies take (about 250 KiB a batch), and leaves the second thread enough work
/// queued to never wait.
const BATCHES_IN_FLIGHT: usize = 4;
/// Packets ahead whose state an analysis prefetches: far enough for memory to answer before
/// `on_packet` needs it, near enough that it is still cached.
const PREFETCH_DISTANCE: usize = 8;

pub(crate) type Analyses = Vec<(usize, Box<dyn Analyzer>)>;

struct Queued {
    packet: Packet<'static>,
    /// For the duplicate check of the batch ([`Batch::find_copies`]).
    fingerprint: Option<Fingerprint>,
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
    /// For each set of kinds the analyses read, the positions of the packets of those kinds
    /// ([`Batch::index`]).
    lists: Vec<(Kinds, Vec<u32>)>,
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
            fingerprint: fingerprint(pkt),
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

    /// Finds the copies among the queued IP packets (`meta.duplicate_of`), in order, each
    /// bucket of the table prefetched a few packets ahead.
    pub(crate) fn find_copies(&mut self, dedup: &mut Dedup) {
        for i in 0..self.packets.len() {
            if let Some(fp) = self
                .packets
                .get(i + PREFETCH_DISTANCE)
                .and_then(|q| q.fingerprint)
            {
                dedup.prefetch(fp);
            }
            let q = &mut self.packets[i];
            if let Some(fp) = q.fingerprint {
                q.meta.duplicate_of = dedup
                    .check_fingerprint(fp, q.packet.ts_ns, q.packet.number)
                    .unwrap_or(0);
            }
        }
    }

    /// Adds the queued TCP packets' records to a stream index (after [`Batch::track_tcp`]).
    pub(crate) fn index_streams(&self, index: &mut crate::slice::IndexBuilder) {
        for q in self
            .packets
            .iter()
            .filter(|q| q.packet.tcp().is_some() && q.meta.flow.is_some())
        {
            let (start, len) = q.meta.record;
            index.add(
                q.meta.tcp.stream,
                q.packet.number,
                q.meta.record,
                start + u64::from(len),
            );
        }
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
        for (_, positions) in &mut self.lists {
            positions.clear();
        }
        self.ended.clear();
    }

    /// The queued packets with their payloads (copies in the batch's bytes) back in place.
    fn attach(&self) -> Vec<Packet<'_>> {
        self.packets
            .iter()
            .map(|q| {
                let payloads = Payloads {
                    tcp: self.slice(q.tcp_payload),
                    transport: self.slice(q.transport_payload),
                };
                Packet::attach(&q.packet, payloads)
            })
            .collect()
    }

    /// Lists, once for the full batch, the positions of the packets of each set of kinds the
    /// analyses read (see [`kinds_read`]), so an analysis of ICMP or SYN packets does not step
    /// over the whole batch.
    pub(crate) fn index(&mut self, kinds: &[Kinds]) {
        // The lists of a recycled batch are emptied, not dropped: no allocation per batch.
        self.lists
            .resize_with(kinds.len(), || (Kinds::ALL, Vec::new()));
        for (&wanted, (listed, positions)) in kinds.iter().zip(&mut self.lists) {
            *listed = wanted;
            positions.clear();
            positions.extend(
                (0u32..)
                    .zip(&self.kinds)
                    .filter(|(_, k)| k.meets(wanted))
                    .map(|(i, _)| i),
            );
        }
    }

    /// Positions of the packets of these kinds, as [`Batch::index`] listed them.
    fn positions(&self, wanted: Kinds) -> &[u32] {
        let list = self.lists.iter().find(|(kinds, _)| *kinds == wanted);
        list.map_or(&[], |(_, positions)| positions)
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

/// Runs the batch, indexed for these analyses, through each of them in turn (`unfiltered`:
/// every packet to every analysis).
pub(crate) fn run(analyses: &mut Analyses, batch: &Batch, unfiltered: bool) {
    if analyses.is_empty() {
        return;
    }
    let packets = batch.attach();
    for (_, a) in analyses.iter_mut() {
        let positions = batch.positions(wanted(a.as_ref(), unfiltered));
        run_one(a.as_mut(), batch, &packets, positions);
    }
}

/// The kinds of packets an analysis is given.
fn wanted(analysis: &dyn Analyzer, unfiltered: bool) -> Kinds {
    match unfiltered {
        true => Kinds::ALL,
        false => analysis.packets(),
    }
}

/// Every set of kinds these analyses read, once each (for [`Batch::index`]).
pub(crate) fn kinds_read(analyses: &Analyses, unfiltered: bool) -> Vec<Kinds> {
    let mut kinds = Vec::new();
    for (_, a) in analyses {
        let wanted = wanted(a.as_ref(), unfiltered);
        if !kinds.contains(&wanted) {
            kinds.push(wanted);
        }
    }
    kinds
}

/// Finishes the analyses on this thread and another, each taking the next analysis left (their
/// costs differ a hundredfold), into `report`. Nothing else runs by then: without this the
/// second core would sit idle while the sections are written.
pub(crate) fn finish_on_two_threads(analyses: Analyses, end: &Finish<'_>, report: &mut Report) {
    let left = Mutex::new(analyses.into_iter());
    let next = || left.lock().unwrap_or_else(|e| e.into_inner()).next();
    let theirs = std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("pcap-finish".into())
            .spawn_scoped(scope, || {
                let mut part = Report::default();
                while let Some((_, a)) = next() {
                    a.finish(end, &mut part);
                }
                part
            });
        while let Some((_, a)) = next() {
            a.finish(end, report);
        }
        helper.map(|h| h.join())
    });
    match theirs {
        Ok(Ok(part)) => report.absorb(part),
        // A panic in an analysis is a bug: surface it as on a single thread.
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        // No second thread: this one finished them all.
        Err(_) => {}
    }
}

/// Runs one analysis over the packets at `positions` (in order), with the flow ends at their
/// places: through [`Analyzer::walk`], so the per-packet calls are direct, not through the
/// analysis's vtable.
fn run_one(a: &mut dyn Analyzer, batch: &Batch, packets: &[Packet<'_>], positions: &[u32]) {
    a.walk(&Walk {
        batch,
        packets,
        positions,
    });
}

/// One batch as an analysis walks it (see [`Analyzer::walk`]).
pub struct Walk<'w, 'p> {
    batch: &'w Batch,
    packets: &'w [Packet<'p>],
    positions: &'w [u32],
}

impl Walk<'_, '_> {
    /// Runs `a` over the packets of the walk, in order, with the flow ends at their places and
    /// the prefetches `a` asks for. Generic over the analysis, so each analysis gets its own
    /// loop with its calls inlined.
    pub fn run<A: Analyzer + ?Sized>(&self, a: &mut A) {
        let (batch, packets, positions) = (self.batch, self.packets, self.positions);
        let prefetch = a.prefetches();
        let meta = |k: usize| positions.get(k).map(|&i| &batch.packets[i as usize].meta);
        let mut ended = batch.ended.iter().peekable();
        // Flow ends are prefetched as packets are, PREFETCH_DISTANCE ends ahead.
        let mut ends_ahead = batch.ended.iter().map(|(_, record)| record);
        if prefetch != Prefetch::None {
            ends_ahead
                .by_ref()
                .take(PREFETCH_DISTANCE)
                .for_each(|record| a.prefetch_end(record));
        }
        let mut end_flow = |a: &mut A, record: &FlowRecord| {
            if prefetch != Prefetch::None {
                if let Some(ahead) = ends_ahead.next() {
                    a.prefetch_end(ahead);
                }
            }
            a.on_flow_end(record);
        };
        for (k, &i) in positions.iter().enumerate() {
            let i = i as usize;
            while let Some((_, record)) = ended.next_if(|(at, _)| *at <= i) {
                end_flow(a, record);
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
            end_flow(a, record);
        }
    }
}

/// A full, indexed batch as the pool shares it: read-only, with its packets attached once.
type Attached<'a> = Vec<Packet<'a>>;

self_cell::self_cell!(
    struct Sealed {
        owner: Batch,
        #[covariant]
        dependent: Attached,
    }
);

/// A queued batch, sealed by the first thread that runs an analysis on it: most often the
/// second thread, which leaves the reading thread (the one that sets the pace) only reading.
struct Shelved {
    batch: Mutex<Option<Batch>>,
    sealed: OnceLock<Sealed>,
}

impl Shelved {
    fn new(batch: Batch) -> Self {
        Shelved {
            batch: Mutex::new(Some(batch)),
            sealed: OnceLock::new(),
        }
    }

    fn sealed(&self) -> &Sealed {
        self.sealed.get_or_init(|| {
            let batch = self.batch.lock().unwrap_or_else(|e| e.into_inner()).take();
            Sealed::new(batch.unwrap_or_default(), Batch::attach)
        })
    }

    /// The batch back, to fill again.
    fn into_batch(self) -> Batch {
        match self.sealed.into_inner() {
            Some(sealed) => sealed.into_owner(),
            None => self
                .batch
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_default(),
        }
    }
}

/// The analyses, shared by the reading thread and a second thread (see [`Pool::push`]).
///
/// Every analysis takes the batches in order, one at a time, on whichever thread is free: the
/// second thread takes the oldest batch an analysis still needs, the reading thread (when it
/// is ahead by [`BATCHES_IN_FLIGHT`] batches) the newest, still in its cache. The load splits
/// itself between the threads, whatever the capture; the report does not depend on the split.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
    unfiltered: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a batch arrives, an analysis is handed back, or the pool closes.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Batches some analysis has still to see, oldest first; the oldest is number `first`.
    batches: VecDeque<Arc<Shelved>>,
    first: u64,
    /// Each analysis with the number of the next batch it takes; `None` while a thread runs it.
    slots: Vec<Slot>,
    /// Emptied batches, for the reading thread to fill again.
    recycled: Vec<Batch>,
    /// No more batches are coming.
    closed: bool,
    /// A thread panicked in an analysis: the other stops waiting.
    failed: bool,
    /// Threads waiting on `changed`: with none, a change wakes nobody and costs no system call
    /// (waking on every hand-back made 165,000 futex calls on the 1 GB benchmark; 16,000 now).
    waiting: usize,
}

struct Slot {
    index: usize,
    analysis: Option<Box<dyn Analyzer>>,
    next: u64,
}

/// Which end of the queue a thread works from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Oldest,
    Newest,
}

impl State {
    fn pushed(&self) -> u64 {
        self.first + self.batches.len() as u64
    }

    /// Every analysis has seen every batch pushed.
    fn drained(&self) -> bool {
        self.slots
            .iter()
            .all(|s| s.analysis.is_some() && s.next == self.pushed())
    }

    /// The number of a batch with an analysis free to take it, from `end` of the queue.
    fn pick(&self, end: End) -> Option<u64> {
        let ready = self
            .slots
            .iter()
            .filter(|s| s.analysis.is_some() && s.next < self.pushed())
            .map(|s| s.next);
        match end {
            End::Oldest => ready.min(),
            End::Newest => ready.max(),
        }
    }

    fn recycle(&mut self, done: Shelved) {
        let mut batch = done.into_batch();
        batch.clear();
        self.recycled.push(batch);
    }

    /// Takes an analysis whose next batch is number `k`.
    fn claim(&mut self, k: u64) -> Option<(usize, Box<dyn Analyzer>)> {
        let at = self
            .slots
            .iter()
            .position(|s| s.next == k && s.analysis.is_some())?;
        Some((at, self.slots[at].analysis.take()?))
    }

    /// Gives an analysis back after its batch, and lets go of the batches every analysis saw.
    fn give_back(&mut self, at: usize, analysis: Box<dyn Analyzer>) {
        let slot = &mut self.slots[at];
        slot.analysis = Some(analysis);
        slot.next += 1;
        let oldest_needed = self.slots.iter().map(|s| s.next).min();
        while self.first < oldest_needed.unwrap_or(self.first) {
            let Some(done) = self.batches.pop_front() else {
                break;
            };
            self.first += 1;
            if let Ok(done) = Arc::try_unwrap(done) {
                self.recycle(done);
            }
        }
    }
}

/// Marks the pool failed when a thread unwinds out of an analysis, so the other one does not
/// wait for an analysis that will never come back.
struct FailOnPanic<'a>(&'a Shared);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(mut state) = self.0.state.lock() {
                state.failed = true;
            }
            self.0.changed.notify_all();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a thread panicked in between; the state is still consistent
        // (analyses are run outside the lock) and `failed` says what happened.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        state.waiting += 1;
        let mut state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        state.waiting -= 1;
        state
    }

    /// Lets go of the state after a change, waking the threads waiting for one, if any.
    fn changed(&self, state: MutexGuard<'_, State>) {
        let anyone = state.waiting > 0;
        drop(state);
        if anyone {
            self.changed.notify_all();
        }
    }

    /// Runs analyses on one batch from `end` of the queue, as long as some are free to take
    /// it. With `wait`, blocks until there is work or the pool is closed and drained; without,
    /// returns at once when there is none. False when there is nothing left to do.
    fn work(&self, end: End, wait: bool, unfiltered: bool) -> bool {
        let _guard = FailOnPanic(self);
        let mut state = self.lock();
        let (k, batch) = loop {
            if state.failed {
                return false;
            }
            if let Some(k) = state.pick(end) {
                let batch = state.batches[(k - state.first) as usize].clone();
                break (k, batch);
            }
            if !wait || (state.closed && state.drained()) {
                return false;
            }
            state = self.wait(state);
        };
        let Some(mut job) = state.claim(k) else {
            return true;
        };
        drop(state);
        let sealed = batch.sealed();
        let (full, packets) = (sealed.borrow_owner(), sealed.borrow_dependent());
        loop {
            let (at, mut analysis) = job;
            let positions = full.positions(wanted(analysis.as_ref(), unfiltered));
            run_one(analysis.as_mut(), full, packets, positions);
            let mut state = self.lock();
            state.give_back(at, analysis);
            let next = state.claim(k);
            self.changed(state);
            match next {
                Some(more) => job = more,
                None => break,
            }
        }
        // The last one to let go of an emptied batch recycles it.
        if let Ok(done) = Arc::try_unwrap(batch) {
            self.lock().recycle(done);
        }
        true
    }
}

impl Pool {
    /// Starts the second thread; the analyses come back, in report order, from [`Pool::finish`].
    pub(crate) fn spawn(analyses: Analyses, unfiltered: bool) -> Self {
        let slots = analyses
            .into_iter()
            .map(|(index, analysis)| Slot {
                index,
                analysis: Some(analysis),
                next: 0,
            })
            .collect();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                slots,
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        let theirs = shared.clone();
        let handle = std::thread::Builder::new()
            .name("pcap-analyses".into())
            .spawn(move || while theirs.work(End::Oldest, true, unfiltered) {})
            .ok();
        Pool {
            shared,
            handle,
            unfiltered,
        }
    }

    /// Queues a full batch, indexed for the analyses, and returns an empty one to fill next.
    /// When the analyses are [`BATCHES_IN_FLIGHT`] batches behind, the reading thread helps them
    /// (or waits) until they are not.
    pub(crate) fn push(&mut self, mut batch: Batch) -> Batch {
        let mut state = self.shared.lock();
        if state.failed {
            // An analysis panicked: nothing will take this batch; `finish` says why.
            batch.clear();
            return batch;
        }
        let empty = state.recycled.pop().unwrap_or_default();
        state.batches.push_back(Arc::new(Shelved::new(batch)));
        if state.waiting > 0 {
            self.shared.changed.notify_all();
        }
        while state.batches.len() > BATCHES_IN_FLIGHT && !state.failed {
            if state.pick(End::Newest).is_some() {
                drop(state);
                self.shared.work(End::Newest, false, self.unfiltered);
                state = self.shared.lock();
            } else {
                state = self.shared.wait(state);
            }
        }
        empty
    }

    /// Runs the queued batches to the end, on both threads, and returns the analyses in report
    /// order.
    pub(crate) fn finish(mut self) -> Analyses {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        while self.shared.work(End::Newest, true, self.unfiltered) {}
        if let Some(Err(panic)) = self.handle.take().map(JoinHandle::join) {
            // A panic in an analysis is a bug: surface it as on a single thread.
            std::panic::resume_unwind(panic);
        }
        let mut state = self.shared.lock();
        let mut analyses: Analyses = state
            .slots
            .drain(..)
            .filter_map(|s| s.analysis.map(|a| (s.index, a)))
            .collect();
        analyses.sort_by_key(|(i, _)| *i);
        analyses
    }
}

impl Drop for Pool {
    /// Stops the second thread when the reading one gives up (an error or a panic).
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            {
                let mut state = self.shared.lock();
                state.closed = true;
                state.failed = true;
            }
            self.shared.changed.notify_all();
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::capture::Frame;
    use crate::decode::{decode, linktype};
    use crate::report::Report;
    use crate::sample;

    /// Records what it is given: packet numbers, and flow ends as `u64::MAX`.
    struct Recorder {
        kinds: Kinds,
        seen: Arc<Mutex<Vec<u64>>>,
        panic_at: Option<u64>,
    }

    impl Analyzer for Recorder {
        fn on_packet(&mut self, pkt: &Packet<'_>, _meta: &PacketMeta) {
            assert_ne!(
                self.panic_at,
                Some(pkt.number),
                "analysis failed on purpose"
            );
            self.seen.lock().unwrap().push(pkt.number);
        }
        fn on_flow_end(&mut self, _flow: &FlowRecord) {
            self.seen.lock().unwrap().push(u64::MAX);
        }
        fn finish(self: Box<Self>, _end: &crate::analysis::Finish<'_>, _report: &mut Report) {}
        fn packets(&self) -> Kinds {
            self.kinds
        }
    }

    /// Frames cycling through UDP, ICMP and TCP, numbered from 1.
    fn frames(n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| match i % 3 {
                0 => sample::udp("10.0.0.1", 5000, "10.0.0.2", 53, b"payload"),
                1 => sample::icmp_echo("10.0.0.1", "10.0.0.2", false, 1, i as u16),
                _ => sample::Tcp::new("10.0.0.1", 40000, "10.0.0.2", 80).frame(),
            })
            .collect()
    }

    /// Batches of `per_batch` packets, with a flow end after each batch's first packet, indexed
    /// for `analyses`.
    fn batches(frames: &[Vec<u8>], per_batch: usize, analyses: &Analyses) -> Vec<Batch> {
        frames
            .chunks(per_batch)
            .enumerate()
            .map(|(b, chunk)| {
                let mut batch = Batch::default();
                for (i, data) in chunk.iter().enumerate() {
                    let frame = Frame {
                        number: (b * per_batch + i + 1) as u64,
                        ts_ns: sample::SAMPLE_START_NS,
                        ts_known: true,
                        linktype: linktype::ETHERNET,
                        data,
                        wire_len: data.len() as u32,
                        record: (0, 0),
                    };
                    let pkt = decode(&frame);
                    batch.push(&pkt, PacketMeta::default(), false);
                    if i == 0 {
                        batch.flow_ended(ended(&pkt));
                    }
                }
                batch.index(&kinds_read(analyses, false));
                batch
            })
            .collect()
    }

    fn ended(pkt: &Packet<'_>) -> FlowRecord {
        let (key, first_dir) = crate::flow::FlowKey::of_packet(pkt).expect("an IP packet");
        FlowRecord {
            key,
            slot: 0,
            first_dir,
            id: pkt.number,
            packets: [1, 0],
            bytes: [u64::from(pkt.wire_len), 0],
            first_ts: pkt.ts_ns,
            last_ts: pkt.ts_ns,
            first_frame: pkt.number,
            last_frame: pkt.number,
        }
    }

    fn recorders(panic_at: Option<u64>) -> (Analyses, Vec<Arc<Mutex<Vec<u64>>>>) {
        let kinds = [Kinds::ALL, Kinds::UDP, Kinds::ICMP, Kinds::TCP, Kinds::NONE];
        let logs: Vec<_> = kinds.iter().map(|_| Arc::default()).collect();
        let analyses = kinds
            .iter()
            .zip(&logs)
            .enumerate()
            .map(|(i, (&kinds, seen))| {
                let recorder = Recorder {
                    kinds,
                    seen: Arc::clone(seen),
                    panic_at: panic_at.filter(|_| i == 1),
                };
                (i, Box::new(recorder) as Box<dyn Analyzer>)
            })
            .collect();
        (analyses, logs)
    }

    fn logs(logs: &[Arc<Mutex<Vec<u64>>>]) -> Vec<Vec<u64>> {
        logs.iter().map(|l| l.lock().unwrap().clone()).collect()
    }

    #[test]
    fn the_pool_gives_each_analysis_its_packets_and_flow_ends_in_order_as_one_thread_does() {
        let frames = frames(300);
        let (mut alone, expected) = recorders(None);
        for batch in batches(&frames, 7, &alone) {
            run(&mut alone, &batch, false);
        }
        let (shared, seen) = recorders(None);
        let batches = batches(&frames, 7, &shared);
        let mut pool = Pool::spawn(shared, false);
        for batch in batches {
            let _ = pool.push(batch);
        }
        let back = pool.finish();

        assert_eq!(
            back.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        let (expected, seen) = (logs(&expected), logs(&seen));
        assert_eq!(seen, expected);
        // 300 packets and 43 flow ends; a third of the packets each for UDP, ICMP and TCP.
        assert_eq!(seen[0].len(), 343);
        assert_eq!(seen[1].iter().filter(|&&n| n != u64::MAX).count(), 100);
        assert_eq!(seen[4], vec![u64::MAX; 43]);
    }

    #[test]
    fn a_panic_in_an_analysis_on_either_thread_surfaces_instead_of_hanging() {
        let frames = frames(300);
        for panic_at in [4, 298] {
            let (analyses, _) = recorders(Some(panic_at));
            let batches = batches(&frames, 7, &analyses);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut pool = Pool::spawn(analyses, false);
                for batch in batches {
                    let _ = pool.push(batch);
                }
                pool.finish()
            }));
            let panic = outcome.err().expect("the analysis panicked");
            let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(message.contains("failed on purpose"), "{message}");
        }
    }
}
