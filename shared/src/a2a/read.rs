//! Reads what an agent answered, in either A2A version and either binding:
//! the task (id, context, state) or message an answer carries, or its error.
//! A2A 1.0 wraps results (`{"task":..}`, `{"statusUpdate":..}`) and spells
//! states `TASK_STATE_COMPLETED`; 0.3 tags them (`"kind":"status-update"`)
//! and spells states `completed`. Both are read; one spelling is reported.

use serde::Deserialize;

/// A task's state, in A2A 0.3's (and Kong's) spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Submitted,
    Working,
    InputRequired,
    AuthRequired,
    Completed,
    Canceled,
    Failed,
    Rejected,
    Unknown,
}

impl State {
    pub fn parse(text: &str) -> State {
        let bare = text.strip_prefix("TASK_STATE_").unwrap_or(text);
        match bare.to_ascii_lowercase().replace('_', "-").as_str() {
            "submitted" => State::Submitted,
            "working" => State::Working,
            "input-required" => State::InputRequired,
            "auth-required" => State::AuthRequired,
            "completed" => State::Completed,
            "canceled" | "cancelled" => State::Canceled,
            "failed" => State::Failed,
            "rejected" => State::Rejected,
            _ => State::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Submitted => "submitted",
            State::Working => "working",
            State::InputRequired => "input-required",
            State::AuthRequired => "auth-required",
            State::Completed => "completed",
            State::Canceled => "canceled",
            State::Failed => "failed",
            State::Rejected => "rejected",
            State::Unknown => "unknown",
        }
    }

    /// The task is over: nothing moves it again.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Completed | State::Canceled | State::Failed | State::Rejected)
    }
}

/// What one answer (a JSON body, or one SSE event's data) says.
#[derive(Debug, Default, PartialEq)]
pub struct Seen {
    pub task_id: Option<String>,
    pub context_id: Option<String>,
    pub state: Option<State>,
    /// The answer is a message (no task).
    pub message: bool,
    /// The error's name: A2A's for its JSON-RPC codes, the REST status.
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    result: Option<Payload>,
    error: Option<ErrorView>,
}

#[derive(Deserialize)]
struct ErrorView {
    code: Option<serde_json::Value>,
    status: Option<String>,
}

/// Every shape a result takes, read in one pass.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Payload {
    // A2A 1.0's wrappers.
    task: Option<Box<Payload>>,
    message: Option<Box<Payload>>,
    status_update: Option<Box<Payload>>,
    artifact_update: Option<Box<Payload>>,
    // The object itself.
    kind: Option<String>,
    id: Option<String>,
    task_id: Option<String>,
    context_id: Option<String>,
    message_id: Option<String>,
    status: Option<StatusView>,
}

#[derive(Deserialize)]
struct StatusView {
    state: Option<String>,
}

/// Reads one answer; None when it is not JSON of a shape A2A uses.
pub fn answer(text: &str, rpc: bool) -> Option<Seen> {
    if rpc {
        let env: Envelope = serde_json::from_str(text).ok()?;
        if let Some(error) = env.error {
            return Some(Seen { error: Some(error_name(&error)), ..Seen::default() });
        }
        return env.result.map(|p| seen(&p));
    }
    // REST: the payload itself, or `{"error":{...}}`.
    let payload: RestAnswer = serde_json::from_str(text).ok()?;
    if let Some(error) = payload.error {
        return Some(Seen { error: Some(error_name(&error)), ..Seen::default() });
    }
    Some(seen(&payload.rest))
}

#[derive(Deserialize)]
struct RestAnswer {
    error: Option<ErrorView>,
    #[serde(flatten)]
    rest: Payload,
}

fn seen(p: &Payload) -> Seen {
    let (inner, wrapper) = match (&p.task, &p.status_update, &p.artifact_update, &p.message) {
        (Some(t), ..) => (t.as_ref(), Some("task")),
        (_, Some(u), ..) => (u.as_ref(), Some("status-update")),
        (_, _, Some(u), _) => (u.as_ref(), Some("artifact-update")),
        (_, _, _, Some(m)) => (m.as_ref(), Some("message")),
        _ => (p, None),
    };
    let kind = wrapper.or(inner.kind.as_deref()).unwrap_or(if inner.status.is_some() { "task" } else if inner.message_id.is_some() { "message" } else { "" });
    let task_id = match kind {
        "task" => inner.id.clone().or_else(|| inner.task_id.clone()),
        _ => inner.task_id.clone(),
    };
    Seen {
        task_id,
        context_id: inner.context_id.clone(),
        state: inner.status.as_ref().and_then(|s| s.state.as_deref()).map(State::parse),
        message: kind == "message",
        error: None,
    }
}

fn error_name(error: &ErrorView) -> String {
    if let Some(status) = &error.status {
        return status.clone();
    }
    let code = error.code.as_ref().and_then(serde_json::Value::as_i64);
    match code {
        Some(-32700) => "JSONParseError",
        Some(-32600) => "InvalidRequestError",
        Some(-32601) => "MethodNotFoundError",
        Some(-32602) => "InvalidParamsError",
        Some(-32603) => "InternalError",
        Some(-32001) => "TaskNotFoundError",
        Some(-32002) => "TaskNotCancelableError",
        Some(-32003) => "PushNotificationNotSupportedError",
        Some(-32004) => "UnsupportedOperationError",
        Some(-32005) => "ContentTypeNotSupportedError",
        Some(-32006) => "InvalidAgentResponseError",
        Some(-32007) => "AuthenticatedExtendedCardNotConfiguredError",
        Some(-32008) => "ExtensionSupportRequiredError",
        Some(-32009) => "VersionNotSupportedError",
        _ => "error",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn state(text: &str, rpc: bool) -> (Option<String>, Option<String>, Option<&'static str>) {
        let s = answer(text, rpc).unwrap();
        (s.task_id, s.context_id, s.state.map(State::as_str))
    }

    #[test]
    fn both_versions_and_both_bindings_read_alike() {
        let want = (Some("t1".to_string()), Some("c1".to_string()), Some("completed"));
        // A2A 1.0, JSON-RPC and REST.
        assert_eq!(state(r#"{"jsonrpc":"2.0","id":1,"result":{"task":{"id":"t1","contextId":"c1","status":{"state":"TASK_STATE_COMPLETED"}}}}"#, true), want);
        assert_eq!(state(r#"{"task":{"id":"t1","contextId":"c1","status":{"state":"TASK_STATE_COMPLETED"}}}"#, false), want);
        assert_eq!(state(r#"{"id":"t1","contextId":"c1","status":{"state":"TASK_STATE_COMPLETED"},"history":[]}"#, false), want);
        assert_eq!(state(r#"{"statusUpdate":{"taskId":"t1","contextId":"c1","status":{"state":"TASK_STATE_COMPLETED"}}}"#, false), want);
        // A2A 0.3.
        assert_eq!(state(r#"{"jsonrpc":"2.0","id":"x","result":{"kind":"task","id":"t1","contextId":"c1","status":{"state":"completed"}}}"#, true), want);
        assert_eq!(state(r#"{"jsonrpc":"2.0","id":"x","result":{"kind":"status-update","taskId":"t1","contextId":"c1","status":{"state":"completed"},"final":true}}"#, true), want);
        let artifact = answer(r#"{"jsonrpc":"2.0","id":"x","result":{"artifactUpdate":{"taskId":"t1","contextId":"c1","artifact":{"parts":[]}}}}"#, true).unwrap();
        assert_eq!((artifact.task_id.as_deref(), artifact.state), (Some("t1"), None));
        let message = answer(r#"{"jsonrpc":"2.0","id":1,"result":{"message":{"messageId":"m","contextId":"c1","role":"ROLE_AGENT","parts":[]}}}"#, true).unwrap();
        assert!(message.message && message.task_id.is_none());
        assert!(answer(r#"{"jsonrpc":"2.0","id":1,"result":{"kind":"message","messageId":"m","taskId":"t9"}}"#, true).unwrap().message);
    }

    #[test]
    fn errors_states_and_what_is_not_a2a() {
        assert_eq!(answer(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"no"}}"#, true).unwrap().error.as_deref(), Some("TaskNotFoundError"));
        assert_eq!(answer(r#"{"error":{"code":404,"status":"NOT_FOUND","message":"no"}}"#, false).unwrap().error.as_deref(), Some("NOT_FOUND"));
        for (text, s) in [("TASK_STATE_INPUT_REQUIRED", State::InputRequired), ("input-required", State::InputRequired), ("TASK_STATE_AUTH_REQUIRED", State::AuthRequired), ("TASK_STATE_CANCELED", State::Canceled), ("cancelled", State::Canceled), ("TASK_STATE_UNSPECIFIED", State::Unknown), ("weird", State::Unknown)] {
            assert_eq!(State::parse(text), s, "{text}");
        }
        assert!(State::Rejected.is_terminal() && !State::InputRequired.is_terminal());
        assert_eq!(answer("not json", true), None);
        assert_eq!(answer(r#"{"jsonrpc":"2.0","id":1,"result":{"task":{"id":"a","id":"b"}}}"#, true), None, "a repeated key is not read one way");
        assert_eq!(answer("[1]", false), None);
    }
}
