//! A small HTTP/1.1 client over `TcpStream`: tests need raw control
//! (exact bytes, bad encodings, chunked uploads), not convenience.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Time from sending the request to the first body byte.
    pub first_byte: Duration,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): status {} body {}", self.status, self.text()))
    }

    /// The answer's `usage` object (a JSON body's, or a stream's usage
    /// chunk), or Null.
    pub fn usage(&self) -> serde_json::Value {
        if self.header("content-type").unwrap_or_default().starts_with("text/event-stream") {
            self.sse_data()
                .iter()
                .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
                .find(|v| v["usage"].is_object())
                .map(|v| v["usage"].clone())
                .unwrap_or_default()
        } else {
            serde_json::from_slice::<serde_json::Value>(&self.body).map(|v| v["usage"].clone()).unwrap_or_default()
        }
    }

    /// (prompt, completion) tokens of `usage`, 0 when absent.
    pub fn tokens(&self) -> (u64, u64) {
        let u = self.usage();
        (u["prompt_tokens"].as_u64().unwrap_or(0), u["completion_tokens"].as_u64().unwrap_or(0))
    }

    /// `data:` payloads of an SSE body, in order.
    pub fn sse_data(&self) -> Vec<String> {
        let text = self.text().replace("\r\n", "\n");
        text.split("\n\n")
            .filter_map(|event| {
                let lines: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:").map(|d| d.strip_prefix(' ').unwrap_or(d)))
                    .collect();
                (!lines.is_empty()).then(|| lines.join("\n"))
            })
            .collect()
    }
}

pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: Vec<u8>,
}

impl<'a> Request<'a> {
    pub fn post_json(path: &'a str, body: &serde_json::Value) -> Self {
        Request {
            method: "POST",
            path,
            headers: vec![("content-type", "application/json".into())],
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    pub fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name, value.into()));
        self
    }
}

pub fn send(port: u16, req: &Request) -> Response {
    let mut head = format!("{} {} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n", req.method, req.path);
    let has_len = req.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding"));
    for (n, v) in &req.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if !has_len && (req.method != "GET" || !req.body.is_empty()) {
        head.push_str(&format!("content-length: {}\r\n", req.body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&req.body);
    send_raw(port, &raw)
}

/// Sends raw bytes and reads one response.
pub fn send_raw(port: u16, raw: &[u8]) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to {port}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let start = Instant::now();
    // The gateway may answer (413) and close before reading everything.
    let _ = stream.write_all(raw);
    read_response(stream, start)
}

pub fn read_response(stream: TcpStream, start: Instant) -> Response {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap_or_else(|e| panic!("read status line: {e}"));
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap_or(0);
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v): &(String, String)| v.clone());
    let mut body = Vec::new();
    let mut first_byte = None;
    if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            first_byte.get_or_insert_with(|| start.elapsed());
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            if reader.read_exact(&mut chunk).is_err() {
                break;
            }
            chunk.truncate(size);
            body.extend_from_slice(&chunk);
        }
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body).ok();
        first_byte = Some(start.elapsed());
    } else {
        reader.read_to_end(&mut body).ok();
        first_byte = Some(start.elapsed());
    }
    Response { status, headers, body, first_byte: first_byte.unwrap_or_else(|| start.elapsed()) }
}
