//! SSE decoder: any bytes, cut anywhere, never panic, and the events do not
//! depend on where the input was cut.
#![no_main]
use codec::sse::{SseDecoder, SseEvent};
use libfuzzer_sys::fuzz_target;

fn decode(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut d = SseDecoder::new(1 << 20);
    let mut out = Vec::new();
    for c in chunks {
        d.push(c, &mut out);
    }
    d.finish(&mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let at = usize::from(cut) % (rest.len() + 1);
    let whole = decode(&[rest]);
    let (a, b) = rest.split_at(at);
    let split = decode(&[a, b]);
    let fields = |e: &Vec<SseEvent>| e.iter().map(|e| (e.event.clone(), e.data.clone(), e.id.clone())).collect::<Vec<_>>();
    assert_eq!(fields(&whole), fields(&split));
});
