//! What changed between two snapshots of a header map, so a filter writes
//! only that: Envoy rewrites a whole map (every header removed, then each
//! added again) when given one, which cost more than a few single edits.

/// One edit: set `name` to exactly this one value, or remove it (`None`).
pub type Change<'a> = (&'a str, Option<&'a str>);

fn values<'a>(list: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
    list.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Past this many headers in both maps together, the comparison (quadratic
/// in their number, and the client chooses it) is not made.
const MAX_COMPARED: usize = 64;

/// The edits that turn `before` into `after`, or `None` when more than
/// `max` headers changed, a changed header has several values, or the maps
/// are too long to compare (then the whole map is the write). Names are
/// lower case, as Envoy gives them.
pub fn changes<'a>(before: &'a [(String, String)], after: &'a [(String, String)], max: usize) -> Option<Vec<Change<'a>>> {
    if before.len() + after.len() > MAX_COMPARED {
        return None;
    }
    let mut out: Vec<Change<'a>> = Vec::new();
    let names = before.iter().chain(after).map(|(n, _)| n.as_str());
    for (i, name) in names.enumerate() {
        // Each name once, at its first appearance.
        if before.iter().chain(after).take(i).any(|(n, _)| n == name) {
            continue;
        }
        if values(before, name).eq(values(after, name)) {
            continue;
        }
        let mut now = values(after, name);
        let value = now.next();
        if now.next().is_some() {
            return None;
        }
        out.push((name, value));
        if out.len() > max {
            return None;
        }
    }
    Some(out)
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
    fn only_what_changed_is_written() {
        let before = map(&[(":authority", "gw"), (":path", "/v1/chat/completions"), ("accept-encoding", "gzip"), ("x-a", "1")]);
        let after = map(&[(":path", "/v1/chat/completions"), ("x-a", "1"), (":authority", "api.openai.com"), ("x-ai-proxy", "r1")]);
        assert_eq!(changes(&before, &after, 3), Some(vec![(":authority", Some("api.openai.com")), ("accept-encoding", None), ("x-ai-proxy", Some("r1"))]));
        assert_eq!(changes(&before, &before, 3), Some(vec![]));
    }

    #[test]
    fn many_changes_or_repeated_headers_take_the_whole_map() {
        let before = map(&[("a", "1"), ("b", "1"), ("c", "1")]);
        let after = map(&[("a", "2"), ("b", "2"), ("c", "2")]);
        assert_eq!(changes(&before, &after, 2), None);
        assert_eq!(changes(&before, &after, 3).map(|c| c.len()), Some(3));
        let repeated = map(&[("a", "1"), ("b", "1"), ("c", "1"), ("set-cookie", "x"), ("set-cookie", "y")]);
        assert_eq!(changes(&before, &repeated, 3), None, "two values cannot be one replace");
        // A repeated header left as it was is no obstacle.
        let mut edited = repeated.clone();
        edited.push(("x-new".into(), "1".into()));
        assert_eq!(changes(&repeated, &edited, 3), Some(vec![("x-new", Some("1"))]));
        // A repeated header reduced to one value is one replace.
        assert_eq!(changes(&repeated, &before, 3), Some(vec![("set-cookie", None)]));
    }

    #[test]
    fn long_maps_are_not_compared() {
        let many: Vec<(String, String)> = (0..40).map(|i| (format!("x-{i}"), "v".to_string())).collect();
        let mut edited = many.clone();
        edited.push(("x-new".into(), "1".into()));
        assert_eq!(changes(&many, &edited, 2), None, "80 headers: the whole map is written");
        assert_eq!(changes(&many[..20], &edited[..21], 2), Some(vec![("x-20", Some("v"))]));
    }
}
