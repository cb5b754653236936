//! Reads the server's answers: `tools/list` results cut down to the tools
//! the consumer may call, and each `tools/call`'s outcome. Any answer with
//! a `result.tools` list is cut down, whatever its id: pairing by id alone
//! would trust the server to echo ids exactly as this filter reads them. The answer is
//! edited in place (the kept tools' bytes, and everything around them, stay
//! as the server wrote them), so nothing but the removed tools changes:
//! no key reordering, no `[]` turned into `{}`.

use super::jsonrpc::canonical_id;
use crate::json_edit::{apply, span};
use serde::Deserialize;
use serde_json::value::RawValue;

/// How a `tools/call` ended, as the server answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Success,
    /// A result with `isError: true`: the tool ran and failed.
    ToolError,
    /// A JSON-RPC error.
    Error(i64),
}

/// One JSON-RPC answer, as far as this filter reads it.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    /// Read in the same pass: a call's `isError`, a list's `tools` (kept
    /// as bytes, for splicing).
    #[serde(borrow)]
    result: Option<ResultView<'a>>,
    error: Option<ErrorView>,
}

#[derive(Deserialize)]
struct ResultView<'a> {
    #[serde(borrow)]
    tools: Option<&'a RawValue>,
    #[serde(rename = "isError", default)]
    is_error: bool,
}

#[derive(Deserialize)]
struct ErrorView {
    code: i64,
}

#[derive(Deserialize)]
struct ToolName {
    name: String,
}

/// What one answer text (a JSON body, or one SSE event's data) holds.
#[derive(Debug, Default, PartialEq)]
pub struct Read {
    /// The text with denied tools removed; None when unchanged.
    pub edited: Option<String>,
    /// (canonical id, outcome) of every answer in it.
    pub outcomes: Vec<(String, CallOutcome)>,
    /// Canonical ids of the tools/list answers that were cut down (or checked).
    pub lists_answered: Vec<String>,
    /// How many tools were removed.
    pub removed: usize,
    /// A tools/list answer this filter could not read: it must not reach
    /// the client as it is (answered by an error instead).
    pub unreadable: bool,
}

/// Reads `text`, a single answer or a batch of them.
pub fn read(text: &str, allowed: &dyn Fn(&str) -> bool) -> Read {
    let mut out = Read::default();
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let items: Vec<&str> = if text.trim_start().starts_with('[') {
        match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(items) => items.into_iter().map(RawValue::get).collect(),
            Err(_) => {
                out.unreadable = true;
                return out;
            }
        }
    } else {
        vec![text] // one pass: the answer is read as it is parsed
    };
    for item in items {
        read_answer(text, item, allowed, &mut out, &mut edits);
    }
    if !edits.is_empty() {
        out.edited = Some(apply(text, &edits));
    }
    out
}

/// Text a client would try to read as JSON.
fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['))
}

fn read_answer(text: &str, item: &str, allowed: &dyn Fn(&str) -> bool, out: &mut Read, edits: &mut Vec<(usize, usize, String)>) {
    let Ok(answer) = serde_json::from_str::<Answer>(item) else {
        // A repeated key, a wrong type, `NaN` or `Infinity` (which Python
        // writes and reads): a client could read a list in it.
        out.unreadable |= looks_like_json(item);
        return;
    };
    let id = answer.id.and_then(canonical_id);
    if let (Some(error), Some(id)) = (&answer.error, &id) {
        out.outcomes.push((id.clone(), CallOutcome::Error(error.code)));
    }
    // A `result` beside an `error` is still cut down: clients differ on which they read.
    let Some(result) = answer.result else { return };
    if let (Some(id), None) = (&id, &answer.error) {
        out.outcomes.push((id.clone(), if result.is_error { CallOutcome::ToolError } else { CallOutcome::Success }));
    }
    let Some(tools) = result.tools else { return }; // not a tools/list answer
    let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(tools.get()) else {
        out.unreadable = true;
        return;
    };
    if let Some(id) = id {
        out.lists_answered.push(id);
    }
    let keep: Vec<&str> = items
        .iter()
        .filter(|tool| serde_json::from_str::<ToolName>(tool.get()).is_ok_and(|t| allowed(&t.name)))
        .map(|tool| tool.get())
        .collect();
    if keep.len() == items.len() {
        return;
    }
    out.removed += items.len() - keep.len();
    match span(text, tools.get()) {
        Some((start, end)) => edits.push((start, end, format!("[{}]", keep.join(",")))),
        None => out.unreadable = true,
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn not_delete(name: &str) -> bool {
        name != "delete"
    }

    #[test]
    fn a_tools_list_answer_keeps_only_allowed_tools_byte_for_byte() {
        let text = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add","inputSchema":{"type":"object","properties":{}},"tags":[]}, {"name":"delete","inputSchema":{}},{"name":"echo","x":{}}],"nextCursor":"c2"}}"#;
        let r = read(text, &not_delete);
        assert_eq!(r.edited.as_deref(), Some(r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add","inputSchema":{"type":"object","properties":{}},"tags":[]},{"name":"echo","x":{}}],"nextCursor":"c2"}}"#));
        assert_eq!((r.removed, r.lists_answered.clone()), (1, vec!["2".to_string()]));
        // Nothing to remove: no edit.
        assert_eq!(read(text, &|_| true).edited, None);
        assert_eq!(read(text, &|_| false).edited.unwrap(), r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[],"nextCursor":"c2"}}"#);
    }

    #[test]
    fn batches_outcomes_and_what_cannot_be_read() {
        let text = r#"[{"jsonrpc":"2.0","id":"a","result":{"content":[],"isError":true}},{"jsonrpc":"2.0","id":"b","error":{"code":-32601,"message":"no"}},{"jsonrpc":"2.0","id":"c","result":{"tools":[{"name":"delete"}]}}]"#;
        let r = read(text, &not_delete);
        assert_eq!(r.outcomes, vec![(r#""a""#.into(), CallOutcome::ToolError), (r#""b""#.into(), CallOutcome::Error(-32601)), (r#""c""#.into(), CallOutcome::Success)]);
        assert!(r.edited.unwrap().ends_with(r#"{"jsonrpc":"2.0","id":"c","result":{"tools":[]}}]"#));
        // A repeated key in a tools/list answer: refused, never passed on.
        let twice = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[],"tools":[{"name":"delete"}]}}"#;
        assert!(read(twice, &not_delete).unreadable);
        let not_a_list = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":{"name":"delete"}}}"#;
        assert!(read(not_a_list, &not_delete).unreadable);
        // Ids are paired as parsed; other answers pass as they are.
        assert_eq!(read(r#"{"jsonrpc":"2.0","id":"\u0061","result":{"content":[]}}"#, &not_delete), Read { outcomes: vec![(r#""a""#.into(), CallOutcome::Success)], ..Default::default() });
        assert_eq!(read("not json", &not_delete), Read::default());
    }
}
