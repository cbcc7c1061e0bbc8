//! A blocking [`std::io::Read`] over an [`ObjectStream`], for the synchronous engine.
//!
//! The engine runs in `tokio::task::spawn_blocking`; this reader waits on the bounded channel
//! the async download fills, so the object is never held whole in memory.

use crate::{budget_share, ObjectStream};
use bytes::{Buf, Bytes};
use std::io::{self, Read};
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

pub struct ChannelReader {
    chunks: mpsc::Receiver<Result<Bytes, crate::StorageError>>,
    current: Bytes,
    /// The stream's byte budget, and the part of it the current chunk holds.
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    held: usize,
    bytes_read: u64,
}

impl ChannelReader {
    pub fn new(stream: ObjectStream) -> Self {
        ChannelReader {
            chunks: stream.chunks,
            current: Bytes::new(),
            budget: stream.budget,
            budget_bytes: stream.budget_bytes,
            held: 0,
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
            // The chunk read through is no longer buffered: the producer may send more.
            self.budget.add_permits(std::mem::take(&mut self.held));
            match self.chunks.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => {
                    self.held = budget_share(chunk.len(), self.budget_bytes);
                    self.current = chunk;
                }
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
    use std::time::Duration;

    /// A runtime on the calling thread, with timers.
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// Sends `items` from a thread of its own, as the download task does.
    fn produce(
        items: Vec<Result<Bytes, StorageError>>,
        budget_bytes: usize,
    ) -> (ChannelReader, std::thread::JoinHandle<()>) {
        let (tx, stream) = ObjectStream::channel(8, budget_bytes);
        let producer = std::thread::spawn(move || {
            let rt = runtime();
            rt.block_on(async {
                for item in items {
                    assert!(tx.send(item).await, "the reader went away");
                }
            });
        });
        (ChannelReader::new(stream), producer)
    }

    #[test]
    fn reader_yields_every_chunk_in_order_then_eof() {
        let parts = [&b"abc"[..], b"", b"defgh"];
        let items = parts
            .iter()
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect();
        // A budget smaller than the last chunk: it still goes through, alone.
        let (mut r, producer) = produce(items, 4);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        producer.join().unwrap();
        assert_eq!(out, b"abcdefgh");
        assert_eq!(r.bytes_read(), 8);
    }

    #[test]
    fn the_producer_waits_while_the_budget_is_full_and_goes_on_when_the_reader_reads() {
        let (tx, stream) = ObjectStream::channel(6, 4);
        let rt = runtime();
        rt.block_on(async {
            assert!(tx.send(Ok(Bytes::from_static(b"abc"))).await);
            let second = tx.send(Ok(Bytes::from_static(b"def")));
            let waited = tokio::time::timeout(Duration::from_millis(50), second).await;
            assert!(
                waited.is_err(),
                "3 + 3 bytes were buffered with a budget of 4"
            );
        });
        let mut r = ChannelReader::new(stream);
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            r.read_to_end(&mut out).map(|_| out)
        });
        rt.block_on(async {
            // Once "abc" is read, there is room for "def".
            assert!(tx.send(Ok(Bytes::from_static(b"def"))).await);
        });
        drop(tx);
        assert_eq!(reader.join().unwrap().unwrap(), b"abcdef");
    }

    #[test]
    fn a_producer_waiting_for_room_stops_when_the_reader_goes_away() {
        let (tx, stream) = ObjectStream::channel(8, 4);
        let rt = runtime();
        let reader = ChannelReader::new(stream);
        rt.block_on(async {
            assert!(tx.send(Ok(Bytes::from_static(b"abcd"))).await);
        });
        // The analysis stops early (not a capture) without reading what was buffered: the
        // budget never comes back, and the producer must not wait for it forever.
        let stop = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(reader);
        });
        let sent = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(10),
                tx.send(Ok(Bytes::from_static(b"efgh"))),
            )
            .await
        });
        stop.join().unwrap();
        assert_eq!(sent, Ok(false), "the producer went on waiting for room");
    }

    #[test]
    fn a_download_error_surfaces_as_an_io_error_with_its_cause() {
        let items = vec![
            Ok(Bytes::from_static(b"ab")),
            Err(StorageError::service("GetObject", "connection reset")),
        ];
        let (mut r, producer) = produce(items, 1024);
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        producer.join().unwrap();
        assert!(err
            .get_ref()
            .is_some_and(|e| e.downcast_ref::<StorageError>().is_some()));
    }
}
