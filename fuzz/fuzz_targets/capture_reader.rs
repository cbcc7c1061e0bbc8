//! The capture reader over arbitrary bytes (raw, or gzip when they start so): frames or a clean
//! error, never a panic, and every frame within the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = engine::capture::CaptureReader::new(data) else {
        return;
    };
    let mut frames = 0u64;
    let _ = reader.for_each_frame(|frame, _| {
        frames += 1;
        assert_eq!(frame.number, frames);
        assert!(frame.data.len() <= 64 << 20);
    });
});
