//! The diagnosis on packets built here: each cause from the traffic that shows it, and the
//! look-alikes it must not be confused with.

use engine::finding::{Cause, Severity};
use engine::sample::{sample_capture, Tcp};
use engine::{analyze, Config, Options, Report};

use super::{client_ack, handshake, report, C, S};

fn causes(r: &Report) -> Vec<(Cause, Severity)> {
    r.diagnosis
        .as_ref()
        .expect("a diagnosis")
        .causes
        .iter()
        .filter_map(|c| c.cause.map(|k| (k, c.severity)))
        .collect()
}

fn has(r: &Report, cause: Cause) -> Option<Severity> {
    causes(r)
        .into_iter()
        .find(|(c, _)| *c == cause)
        .map(|(_, s)| s)
}

/// A download of `n` segments of 1000 bytes from the server, each with its IPv4
/// identification, every second one acknowledged.
fn download(n: u32, start_ms: i64) -> Vec<(i64, Vec<u8>)> {
    let mut frames = handshake();
    for i in 0..n {
        let seq = 1001 + i * 1000;
        let ms = start_ms + i64::from(i);
        frames.push((
            ms,
            Tcp::new(S, 80, C, 40000)
                .seq(seq)
                .ack(101)
                .payload(1000)
                .ident(100 + i as u16)
                .frame(),
        ));
        if i % 2 == 1 {
            frames.push(client_ack(ms, seq + 1000));
        }
    }
    frames
}

#[test]
fn every_section_of_the_report_is_an_analysis_of_the_table() {
    let r = analyze(
        &sample_capture()[..],
        &Config::default(),
        &Options::default(),
    )
    .unwrap();
    let json = serde_json::to_value(&r).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| !matches!(*k, "schema_version" | "diagnosis" | "findings" | "metadata"))
        .collect();
    let mut table: Vec<&str> = engine::analyzers::TABLE.iter().map(|e| e.key).collect();
    let mut ours = keys.clone();
    ours.sort_unstable();
    table.sort_unstable();
    assert_eq!(ours, table);
    for e in engine::analyzers::TABLE {
        assert!(!e.title.is_empty(), "{}", e.key);
    }
    assert!(engine::analyzers::CORE.iter().all(|k| table.contains(k)));
}

#[test]
fn a_healthy_download_has_no_cause_and_scores_at_least_90() {
    let r = report(&download(40, 20));
    assert!(causes(&r).is_empty(), "{:?}", causes(&r));
    assert!(r.health_score.unwrap().overall_score >= 90.0);
}

#[test]
fn segments_sent_again_are_loss_and_segments_sent_earlier_are_reordering() {
    // Loss: segment 10 (ident 109) never arrives; the client's ACKs stop at the hole and the
    // server sends it again 300 ms later with a new ident.
    let hole = 10_001;
    let mut lossy: Vec<(i64, Vec<u8>)> = download(40, 20)
        .into_iter()
        .filter(|(_, f)| {
            f != &Tcp::new(S, 80, C, 40000)
                .seq(hole)
                .ack(101)
                .payload(1000)
                .ident(109)
                .frame()
        })
        .map(|(ms, f)| match ms {
            29.. if f.len() < 100 => client_ack(ms, hole),
            _ => (ms, f),
        })
        .collect();
    lossy.push((
        400,
        Tcp::new(S, 80, C, 40000)
            .seq(hole)
            .ack(101)
            .payload(1000)
            .ident(200)
            .frame(),
    ));
    let r = report(&lossy);
    assert!(has(&r, Cause::PacketLoss).is_some(), "{:?}", causes(&r));
    assert!(has(&r, Cause::Reordering).is_none(), "{:?}", causes(&r));

    // Reordering: segments 10 and 11 swap places on the path, their idents tell.
    let mut frames = handshake();
    for i in 0..40u32 {
        let order = match i {
            10 => 11,
            11 => 10,
            i => i,
        };
        frames.push((
            20 + i64::from(i),
            Tcp::new(S, 80, C, 40000)
                .seq(1001 + order * 1000)
                .ack(101)
                .payload(1000)
                .ident(100 + order as u16)
                .frame(),
        ));
    }
    let r = report(&frames);
    let rt = r.retransmission.as_ref().unwrap();
    assert!(
        rt.total_retransmissions + rt.anomaly_types["out_of_order"] > 0,
        "{:?} {:?}",
        rt.anomaly_types,
        r.transfers
    );
    assert!(has(&r, Cause::PacketLoss).is_none(), "{:?}", causes(&r));
}

#[test]
fn frames_recorded_twice_are_duplicates_not_retransmissions() {
    let mut frames = Vec::new();
    for (ms, f) in download(40, 20) {
        frames.push((ms, f.clone()));
        frames.push((ms, f));
    }
    let r = report(&frames);
    assert!(
        r.retransmission.as_ref().unwrap().total_retransmissions > 0,
        "tshark counts the copies as retransmissions"
    );
    assert!(
        has(&r, Cause::DuplicatedFrames).is_some(),
        "{:?}",
        causes(&r)
    );
    assert!(has(&r, Cause::PacketLoss).is_none(), "{:?}", causes(&r));
}

#[test]
fn a_syn_answered_by_rst_is_refused_and_unanswered_syns_are_unreachable() {
    let refused = report(&[
        (0, Tcp::new(C, 40000, S, 80).seq(100).syn().frame()),
        (
            1,
            Tcp::new(S, 80, C, 40000)
                .seq(0)
                .ack(101)
                .rst()
                .window(0)
                .frame(),
        ),
    ]);
    assert_eq!(
        causes(&refused).first().map(|c| c.0),
        Some(Cause::ConnectionRefused)
    );
    let mut syns = Vec::new();
    for conn in 0..3u16 {
        for (k, ms) in [0, 1000, 3000, 7000].iter().enumerate() {
            let _ = k;
            syns.push((
                i64::from(conn) * 10 + ms,
                Tcp::new(C, 40000 + conn, S, 80).seq(100).syn().frame(),
            ));
        }
    }
    syns.sort_by_key(|f| f.0);
    let r = report(&syns);
    assert_eq!(
        causes(&r).first().copied(),
        Some((Cause::ServerUnreachable, Severity::High))
    );
    assert!(r.health_score.unwrap().overall_score <= 75.0);
}

#[test]
fn a_zero_window_that_never_reopens_is_a_stall_and_one_that_reopens_is_not() {
    let mut frames = download(10, 20);
    frames.push((
        40,
        Tcp::new(C, 40000, S, 80)
            .seq(101)
            .ack(11_001)
            .window(0)
            .frame(),
    ));
    for k in 1..6 {
        frames.push((
            40 + k * 2000,
            Tcp::new(S, 80, C, 40000)
                .seq(11_001)
                .ack(101)
                .payload(1)
                .frame(),
        ));
        frames.push((
            41 + k * 2000,
            Tcp::new(C, 40000, S, 80)
                .seq(101)
                .ack(11_001)
                .window(0)
                .frame(),
        ));
    }
    let stalled = report(&frames);
    assert!(
        has(&stalled, Cause::ZeroWindowStall).is_some_and(|s| s >= Severity::High),
        "{:?}",
        causes(&stalled)
    );
    assert!(stalled.health_score.unwrap().overall_score <= 75.0);

    let mut frames = download(10, 20);
    frames.push((
        40,
        Tcp::new(C, 40000, S, 80)
            .seq(101)
            .ack(11_001)
            .window(0)
            .frame(),
    ));
    frames.push((50, Tcp::new(C, 40000, S, 80).seq(101).ack(11_001).frame()));
    let recovered = report(&frames);
    assert!(has(&recovered, Cause::ZeroWindowStall).is_none());
    assert_eq!(
        has(&recovered, Cause::ReceiveWindowLimited),
        Some(Severity::Low)
    );
}

#[test]
fn a_slow_answer_on_a_fast_path_is_the_server_and_a_late_request_is_the_client() {
    let request = |ms| {
        (
            ms,
            Tcp::new(C, 40000, S, 80)
                .seq(101)
                .ack(1001)
                .payload(100)
                .psh()
                .frame(),
        )
    };
    let answer = |ms| {
        (
            ms,
            Tcp::new(S, 80, C, 40000)
                .seq(1001)
                .ack(201)
                .payload(500)
                .psh()
                .frame(),
        )
    };
    let mut slow_server = handshake();
    slow_server.push(request(12));
    slow_server.push((22, Tcp::new(S, 80, C, 40000).seq(1001).ack(201).frame()));
    slow_server.push(answer(2022));
    let r = report(&slow_server);
    assert_eq!(
        causes(&r).first().map(|c| c.0),
        Some(Cause::SlowServer),
        "{:?}",
        causes(&r)
    );

    let mut slow_client = handshake();
    slow_client.push(request(2011));
    slow_client.push(answer(2025));
    let r = report(&slow_client);
    assert_eq!(
        causes(&r).first().map(|c| c.0),
        Some(Cause::SlowClient),
        "{:?}",
        causes(&r)
    );
    assert!(has(&r, Cause::SlowServer).is_none());
}
