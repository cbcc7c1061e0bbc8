//! A blocking [`std::io::Read`] over an [`ObjectStream`], for the synchronous engine.
//!
//! The engine runs in `tokio::task::spawn_blocking`; this reader waits on the bounded channel
//! the async download fills, so the object is never held whole in memory.

use crate::ObjectStream;
use bytes::{Buf, Bytes};
use std::io::{self, Read};
use tokio::sync::mpsc;

pub struct ChannelReader {
    chunks: mpsc::Receiver<Result<Bytes, crate::StorageError>>,
    current: Bytes,
    bytes_read: u64,
}

impl ChannelReader {
    pub fn new(stream: ObjectStream) -> Self {
        ChannelReader {
            chunks: stream.chunks,
            current: Bytes::new(),
            bytes_read: 0,
        }
    }

    /// Bytes handed to the reader's caller so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}

impl Read for ChannelReader {
    /// Must not be called from an async task: it blocks the thread until a chunk arrives.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.current = chunk,
                // Kept as the source so the caller can tell a download failure (worth a
                // retry) from a bad capture.
                Some(Err(e)) => return Err(io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        self.bytes_read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StorageError;

    #[test]
    fn reader_yields_every_chunk_in_order_then_eof() {
        let (tx, rx) = mpsc::channel(2);
        let producer = std::thread::spawn(move || {
            for part in [&b"abc"[..], b"", b"defgh"] {
                tx.blocking_send(Ok(Bytes::copy_from_slice(part))).unwrap();
            }
        });
        let mut r = ChannelReader::new(ObjectStream {
            size_bytes: 8,
            chunks: rx,
        });
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        producer.join().unwrap();
        assert_eq!(out, b"abcdefgh");
        assert_eq!(r.bytes_read(), 8);
    }

    #[test]
    fn a_download_error_surfaces_as_an_io_error_with_its_cause() {
        let (tx, rx) = mpsc::channel(2);
        tx.try_send(Ok(Bytes::from_static(b"ab"))).unwrap();
        tx.try_send(Err(StorageError::service("GetObject", "connection reset")))
            .unwrap();
        let mut r = ChannelReader::new(ObjectStream {
            size_bytes: 10,
            chunks: rx,
        });
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert!(err
            .get_ref()
            .is_some_and(|e| e.downcast_ref::<StorageError>().is_some()));
    }
}
