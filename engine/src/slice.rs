//! One TCP stream's packets cut out of a capture, as a capture of the same format: the pcap
//! file header, or the pcapng section headers and interface descriptions, then the stream's
//! records byte for byte (same link type, timestamp precision, options and comments).
//!
//! Two steps, so that an index made during the analysis and a local cut share the second one:
//! 1. [`locate`] reads the capture through and numbers the TCP streams exactly as the analysis
//!    does (`tcp.stream`, Wireshark's numbering, from the same flow table and TCP tracker). It
//!    returns a [`Cut`]: where the header blocks and the stream's records lie in the file.
//! 2. [`write()`] copies those byte ranges, in file order. A plain file is read only where the
//!    ranges are (seeks); a gzip capture is read through, because its offsets are those of the
//!    decompressed stream; the cut is then an uncompressed capture of the same format.
//!
//! The service does not read a capture twice: the analysis itself can build an [`Index`]
//! (`engine::analyze_indexed`), where every TCP stream's records lie, kept beside the report.
//! [`Index::cut`] then gives the [`Cut`] of a stream without reading the capture, and
//! [`write()`] reads only those ranges (ranged GETs on a kept capture). A gzip capture is indexed
//! by its decompressed offsets, so its cut still reads it through.

use std::io::{BufReader, Read, Seek, SeekFrom, Write};

use crate::capture::CaptureReader;
use crate::error::Error;
use crate::flow::{FlowKey, FlowTable};
use crate::tcp::TcpTracker;

/// Where the parts of a cut lie in a capture (offsets in the decompressed stream).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cut {
    /// The blocks every cut starts with (pcap file header; pcapng section headers and interface
    /// descriptions), as (first byte, length).
    pub header_blocks: Vec<(u64, u32)>,
    /// The stream's records as byte ranges `[start, end)`, in file order, merged where they
    /// touch.
    pub records: Vec<(u64, u64)>,
    /// Frames in the cut, and the first and last of their numbers in the capture (1-based).
    pub frames: u64,
    pub first_frame: u64,
    pub last_frame: u64,
    /// The capture's format, as the report names it ("pcap", "pcap (nanosecond)", "pcapng").
    pub format: &'static str,
}

impl Cut {
    /// Adds a record (its first byte and length) after the ones already added.
    pub fn add(&mut self, number: u64, (start, len): (u64, u32)) {
        let end = start + u64::from(len);
        match self.records.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => self.records.push((start, end)),
        }
        if self.frames == 0 {
            self.first_frame = number;
        }
        self.frames += 1;
        self.last_frame = number;
    }

    /// Bytes the cut will hold.
    pub fn bytes(&self) -> u64 {
        let headers: u64 = self.header_blocks.iter().map(|(_, n)| u64::from(*n)).sum();
        headers + self.records.iter().map(|(a, b)| b - a).sum::<u64>()
    }
}

/// Reads a capture through and finds where TCP stream `stream` (`tcp.stream`) lies in it.
/// A stream the capture does not hold gives a cut of no frames.
pub fn locate(input: impl Read + Send, stream: u64) -> Result<Cut, Error> {
    let reader = CaptureReader::new(input)?;
    let mut flows = FlowTable::default();
    let mut tcp = TcpTracker::default();
    let mut cut = Cut::default();
    let summary = reader.for_each_frame(|frame, _| {
        let pkt = crate::decode::decode(frame);
        if let Some((key, dir)) = FlowKey::of_packet(&pkt) {
            let touch = flows.touch(key, dir, pkt.ts_ns, pkt.number, pkt.wire_len);
            if pkt.tcp().is_some() && tcp.analyze(&pkt, touch.slot, dir).stream == stream {
                cut.add(frame.number, frame.record);
            }
        }
        // Flows that end here are forgotten before the next packet, as in the analysis.
        flows.sweep(pkt.ts_ns, |_, record| tcp.forget(record.slot));
    })?;
    if summary.header_blocks.len() >= crate::capture::MAX_HEADER_BLOCKS {
        return Err(Error::Corrupt {
            frame: cut.last_frame,
            offset: 0,
            reason: format!(
                "more than {} pcapng sections and interfaces: the capture cannot be cut",
                crate::capture::MAX_HEADER_BLOCKS
            ),
        });
    }
    cut.header_blocks = summary.header_blocks;
    cut.format = summary.format;
    Ok(cut)
}

/// Writes the cut of `capture` (the same file [`locate`] read) to `out`; returns the bytes
/// written.
pub fn write(
    cut: &Cut,
    capture: &mut (impl Read + Seek),
    out: &mut impl Write,
) -> std::io::Result<u64> {
    let mut magic = [0u8; 2];
    capture.seek(SeekFrom::Start(0))?;
    let gz = capture.read(&mut magic)? == 2 && magic == [0x1f, 0x8b];
    capture.seek(SeekFrom::Start(0))?;
    // Header blocks and records in file order (a header block can follow records: a new
    // pcapng section or interface).
    let mut parts: Vec<(u64, u64)> = cut
        .header_blocks
        .iter()
        .map(|&(start, len)| (start, start + u64::from(len)))
        .chain(cut.records.iter().copied())
        .collect();
    parts.sort_unstable();
    let mut written = 0;
    if gz {
        let mut inflated = flate2::read::MultiGzDecoder::new(BufReader::new(capture));
        let mut at = 0u64;
        for (start, end) in parts {
            std::io::copy(&mut (&mut inflated).take(start - at), &mut std::io::sink())?;
            written += copy_exactly(&mut inflated, end - start, out)?;
            at = end;
        }
    } else {
        for (start, end) in parts {
            capture.seek(SeekFrom::Start(start))?;
            written += copy_exactly(capture, end - start, out)?;
        }
    }
    out.flush()?;
    Ok(written)
}

/// Copies `n` bytes; the capture ending before them is an error (it changed since `locate`).
fn copy_exactly(from: &mut impl Read, n: u64, out: &mut impl Write) -> std::io::Result<u64> {
    let copied = std::io::copy(&mut from.take(n), out)?;
    if copied != n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the capture ended before the packets located in it: was it changed meanwhile?",
        ));
    }
    Ok(copied)
}

/// What an index may take, as a share of the capture's bytes (and at most [`INDEX_MAX_BYTES`]):
/// past it, building stops and the index says so; a cut is then found by reading through.
pub const INDEX_MAX_SHARE: f64 = 0.01;
/// The most bytes an index takes, whatever the capture's size (memory while it is built).
pub const INDEX_MAX_BYTES: usize = 64 << 20;
/// Index bytes always allowed, so that a small capture with many short streams is indexed.
pub const INDEX_MIN_BYTES: usize = 256 << 10;
/// Memory counted for each stream while the index is built, beside its encoded ranges.
const STREAM_ENTRY_BYTES: usize = 64;
const INDEX_MAGIC: &[u8; 4] = b"PAX1";

/// One stream's entry while the index is built: its closed ranges encoded, its open one apart.
#[derive(Debug, Default)]
struct Entry {
    frames: u64,
    first_frame: u64,
    last_frame: u64,
    open: (u64, u64),
    /// End of the last closed range (ranges are encoded from there).
    closed_end: u64,
    ranges: u64,
    encoded: Vec<u8>,
}

/// Builds an [`Index`] from the records of the TCP streams, in file order.
#[derive(Debug)]
pub struct IndexBuilder {
    streams: Vec<Entry>,
    budget: usize,
    used: usize,
    /// Why the index was given up, if it was.
    abandoned: Option<String>,
}

impl IndexBuilder {
    /// An index for a capture of `capture_bytes` (when known: its budget is a share of it;
    /// else of the bytes read so far, checked as they come).
    pub fn new(capture_bytes: Option<u64>) -> Self {
        IndexBuilder {
            streams: Vec::new(),
            budget: capture_bytes.map_or(0, budget_of),
            used: 0,
            abandoned: None,
        }
    }

    /// Adds a record of TCP stream `stream` (the analysis's numbering: streams appear in
    /// order, 0 first); `read` is how far the capture has been read.
    pub fn add(&mut self, stream: u64, number: u64, (start, len): (u64, u32), read: u64) {
        if self.abandoned.is_some() {
            return;
        }
        let Ok(i) = usize::try_from(stream) else {
            return;
        };
        if i >= self.streams.len() {
            self.used += STREAM_ENTRY_BYTES * (i + 1 - self.streams.len());
            self.streams.resize_with(i + 1, Entry::default);
        }
        let e = &mut self.streams[i];
        let end = start + u64::from(len);
        if e.frames == 0 {
            e.first_frame = number;
            e.open = (start, end);
        } else if e.open.1 == start {
            e.open.1 = end;
        } else {
            let before = e.encoded.len();
            put(&mut e.encoded, e.open.0 - e.closed_end);
            put(&mut e.encoded, e.open.1 - e.open.0);
            e.closed_end = e.open.1;
            e.ranges += 1;
            e.open = (start, end);
            self.used += e.encoded.len() - before;
        }
        e.frames += 1;
        e.last_frame = number;
        let budget = self.budget.max(budget_of(read));
        if self.used > budget {
            self.abandoned = Some(format!(
                "the index would take more than {budget} bytes ({:.0} % of the capture read, at most {} MiB): slices read the capture through",
                INDEX_MAX_SHARE * 100.0,
                INDEX_MAX_BYTES >> 20
            ));
            self.streams = Vec::new();
        }
    }

    /// The index, with the capture's header blocks.
    pub fn finish(self, header_blocks: &[(u64, u32)]) -> Index {
        if let Some(why) = self.abandoned {
            return Index {
                bytes: Vec::new(),
                abandoned: Some(why),
            };
        }
        let mut out = INDEX_MAGIC.to_vec();
        put(&mut out, header_blocks.len() as u64);
        for &(start, len) in header_blocks {
            put(&mut out, start);
            put(&mut out, u64::from(len));
        }
        put(&mut out, self.streams.len() as u64);
        for e in &self.streams {
            put(&mut out, e.frames);
            put(&mut out, e.first_frame);
            put(&mut out, e.last_frame - e.first_frame);
            put(&mut out, if e.frames == 0 { 0 } else { e.ranges + 1 });
            out.extend_from_slice(&e.encoded);
            if e.frames > 0 {
                put(&mut out, e.open.0 - e.closed_end);
                put(&mut out, e.open.1 - e.open.0);
            }
        }
        Index {
            bytes: out,
            abandoned: None,
        }
    }
}

fn budget_of(capture_bytes: u64) -> usize {
    let share = (capture_bytes as f64 * INDEX_MAX_SHARE) as usize;
    share.clamp(INDEX_MIN_BYTES, INDEX_MAX_BYTES)
}

/// Where every TCP stream's records lie in a capture: a compact byte string (LEB128 numbers,
/// each range as its distance from the previous one and its length) to keep beside the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    bytes: Vec<u8>,
    abandoned: Option<String>,
}

impl Index {
    /// The index as stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// An index read back from its bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, Error> {
        if !bytes.starts_with(INDEX_MAGIC) {
            return Err(Error::Corrupt {
                frame: 0,
                offset: 0,
                reason: "not a stream index".into(),
            });
        }
        Ok(Index {
            bytes,
            abandoned: None,
        })
    }

    /// Why no index was built (the capture had too many short streams for its size).
    pub fn abandoned(&self) -> Option<&str> {
        self.abandoned.as_deref()
    }

    /// The cut of TCP stream `stream`, read from the index alone; `None` when the index was
    /// abandoned or is damaged (then [`locate`] finds it by reading the capture).
    pub fn cut(&self, stream: u64) -> Option<Cut> {
        if self.abandoned.is_some() {
            return None;
        }
        let mut r = Numbers(self.bytes.get(INDEX_MAGIC.len()..)?);
        let mut cut = Cut::default();
        for _ in 0..r.next()? {
            let start = r.next()?;
            cut.header_blocks
                .push((start, u32::try_from(r.next()?).ok()?));
        }
        let streams = r.next()?;
        for s in 0..streams {
            let (frames, first, span, ranges) = (r.next()?, r.next()?, r.next()?, r.next()?);
            if s != stream {
                for _ in 0..ranges * 2 {
                    r.next()?;
                }
                continue;
            }
            (cut.frames, cut.first_frame, cut.last_frame) = (frames, first, first + span);
            let mut end = 0u64;
            for _ in 0..ranges {
                let start = end.checked_add(r.next()?)?;
                end = start.checked_add(r.next()?)?;
                cut.records.push((start, end));
            }
            return Some(cut);
        }
        Some(cut)
    }
}

/// Appends `v` as LEB128 (7 bits a byte, low first).
fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads LEB128 numbers one after the other; `None` at the end or on a damaged one.
struct Numbers<'a>(&'a [u8]);

impl Numbers<'_> {
    fn next(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for (i, &b) in self.0.iter().enumerate().take(10) {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Some(v);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_that_touch_merge_into_one_range() {
        let mut cut = Cut::default();
        cut.add(3, (100, 50));
        cut.add(4, (150, 60));
        cut.add(9, (400, 10));
        assert_eq!(cut.records, vec![(100, 210), (400, 410)]);
        assert_eq!((cut.frames, cut.first_frame, cut.last_frame), (3, 3, 9));
        cut.header_blocks.push((0, 24));
        assert_eq!(cut.bytes(), 24 + 110 + 10);
    }

    #[test]
    fn an_index_gives_back_each_streams_cut() {
        let mut b = IndexBuilder::new(Some(1 << 30));
        b.add(0, 1, (24, 100), 124);
        b.add(1, 2, (124, 60), 184);
        b.add(0, 3, (184, 100), 284);
        b.add(0, 4, (284, 1_000_000), 1_000_284);
        b.add(1, 5, (1_000_284, 60), 1_000_344);
        let index = b.finish(&[(0, 24)]);
        let zero = index.cut(0).unwrap();
        assert_eq!(zero.records, vec![(24, 124), (184, 1_000_284)]);
        assert_eq!((zero.frames, zero.first_frame, zero.last_frame), (3, 1, 4));
        assert_eq!(zero.header_blocks, vec![(0, 24)]);
        let one = index.cut(1).unwrap();
        assert_eq!(one.records, vec![(124, 184), (1_000_284, 1_000_344)]);
        assert_eq!(index.cut(2).unwrap().frames, 0);
        let back = Index::from_bytes(index.as_bytes().to_vec()).unwrap();
        assert_eq!(back.cut(1), Some(one));
    }

    #[test]
    fn an_index_past_its_budget_is_given_up_and_says_why() {
        let mut b = IndexBuilder::new(Some(1000));
        for i in 0..100_000u64 {
            b.add(i, i + 1, (24 + i * 70, 70), 24 + (i + 1) * 70);
        }
        let index = b.finish(&[(0, 24)]);
        assert!(index
            .abandoned()
            .is_some_and(|why| why.contains("read the capture through")));
        assert_eq!(index.cut(0), None);
    }
}
