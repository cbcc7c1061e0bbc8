//! The whole analysis over arbitrary bytes, with every analysis, on one thread and then two:
//! a report or a clean error, and the same outcome both ways.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = engine::Config::default();
    let one = engine::Options {
        single_thread: true,
        ..engine::Options::default()
    };
    let a = engine::analyze(data, &config, &one);
    if let Ok(report) = &a {
        let _ = engine::render::html(report);
        // As the CLI and the service write it: a float that is not finite or a map key that is
        // not a string would fail here.
        serde_json::to_string(report).expect("the report serialises");
    }
    let b = engine::analyze(data, &config, &engine::Options::default());
    assert_eq!(a.is_ok(), b.is_ok());
});
