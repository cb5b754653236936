//! Edits of a JSON text in place: values found by borrowing parsers
//! (`RawValue`, `&str`) are replaced at their byte spans, so everything
//! around them stays as its author wrote it (key order, spacing, escapes).

/// Where `part` (borrowed from `whole`) sits in it.
pub fn span(whole: &str, part: &str) -> Option<(usize, usize)> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (whole.get(start..end) == Some(part)).then_some((start, end))
}

/// `text` with each `(start, end, replacement)` applied; the spans are in
/// order and do not overlap.
pub fn apply(text: &str, edits: &[(usize, usize, String)]) -> String {
    let mut edited = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, replacement) in edits {
        edited.push_str(text.get(at..*start).unwrap_or_default());
        edited.push_str(replacement);
        at = *end;
    }
    edited.push_str(text.get(at..).unwrap_or_default());
    edited
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    #[test]
    fn spans_are_found_and_replaced_in_order() {
        let text = r#"{"a": "x", "b" :[1, 2]}"#;
        let v: std::collections::BTreeMap<&str, &serde_json::value::RawValue> = serde_json::from_str(text).unwrap();
        let a = span(text, v["a"].get()).unwrap();
        let b = span(text, v["b"].get()).unwrap();
        assert_eq!(apply(text, &[(a.0, a.1, "\"y\"".into()), (b.0, b.1, "[]".into())]), r#"{"a": "y", "b" :[]}"#);
        assert_eq!(span(text, "x"), None, "not borrowed from the text");
    }
}
