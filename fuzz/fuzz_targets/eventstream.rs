//! Bedrock's binary event-stream decoder: any bytes, never panic; valid
//! frames survive any cut.
#![no_main]
use codec::proxy::eventstream::{encode, Decoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let _ = Decoder::default().push(data, &mut out);
    // The input as a payload of a well-formed frame, cut in two.
    let frame = encode(&[(":event-type", "contentBlockDelta")], data);
    let at = data.len() % (frame.len() + 1);
    let mut d = Decoder::default();
    let mut frames = Vec::new();
    let (a, b) = frame.split_at(at);
    assert!(d.push(a, &mut frames).is_ok() && d.push(b, &mut frames).is_ok());
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].payload, data);
});
