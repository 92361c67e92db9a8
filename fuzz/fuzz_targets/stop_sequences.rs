//! Stop sequences cut on the answer as a whole (a JSON answer) and piece by piece (a streamed
//! one) must agree: the same text before the stop, the same sequence, and nothing past it. The
//! input is NUL-separated: up to four stop sequences, then the answer; each byte of the
//! answer below 0x08 ends a piece.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sampling2api_core::convert::stop_sequences::StopSequences;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts: Vec<&str> = text.split('\0').collect();
    let Some(answer) = parts.pop() else {
        return;
    };
    let sequences: Vec<String> = parts.iter().take(4).map(|s| s.to_string()).collect();
    let Some(stops) = StopSequences::new(&sequences) else {
        return;
    };
    let whole = answer.replace(|c: char| c < '\u{8}', "");
    let (expected, expected_stop) = match stops.find(&whole) {
        Some((at, sequence)) => (whole.get(..at).unwrap_or_default().to_string(), Some(sequence)),
        None => (whole.clone(), None),
    };
    let mut cutter = stops.cutter();
    let mut sent = String::new();
    for piece in answer.split(|c: char| c < '\u{8}') {
        sent.push_str(&cutter.push(piece));
    }
    sent.push_str(&cutter.finish());
    assert_eq!(sent, expected);
    assert_eq!(cutter.stopped(), expected_stop);
});
