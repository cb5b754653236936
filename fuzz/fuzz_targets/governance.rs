//! Guard text extraction, decoration, template rendering and rate-limit
//! counters on any request body: no panic, and a rendered template or a
//! decorated body is always valid JSON.
#![no_main]
use codec::decorator::Decorator;
use codec::guard::{answer_texts, Guard};
use codec::ratelimit::{Window, WindowType};
use codec::template::Templates;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn parts() -> &'static (Guard, Decorator, Templates) {
    static P: OnceLock<(Guard, Decorator, Templates)> = OnceLock::new();
    P.get_or_init(|| {
        (
            Guard::from_json(br#"{"allow_patterns":["(?i)weather"],"deny_patterns":["(?i)pass(word)?","\\d{16}"],"match_all_roles":true}"#).expect("guard"),
            Decorator::from_json(br#"{"prompts":{"prepend":[{"role":"system","content":"s"}],"append":[{"role":"user","content":"u"}]}}"#).expect("decorator"),
            Templates::from_json(br#"{"templates":[{"name":"t","template":"{\"messages\":[{\"role\":\"user\",\"content\":\"{{a}} and {{b}}\"}]}"}]}"#).expect("templates"),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let (guard, decorator, templates) = parts();
    let _ = guard.check_request(data);
    let _ = answer_texts(data);
    // The decorator splices bytes: what it returns must still be JSON.
    if let Ok(body) = decorator.decorate(data) {
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    }
    if let Ok(Some((_, body))) = templates.render(data) {
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    }
    // Counter bytes from shared data are untrusted too.
    let w = Window::decode(Some(data));
    let now = u64::from_le_bytes(data.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]));
    let window = u64::from(data.len() as u32).max(1);
    let _ = (w.used(now, window, WindowType::Sliding), w.retry_after_ms(now, window, 10, WindowType::Sliding), w.charged(now, window, u64::MAX));
    // The usage value filters hand each other, and the text meter of the
    // early-stream estimate, on any bytes.
    let _ = codec::usage::parse_usage(&String::from_utf8_lossy(data));
    assert!(codec::usage::text_bytes(data) <= data.len() as u64);
});
