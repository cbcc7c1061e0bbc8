//! Errors of the engine.

/// Why a capture could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not a pcap or pcapng capture.
    #[error("not a capture file: {0}")]
    NotACapture(String),
    /// The capture is damaged in a way that stops reading before any report can be made.
    #[error("corrupt capture: {0}")]
    Corrupt(String),
    #[error("read error: {0}")]
    Io(#[source] std::io::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The analysis went past its [`crate::Budget`]: what was exceeded, and where.
    #[error("the analysis went past its budget: {0}")]
    OverBudget(String),
}
