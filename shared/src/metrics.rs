//! Metric names with labels. proxy-wasm metrics have no labels, so labels
//! are encoded in the name (`ai_llm_requests_total.provider.openai.model.x`)
//! and Envoy's `stats_config.stats_tags` (shipped in envoy/*.yaml) turns
//! them back into Prometheus labels. Values are sanitized to one name
//! segment, and each label's distinct values are capped.

use std::collections::BTreeSet;

/// A label value as one stat-name segment: letters, digits, `-` and `_`
/// (`.`, `:`, `/` and the rest become `_`), at most 64 characters.
pub fn label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(64));
    push_label_value(&mut out, value);
    out
}

fn is_segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Appends `label_value(value)` to `out`; a value that is already one
/// segment (the usual case: every request names the same few) is copied as is.
fn push_label_value(out: &mut String, value: &str) {
    if value.is_empty() {
        out.push_str("none");
    } else if value.len() <= 64 && value.bytes().all(is_segment_byte) {
        out.push_str(value);
    } else {
        out.extend(value.chars().take(64).map(|c| if c.is_ascii() && is_segment_byte(c as u8) { c } else { '_' }));
    }
}

/// `base.key1.value1.key2.value2...`
pub fn name(base: &str, labels: &[(&str, &str)]) -> String {
    let len = labels.iter().map(|(k, v)| k.len() + v.len().min(64) + 2).sum::<usize>();
    let mut out = String::with_capacity(base.len() + len);
    out.push_str(base);
    for (k, v) in labels {
        out.push('.');
        out.push_str(k);
        out.push('.');
        push_label_value(&mut out, v);
    }
    out
}

/// `name`, with a last `route` label when the route has one.
pub fn name_on_route(base: &str, labels: &[(&str, &str)], route: Option<&str>) -> String {
    let mut out = name(base, labels);
    if let Some(r) = route {
        out.push_str(".route.");
        push_label_value(&mut out, r);
    }
    out
}

/// Bounds the distinct values one label takes: the first `max` values seen
/// are kept, later new ones are reported as `other`. Client-supplied values
/// (model names, consumer ids) can then never blow up the metric count.
#[derive(Debug)]
pub struct LabelCap {
    seen: BTreeSet<String>,
    max: usize,
}

impl LabelCap {
    pub fn new(max: usize) -> Self {
        LabelCap { seen: BTreeSet::new(), max }
    }

    pub fn admit(&mut self, value: &str) -> String {
        let v = label_value(value);
        if self.seen.contains(&v) {
            return v;
        }
        if self.seen.len() < self.max {
            self.seen.insert(v.clone());
            return v;
        }
        "other".to_string()
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    #[test]
    fn values_are_one_segment() {
        assert_eq!(label_value("anthropic.claude-3-5-sonnet-20240620-v1:0"), "anthropic_claude-3-5-sonnet-20240620-v1_0");
        assert_eq!(label_value("gemini-2.5-flash"), "gemini-2_5-flash");
        assert_eq!(label_value(""), "none");
        assert_eq!(label_value(&"x".repeat(100)).len(), 64);
        assert_eq!(label_value(&"é".repeat(70)), "_".repeat(64), "64 characters, each non-segment one becomes `_`");
        assert_eq!(label_value("gpt-4o_mini"), "gpt-4o_mini");
        assert_eq!(name("ai_llm_requests_total", &[("provider", "openai"), ("model", "gpt-4o")]), "ai_llm_requests_total.provider.openai.model.gpt-4o");
    }

    #[test]
    fn caps_bound_cardinality() {
        let mut cap = LabelCap::new(2);
        assert_eq!(cap.admit("a"), "a");
        assert_eq!(cap.admit("b"), "b");
        assert_eq!(cap.admit("c"), "other");
        assert_eq!(cap.admit("a"), "a");
    }
}
