//! Prints, per TCP frame, the stream and `tcp.analysis` flags the engine computes, in the same
//! layout as `tshark -T fields -e frame.number -e tcp.stream ...`, to diff the two.
use engine::capture::CaptureReader;
use engine::decode::decode;
use engine::flow::{FlowKey, FlowTable};
use engine::tcp::{flags, TcpTracker};

fn main() {
    let path = std::env::args().nth(1).expect("usage: tcpflags FILE");
    let file = std::fs::File::open(&path).expect("open");
    let mut tracker = TcpTracker::default();
    let mut table = FlowTable::default();
    let names = [
        (flags::RETRANSMISSION, "R"),
        (flags::FAST_RETRANSMISSION, "F"),
        (flags::SPURIOUS_RETRANSMISSION, "S"),
        (flags::OUT_OF_ORDER, "O"),
        (flags::LOST_SEGMENT, "L"),
        (flags::DUP_ACK, "D"),
        (flags::PORTS_REUSED, "P"),
    ];
    CaptureReader::new(file)
        .expect("capture")
        .for_each_frame(|frame, _| {
            let pkt = decode(frame);
            if pkt.tcp().is_some() {
                if let Some((key, dir)) = FlowKey::of_packet(&pkt) {
                    let t = table.touch(key, dir, pkt.ts_ns, pkt.number, pkt.wire_len);
                    let a = tracker.analyze(&pkt, t.slot, dir);
                    let f: String = names
                        .iter()
                        .filter(|(b, _)| a.has(*b))
                        .map(|(_, n)| *n)
                        .collect();
                    let rtt = a
                        .initial_rtt_ns
                        .map(|v| format!("{:.9}", v as f64 / 1e9))
                        .unwrap_or_default();
                    println!("{}\t{}\t{}\t{}", frame.number, a.stream, f, rtt);
                }
            }
        })
        .expect("read");
}
