//! Streaming capture reader: pcap (all six magics) and pcapng (several sections, interfaces with
//! their own link type and timestamp resolution, simple and obsolete packet blocks), optionally
//! gzip-compressed, from any [`Read`]. Memory is one block buffer, whatever the file size.

use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{create_reader, PcapBlockOwned, PcapError};

use crate::error::{Error, NotACapture};

/// Initial block buffer. Grows on demand for larger blocks, up to [`MAX_BLOCK_BYTES`].
const INITIAL_BUFFER_BYTES: usize = 1 << 20;
/// Largest block we accept: a jumbo frame with pcapng options is far below this; anything larger
/// is a corrupt length field, and growing further would let one bad file claim unbounded memory.
const MAX_BLOCK_BYTES: usize = 64 << 20;
/// Bytes gathered before the format is recognised (more than any capture header).
const HEAD_BYTES: usize = 64 * 1024;

/// Turns short reads into full ones (until end of stream), so the format probe and the block
/// reader always see whole headers.
struct FullReads<R>(R);

impl<R: Read> Read for FullReads<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.0.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if filled > 0 => {
                    // Hand over what was read; the error comes back on the next call.
                    let _ = e;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}

/// Decompressed bytes after which the ratio is checked: small files may compress well by chance.
const RATIO_CHECK_AFTER_BYTES: u64 = 256 << 20;
/// Largest decompressed/compressed ratio accepted past [`RATIO_CHECK_AFTER_BYTES`]. Real
/// captures compress 2:1 to 20:1 (headers, timestamps and payloads vary); gzip cannot exceed
/// about 1032:1, which only runs of one byte reach. Far past 100:1 the data is filler, a bomb.
const MAX_INFLATE_RATIO: u64 = 100;
/// Largest decompressed stream read: 128 GiB is more than twice the largest upload (50 GB) at
/// a real capture's ratio, and more than one analysis can read in its time limit.
const MAX_INFLATED_BYTES: u64 = 128 << 30;
/// Consecutive records without a byte after which the rest is not a capture: zeros read as
/// 16-byte empty records (a decompression bomb, a file padded with zeros). No capture tool
/// writes even one.
const MAX_EMPTY_RUN: u64 = 100_000;

/// Counts the bytes read from a stream (the compressed side of a gzip capture).
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The decompressed side of a gzip capture: ends the stream early, with the reason kept for the
/// report's warnings, past [`MAX_INFLATED_BYTES`] or [`MAX_INFLATE_RATIO`].
struct Inflated<R> {
    inner: R,
    compressed: Arc<AtomicU64>,
    inflated: u64,
    stopped: Arc<Mutex<Option<String>>>,
    /// [`RATIO_CHECK_AFTER_BYTES`] and [`MAX_INFLATED_BYTES`] (smaller in tests).
    ratio_after: u64,
    max_bytes: u64,
}

impl<R: Read> Read for Inflated<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let compressed = self.compressed.load(Ordering::Relaxed).max(1);
        let why = if self.inflated >= self.max_bytes {
            Some(format!(
                "the gzip stream inflates past {} MiB: reading stopped there",
                self.max_bytes >> 20
            ))
        } else if self.inflated >= self.ratio_after
            && self.inflated / compressed > MAX_INFLATE_RATIO
        {
            Some(format!(
                "the gzip stream inflates {}:1 ({} MiB from {} KiB), far beyond any capture's {}:1: a decompression bomb; reading stopped there",
                self.inflated / compressed,
                self.inflated >> 20,
                compressed >> 10,
                MAX_INFLATE_RATIO
            ))
        } else {
            None
        };
        if let Some(why) = why {
            if let Ok(mut s) = self.stopped.lock() {
                s.get_or_insert(why);
            }
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        self.inflated += n as u64;
        Ok(n)
    }
}

/// pcapng block type of the obsolete Packet Block (pcapng draft, section 4.7 of the old spec).
const OBSOLETE_PACKET_BLOCK: u32 = 0x0000_0002;

/// One captured frame, borrowed from the reader's buffer for the time of a callback.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// 1-based frame number, as Wireshark shows it.
    pub number: u64,
    /// Timestamp in nanoseconds since the Unix epoch (0 when the block has none).
    pub ts_ns: i64,
    /// False for pcapng simple packet blocks, which carry no timestamp.
    pub ts_known: bool,
    /// LINKTYPE_* value of the interface the frame was captured on.
    pub linktype: u32,
    /// Captured bytes (may be shorter than `wire_len` when the snap length cut the frame).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub wire_len: u32,
    /// Where the frame's record (block) lies in the (decompressed) file: its first byte and
    /// its length, header included. A copy of those bytes is the frame as the file holds it.
    pub record: (u64, u32),
}

/// What the reader learnt about the file besides its frames.
#[derive(Debug, Default, Clone)]
pub struct ReadSummary {
    pub format: &'static str,
    pub frames: u64,
    pub bytes_read: u64,
    /// Human-readable problems that did not stop the analysis (truncated file, corrupt tail).
    pub warnings: Vec<String>,
    /// The blocks that describe the frames rather than hold one (the pcap file header; pcapng
    /// section headers and interface descriptions), as (first byte, length): what a capture
    /// cut from this one starts with ([`crate::slice`]). At most [`MAX_HEADER_BLOCKS`].
    pub header_blocks: Vec<(u64, u32)>,
}

/// Header blocks listed in [`ReadSummary::header_blocks`]; a file with more (a section and an
/// interface each a few packets, or a hostile one) cannot be sliced.
pub const MAX_HEADER_BLOCKS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: u32,
    /// Timestamp units per second.
    resolution: u64,
    offset_s: i64,
    snaplen: u32,
}

/// Reads frames from a capture stream.
pub struct CaptureReader<'r> {
    inner: Box<dyn PcapReaderIterator + Send + 'r>,
    interfaces: Vec<Interface>,
    legacy: Option<Interface>,
    summary: ReadSummary,
    /// Why the decompression ended the stream early, if it did.
    inflate_stopped: Arc<Mutex<Option<String>>>,
    /// In a pcapng section: its byte order.
    ng_big_endian: Option<bool>,
}

impl<'r> CaptureReader<'r> {
    /// Opens a capture, transparently decompressing gzip input.
    pub fn new<R: Read + Send + 'r>(input: R) -> Result<Self, Error> {
        // pcap-parser recognises the format from its first read alone, and a stream (a socket,
        // an S3 body) may return a few bytes at a time: gather a full head first.
        let mut input = input;
        let mut head = vec![0u8; HEAD_BYTES];
        let mut filled = 0;
        while filled < head.len() {
            match input.read(&mut head[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        head.truncate(filled);
        if head.is_empty() {
            return Err(NotACapture::Empty.into());
        }
        let gz = sniff(&head)? == Format::Gzip;
        let stream = std::io::Cursor::new(head).chain(input);
        let inflate_stopped = Arc::new(Mutex::new(None));
        let reader: Box<dyn Read + Send + 'r> = if gz {
            let compressed = Arc::new(AtomicU64::new(0));
            let counted = Counted {
                inner: stream,
                count: Arc::clone(&compressed),
            };
            let inflated = Inflated {
                inner: flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
                    64 * 1024,
                    counted,
                )),
                compressed,
                inflated: 0,
                stopped: Arc::clone(&inflate_stopped),
                ratio_after: RATIO_CHECK_AFTER_BYTES,
                max_bytes: MAX_INFLATED_BYTES,
            };
            Box::new(FullReads(inflated))
        } else {
            Box::new(FullReads(stream))
        };
        let inner = create_reader(INITIAL_BUFFER_BYTES, reader).map_err(|e| -> Error {
            match e {
                PcapError::Eof | PcapError::Incomplete(_) | PcapError::UnexpectedEof => {
                    NotACapture::TooShort.into()
                }
                PcapError::ReadError if gz => NotACapture::BadGzip.into(),
                _ => NotACapture::BadHeader.into(),
            }
        })?;
        Ok(CaptureReader {
            inner,
            interfaces: Vec::new(),
            legacy: None,
            summary: ReadSummary::default(),
            inflate_stopped,
            ng_big_endian: None,
        })
    }

    /// Bytes of the (decompressed) stream consumed so far.
    pub fn position(&self) -> u64 {
        self.inner.consumed() as u64
    }

    /// Calls `on_frame` for every frame, in file order, and returns what was learnt about the file.
    pub fn for_each_frame(
        self,
        mut on_frame: impl FnMut(&Frame<'_>, u64),
    ) -> Result<ReadSummary, Error> {
        self.try_for_each_frame(|frame, pos| {
            on_frame(frame, pos);
            Ok(())
        })
    }

    /// As [`Self::for_each_frame`], stopping at the first error `on_frame` returns (with the
    /// frame and the byte offset it was read at).
    pub fn try_for_each_frame(
        mut self,
        mut on_frame: impl FnMut(&Frame<'_>, u64) -> Result<(), Error>,
    ) -> Result<ReadSummary, Error> {
        let mut capacity = INITIAL_BUFFER_BYTES;
        let mut empty_run = 0u64;
        let mut over_snaplen = (0u64, 0u32, 0usize);
        loop {
            let consumed_before = self.inner.consumed() as u64;
            if let Some(big_endian) = self.ng_big_endian {
                if let Some(len) = short_ng_block(self.inner.data(), big_endian) {
                    self.summary.warnings.push(format!(
                        "corrupt data after frame {} at byte {consumed_before}: a pcapng block of {len} bytes (the smallest is 12); reading stopped there",
                        self.summary.frames
                    ));
                    break;
                }
            }
            match self.inner.next() {
                Ok((len, block)) => {
                    let describes = matches!(
                        block,
                        PcapBlockOwned::LegacyHeader(_)
                            | PcapBlockOwned::NG(
                                Block::SectionHeader(_) | Block::InterfaceDescription(_)
                            )
                    );
                    if describes {
                        let blocks = &mut self.summary.header_blocks;
                        if blocks.len() < MAX_HEADER_BLOCKS {
                            blocks.push((consumed_before, len as u32));
                        }
                    }
                    let frame = match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            self.summary.format = if h.is_modified_format() {
                                "pcap (modified)"
                            } else if h.is_nanosecond_precision() {
                                "pcap (nanosecond)"
                            } else {
                                "pcap"
                            };
                            self.legacy = Some(Interface {
                                linktype: h.network.0 as u32,
                                resolution: if h.is_nanosecond_precision() {
                                    1_000_000_000
                                } else {
                                    1_000_000
                                },
                                offset_s: 0,
                                snaplen: h.snaplen,
                            });
                            None
                        }
                        PcapBlockOwned::Legacy(b) => {
                            let iface = self.legacy.unwrap_or(Interface {
                                linktype: 1,
                                resolution: 1_000_000,
                                offset_s: 0,
                                snaplen: 0,
                            });
                            let frac = u64::from(b.ts_usec);
                            Some(Record {
                                linktype: iface.linktype,
                                ts: Some(secs_frac_to_ns(
                                    i64::from(b.ts_sec),
                                    frac,
                                    iface.resolution,
                                )),
                                data: b.data,
                                wire_len: b.origlen,
                                snaplen: iface.snaplen,
                            })
                        }
                        PcapBlockOwned::NG(block) => {
                            if let Block::SectionHeader(shb) = &block {
                                self.ng_big_endian = Some(shb.big_endian());
                            }
                            ng_block(&mut self.interfaces, block)
                        }
                    };
                    if let Some(Record {
                        linktype,
                        ts,
                        data,
                        wire_len,
                        snaplen,
                    }) = frame
                    {
                        if data.is_empty() && wire_len == 0 {
                            empty_run += 1;
                            if empty_run >= MAX_EMPTY_RUN {
                                self.summary.warnings.push(format!(
                                    "{empty_run} empty records in a row from frame {}: the rest of the file is not a capture (zeros, or a decompression bomb); reading stopped there",
                                    self.summary.frames + 2 - empty_run
                                ));
                                break;
                            }
                        } else {
                            empty_run = 0;
                        }
                        if snaplen > 0 && data.len() > snaplen as usize {
                            over_snaplen.0 += 1;
                            over_snaplen.1 = snaplen;
                            over_snaplen.2 = over_snaplen.2.max(data.len());
                        }
                        self.summary.frames += 1;
                        let f = Frame {
                            number: self.summary.frames,
                            ts_ns: ts.unwrap_or(0),
                            ts_known: ts.is_some(),
                            linktype,
                            data,
                            wire_len,
                            record: (consumed_before, len as u32),
                        };
                        on_frame(&f, consumed_before + len as u64)?;
                    }
                    self.inner.consume(len);
                }
                Err(PcapError::Eof) => break,
                Err(PcapError::Incomplete(_)) => {
                    if self.inner.reader_exhausted() {
                        if !self.inner.data().is_empty() && !self.inflate_stopped() {
                            self.summary.warnings.push(format!(
                                "the capture was cut short in the middle of a packet: the last {} bytes were ignored; the report covers the {} complete frames",
                                self.inner.data().len(),
                                self.summary.frames
                            ));
                        }
                        break;
                    }
                    self.refill()?;
                }
                Err(PcapError::BufferTooSmall) => {
                    if capacity >= MAX_BLOCK_BYTES {
                        self.summary.warnings.push(format!(
                            "a block larger than {} MiB after frame {}: reading stopped there",
                            MAX_BLOCK_BYTES >> 20,
                            self.summary.frames
                        ));
                        break;
                    }
                    capacity *= 2;
                    if !self.inner.grow(capacity) {
                        return Err(self.corrupt("could not grow the block buffer".into()));
                    }
                    self.refill()?;
                }
                Err(PcapError::UnexpectedEof) => {
                    if self.inflate_stopped() {
                        break;
                    }
                    self.summary.warnings.push(format!(
                        "the capture was cut short in the middle of a packet after frame {}; the report covers the frames before it",
                        self.summary.frames
                    ));
                    break;
                }
                Err(PcapError::ReadError) => {
                    return Err(
                        self.corrupt("read error (a compressed stream may be corrupt)".into())
                    )
                }
                Err(e) => {
                    let reason = format!("{e:?}");
                    let reason: String = reason.chars().take(120).collect();
                    self.summary.warnings.push(format!(
                        "corrupt data after frame {} at byte {}: reading stopped there ({reason})",
                        self.summary.frames, consumed_before
                    ));
                    break;
                }
            }
        }
        if over_snaplen.0 > 0 {
            let (n, snaplen, largest) = over_snaplen;
            self.summary.warnings.push(format!(
                "{n} records hold more bytes than the snap length of {snaplen} (the largest {largest} bytes): the file was damaged or edited; they are analysed as they are"
            ));
        }
        if let Some(why) = self.inflate_stopped.lock().ok().and_then(|mut s| s.take()) {
            self.summary.warnings.push(why);
        }
        if self.summary.format.is_empty() {
            self.summary.format = "pcapng";
        }
        self.summary.bytes_read = self.inner.consumed() as u64;
        Ok(self.summary)
    }

    /// The decompression ended the stream early (its reason becomes a warning at the end).
    fn inflate_stopped(&self) -> bool {
        self.inflate_stopped.lock().is_ok_and(|s| s.is_some())
    }

    fn refill(&mut self) -> Result<(), Error> {
        let reason = match self.inner.refill() {
            Ok(()) => return Ok(()),
            Err(e) => format!("could not read on: {e:?}"),
        };
        Err(self.corrupt(reason))
    }

    /// The capture broke here: after the frames read so far, at the byte reached.
    fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt {
            frame: self.summary.frames,
            offset: self.inner.consumed() as u64,
            reason,
        }
    }
}

/// A packet record as read, before it becomes a [`Frame`].
struct Record<'b> {
    linktype: u32,
    ts: Option<i64>,
    data: &'b [u8],
    wire_len: u32,
    /// The snap length of its interface (0: unknown or not to check).
    snaplen: u32,
}

/// The length of the next pcapng block when it is below the 12 bytes of the smallest block
/// (type, length, length again). pcap-parser 0.17 subtracts 12 from it unchecked for some block
/// types (a process information block): a panic with overflow checks, a 4 GiB block without.
/// Section headers are left to the parser (their byte order may change).
fn short_ng_block(next: &[u8], big_endian: bool) -> Option<u32> {
    const SECTION_HEADER: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
    let head: [u8; 8] = next.get(..8)?.try_into().ok()?;
    if head[..4] == SECTION_HEADER {
        return None;
    }
    let raw = [head[4], head[5], head[6], head[7]];
    let len = if big_endian {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    };
    (len < 12).then_some(len)
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One of the six pcap magics: µs or ns, or the "modified" format, in either byte order.
    Pcap,
    /// A pcapng section header block.
    Pcapng,
    /// gzip around a capture (what is inside is known once it is inflated).
    Gzip,
}

/// Bytes [`sniff`] needs.
pub const SNIFF_BYTES: usize = 4;

/// What a file is, from its first [`SNIFF_BYTES`] bytes (fewer when the file is shorter): the
/// check the reader makes, for a caller that wants to refuse a file before streaming it.
pub fn sniff(head: &[u8]) -> Result<Format, NotACapture> {
    const PCAP_MAGICS: [[u8; 4]; 6] = [
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xcd, 0x34],
        [0x34, 0xcd, 0xb2, 0xa1],
    ];
    const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
    if head.is_empty() {
        return Err(NotACapture::Empty);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Format::Gzip);
    }
    if head.starts_with(&PCAPNG_MAGIC) {
        return Ok(Format::Pcapng);
    }
    if PCAP_MAGICS.iter().any(|m| head.starts_with(m)) {
        return Ok(Format::Pcap);
    }
    let known_prefix = PCAP_MAGICS
        .iter()
        .chain([&PCAPNG_MAGIC])
        .any(|m| m.starts_with(head));
    if head.len() < SNIFF_BYTES && known_prefix {
        return Err(NotACapture::TooShort);
    }
    let looks_like_text = head
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    Err(NotACapture::UnknownMagic { looks_like_text })
}

fn ng_block<'b>(interfaces: &mut Vec<Interface>, block: Block<'b>) -> Option<Record<'b>> {
    match block {
        Block::SectionHeader(_) => {
            // Interface ids are scoped to their section (pcapng spec, section 4.1).
            interfaces.clear();
            None
        }
        Block::InterfaceDescription(idb) => {
            interfaces.push(Interface {
                linktype: idb.linktype.0 as u32,
                resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                offset_s: idb.ts_offset(),
                snaplen: idb.snaplen,
            });
            None
        }
        Block::EnhancedPacket(epb) => {
            let iface = iface(interfaces, epb.if_id);
            let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
            Some(Record {
                linktype: iface.linktype,
                ts: Some(units_to_ns(ts, iface.resolution, iface.offset_s)),
                data: &epb.data[..(epb.caplen as usize).min(epb.data.len())],
                wire_len: epb.origlen,
                snaplen: iface.snaplen,
            })
        }
        Block::SimplePacket(spb) => {
            // No timestamp in a simple packet block; the captured length is the smaller of
            // the original length and the first interface's snap length.
            let iface = iface(interfaces, 0);
            let mut data = &spb.data[..(spb.origlen as usize).min(spb.data.len())];
            if iface.snaplen > 0 && data.len() > iface.snaplen as usize {
                data = &data[..iface.snaplen as usize];
            }
            Some(Record {
                linktype: iface.linktype,
                ts: None,
                data,
                wire_len: spb.origlen,
                // Cut to the snap length above: never longer than it.
                snaplen: 0,
            })
        }
        Block::Unknown(ub) if ub.block_type == OBSOLETE_PACKET_BLOCK => {
            obsolete_packet_block(ub.data, ub.block_type != OBSOLETE_PACKET_BLOCK).map(
                |(if_id, ts, caplen, origlen, data)| {
                    let iface = iface(interfaces, u32::from(if_id));
                    let data = &data[..(caplen as usize).min(data.len())];
                    Record {
                        linktype: iface.linktype,
                        ts: Some(units_to_ns(ts, iface.resolution, iface.offset_s)),
                        data,
                        wire_len: origlen,
                        snaplen: iface.snaplen,
                    }
                },
            )
        }
        _ => None,
    }
}

fn iface(interfaces: &[Interface], id: u32) -> Interface {
    interfaces.get(id as usize).copied().unwrap_or(Interface {
        linktype: 1,
        resolution: 1_000_000,
        offset_s: 0,
        snaplen: 0,
    })
}

/// Fields of an obsolete Packet Block body (little-endian sections only; the block type was read
/// as little-endian to get here).
fn obsolete_packet_block(body: &[u8], _be: bool) -> Option<(u16, u64, u32, u32, &[u8])> {
    if body.len() < 20 {
        return None;
    }
    let u32_at = |o: usize| u32::from_le_bytes([body[o], body[o + 1], body[o + 2], body[o + 3]]);
    let if_id = u16::from_le_bytes([body[0], body[1]]);
    let ts = (u64::from(u32_at(4)) << 32) | u64::from(u32_at(8));
    Some((if_id, ts, u32_at(12), u32_at(16), &body[20..]))
}

fn secs_frac_to_ns(secs: i64, frac: u64, resolution: u64) -> i64 {
    let frac_ns = (u128::from(frac) * 1_000_000_000 / u128::from(resolution)) as i64;
    secs.saturating_mul(1_000_000_000).saturating_add(frac_ns)
}

fn units_to_ns(units: u64, resolution: u64, offset_s: i64) -> i64 {
    let secs = (units / resolution) as i64;
    let frac = units % resolution;
    secs_frac_to_ns(secs.saturating_add(offset_s), frac, resolution)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_names_each_format_and_why_a_file_is_not_one() {
        assert_eq!(sniff(&[0xd4, 0xc3, 0xb2, 0xa1]), Ok(Format::Pcap));
        assert_eq!(sniff(&[0xa1, 0xb2, 0x3c, 0x4d, 0]), Ok(Format::Pcap));
        assert_eq!(sniff(&[0x0a, 0x0d, 0x0d, 0x0a, 1]), Ok(Format::Pcapng));
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Ok(Format::Gzip));
        assert_eq!(sniff(b""), Err(NotACapture::Empty));
        assert_eq!(sniff(&[0xd4, 0xc3]), Err(NotACapture::TooShort));
        let text = NotACapture::UnknownMagic {
            looks_like_text: true,
        };
        assert_eq!(sniff(b"GET / HTTP/1.1"), Err(text));
        let binary = NotACapture::UnknownMagic {
            looks_like_text: false,
        };
        assert_eq!(sniff(&[0, 1, 2, 3]), Err(binary));
    }

    #[test]
    fn a_pcapng_block_shorter_than_its_header_stops_reading_with_a_warning() {
        // Found by fuzzing: a section header, then a process information block of length 0.
        let data = [
            10, 13, 13, 10, 28, 0, 0, 0, 77, 60, 43, 26, 26, 3, 135, 171, 194, 199, 198, 253, 255,
            255, 255, 255, 0, 0, 0, 91, 1, 0, 0, 128, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 13,
            13, 10, 28, 0,
        ];
        let reader = CaptureReader::new(&data[..]).expect("a pcapng header");
        let summary = reader.for_each_frame(|_, _| {}).expect("a report");
        assert_eq!(summary.frames, 0);
        assert!(
            summary
                .warnings
                .iter()
                .any(|w| w.contains("pcapng block of 5 bytes")),
            "{:?}",
            summary.warnings
        );
    }

    #[test]
    fn the_reader_says_why_a_file_is_not_a_capture() {
        let why = |bytes: &[u8]| match CaptureReader::new(bytes) {
            Err(Error::NotACapture(why)) => why,
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("read as a capture"),
        };
        assert_eq!(why(b""), NotACapture::Empty);
        let text = NotACapture::UnknownMagic {
            looks_like_text: true,
        };
        assert_eq!(why(b"2024-03-01 12:00:00 a log line\n"), text);
        assert_eq!(
            why(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]),
            NotACapture::TooShort
        );
        let not_deflate = [
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(why(&not_deflate), NotACapture::BadGzip);
    }

    /// `members` gzip members of 1 MiB of `byte` each, one after the other (as `cat a.gz b.gz`).
    fn gzip_members(byte: u8, members: usize) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![byte; 1 << 20]).unwrap();
        e.finish().unwrap().repeat(members)
    }

    fn inflate(gz: &[u8], ratio_after: u64, max_bytes: u64) -> (u64, Option<String>) {
        let compressed = Arc::new(AtomicU64::new(0));
        let stopped = Arc::new(Mutex::new(None));
        let mut r = Inflated {
            inner: flate2::read::MultiGzDecoder::new(Counted {
                inner: gz,
                count: Arc::clone(&compressed),
            }),
            compressed,
            inflated: 0,
            stopped: Arc::clone(&stopped),
            ratio_after,
            max_bytes,
        };
        let n = std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        let why = stopped.lock().unwrap().take();
        (n, why)
    }

    #[test]
    fn a_stream_inflating_far_beyond_any_capture_is_stopped_with_the_reason() {
        let bomb = gzip_members(0, 64);
        let (n, why) = inflate(&bomb, 4 << 20, u64::MAX);
        assert!((4 << 20..8 << 20).contains(&n), "{n} bytes");
        assert!(why.expect("a reason").contains("decompression bomb"));
    }

    #[test]
    fn a_stream_past_the_absolute_limit_is_stopped_whatever_its_ratio() {
        let (n, why) = inflate(&gzip_members(0, 8), u64::MAX, 3 << 20);
        assert!((3 << 20..4 << 20).contains(&n), "{n} bytes");
        assert!(why.expect("a reason").contains("past 3 MiB"));
        // Under both limits, everything is read and nothing is said.
        assert_eq!(
            inflate(&gzip_members(0, 2), u64::MAX, 3 << 20),
            (2 << 20, None)
        );
    }

    #[test]
    fn nanosecond_fractions_scale_to_nanoseconds() {
        assert_eq!(secs_frac_to_ns(1, 500_000, 1_000_000), 1_500_000_000);
        assert_eq!(secs_frac_to_ns(1, 5, 1_000_000_000), 1_000_000_005);
    }

    #[test]
    fn pcapng_units_honour_resolution_and_offset() {
        assert_eq!(units_to_ns(1_500, 1_000, 10), 11_500_000_000);
        assert_eq!(units_to_ns(3, 2, 0), 1_500_000_000);
    }
}
