//! AWS Signature Version 4 for Bedrock requests.

use crate::digest::{hex, sha256_hex};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// AWS credentials and region for SigV4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsAuth {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(), // HMAC takes keys of any length; unreachable
    }
}

/// `20150830T123600Z` and `20150830` from Unix seconds (UTC).
pub fn amz_dates(unix_seconds: u64) -> (String, String) {
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let stamp = format!("{date}T{:02}{:02}{:02}Z", secs / 3600, (secs / 60) % 60, secs % 60);
    (stamp, date)
}

/// URI-encodes per SigV4: everything but unreserved characters (and `/`
/// when `keep_slash`).
pub fn uri_encode(value: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The signature over a canonical request (exposed for test vectors).
pub fn signature(canonical_request: &str, amz_date: &str, scope: &str, secret: &str, date: &str, region: &str, service: &str) -> String {
    let string_to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()));
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hex(&hmac(&k_signing, string_to_sign.as_bytes()))
}

/// Headers to add to a signed request.
pub fn sign(aws: &AwsAuth, service: &str, method: &str, host: &str, path_and_query: &str, body_sha256: &str, unix_seconds: u64) -> Vec<(String, String)> {
    let (amz_date, date) = amz_dates(unix_seconds);
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    // Services other than S3 sign the path as sent, encoded once more: a
    // model ARN sent as `arn%3Aaws...` is signed as `arn%253Aaws...`.
    let canonical_uri = uri_encode(path, true);
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    params.sort_unstable();
    let canonical_query = params.join("&");
    let mut headers = vec![
        ("host", host.to_string()),
        ("x-amz-content-sha256", body_sha256.to_string()),
        ("x-amz-date", amz_date.clone()),
    ];
    if let Some(token) = &aws.session_token {
        headers.push(("x-amz-security-token", token.clone()));
    }
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
    let signed_headers = headers.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(";");
    let canonical_request = format!("{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{body_sha256}");
    let scope = format!("{date}/{}/{service}/aws4_request", aws.region);
    let sig = signature(&canonical_request, &amz_date, &scope, &aws.secret_access_key, &date, &aws.region, service);
    let mut out = vec![
        (
            "authorization".to_string(),
            format!("AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={sig}", aws.access_key_id),
        ),
        ("x-amz-date".to_string(), amz_date),
        ("x-amz-content-sha256".to_string(), body_sha256.to_string()),
    ];
    if let Some(token) = &aws.session_token {
        out.push(("x-amz-security-token".to_string(), token.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    #[test]
    fn aws_documented_example_signature() {
        // AWS's SigV4 "GET Object" example (S3 API reference).
        let canonical = "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\nx-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_hex(canonical.as_bytes()), "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
        let sig = signature(canonical, "20130524T000000Z", "20130524/us-east-1/s3/aws4_request", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3");
        assert_eq!(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    }

    #[test]
    fn dates() {
        assert_eq!(amz_dates(1_369_353_600), ("20130524T000000Z".into(), "20130524".into()));
        assert_eq!(amz_dates(951_782_400 + 3661), ("20000229T010101Z".into(), "20000229".into()));
    }

    #[test]
    fn arn_paths_are_encoded_twice_for_signing() {
        assert_eq!(uri_encode("/model/arn%3Aaws%3Abedrock%2Fx/converse", true), "/model/arn%253Aaws%253Abedrock%252Fx/converse");
    }
}
