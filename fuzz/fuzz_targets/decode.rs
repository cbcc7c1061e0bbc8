//! Decoding of one frame of any link type: the first two bytes choose the link type, the rest
//! is the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let frame = engine::capture::Frame {
        number: 1,
        ts_ns: 0,
        ts_known: true,
        linktype: u32::from(u16::from_le_bytes([data[0], data[1]])),
        data: &data[2..],
        wire_len: (data.len() - 2) as u32,
        record: (0, 0),
    };
    let _ = engine::decode::decode(&frame);
});
