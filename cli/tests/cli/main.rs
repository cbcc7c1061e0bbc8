//! Integration tests of the `pcap_analyzer` binary (one test binary for the crate).

mod exports;
mod hostile;
#[cfg(feature = "services")]
mod import_v4;
