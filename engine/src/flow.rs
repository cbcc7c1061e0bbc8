//! Flow keys and the conversation tables.
//!
//! A [`FlowKey`] is symmetric: both directions of a conversation give the same key, and the
//! [`Direction`] says which way a packet went. The tables are bounded: past
//! [`MAX_TRACKED_FLOWS`] entries, flows idle for longer than [`IDLE_EVICTION_NS`] are dropped, so
//! memory follows the number of live flows, never the file size.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::decode::Packet;

pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub fn fast_map<K, V>() -> FastMap<K, V> {
    HashMap::with_hasher(foldhash::fast::RandomState::default())
}

/// Flows tracked at once at most: memory follows live flows, not the file. Counts of distinct
/// conversations stay exact after eviction (see `Conversations`).
pub const MAX_TRACKED_FLOWS: usize = 200_000;
/// Below this many flows nothing is evicted, so small captures are analysed as one piece.
pub const SOFT_FLOW_LIMIT: usize = 16_384;
/// A UDP (or other datagram) flow quiet for this long has ended (Linux conntrack's UDP timeout).
pub const DATAGRAM_IDLE_NS: i64 = 30 * 1_000_000_000;
/// A TCP flow quiet for this long has ended (or is idle enough that `tcp_timeout` calls it so).
pub const TCP_IDLE_NS: i64 = 300 * 1_000_000_000;
/// A flow without packets for this long (capture time) may be evicted once the table is full.
pub const IDLE_EVICTION_NS: i64 = 60 * 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Lower (address, port) endpoint.
    pub a: IpAddr,
    pub a_port: u16,
    /// Higher (address, port) endpoint.
    pub b: IpAddr,
    pub b_port: u16,
    pub proto: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From `a` to `b`.
    AtoB,
    /// From `b` to `a`.
    BtoA,
}

impl Direction {
    pub fn index(self) -> usize {
        match self {
            Direction::AtoB => 0,
            Direction::BtoA => 1,
        }
    }
}

impl FlowKey {
    pub fn new(
        src: IpAddr,
        src_port: u16,
        dst: IpAddr,
        dst_port: u16,
        proto: u8,
    ) -> (Self, Direction) {
        if (src, src_port) <= (dst, dst_port) {
            let key = FlowKey {
                a: src,
                a_port: src_port,
                b: dst,
                b_port: dst_port,
                proto,
            };
            (key, Direction::AtoB)
        } else {
            let key = FlowKey {
                a: dst,
                a_port: dst_port,
                b: src,
                b_port: src_port,
                proto,
            };
            (key, Direction::BtoA)
        }
    }

    /// Key of a packet's 5-tuple (ports are 0 for protocols without ports).
    pub fn of_packet(pkt: &Packet<'_>) -> Option<(Self, Direction)> {
        let ip = pkt.ip()?;
        let (sp, dp) = match (pkt.tcp(), pkt.udp()) {
            (Some(t), _) => (t.src_port, t.dst_port),
            (_, Some(u)) => (u.src_port, u.dst_port),
            _ => (0, 0),
        };
        Some(FlowKey::new(ip.src, sp, ip.dst, dp, ip.proto))
    }

    /// Source and destination of a direction as "addr:port".
    pub fn endpoints(&self, dir: Direction) -> (String, String) {
        let a = endpoint(self.a, self.a_port);
        let b = endpoint(self.b, self.b_port);
        match dir {
            Direction::AtoB => (a, b),
            Direction::BtoA => (b, a),
        }
    }

    /// Source and destination of a direction.
    pub fn oriented(&self, dir: Direction) -> (IpAddr, u16, IpAddr, u16) {
        match dir {
            Direction::AtoB => (self.a, self.a_port, self.b, self.b_port),
            Direction::BtoA => (self.b, self.b_port, self.a, self.a_port),
        }
    }

    /// A Wireshark display filter that selects this conversation.
    pub fn display_filter(&self) -> String {
        let ip = |a: &IpAddr| if a.is_ipv6() { "ipv6.addr" } else { "ip.addr" };
        let proto = match self.proto {
            6 => "tcp",
            17 => "udp",
            _ => "",
        };
        if proto.is_empty() {
            format!(
                "{} == {} && {} == {}",
                ip(&self.a),
                self.a,
                ip(&self.b),
                self.b
            )
        } else {
            format!(
                "{} == {} && {}.port == {} && {} == {} && {}.port == {}",
                ip(&self.a),
                self.a,
                proto,
                self.a_port,
                ip(&self.b),
                self.b,
                proto,
                self.b_port
            )
        }
    }
}

pub fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// The most entries a hash table of `buckets` buckets (a power of two) holds without growing:
/// hashbrown keeps its load at or under 7/8, so a cap of exactly 65 536 entries would double the
/// table to 131 072 buckets for its last eighth. Caps of bounded tables are written with this.
pub const fn table_cap(buckets: usize) -> usize {
    buckets / 8 * 7
}

/// Removes idle entries when `map` is over [`MAX_TRACKED_FLOWS`]; returns how many went.
pub fn evict_idle<K: Eq + std::hash::Hash, V>(
    map: &mut FastMap<K, V>,
    now_ns: i64,
    last_seen: impl Fn(&V) -> i64,
) -> usize {
    if map.len() < MAX_TRACKED_FLOWS {
        return 0;
    }
    let before = map.len();
    let mut horizon = IDLE_EVICTION_NS;
    // Shrink the idle horizon until at least a quarter of the table is free, so a capture with
    // more live flows than the cap still makes progress instead of sweeping on every packet.
    while map.len() > MAX_TRACKED_FLOWS * 3 / 4 && horizon > 0 {
        map.retain(|_, v| now_ns.saturating_sub(last_seen(v)) < horizon);
        horizon /= 2;
    }
    before - map.len()
}

/// Traffic of one flow (a symmetric 5-tuple; ports are 0 for protocols without ports).
#[derive(Debug, Clone)]
pub struct FlowRecord {
    pub key: FlowKey,
    /// Slot in the flow table (what [`FlowTouch::slot`] gave its packets).
    pub slot: u32,
    /// Direction of the flow's first packet (its initiator, as far as the capture shows).
    pub first_dir: Direction,
    /// Unique over the capture, also across evictions (0-based, in order of appearance).
    pub id: u64,
    /// Packets and bytes (frame length) from `a` to `b` (`[0]`) and back (`[1]`).
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub first_ts: i64,
    pub last_ts: i64,
    pub first_frame: u64,
    pub last_frame: u64,
}

/// What the flow table tells about a packet.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowTouch {
    /// Slot of the flow in the table; reused after the flow is evicted.
    pub slot: u32,
    pub id: u64,
    /// First packet of the flow.
    pub is_new: bool,
    /// Timestamp and frame of the flow's previous packet (none for the first).
    pub prev: Option<(i64, u64)>,
}

/// Ending flows ahead whose records a sweep prefetches.
const SWEEP_PREFETCH_AHEAD: usize = 8;

/// How long a flow of this protocol may go without a packet before a sweep ends it.
fn idle_after(proto: u8) -> i64 {
    match proto {
        6 => TCP_IDLE_NS,
        _ => DATAGRAM_IDLE_NS,
    }
}

/// The one table of live flows: one hash lookup per packet, shared by every analysis.
pub struct FlowTable {
    index: FastMap<FlowKey, u32>,
    slots: Vec<Option<FlowRecord>>,
    /// By slot, when the flow goes idle ([`TCP_IDLE_NS`] or [`DATAGRAM_IDLE_NS`] after its
    /// last packet; `i64::MAX` for a free slot or an ending flow): a sweep finds the flows that
    /// end from these 8 bytes a slot, then prefetches their records (the sweeps took 0.12 s of
    /// the reading thread on the 1 GB benchmark, 0.09 s so).
    idle_at: Vec<i64>,
    free: Vec<u32>,
    next_id: u64,
    pub evicted: u64,
    since_sweep: u32,
    /// The table's clock: the latest timestamp seen. A flow is idle once the clock is a horizon
    /// past its latest packet, so expiry keeps working when a capture's time runs backwards
    /// (merged or unsorted files): a million flows backwards peak as low as forwards.
    clock: i64,
}

impl Default for FlowTable {
    fn default() -> Self {
        FlowTable {
            index: fast_map(),
            slots: Vec::new(),
            idle_at: Vec::new(),
            free: Vec::new(),
            next_id: 0,
            evicted: 0,
            since_sweep: 0,
            clock: i64::MIN,
        }
    }
}

impl FlowTable {
    /// Accounts a packet to its flow, creating the flow when needed.
    pub fn touch(
        &mut self,
        key: FlowKey,
        dir: Direction,
        ts: i64,
        frame: u64,
        len: u32,
    ) -> FlowTouch {
        let slot = match self.index.get(&key) {
            Some(&slot) => slot,
            None => {
                let slot = self.free.last().copied().unwrap_or(self.slots.len() as u32);
                let record = FlowRecord {
                    key,
                    slot,
                    first_dir: dir,
                    id: self.next_id,
                    packets: [0; 2],
                    bytes: [0; 2],
                    first_ts: ts,
                    last_ts: ts,
                    first_frame: frame,
                    last_frame: 0,
                };
                self.next_id += 1;
                let slot = match self.free.pop() {
                    Some(s) => {
                        self.slots[s as usize] = Some(record);
                        s
                    }
                    None => {
                        self.slots.push(Some(record));
                        self.idle_at.push(i64::MAX);
                        (self.slots.len() - 1) as u32
                    }
                };
                self.index.insert(key, slot);
                slot
            }
        };
        let Some(r) = self.slots.get_mut(slot as usize).and_then(|s| s.as_mut()) else {
            return FlowTouch::default();
        };
        let is_new = r.last_frame == 0;
        let prev = (!is_new).then_some((r.last_ts, r.last_frame));
        let d = dir.index();
        r.packets[d] += 1;
        r.bytes[d] += u64::from(len);
        r.last_ts = ts;
        r.last_frame = frame;
        // A flow goes idle a horizon after its latest packet, and the clock (the latest time
        // seen) says when that is: when time runs backwards, the flows whose packets lie a
        // horizon behind the clock end, so the table stays as small as forwards.
        self.clock = self.clock.max(ts);
        let idle_at = ts.saturating_add(idle_after(r.key.proto));
        let held = &mut self.idle_at[slot as usize];
        *held = if is_new {
            idle_at
        } else {
            (*held).max(idle_at)
        };
        FlowTouch {
            slot,
            id: r.id,
            is_new,
            prev,
        }
    }

    pub fn get(&self, slot: u32) -> Option<&FlowRecord> {
        self.slots.get(slot as usize).and_then(|s| s.as_ref())
    }

    /// Live flows.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Every 16 384 packets, once the table holds [`SOFT_FLOW_LIMIT`] flows, ends the flows that
    /// have gone quiet: UDP and other datagram flows after [`DATAGRAM_IDLE_NS`], TCP after
    /// [`TCP_IDLE_NS`] (long enough for keep-alive and think time, so a live TCP stream is not
    /// split). Past [`MAX_TRACKED_FLOWS`] the horizons halve until a quarter of the table is
    /// free. Each removed flow goes to `on_evict` with its slot.
    pub fn sweep(&mut self, now: i64, mut on_evict: impl FnMut(u32, FlowRecord)) {
        self.since_sweep += 1;
        if self.since_sweep < 16_384 {
            return;
        }
        self.since_sweep = 0;
        if self.index.len() < SOFT_FLOW_LIMIT {
            return;
        }
        let now = now.max(self.clock);
        let (mut tcp_horizon, mut datagram_horizon) = (TCP_IDLE_NS, DATAGRAM_IDLE_NS);
        // Ended flows go out in the order they began, not in hash order (whose seed changes
        // from run to run), so every report is reproducible. They are listed by (id, slot) and
        // sorted so, then taken out of their slots: sorting the records themselves moved
        // hundreds of bytes per comparison.
        let mut ended: Vec<(u64, u32)> = Vec::new();
        // At the usual horizons, by the idle times alone; then the records of the flows that
        // end, each prefetched a few ahead (most are no longer in the cache).
        let ending: Vec<u32> = (0u32..)
            .zip(self.idle_at.iter_mut())
            .filter(|(_, idle_at)| now >= **idle_at)
            .map(|(slot, idle_at)| {
                *idle_at = i64::MAX;
                slot
            })
            .collect();
        for (i, &slot) in ending.iter().enumerate() {
            if let Some(&ahead) = ending.get(i + SWEEP_PREFETCH_AHEAD) {
                prefetch(&self.slots[ahead as usize]);
            }
            if let Some(r) = &self.slots[slot as usize] {
                self.index.remove(&r.key);
                self.free.push(slot);
                ended.push((r.id, slot));
            }
        }
        // Past MAX_TRACKED_FLOWS, shorter and shorter horizons, by the records.
        while self.index.len() > MAX_TRACKED_FLOWS * 3 / 4 && tcp_horizon > 0 {
            tcp_horizon /= 2;
            datagram_horizon /= 2;
            // Through the slots in memory order (the index would visit them at random, a cache
            // miss each); only the flows that go are looked up in the index.
            for (slot, entry) in self.slots.iter().enumerate() {
                let Some(r) = entry else { continue };
                if self.idle_at[slot] == i64::MAX {
                    continue; // Already ending.
                }
                let horizon = if r.key.proto == 6 {
                    tcp_horizon
                } else {
                    datagram_horizon
                };
                // When the flow was last seen, by the table's clock.
                let seen = self.idle_at[slot].saturating_sub(idle_after(r.key.proto));
                let age = now.saturating_sub(seen);
                if age < horizon || age <= 0 {
                    continue;
                }
                self.idle_at[slot] = i64::MAX;
                self.index.remove(&r.key);
                self.free.push(slot as u32);
                ended.push((r.id, slot as u32));
            }
        }
        // Still too many (time stood still or ran backwards: no flow looks idle by the clock):
        // the flows touched longest ago, by frame number, go until a quarter is free.
        let excess = self.index.len().saturating_sub(MAX_TRACKED_FLOWS * 3 / 4);
        if excess > 0 {
            let mut live: Vec<(u64, u32)> = (0u32..)
                .zip(&self.slots)
                .filter(|(slot, r)| r.is_some() && self.idle_at[*slot as usize] != i64::MAX)
                .filter_map(|(slot, r)| r.as_ref().map(|r| (r.last_frame, slot)))
                .collect();
            live.select_nth_unstable(excess - 1);
            for &(_, slot) in &live[..excess] {
                if let Some(r) = &self.slots[slot as usize] {
                    self.idle_at[slot as usize] = i64::MAX;
                    self.index.remove(&r.key);
                    self.free.push(slot);
                    ended.push((r.id, slot));
                }
            }
        }
        self.evicted += ended.len() as u64;
        ended.sort_unstable();
        for (_, slot) in ended {
            if let Some(r) = self.slots[slot as usize].take() {
                on_evict(slot, r);
            }
        }
    }

    /// Every flow still in the table, for the analyses' final pass.
    pub fn records(&self) -> impl Iterator<Item = &FlowRecord> {
        self.slots.iter().filter_map(|s| s.as_ref())
    }
}

/// State of an analysis for each live flow, found by flow-table slot: no hash lookup per
/// packet, and memory follows the flows the analysis keeps state for. The analysis hands a
/// slot's state back in `on_flow_end` ([`PerSlot::take`]); a slot given to a new flow starts
/// afresh.
///
/// The slots index a dense store, 4 bytes a slot: an analysis of TCP streams among many more
/// UDP flows holds its (large) states for the streams alone. On the 1 GB benchmark the
/// transfers' 750-byte stream states took 60 MB when stored by slot, one per flow of any kind.
pub struct PerSlot<T> {
    /// By slot, 1 + the position of its flow's state in `states` (0: none).
    index: Vec<u32>,
    /// Flow id and state; `None` once handed back, and reused from `free`.
    states: Vec<Option<(u64, T)>>,
    free: Vec<u32>,
}

impl<T> Default for PerSlot<T> {
    fn default() -> Self {
        PerSlot {
            index: Vec::new(),
            states: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> PerSlot<T> {
    /// The state of the packet's flow, made by `new` on the flow's first packet seen here
    /// (`None` for packets outside flows).
    pub fn get_or_insert_with(
        &mut self,
        meta: &crate::analysis::PacketMeta,
        new: impl FnOnce() -> T,
    ) -> Option<&mut T> {
        meta.flow?;
        let slot = meta.flow_slot as usize;
        if self.index.len() <= slot {
            self.index.resize(slot + 1, 0);
        }
        let at = match self.index[slot] {
            0 => {
                let at = match self.free.pop() {
                    Some(at) => at as usize,
                    None => {
                        self.states.push(None);
                        self.states.len() - 1
                    }
                };
                self.index[slot] = at as u32 + 1;
                at
            }
            held => held as usize - 1,
        };
        let entry = &mut self.states[at];
        // A state left by the slot's previous flow (never handed back) is replaced.
        if entry.as_ref().is_none_or(|(id, _)| *id != meta.flow_id) {
            *entry = Some((meta.flow_id, new()));
        }
        entry.as_mut().map(|(_, state)| state)
    }

    /// The state of the packet's flow, if it has one here.
    pub fn get_mut(&mut self, meta: &crate::analysis::PacketMeta) -> Option<&mut T> {
        meta.flow?;
        let at = self.position(meta.flow_slot)?;
        match &mut self.states[at] {
            Some((id, state)) if *id == meta.flow_id => Some(state),
            _ => None,
        }
    }

    /// Where a slot's state is in `states`.
    fn position(&self, slot: u32) -> Option<usize> {
        match self.index.get(slot as usize) {
            Some(&held) if held != 0 => Some(held as usize - 1),
            _ => None,
        }
    }

    /// Starts loading the state of a packet's flow into the CPU cache (see
    /// [`crate::analysis::Analyzer::prefetch`]). With tens of thousands of live flows a state
    /// is rarely cached, and the wait for memory is most of an analysis's cost per packet.
    pub fn prefetch(&self, ahead: &crate::analysis::PacketMeta) {
        self.prefetch_slot(ahead.flow_slot);
    }

    /// Starts loading the state of a slot into the CPU cache: of a flow that is about to end
    /// (see [`crate::analysis::Analyzer::prefetch_end`]).
    pub fn prefetch_slot(&self, slot: u32) {
        if let Some(at) = self.position(slot) {
            prefetch(&self.states[at]);
        }
    }

    /// Removes and returns the state of a slot (when its flow ends).
    pub fn take(&mut self, slot: u32) -> Option<T> {
        let at = self.position(slot)?;
        self.index[slot as usize] = 0;
        self.free.push(at as u32);
        self.states[at].take().map(|(_, state)| state)
    }

    /// Removes and returns every state left with its flow (from the final flow table).
    pub fn drain_live<'f>(&mut self, flows: &'f FlowTable) -> Vec<(&'f FlowRecord, T)> {
        self.drain()
            .filter_map(|(slot, state)| flows.get(slot).map(|flow| (flow, state)))
            .collect()
    }

    /// Removes and returns every state left, with its slot (the flow is `Finish::flows.get(slot)`),
    /// in slot order.
    pub fn drain(&mut self) -> impl Iterator<Item = (u32, T)> + '_ {
        self.free.clear();
        let mut states = std::mem::take(&mut self.states);
        self.index
            .drain(..)
            .enumerate()
            .filter(|&(_, held)| held != 0)
            .filter_map(move |(slot, held)| {
                let (_, state) = states[held as usize - 1].take()?;
                Some((slot as u32, state))
            })
    }
}

/// Asks the CPU to load every cache line of `value` (a hint: nothing is read or written).
#[inline]
pub fn prefetch<T>(value: &T) {
    let start = value as *const T as usize;
    let end = start + std::mem::size_of::<T>().max(1);
    let mut line = start & !63;
    while line < end {
        prefetch_line(line);
        line += 64;
    }
}

#[inline]
fn prefetch_line(address: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only hints the cache: it never faults and reads or writes nothing,
    // whatever the address. SSE, which it needs, is part of x86_64.
    #[allow(unsafe_code)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Per-direction state of an analysis, by flow-table slot (`[a → b, b → a]`).
pub type PerFlow<T> = PerSlot<[Option<T>; 2]>;

impl<T> PerFlow<T> {
    /// The state of the packet's direction of its flow (`None` for packets outside flows).
    pub fn direction(&mut self, meta: &crate::analysis::PacketMeta) -> Option<&mut Option<T>> {
        let (_, dir) = meta.flow?;
        self.get_or_insert_with(meta, || [None, None])
            .map(|states| &mut states[dir.index()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_give_the_same_key() {
        let x: IpAddr = "10.0.0.1".parse().unwrap();
        let y: IpAddr = "10.0.0.2".parse().unwrap();
        let (k1, d1) = FlowKey::new(x, 1234, y, 80, 6);
        let (k2, d2) = FlowKey::new(y, 80, x, 1234, 6);
        assert_eq!(k1, k2);
        assert_ne!(d1, d2);
    }

    /// UDP flow `i` (10.a.b.c:1000 → 192.0.2.1:53), touched at `ts` as frame `i + 1`.
    fn touch_udp(table: &mut FlowTable, i: u32, ts: i64) -> FlowTouch {
        let client = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        let server: IpAddr = "192.0.2.1".parse().unwrap();
        let (key, dir) = FlowKey::new(client, 1000, server, 53, 17);
        table.touch(key, dir, ts, u64::from(i) + 1, 60)
    }

    /// Calls `sweep` until it runs (once every 16 384 calls); returns the ended flows' ids.
    fn sweep_once(table: &mut FlowTable, now: i64) -> Vec<u64> {
        let mut ended = Vec::new();
        for _ in 0..16_384 {
            table.sweep(now, |slot, r| {
                assert_eq!(slot, r.slot);
                ended.push(r.id);
            });
        }
        ended
    }

    #[test]
    fn a_sweep_ends_the_idle_flows_in_order_of_appearance_and_frees_their_slots() {
        let mut table = FlowTable::default();
        let second = 1_000_000_000i64;
        // 10 000 flows long quiet (40 s, past the UDP horizon), then 10 000 fresh ones.
        for i in 0..20_000 {
            touch_udp(&mut table, i, if i < 10_000 { 0 } else { 40 * second });
        }
        let ended = sweep_once(&mut table, 40 * second);
        assert_eq!(ended, (0..10_000).collect::<Vec<u64>>());
        assert_eq!((table.len(), table.evicted), (10_000, 10_000));
        // A flow seen again after it ended is a new flow, in a freed slot.
        let again = touch_udp(&mut table, 5, 41 * second);
        assert!(again.is_new);
        assert_eq!(again.id, 20_000);
        assert!((again.slot as usize) < 20_000);
    }

    #[test]
    fn past_the_flow_limit_a_sweep_shortens_the_horizon_until_a_quarter_of_the_table_is_free() {
        let mut table = FlowTable::default();
        // 210 000 flows over 2.1 s, none idle at the usual horizon: the sweep halves it (to
        // 0.94 s) until at most three quarters of MAX_TRACKED_FLOWS remain, oldest out first.
        let flows = 210_000u32;
        for i in 0..flows {
            touch_udp(&mut table, i, i64::from(i) * 10_000);
        }
        let now = i64::from(flows) * 10_000;
        let ended = sweep_once(&mut table, now);
        let left = table.len();
        assert!(
            left <= MAX_TRACKED_FLOWS * 3 / 4 && left > MAX_TRACKED_FLOWS / 4,
            "{left}"
        );
        assert_eq!(ended.len() + left, flows as usize);
        assert_eq!(table.evicted, ended.len() as u64);
        // The oldest went, in order of appearance; the newest stayed.
        assert_eq!(ended, (0..ended.len() as u64).collect::<Vec<u64>>());
        assert!(table.records().all(|r| r.id >= ended.len() as u64));
    }

    #[test]
    fn past_the_flow_limit_with_time_running_backwards_the_flows_furthest_behind_the_clock_go() {
        let mut table = FlowTable::default();
        // 210 000 flows, each stamped earlier than the one before, all within 2.1 s: the
        // shortened horizons end those furthest behind the clock, the last ones in the file.
        let flows = 210_000u32;
        for i in 0..flows {
            touch_udp(&mut table, i, i64::from(flows - i) * 10_000);
        }
        let ended = sweep_once(&mut table, 0);
        let left = table.len();
        assert!(
            left <= MAX_TRACKED_FLOWS * 3 / 4 && left > MAX_TRACKED_FLOWS / 4,
            "{left}"
        );
        assert_eq!(ended.len() + left, flows as usize);
        assert!(table.records().all(|r| r.id < left as u64));
    }

    #[test]
    fn when_time_stands_still_the_flows_touched_longest_ago_still_go() {
        let mut table = FlowTable::default();
        // 210 000 flows at one instant: no flow is older than another by the clock, so the
        // oldest by frame go once the table is full, down to three quarters of it.
        let flows = 210_000u32;
        for i in 0..flows {
            touch_udp(&mut table, i, 5_000_000_000);
        }
        let ended = sweep_once(&mut table, 0);
        assert_eq!(table.len(), MAX_TRACKED_FLOWS * 3 / 4);
        assert_eq!(ended.len() + table.len(), flows as usize);
        assert_eq!(ended, (0..ended.len() as u64).collect::<Vec<u64>>());
    }

    #[test]
    fn when_time_runs_backwards_the_flows_a_horizon_behind_the_clock_end() {
        let mut table = FlowTable::default();
        // 100 000 flows one millisecond apart, backwards (100 s in all): at each sweep the
        // flows more than the UDP horizon (30 s) behind the first packet's time end, so the
        // table never holds many more than 30 000 + the 16 384 packets between sweeps.
        let flows = 100_000u32;
        let ms = 1_000_000i64;
        let mut most = 0;
        let mut ended = 0;
        for i in 0..flows {
            let ts = i64::from(flows - i) * ms;
            touch_udp(&mut table, i, ts);
            table.sweep(ts, |_, _| ended += 1);
            most = most.max(table.len());
        }
        assert!(most <= 30_000 + 16_384 + 1, "{most}");
        assert_eq!(ended + table.len(), flows as usize);
        // A flow seen again later in the file (earlier in time) keeps its latest time.
        let mut table = FlowTable::default();
        touch_udp(&mut table, 1, 100 * ms);
        touch_udp(&mut table, 1, 10 * ms);
        assert_eq!(table.idle_at[0], 100 * ms + DATAGRAM_IDLE_NS);
    }
}
