//! The transformers on any payload and any LLM answer: no panic; a
//! successful answer under JSON instructions has a status in range and
//! only settable headers.
#![no_main]
use codec::transformer::{Call, Side, TransformerConfig};
use libfuzzer_sys::fuzz_target;
use std::rc::Rc;

const CONFIGS: [&str; 3] = [
    r#"{"prompt":"p","llm_cluster":"c","llm":{"model":{"provider":"openai","name":"m"}},"parse_llm_response_json_instructions":true}"#,
    r#"{"prompt":"p","llm_cluster":"c","llm":{"model":{"provider":"anthropic","name":"m"}},"transformation_extract_pattern":"(?s)```(.*?)```"}"#,
    r#"{"prompt":"p","llm_cluster":"c","llm":{"model":{"provider":"gemini","name":"m"}}}"#,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let _ = TransformerConfig::from_json(Side::Response, rest, &|_| None);
    let cfg = TransformerConfig::from_json(Side::Response, CONFIGS[usize::from(selector) % CONFIGS.len()].as_bytes(), &|_| None).expect("fuzz configs are valid");
    let mut call = Call::new(Rc::new(cfg), "fuzz".into(), 1);
    let _ = call.request(rest);
    let status = if selector & 0x80 == 0 { Some(200) } else { Some(u16::from(selector) * 3) };
    if let Ok(t) = call.answer(status, Some("application/json"), rest, false) {
        assert!(t.status.is_none_or(|s| (100..600).contains(&s)));
        assert!(t.headers.iter().all(|(n, _)| n != "content-length"));
    }
});
