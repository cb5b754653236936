//! Agent card rewriting: every URL at which the card says the agent
//! answers (0.3's `url` and `additionalInterfaces[].url`, 1.0's
//! `supportedInterfaces[].url`) is moved to the gateway's public base, so a
//! client that found the agent through the gateway keeps calling it
//! through the gateway; skills the consumer may not use are left out. The
//! card is edited in place: nothing else in it changes (documentation and
//! icon URLs, security schemes, key order, spacing).

use crate::json_edit::{apply, span};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CardView<'a> {
    #[serde(borrow)]
    url: Option<&'a RawValue>,
    // Clients parse cards as proto JSON, which takes either spelling.
    #[serde(alias = "preferred_transport")]
    preferred_transport: Option<String>,
    #[serde(borrow, alias = "additional_interfaces")]
    additional_interfaces: Option<Vec<InterfaceView<'a>>>,
    #[serde(borrow, alias = "supported_interfaces")]
    supported_interfaces: Option<Vec<InterfaceView<'a>>>,
    #[serde(borrow)]
    skills: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InterfaceView<'a> {
    #[serde(borrow)]
    url: Option<&'a RawValue>,
    /// 0.3's name of the binding.
    transport: Option<String>,
    /// 1.0's.
    #[serde(alias = "protocol_binding")]
    protocol_binding: Option<String>,
}

#[derive(Deserialize)]
struct SkillView {
    id: String,
}

#[derive(Debug, PartialEq)]
pub struct Rewritten {
    /// None: nothing changed.
    pub text: Option<String>,
    pub urls: usize,
    pub skills_removed: usize,
}

/// Where the card was asked for, to find the public base when none is
/// configured: `origin` (`https://gw.example.com`) and the client's path;
/// `suffix` is the agent-relative path that request maps to (the
/// well-known card path), or None for a JSON-RPC call, whose path is the
/// card's own JSON-RPC URL.
pub struct Asked<'a> {
    pub public_url: Option<&'a str>,
    pub origin: &'a str,
    pub client_path: &'a str,
    pub suffix: Option<&'a str>,
}

/// The card could not be read: it must not reach the client unrewritten.
#[derive(Debug, PartialEq)]
pub struct Unreadable(pub String);

pub fn rewrite(text: &str, asked: &Asked, keep_skill: &dyn Fn(&str) -> bool) -> Result<Rewritten, Unreadable> {
    let card: CardView = serde_json::from_str(text).map_err(|e| Unreadable(format!("the agent card is not JSON the gateway can read: {e}")))?;
    let interfaces = card.additional_interfaces.iter().chain(card.supported_interfaces.iter()).flatten();
    let base = match asked.public_url {
        Some(url) => url.to_string(),
        None => {
            let suffix = match asked.suffix {
                Some(s) => Some(s.to_string()),
                None => {
                    // The JSON-RPC URL the client just called.
                    let jsonrpc = |binding: &Option<String>| binding.as_deref().is_some_and(|b| b.eq_ignore_ascii_case("JSONRPC"));
                    let url = interfaces.clone().find(|i| jsonrpc(&i.transport) || jsonrpc(&i.protocol_binding)).and_then(|i| i.url).or(card.url.filter(|_| card.preferred_transport.as_ref().is_none_or(|t| t.eq_ignore_ascii_case("JSONRPC"))));
                    url.and_then(|u| serde_json::from_str::<String>(u.get()).ok()).map(|u| split_url(&u).map_or(String::new(), |(_, path)| path.to_string()))
                }
            };
            let path = asked.client_path.split('?').next().unwrap_or_default();
            let prefix = suffix.and_then(|s| path.trim_end_matches('/').strip_suffix(s.trim_end_matches('/'))).unwrap_or("");
            format!("{}{}", asked.origin, prefix)
        }
    };
    let mut edits = Vec::new();
    let mut urls = 0;
    for raw in card.url.into_iter().chain(interfaces.filter_map(|i| i.url)) {
        let Ok(url) = serde_json::from_str::<String>(raw.get()) else { continue };
        // Only http(s) URLs go through this route (a gRPC address stays).
        let Some((_, path)) = split_url(&url) else { continue };
        let moved = format!("{base}{path}");
        let (Some((start, end)), Ok(encoded)) = (span(text, raw.get()), serde_json::to_string(&moved)) else {
            return Err(Unreadable("the agent card's URLs could not be located".into()));
        };
        edits.push((start, end, encoded));
        urls += 1;
    }
    let mut skills_removed = 0;
    if let Some(skills) = card.skills {
        let items: Vec<&RawValue> = serde_json::from_str(skills.get()).map_err(|e| Unreadable(format!("the agent card's skills are not a list: {e}")))?;
        let kept: Vec<&str> = items.iter().filter(|s| serde_json::from_str::<SkillView>(s.get()).is_ok_and(|s| keep_skill(&s.id))).map(|s| s.get()).collect();
        skills_removed = items.len() - kept.len();
        if skills_removed > 0 {
            let (start, end) = span(text, skills.get()).ok_or_else(|| Unreadable("the agent card's skills could not be located".into()))?;
            edits.push((start, end, format!("[{}]", kept.join(","))));
        }
    }
    edits.sort_by_key(|e| e.0);
    let text = (!edits.is_empty()).then(|| apply(text, &edits));
    Ok(Rewritten { text, urls, skills_removed })
}

/// `http(s)://authority` and the rest (path, query); None for other URLs.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let scheme_len = ["http://", "https://"].into_iter().find(|s| url.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s)))?.len();
    let after_scheme = url.get(scheme_len..)?;
    let cut = after_scheme.find(['/', '?', '#']).unwrap_or(after_scheme.len());
    let origin_len = url.len() - after_scheme.len() + cut;
    Some((url.get(..origin_len)?, url.get(origin_len..)?))
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    const CARD_1_0: &str = r#"{"name":"echo","supportedInterfaces":[{"url":"http://127.0.0.1:9001/","protocolBinding":"JSONRPC","protocolVersion":"1.0"},{"url":"http://127.0.0.1:9001","protocolBinding":"HTTP+JSON"}],"documentationUrl":"https://docs.example.com/echo","skills":[{"id":"echo","name":"Echo"},{"id":"admin","name":"Admin"}],"securitySchemes":{"o":{"oauth2Flows":{"authorizationCode":{"tokenUrl":"http://127.0.0.1:9001/token"}}}}}"#;

    fn well_known<'a>(path: &'a str) -> Asked<'a> {
        Asked { public_url: None, origin: "https://gw.example.com", client_path: path, suffix: Some("/.well-known/agent-card.json") }
    }

    #[test]
    fn interface_urls_move_to_the_gateway_and_nothing_else_changes() {
        let r = rewrite(CARD_1_0, &well_known("/agents/echo/.well-known/agent-card.json?x=1"), &|_| true).unwrap();
        assert_eq!(r.urls, 2);
        let want = CARD_1_0.replace(r#""url":"http://127.0.0.1:9001/""#, r#""url":"https://gw.example.com/agents/echo/""#).replace(r#""url":"http://127.0.0.1:9001""#, r#""url":"https://gw.example.com/agents/echo""#);
        assert_eq!(r.text.as_deref(), Some(want.as_str()));
        // A configured public URL wins; 0.3's fields too; escapes are read.
        let card = r#"{ "url" : "http:\/\/agent.internal:80/a2a/v1", "preferredTransport":"JSONRPC", "additionalInterfaces":[{"url":"http://agent.internal/rest","transport":"HTTP+JSON"},{"url":"agent.internal:50051","transport":"GRPC"}], "iconUrl":"http://agent.internal/i.png"}"#;
        let asked = Asked { public_url: Some("https://a.example.com/x"), ..well_known("/") };
        let r = rewrite(card, &asked, &|_| true).unwrap();
        assert_eq!(r.text.unwrap(), r#"{ "url" : "https://a.example.com/x/a2a/v1", "preferredTransport":"JSONRPC", "additionalInterfaces":[{"url":"https://a.example.com/x/rest","transport":"HTTP+JSON"},{"url":"agent.internal:50051","transport":"GRPC"}], "iconUrl":"http://agent.internal/i.png"}"#);
    }

    #[test]
    fn the_prefix_comes_from_the_path_asked_and_skills_are_filtered() {
        // A JSON-RPC extended-card call at the card's own JSON-RPC path.
        let card = r#"{"url":"http://10.0.0.5:8080/rpc","skills":[{"id":"echo"},{"id":"admin"}]}"#;
        let asked = Asked { public_url: None, origin: "http://gw", client_path: "/team/a/rpc", suffix: None };
        let r = rewrite(card, &asked, &|s| s != "admin").unwrap();
        assert_eq!(r.text.unwrap(), r#"{"url":"http://gw/team/a/rpc","skills":[{"id":"echo"}]}"#);
        assert_eq!(r.skills_removed, 1);
        // A path that does not end as expected: the origin alone.
        let r = rewrite(card, &well_known("/elsewhere"), &|_| true).unwrap();
        assert!(r.text.unwrap().contains(r#""url":"https://gw.example.com/rpc""#));
        assert_eq!(rewrite(r#"{"name":"x"}"#, &well_known("/"), &|_| true).unwrap(), Rewritten { text: None, urls: 0, skills_removed: 0 });
        assert!(rewrite(r#"{"url":"a","url":"b"}"#, &well_known("/"), &|_| true).is_err(), "a repeated key is never passed on unrewritten");
        assert!(rewrite("{", &well_known("/"), &|_| true).is_err());
        assert!(rewrite(r#"{"skills":{}}"#, &well_known("/"), &|_| true).is_err());
        // Proto JSON's field names and any scheme case are agent URLs too.
        let r = rewrite(r#"{"supported_interfaces":[{"url":"HTTP://10.9.9.9:1/a","protocol_binding":"JSONRPC"}]}"#, &well_known("/x/.well-known/agent-card.json"), &|_| true).unwrap();
        assert_eq!(r.text.unwrap(), r#"{"supported_interfaces":[{"url":"https://gw.example.com/x/a","protocol_binding":"JSONRPC"}]}"#);
        assert!(rewrite(r#"{"supportedInterfaces":[],"supported_interfaces":[{"url":"http://a/"}]}"#, &well_known("/"), &|_| true).is_err(), "both spellings: not read one way");
    }
}
