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
}
