//! Every filter's configuration parser: any bytes are accepted or refused
//! with a field path, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = codec::proxy::config::ProxyConfig::from_json(data, &|_| Some("v".into()));
    let _ = codec::guard::Guard::from_json(data);
    let _ = codec::decorator::Decorator::from_json(data);
    let _ = codec::template::Templates::from_json(data);
    let _ = codec::ratelimit::RateLimitConfig::from_json(data);
});
