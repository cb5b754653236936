//! Header edits as a list, applied to a header map snapshot when a filter
//! writes the whole map in one host call.

/// One edit: set `name` to exactly this one value, or remove it (`None`).
pub type HeaderEdit<'a> = (&'a str, Option<&'a str>);

/// Applies `edits` in order: every earlier value of an edited name goes,
/// a set value is appended. Names are lower case, as Envoy gives them.
pub fn apply(headers: &mut Vec<(String, String)>, edits: &[HeaderEdit]) {
    for (name, value) in edits {
        headers.retain(|(n, _)| n != name);
        if let Some(value) = value {
            headers.push((name.to_string(), value.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn edits_set_one_value_or_remove() {
        let mut headers = map(&[(":status", "200"), ("content-length", "12"), ("set-cookie", "x"), ("set-cookie", "y")]);
        apply(&mut headers, &[("x-llm-model", Some("openai/gpt-4o")), (":status", Some("502")), ("content-length", None), ("set-cookie", Some("z"))]);
        assert_eq!(headers, map(&[("x-llm-model", "openai/gpt-4o"), (":status", "502"), ("set-cookie", "z")]));
        apply(&mut headers, &[]);
        assert_eq!(headers.len(), 3, "no edits, no change");
    }
}
