//! Token usage as filters hand it to each other, and the estimate charged
//! for a stream that ended before its provider said what it used.

use crate::openai::Usage;

/// Marks a usage value that was estimated rather than reported.
const ESTIMATED: &str = "estimated";

/// Usage as one filter-state value, so a budget reads it with one host call:
/// `prompt,completion,total`, with `,estimated` when it is an estimate.
pub fn format_usage(u: &Usage) -> String {
    format!("{},{},{}", u.prompt_tokens, u.completion_tokens, u.total_tokens)
}

pub fn format_estimated(u: &Usage) -> String {
    format!("{},{ESTIMATED}", format_usage(u))
}

/// Reads `format_usage` (or `format_estimated`): the usage, and whether it
/// is an estimate.
pub fn parse_usage(value: &str) -> Option<(Usage, bool)> {
    let mut parts = value.split(',').map(str::trim);
    let mut number = || parts.next()?.parse::<u64>().ok();
    let (p, c, t) = (number()?, number()?, number()?);
    let mut u = Usage::new(p, c);
    u.total_tokens = t;
    Some((u, value.trim_end().ends_with(ESTIMATED)))
}

/// Keys whose string values are text a model reads or writes: chat and
/// Messages content, tool arguments, reasoning, and the deltas of both
/// APIs' streams. Other strings (ids, roles, model names) are framing.
const TEXT_KEYS: [&[u8]; 10] =
    [b"content", b"text", b"arguments", b"partial_json", b"thinking", b"reasoning_content", b"delta", b"input", b"prompt", b"system"];

/// Bytes of text in a JSON document (or a run of SSE events holding JSON):
/// the lengths of the string values of `TEXT_KEYS`, an escape counted as
/// one byte. One pass, no allocation, never fails on any input.
pub fn text_bytes(json: &[u8]) -> u64 {
    let mut total = 0u64;
    let mut i = 0;
    let mut last_key_is_text = false;
    while let Some(&b) = json.get(i) {
        if b != b'"' {
            i += 1;
            continue;
        }
        // A string from i+1 to its closing quote.
        let start = i + 1;
        let mut j = start;
        let mut len = 0u64;
        while let Some(&c) = json.get(j) {
            match c {
                b'\\' => {
                    j += 2;
                    len += 1;
                }
                b'"' => break,
                _ => {
                    j += 1;
                    len += 1;
                }
            }
        }
        let string = json.get(start..j.min(json.len())).unwrap_or_default();
        i = j + 1;
        // A key is a string followed by ':'.
        let mut k = i;
        while json.get(k).is_some_and(u8::is_ascii_whitespace) {
            k += 1;
        }
        if json.get(k) == Some(&b':') {
            last_key_is_text = TEXT_KEYS.contains(&string);
        } else {
            if last_key_is_text {
                total += len;
            }
            // Strings inside an array of a text key (`"input": ["a", "b"]`)
            // count too; the next key decides again.
        }
    }
    total
}

/// Tokens for `bytes` of text: four bytes a token, OpenAI's rule of thumb
/// for English (tokenizers differ; see docs/ai-token-ratelimit.md for the
/// error measured on the fixtures' transcripts).
pub fn tokens_for(bytes: u64) -> u64 {
    bytes.div_ceil(4)
}

/// The usage to charge for a stream that ended early: what the provider had
/// reported so far, its missing parts estimated from the prompt's text and
/// the text streamed. The flag says whether any part is an estimate.
pub fn estimate(reported: Option<Usage>, prompt_text_bytes: u64, streamed_text_bytes: u64) -> (Usage, bool) {
    let reported = reported.unwrap_or_default();
    let mut estimated = false;
    let prompt = if reported.prompt_tokens > 0 {
        reported.prompt_tokens
    } else {
        estimated = true;
        tokens_for(prompt_text_bytes)
    };
    let completion = if reported.completion_tokens > 0 {
        reported.completion_tokens
    } else {
        estimated = true;
        tokens_for(streamed_text_bytes)
    };
    let mut u = Usage::new(prompt, completion);
    u.prompt_tokens_details = reported.prompt_tokens_details;
    (u, estimated)
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    #[test]
    fn usage_round_trips_and_says_when_it_is_an_estimate() {
        let u = Usage::new(3, 4);
        assert_eq!(parse_usage(&format_usage(&u)), Some((u, false)));
        assert_eq!(parse_usage(&format_estimated(&u)), Some((u, true)));
        assert_eq!(parse_usage("1,2"), None);
        assert_eq!(parse_usage("a,b,c"), None);
    }

    #[test]
    fn text_is_counted_under_text_keys_only() {
        let chunk = br#"data: {"id":"chatcmpl-1","model":"gpt-4o","choices":[{"delta":{"role":"assistant","content":"Hello"}}]}

data: {"choices":[{"delta":{"tool_calls":[{"function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}

"#;
        assert_eq!(text_bytes(chunk), 5 + 7);
        let request = br#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"hi there"}]}],"input":["a","bc"]}"#;
        assert_eq!(text_bytes(request), 9 + 8 + 3);
        assert_eq!(text_bytes(br#"{"content" : "spaced"}"#), 6);
    }

    #[test]
    fn the_scanner_survives_any_input() {
        for input in [&b"\""[..], b"\"\\", b"\"content\":\"abc", b"\"content\":", b":\"\"", b"\\\\\"\"\"", &[0xff, b'"', 0xfe]] {
            let _ = text_bytes(input);
        }
    }

    #[test]
    fn an_early_end_keeps_what_was_reported_and_estimates_the_rest() {
        // Nothing reported (OpenAI reports at the end): both estimated.
        assert_eq!(estimate(None, 40, 9), (Usage::new(10, 3), true));
        // Anthropic reports the prompt in its first event.
        assert_eq!(estimate(Some(Usage::new(25, 0)), 40, 9), (Usage::new(25, 3), true));
        // Both reported: nothing estimated.
        assert_eq!(estimate(Some(Usage::new(25, 7)), 40, 9), (Usage::new(25, 7), false));
    }
}
