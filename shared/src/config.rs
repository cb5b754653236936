//! Strict configuration parsing: unknown keys are rejected (every config
//! struct carries `deny_unknown_fields`) and every error names the field
//! path, so an operator reading Envoy's log knows what to fix.

use serde::de::DeserializeOwned;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the offending field (`model.options.temperature`), or
    /// `.` for the document itself.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { path: path.into(), message: message.into() }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid plugin configuration at `{}`: {}", self.path, self.message)
    }
}

/// Default for every filter's `max_request_body_size` (Kong's 8 MiB).
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: u64 = 8 * 1024 * 1024;

/// An HTTP header name a configuration may name (RFC 9110 token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A name that is a metrics label value and a header value as it is:
/// 1 to 64 letters, digits, `-` or `_`.
pub fn is_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Parses a plugin configuration. An empty configuration is parsed as `{}`.
pub fn parse_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // serde_json appends "at line L column C": keep it, it helps with long configs.
        ConfigError::new(path, inner.to_string())
    })?;
    de.end().map_err(|e| ConfigError::new(".", e.to_string()))?;
    Ok(value)
}

/// Checks a number is within bounds; the error names the field.
pub fn check_range<N: PartialOrd + std::fmt::Display + Copy>(
    path: &str,
    value: Option<N>,
    min: N,
    max: N,
) -> Result<(), ConfigError> {
    match value {
        Some(v) if !(v >= min && v <= max) => {
            Err(ConfigError::new(path, format!("{v} is out of range [{min}, {max}]")))
        }
        _ => Ok(()),
    }
}

/// Checks a list's length and each string's length.
pub fn check_strings(path: &str, items: &[String], max_items: usize, max_len: usize) -> Result<(), ConfigError> {
    if items.len() > max_items {
        return Err(ConfigError::new(path, format!("{} entries, at most {max_items} allowed", items.len())));
    }
    for (i, item) in items.iter().enumerate() {
        if item.len() > max_len {
            return Err(ConfigError::new(
                format!("{path}[{i}]"),
                format!("{} bytes long, at most {max_len} allowed", item.len()),
            ));
        }
    }
    Ok(())
}

/// Kong's environment-vault reference: `{vault://env/NAME}`.
const VAULT_ENV: &str = "{vault://env/";

/// Resolves every `{vault://env/NAME}` reference in a configured value
/// (so `"Bearer {vault://env/OPENAI_API_KEY}"` works). As in Kong,
/// `openai-key` also finds the variable `OPENAI_KEY` (upper case, `-` to
/// `_`). `Err` names the variable that is not set.
pub fn resolve_secret(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find(VAULT_ENV) {
        let after = rest.get(start + VAULT_ENV.len()..).unwrap_or_default();
        let Some(end) = after.find('}') else { break };
        let name = after.get(..end).unwrap_or_default();
        let kong_name: String = name.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() }).collect();
        let resolved = env(name).or_else(|| env(&kong_name)).filter(|v| !v.is_empty()).ok_or_else(|| {
            if kong_name == name { name.to_string() } else { format!("{name} or {kong_name}") }
        })?;
        out.push_str(rest.get(..start).unwrap_or_default());
        out.push_str(&resolved);
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    // The same tests run natively and, through wasm-bindgen-test, as wasm32.
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;
    use serde::Deserialize;

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        count: Option<u32>,
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let err = parse_strict::<Outer>(br#"{"inner":{"cuont":1}}"#).err().unwrap_or(ConfigError::new("", ""));
        assert_eq!(err.path, "inner.cuont");
        assert!(err.message.contains("unknown field `cuont`"), "{}", err.message);
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let err = parse_strict::<Outer>(br#"{"inner":{"count":"x"}}"#).err().unwrap_or(ConfigError::new("", ""));
        assert_eq!(err.path, "inner.count");
    }

    #[test]
    fn empty_config_is_an_empty_object() {
        assert!(parse_strict::<Outer>(b"  ").is_ok());
    }

    #[test]
    fn secrets_resolve_from_env_in_kong_style() {
        let env = |k: &str| if k == "OPENAI_KEY" { Some("sk-1".to_string()) } else { None };
        assert_eq!(resolve_secret("{vault://env/openai-key}", &env), Ok("sk-1".to_string()));
        assert_eq!(resolve_secret("{vault://env/OPENAI_KEY}", &env), Ok("sk-1".to_string()));
        assert_eq!(resolve_secret("plain", &env), Ok("plain".to_string()));
        assert_eq!(resolve_secret("Bearer {vault://env/openai-key}", &env), Ok("Bearer sk-1".to_string()));
        assert!(resolve_secret("{vault://env/missing}", &env).is_err());
    }

    #[test]
    fn ranges_and_lists_are_bounded() {
        assert!(check_range("t", Some(2.5), 0.0, 2.0).is_err());
        assert!(check_range("t", Some(f64::NAN), 0.0, 2.0).is_err());
        assert!(check_range::<f64>("t", None, 0.0, 2.0).is_ok());
        let err = check_strings("p", &["ab".into(), "abcd".into()], 5, 3).err();
        assert_eq!(err.map(|e| e.path), Some("p[1]".to_string()));
    }
}
