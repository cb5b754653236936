//! The one error shape every filter answers with: OpenAI's
//! `{"error":{"message","type","code"}}`, with an HTTP status per kind.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the body is not what the route expects.
    BadRequest,
    /// 401: missing or rejected credentials.
    Unauthorized,
    /// 403: a policy forbids the request.
    Forbidden,
    /// 404: unknown resource (template, route).
    NotFound,
    /// 405: wrong HTTP method for the route.
    MethodNotAllowed,
    /// 413: body over the configured size.
    PayloadTooLarge,
    /// 415: not `application/json`.
    UnsupportedMediaType,
    /// 422: well-formed, but asks for something this route cannot do.
    Unprocessable,
    /// 429: a budget is exhausted.
    RateLimited,
    /// 500: the gateway itself is misconfigured.
    Internal,
    /// 502: the upstream answered something that cannot be understood.
    BadGateway,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::Unprocessable => 422,
            ErrorKind::RateLimited => 429,
            ErrorKind::Internal => 500,
            ErrorKind::BadGateway => 502,
        }
    }

    /// OpenAI's `error.type` for the kind.
    pub fn error_type(self) -> &'static str {
        error_type_for_status(self.status())
    }
}

/// OpenAI's `error.type` vocabulary, chosen by status so that upstream
/// errors and gateway errors read the same to a client.
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        502..=504 => "upstream_error",
        _ => "api_error",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GatewayError {
    pub status: u16,
    pub message: String,
    pub error_type: &'static str,
    pub code: Option<String>,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        GatewayError {
            status: kind.status(),
            message: message.into(),
            error_type: kind.error_type(),
            code: None,
        }
    }

    pub fn with_status(status: u16, message: impl Into<String>) -> Self {
        GatewayError {
            status,
            message: message.into(),
            error_type: error_type_for_status(status),
            code: None,
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    pub fn to_json(&self) -> Vec<u8> {
        error_body(&self.message, self.error_type, self.code.as_deref())
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.error_type, self.message)
    }
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    error_type: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// Serializes OpenAI's error envelope.
pub fn error_body(message: &str, error_type: &str, code: Option<&str>) -> Vec<u8> {
    let envelope = ErrorEnvelope {
        error: ErrorObject { message, error_type, param: None, code },
    };
    // Serializing plain strings cannot fail; fall back to a constant anyway.
    serde_json::to_vec(&envelope)
        .unwrap_or_else(|_| br#"{"error":{"message":"internal error","type":"api_error"}}"#.to_vec())
}

#[cfg(test)]
mod tests {
    // The same tests run natively and, through wasm-bindgen-test, as wasm32.
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    #[test]
    fn error_body_has_openai_shape() {
        let e = GatewayError::new(ErrorKind::PayloadTooLarge, "too \"big\"").with_code("body_too_large");
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap_or_default();
        assert_eq!(e.status, 413);
        assert_eq!(v["error"]["message"], "too \"big\"");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "body_too_large");
    }

    #[test]
    fn types_follow_status() {
        assert_eq!(error_type_for_status(401), "authentication_error");
        assert_eq!(error_type_for_status(429), "rate_limit_error");
        assert_eq!(error_type_for_status(502), "upstream_error");
        assert_eq!(error_type_for_status(500), "api_error");
    }
}
