//! The DNS message parser over arbitrary bytes (names with loops, pointers past the end,
//! counts larger than the message).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = engine::analyzers::dns::parse_header(data);
    let _ = engine::analyzers::dns::parse_message(data);
});
