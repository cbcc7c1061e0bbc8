//! Errors of the engine.

/// Why a capture could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not a pcap or pcapng capture (or a gzip of one).
    #[error("not a capture file: {0}")]
    NotACapture(#[from] NotACapture),
    /// The capture is damaged in a way that stops reading before any report can be made: after
    /// which frame, at which byte of the (decompressed) file, and how.
    #[error("corrupt capture after frame {frame} (byte {offset}): {reason}")]
    Corrupt {
        frame: u64,
        offset: u64,
        reason: String,
    },
    #[error("read error: {0}")]
    Io(#[source] std::io::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The analysis went past its [`crate::Budget`]: what was exceeded, and where.
    #[error("the analysis went past its budget: {0}")]
    OverBudget(String),
}

/// Why a file is not a capture, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotACapture {
    #[error("the file is empty")]
    Empty,
    #[error("the file is too short to hold a capture header")]
    TooShort,
    /// Neither a pcap nor a pcapng magic number, nor gzip's; `looks_like_text` when the first
    /// bytes are printable (a log, a CSV, an HTML page saved instead of the capture).
    #[error("{}", if *looks_like_text {
        "no pcap or pcapng magic number at the start of the file (it looks like text)"
    } else {
        "no pcap or pcapng magic number at the start of the file"
    })]
    UnknownMagic { looks_like_text: bool },
    /// It starts as gzip, but does not decompress.
    #[error("the gzip stream could not be decompressed")]
    BadGzip,
    /// A pcap or pcapng header that the reader cannot make sense of.
    #[error("the file header could not be read")]
    BadHeader,
}
