//! OpenAI wire types: the one format every filter meets at.
//!
//! Lenient on purpose: each object keeps the fields it does not name in
//! `rest`, so a body parsed and serialized again loses nothing a client sent.

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

pub type Rest = Map<String, Value>;

/// Deserialized by hand (below): `#[serde(flatten)]` would first buffer the
/// whole request, every message included, into serde's generic tree.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Not OpenAI's, but accepted by most compatible servers and by the
    /// native APIs; kept typed so config defaults can fill it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

/// Deserialized by hand (below), for the same reason as `ChatRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

impl ChatMessage {
    pub fn text(role: &str, text: &str) -> Self {
        ChatMessage { role: role.to_string(), content: Some(Content::Text(text.to_string())), ..Default::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl Content {
    /// Visits every text the content carries (string content, or the text of
    /// each `text` part); images and other parts are skipped.
    pub fn for_each_text<'a>(&'a self, mut f: impl FnMut(&'a str)) {
        match self {
            Content::Text(t) => f(t),
            Content::Parts(parts) => {
                for part in parts {
                    if let Some(text) = part.text.as_deref() {
                        f(text);
                    }
                }
            }
        }
    }

    /// All text joined with `sep`.
    pub fn joined_text(&self, sep: &str) -> String {
        let mut out = String::new();
        self.for_each_text(|t| {
            if !out.is_empty() {
                out.push_str(sep);
            }
            out.push_str(t);
        });
        out
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    pub function: FunctionDef,
}

fn function_kind() -> String {
    "function".to_string()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Present in stream deltas only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub function: FunctionCall,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// Legacy `/v1/completions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub prompt: Prompt,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A completions prompt: a string, a list of strings, or token arrays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Value),
}

impl Default for Prompt {
    fn default() -> Self {
        Prompt::Text(String::new())
    }
}

impl Prompt {
    pub fn for_each_text<'a>(&'a self, mut f: impl FnMut(&'a str)) {
        match self {
            Prompt::Text(t) => f(t),
            Prompt::Texts(ts) => ts.iter().for_each(|t| f(t)),
            Prompt::Tokens(_) => {}
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub input: Value,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    pub index: u32,
    pub message: ChatMessage,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionResponse {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionChoice {
    pub index: u32,
    pub text: String,
    pub finish_reason: Option<String>,
    pub logprobs: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: Usage,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    pub object: String,
    pub embedding: Value,
    pub index: u32,
}

/// What the gateway reads from any OpenAI-shaped answer, whole or a chunk:
/// the model that answered and the usage, ignoring everything else.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UsageProbe {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub choices: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    pub error: Option<Value>,
}

/// Sets a known field once: a second occurrence is an error, as derived
/// deserializers say.
fn once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(slot: &mut Option<T>, name: &'static str, map: &mut A) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de> Deserialize<'de> for ChatRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ChatRequest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("struct ChatRequest")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ChatRequest, A::Error> {
                let mut r = ChatRequest::default();
                let mut messages = None;
                // Each optional field: absent, null and missing are all None.
                let (mut model, mut stream, mut stream_options, mut max_tokens, mut max_completion_tokens) = (None, None, None, None, None);
                let (mut temperature, mut top_p, mut top_k, mut stop, mut tools, mut tool_choice) = (None, None, None, None, None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "model" => once(&mut model, "model", &mut map)?,
                        "messages" => once(&mut messages, "messages", &mut map)?,
                        "stream" => once(&mut stream, "stream", &mut map)?,
                        "stream_options" => once(&mut stream_options, "stream_options", &mut map)?,
                        "max_tokens" => once(&mut max_tokens, "max_tokens", &mut map)?,
                        "max_completion_tokens" => once(&mut max_completion_tokens, "max_completion_tokens", &mut map)?,
                        "temperature" => once(&mut temperature, "temperature", &mut map)?,
                        "top_p" => once(&mut top_p, "top_p", &mut map)?,
                        "top_k" => once(&mut top_k, "top_k", &mut map)?,
                        "stop" => once(&mut stop, "stop", &mut map)?,
                        "tools" => once(&mut tools, "tools", &mut map)?,
                        "tool_choice" => once(&mut tool_choice, "tool_choice", &mut map)?,
                        _ => {
                            r.rest.insert(key, map.next_value()?);
                        }
                    }
                }
                r.messages = messages.ok_or_else(|| de::Error::missing_field("messages"))?;
                r.model = model.flatten();
                r.stream = stream.flatten();
                r.stream_options = stream_options.flatten();
                r.max_tokens = max_tokens.flatten();
                r.max_completion_tokens = max_completion_tokens.flatten();
                r.temperature = temperature.flatten();
                r.top_p = top_p.flatten();
                r.top_k = top_k.flatten();
                r.stop = stop.flatten();
                r.tools = tools.flatten();
                r.tool_choice = tool_choice.flatten();
                Ok(r)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for ChatMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ChatMessage;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("struct ChatMessage")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ChatMessage, A::Error> {
                let mut m = ChatMessage::default();
                let (mut role, mut content, mut name, mut tool_calls, mut tool_call_id) = (None, None, None, None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "role" => once(&mut role, "role", &mut map)?,
                        "content" => once(&mut content, "content", &mut map)?,
                        "name" => once(&mut name, "name", &mut map)?,
                        "tool_calls" => once(&mut tool_calls, "tool_calls", &mut map)?,
                        "tool_call_id" => once(&mut tool_call_id, "tool_call_id", &mut map)?,
                        _ => {
                            m.rest.insert(key, map.next_value()?);
                        }
                    }
                }
                m.role = role.ok_or_else(|| de::Error::missing_field("role"))?;
                m.content = content.flatten();
                m.name = name.flatten();
                m.tool_calls = tool_calls.flatten();
                m.tool_call_id = tool_call_id.flatten();
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    // The same tests run natively and, through wasm-bindgen-test, as wasm32.
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    /// The derived deserializers the hand-written ones replace (flatten and
    /// all): both must read every body alike, values and refusals.
    mod derived {
        use super::super::{Content, Rest, Stop, StreamOptions, Tool, ToolCall};
        use serde::{Deserialize, Serialize};
        use serde_json::Value;

        #[derive(Serialize, Deserialize)]
        pub struct ChatRequest {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub model: Option<String>,
            pub messages: Vec<ChatMessage>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub stream: Option<bool>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub stream_options: Option<StreamOptions>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub max_tokens: Option<u64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub max_completion_tokens: Option<u64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub temperature: Option<f64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub top_p: Option<f64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub top_k: Option<u64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub stop: Option<Stop>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tools: Option<Vec<Tool>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tool_choice: Option<Value>,
            #[serde(flatten)]
            pub rest: Rest,
        }

        #[derive(Serialize, Deserialize)]
        pub struct ChatMessage {
            pub role: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub content: Option<Content>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub name: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tool_calls: Option<Vec<ToolCall>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tool_call_id: Option<String>,
            #[serde(flatten)]
            pub rest: Rest,
        }
    }

    #[test]
    fn the_hand_written_readers_read_as_the_derived_ones() {
        let mut bodies: Vec<String> = vec![
            include_str!("../fixtures/chat_request.json").to_string(),
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#.into(),
            r#"{"messages":[{"role":"user","content":null,"name":null,"x":1}],"model":null,"stream":null,"max_tokens":null,"extra":{"a":[1,2]}}"#.into(),
            r#"{"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"r"}],"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"tool_choice":"auto"}"#.into(),
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"u","detail":"low"}}]}],"stop":["x","y"],"temperature":1,"top_p":0.5,"top_k":3,"stream":true,"stream_options":{"include_usage":true,"x":1},"max_completion_tokens":9}"#.into(),
            r#"{"model":"m"}"#.into(),
            r#"{"messages":null}"#.into(),
            r#"{"messages":{}}"#.into(),
            r#"{"messages":[{"content":"no role"}]}"#.into(),
            r#"{"messages":[{"role":null}]}"#.into(),
            r#"{"messages":[{"role":"user","content":5}]}"#.into(),
            r#"{"messages":[{"role":"user","content":[{"text":"no type"}]}]}"#.into(),
            r#"{"messages":[],"max_tokens":1.5}"#.into(),
            r#"{"messages":[],"max_tokens":-1}"#.into(),
            r#"{"messages":[],"stream":"yes"}"#.into(),
            r#"{"messages":[],"stop":3}"#.into(),
            r#"{"messages":[],"tools":[{"type":"function"}]}"#.into(),
            r#"{"messages":[],"model":"a","model":"b"}"#.into(),
            r#"{"messages":[{"role":"user","role":"system"}]}"#.into(),
            r#"{"messages":[],"x":1,"x":2}"#.into(),
            r#"[{"role":"user"}]"#.into(),
            r#""text""#.into(),
            r#"{"messages":[["user","hi"]]}"#.into(),
            r#"{"messages":[{"role":"user","content":"\u00e9t\u00e9 \"q\""}]}"#.into(),
        ];
        bodies.push(format!(r#"{{"messages":[{}]}}"#, vec![r#"{"role":"user","content":"turn"}"#; 40].join(",")));
        for body in &bodies {
            let ours = serde_json::from_str::<ChatRequest>(body);
            let theirs = serde_json::from_str::<derived::ChatRequest>(body);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert_eq!(serde_json::to_value(a).unwrap(), serde_json::to_value(b).unwrap(), "{body}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{body}: ours {:?}, derived {:?}", ours.as_ref().err(), theirs.as_ref().err().map(|e| e.to_string())),
            }
            let ours = serde_json::from_str::<ChatMessage>(body);
            let theirs = serde_json::from_str::<derived::ChatMessage>(body);
            assert_eq!(ours.is_ok(), theirs.is_ok(), "{body}");
        }
        let missing = serde_json::from_str::<ChatRequest>(r#"{"model":"m"}"#).unwrap_err().to_string();
        assert!(missing.contains("missing field `messages`"), "{missing}");
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi","x-part":1},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}],"x-msg":true}],"seed":42,"response_format":{"type":"json_object"},"logit_bias":{"50256":-100},"user":"u1"}"#;
        let req: ChatRequest = serde_json::from_str(body).unwrap();
        let again: Value = serde_json::to_value(&req).unwrap();
        let original: Value = serde_json::from_str(body).unwrap();
        assert_eq!(again, original);
    }

    #[test]
    fn content_text_skips_images() {
        let c: Content = serde_json::from_str(r#"[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"u"}},{"type":"text","text":"b"}]"#).unwrap();
        assert_eq!(c.joined_text("|"), "a|b");
    }

    #[test]
    fn prompt_forms() {
        let p: Prompt = serde_json::from_str(r#"["a","b"]"#).unwrap();
        let mut seen = vec![];
        p.for_each_text(|t| seen.push(t.to_string()));
        assert_eq!(seen, ["a", "b"]);
        let p: Prompt = serde_json::from_str("[[1,2]]").unwrap();
        assert!(matches!(p, Prompt::Tokens(_)));
    }
}
