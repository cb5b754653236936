//! ai-proxy request translation for every dialect: any body gives a new
//! body, the original, or an error, and never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let mut x = common::exchange(selector);
    if x.request_body(body).is_ok() {
        let _ = x.header_edits("/v1/chat/completions", &|_| None);
    }
});
