//! AWS's binary event-stream framing (`application/vnd.amazon.eventstream`),
//! used by Bedrock's ConverseStream: push-based, CRC-checked.

/// One frame: its string headers and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

const MAX_FRAME: usize = 16 * 1024 * 1024;

pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?]))
}

#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    broken: bool,
}

impl Decoder {
    /// Adds bytes; complete frames go to `out`. Returns an error (and
    /// decodes nothing more) when the framing or a checksum is wrong.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Frame>) -> Result<(), String> {
        if self.broken {
            return Err("event stream already broken".into());
        }
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        loop {
            let rest = self.buf.get(start..).unwrap_or_default();
            let (Some(total), Some(headers_len)) = (be32(rest, 0), be32(rest, 4)) else { break };
            let (total, headers_len) = (total as usize, headers_len as usize);
            if !(16..=MAX_FRAME).contains(&total) || headers_len > total - 16 {
                self.broken = true;
                return Err(format!("bad event-stream frame length {total}"));
            }
            if rest.len() < total {
                if rest.len() >= 12 && be32(rest, 8) != Some(crc32(rest.get(..8).unwrap_or_default())) {
                    self.broken = true;
                    return Err("event-stream prelude checksum mismatch".into());
                }
                break;
            }
            let frame = rest.get(..total).unwrap_or_default();
            if be32(frame, 8) != Some(crc32(frame.get(..8).unwrap_or_default()))
                || be32(frame, total - 4) != Some(crc32(frame.get(..total - 4).unwrap_or_default()))
            {
                self.broken = true;
                return Err("event-stream checksum mismatch".into());
            }
            let headers = parse_headers(frame.get(12..12 + headers_len).unwrap_or_default()).ok_or_else(|| {
                self.broken = true;
                "bad event-stream headers".to_string()
            })?;
            let payload = frame.get(12 + headers_len..total - 4).unwrap_or_default().to_vec();
            out.push(Frame { headers, payload });
            start += total;
        }
        self.buf.drain(..start);
        Ok(())
    }

    /// Bytes of an unfinished frame still held.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn parse_headers(mut bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let mut headers = Vec::new();
    while !bytes.is_empty() {
        let name_len = usize::from(*bytes.first()?);
        let name = String::from_utf8_lossy(bytes.get(1..1 + name_len)?).into_owned();
        let kind = *bytes.get(1 + name_len)?;
        let value_at = 2 + name_len;
        let fixed = |n: usize| -> Option<usize> { bytes.get(value_at..value_at + n).map(|_| n) };
        let (value, used) = match kind {
            0 => ("true".to_string(), 0),
            1 => ("false".to_string(), 0),
            2 => (String::new(), fixed(1)?),
            3 => (String::new(), fixed(2)?),
            4 => (String::new(), fixed(4)?),
            5 | 8 => (String::new(), fixed(8)?),
            9 => (String::new(), fixed(16)?),
            6 | 7 => {
                let len_bytes = bytes.get(value_at..value_at + 2)?;
                let len = usize::from(u16::from_be_bytes([*len_bytes.first()?, *len_bytes.get(1)?]));
                let value = bytes.get(value_at + 2..value_at + 2 + len)?;
                (String::from_utf8_lossy(value).into_owned(), 2 + len)
            }
            _ => return None,
        };
        headers.push((name, value));
        bytes = bytes.get(value_at + used..)?;
    }
    Some(headers)
}

/// Encodes a frame with string headers (for tests and fake servers).
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn frames_survive_any_split() {
        let mut stream = encode(&[(":event-type", "messageStart"), (":message-type", "event")], br#"{"role":"assistant"}"#);
        stream.extend(encode(&[(":event-type", "contentBlockDelta")], br#"{"delta":{"text":"Hi"},"contentBlockIndex":0}"#));
        for at in 0..=stream.len() {
            let mut d = Decoder::default();
            let mut out = Vec::new();
            let (a, b) = stream.split_at(at);
            d.push(a, &mut out).unwrap();
            d.push(b, &mut out).unwrap();
            assert_eq!(out.len(), 2, "split at {at}");
            assert_eq!(out[0].header(":event-type"), Some("messageStart"));
            assert_eq!(out[1].payload, br#"{"delta":{"text":"Hi"},"contentBlockIndex":0}"#);
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn corruption_is_detected_not_misread() {
        let mut frame = encode(&[(":event-type", "x")], b"{}");
        let last = frame.len() - 6;
        frame[last] ^= 1;
        let mut out = Vec::new();
        assert!(Decoder::default().push(&frame, &mut out).is_err());
        assert!(out.is_empty());
        assert!(Decoder::default().push(&[0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0], &mut out).is_err());
    }
}
