//! Differential: the guard's pattern engine against regex-lite, whose
//! syntax and meaning it keeps. Input: a pattern, a NUL, a text. Where
//! both accept an ASCII pattern, they must agree on every ASCII text (the
//! one intended difference, `(?i)` folding non-ASCII letters, needs
//! non-ASCII to show).
#![no_main]
use codec::patterns::PatternSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0) else { return };
    let (Ok(pattern), Ok(text)) = (std::str::from_utf8(&data[..split]), std::str::from_utf8(&data[split + 1..])) else { return };
    if pattern.len() > 200 {
        return;
    }
    let ours = PatternSet::new("p", &[pattern.to_string()]);
    let lite = regex_lite::Regex::new(pattern);
    let (Ok(Some(ours)), Ok(lite)) = (ours, lite) else { return };
    let got = ours.is_match(text);
    if pattern.is_ascii() && text.is_ascii() {
        assert_eq!(got, lite.is_match(text), "pattern {pattern:?} on {text:?}");
    }
});
