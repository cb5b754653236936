//! The floor under every filter of the benchmark (bench/bench.py): the
//! plugin configuration names a mode, and the filter does only that.
//! - `noop`: every callback returns at once.
//! - `read`: holds the headers, buffers the body and reads it whole.
//! - `rewrite`: also parses it as JSON, serializes it again and sets it.
//!
//! Bench code: a bad body is passed on as it is, never a panic.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Noop,
    Read,
    Rewrite,
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { mode: Mode::Noop }) });
}}

struct Root {
    mode: Mode,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten().unwrap_or_default();
        self.mode = match config.as_slice() {
            b"read" => Mode::Read,
            b"rewrite" => Mode::Rewrite,
            _ => Mode::Noop,
        };
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor { mode: self.mode }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Floor {
    mode: Mode,
}

impl Context for Floor {}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.mode == Mode::Noop || end_of_stream {
            return Action::Continue;
        }
        if self.mode == Mode::Rewrite {
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, "content-length");
        }
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.mode == Mode::Noop {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size).ok().flatten().unwrap_or_default();
        if self.mode == Mode::Rewrite {
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) {
                if let Ok(again) = serde_json::to_vec(&value) {
                    let _ = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body_size, &again);
                }
            }
        }
        Action::Continue
    }
}
