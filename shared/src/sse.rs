//! Server-sent events, push-based: body chunks arrive cut anywhere, so the
//! decoder keeps the unfinished tail and emits only complete events.
//!
//! Follows the WHATWG event-stream rules: lines end with `\n`, `\r\n` or
//! `\r`; a blank line ends an event; `data:` lines (one optional space after
//! the colon) are joined with `\n`; lines starting with `:` are comments.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
    pub id: Option<String>,
    /// The event's bytes exactly as received (blank line included), so a
    /// filter that keeps the event can forward it untouched.
    pub raw: Vec<u8>,
    /// True if the event had at least one `data:` line.
    pub has_data: bool,
}

#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    /// Start of the first line not yet parsed.
    line_start: usize,
    /// Start of the current event's first byte in `buf`.
    event_start: usize,
    current: SseEvent,
    /// Set when the last line ended in `\r` at the very end of a chunk: a
    /// following `\n` belongs to the same line ending.
    skip_lf: bool,
    max_event_bytes: usize,
    overflowed: bool,
}

impl SseDecoder {
    /// `max_event_bytes` bounds the unfinished tail held between chunks; a
    /// stream whose single event grows past it is reported by `overflowed`.
    pub fn new(max_event_bytes: usize) -> Self {
        SseDecoder { max_event_bytes, ..Default::default() }
    }

    /// True once an event grew past the bound; its bytes were dropped.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Adds bytes and appends every event they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        let mut bytes = bytes;
        if self.skip_lf && !bytes.is_empty() {
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                // The `\n` of a `\r\n` split across chunks belongs to the line
                // already parsed (and to the event it closed, if any).
                let at_boundary = self.event_start == self.line_start;
                self.buf.push(b'\n');
                self.line_start = self.buf.len();
                if at_boundary {
                    self.event_start = self.line_start;
                }
                bytes = rest;
            }
            self.skip_lf = false;
        }
        self.buf.extend_from_slice(bytes);
        self.parse_lines(out);
        self.compact();
        if self.max_event_bytes > 0 && self.buf.len() > self.max_event_bytes {
            self.overflowed = true;
            self.buf.clear();
            self.line_start = 0;
            self.event_start = 0;
            self.current = SseEvent::default();
        }
    }

    /// Ends the stream: an event that was not closed by a blank line is
    /// emitted anyway (a truncated upstream should not lose its last event).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if self.line_start < self.buf.len() {
            let line = self.buf.get(self.line_start..).unwrap_or_default().to_vec();
            self.field(&line);
            self.line_start = self.buf.len();
        }
        if self.current.has_data || self.current.event.is_some() {
            self.emit(self.buf.len(), out);
        }
        self.buf.clear();
        self.line_start = 0;
        self.event_start = 0;
    }

    fn parse_lines(&mut self, out: &mut Vec<SseEvent>) {
        loop {
            let rest = self.buf.get(self.line_start..).unwrap_or_default();
            let Some(eol) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else { return };
            let line_end = self.line_start + eol;
            let mut next = line_end + 1;
            if self.buf.get(line_end) == Some(&b'\r') {
                match self.buf.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            let line = self.buf.get(self.line_start..line_end).unwrap_or_default();
            if line.is_empty() {
                if self.current.has_data || self.current.event.is_some() || self.current.id.is_some() {
                    self.emit(next, out);
                } else {
                    // Blank line after comments only: nothing to dispatch.
                    self.event_start = next;
                }
            } else {
                let line = line.to_vec();
                self.field(&line);
            }
            self.line_start = next;
        }
    }

    fn field(&mut self, line: &[u8]) {
        if line.first() == Some(&b':') {
            return; // comment
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = line.get(i + 1..).unwrap_or_default();
                (line.get(..i).unwrap_or_default(), value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"data" => {
                if self.current.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(&value);
                self.current.has_data = true;
            }
            b"event" => self.current.event = Some(value.into_owned()),
            b"id" => self.current.id = Some(value.into_owned()),
            _ => {} // `retry:` and unknown fields are ignored
        }
    }

    fn emit(&mut self, end: usize, out: &mut Vec<SseEvent>) {
        let mut event = std::mem::take(&mut self.current);
        event.raw = self.buf.get(self.event_start..end).unwrap_or_default().to_vec();
        self.event_start = end;
        out.push(event);
    }

    fn compact(&mut self) {
        let consumed = self.event_start.min(self.line_start);
        if consumed > 0 {
            self.buf.drain(..consumed);
            self.event_start -= consumed;
            self.line_start -= consumed;
        }
    }
}

/// Appends one event: `event:` line if named, one `data:` line per line of
/// `data`, then the blank line.
pub fn encode_event(event: Option<&str>, data: &str, out: &mut Vec<u8>) {
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Splits newline-delimited JSON (Ollama's native streams) into complete lines.
#[derive(Debug, Default)]
pub struct LineDecoder {
    buf: Vec<u8>,
}

impl LineDecoder {
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(i) = self.buf.get(start..).and_then(|rest| rest.iter().position(|&b| b == b'\n')) {
            let line = self.buf.get(start..start + i).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.iter().all(u8::is_ascii_whitespace) {
                out.push(line.to_vec());
            }
            start += i + 1;
        }
        self.buf.drain(..start);
    }

    pub fn finish(&mut self, out: &mut Vec<Vec<u8>>) {
        if !self.buf.iter().all(u8::is_ascii_whitespace) {
            out.push(std::mem::take(&mut self.buf));
        }
        self.buf.clear();
    }

    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    // The same tests run natively and, through wasm-bindgen-test, as wasm32.
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new(0);
        let mut out = Vec::new();
        for c in chunks {
            d.push(c, &mut out);
        }
        d.finish(&mut out);
        out
    }

    const MIXED: &[u8] = b": keep-alive\n\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\ndata:no-space\ndata: second line\n\nid: 7\rdata: cr only\r\r: trailing comment\ndata: [DONE]\n\n";

    #[test]
    fn parses_fields_line_endings_and_comments() {
        let events = decode_all(&[MIXED]);
        let summary: Vec<(Option<&str>, &str)> = events.iter().map(|e| (e.event.as_deref(), e.data.as_str())).collect();
        assert_eq!(
            summary,
            vec![
                (Some("message_start"), "{\"a\":1}"),
                (None, "no-space\nsecond line"),
                (None, "cr only"),
                (None, "[DONE]"),
            ]
        );
        assert_eq!(events.get(2).and_then(|e| e.id.as_deref()), Some("7"));
        // Raw bytes of all events plus skipped comment blocks cover the input.
        let raw: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
        assert!(MIXED.ends_with(events.last().map(|e| e.raw.as_slice()).unwrap_or_default()));
        assert!(raw.len() < MIXED.len());
    }

    fn fields(events: &[SseEvent]) -> Vec<(Option<String>, String, Option<String>)> {
        events.iter().map(|e| (e.event.clone(), e.data.clone(), e.id.clone())).collect()
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let whole = decode_all(&[MIXED]);
        for i in 0..=MIXED.len() {
            for j in i..=MIXED.len() {
                let (a, rest) = MIXED.split_at(i);
                let (b, c) = rest.split_at(j - i);
                let split = decode_all(&[a, b, c]);
                assert_eq!(fields(&split), fields(&whole), "split at {i},{j}");
                // Raw bytes may lose the `\n` of a `\r\n` cut in two, but
                // forwarded as they are they still mean the same events.
                let raw: Vec<u8> = split.iter().flat_map(|e| e.raw.clone()).collect();
                assert_eq!(fields(&decode_all(&[&raw])), fields(&whole), "raw at {i},{j}");
            }
        }
    }

    #[test]
    fn finish_flushes_an_unterminated_event() {
        let events = decode_all(&[b"data: {\"x\":1}\n\ndata: tail"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events.get(1).map(|e| e.data.as_str()), Some("tail"));
    }

    #[test]
    fn oversized_event_is_reported_not_buffered() {
        let mut d = SseDecoder::new(16);
        let mut out = Vec::new();
        d.push(b"data: 0123456789abcdefghij", &mut out);
        assert!(d.overflowed());
        assert!(out.is_empty());
    }

    #[test]
    fn encoder_round_trips_multiline_data() {
        let mut buf = Vec::new();
        encode_event(Some("x"), "a\nb", &mut buf);
        assert_eq!(buf, b"event: x\ndata: a\ndata: b\n\n");
        let events = decode_all(&[&buf]);
        assert_eq!(events.first().map(|e| e.data.as_str()), Some("a\nb"));
    }

    #[test]
    fn ndjson_lines_survive_any_split() {
        let input = b"{\"a\":1}\r\n\n{\"b\":2}\n{\"c\":3}";
        for i in 0..=input.len() {
            let mut d = LineDecoder::default();
            let mut out = Vec::new();
            let (x, y) = input.split_at(i);
            d.push(x, &mut out);
            d.push(y, &mut out);
            d.finish(&mut out);
            assert_eq!(out, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec(), b"{\"c\":3}".to_vec()]);
        }
    }
}
