//! The official MCP Python SDK on both sides of the gateway: a real server
//! (`tests/sdk/mcp_server.py`) and its client (`tests/sdk/mcp_client.py`).

use crate::process::{log_file, python, start_script};
use crate::envoy::repo_root;
use std::path::PathBuf;

pub struct McpServer {
    pub port: u16,
    call_log: PathBuf,
    _process: crate::process::Supervised,
}

impl McpServer {
    /// `flags`: `--stateless`, `--json`; `extra_tools`: tools `tool_0`... added.
    pub fn start(flags: &[&str], extra_tools: usize) -> McpServer {
        let call_log = log_file("mcp-calls");
        let env = [("MCP_CALL_LOG", call_log.to_string_lossy().into_owned()), ("MCP_EXTRA_TOOLS", extra_tools.to_string())];
        let (port, process) = start_script("mcp_server.py", "mcp-server", flags, &env);
        McpServer { port, call_log, _process: process }
    }

    /// The tools/calls the server ran, in order.
    pub fn calls(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.call_log).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// The small JSON REST API of `tests/sdk/rest_api.py`, which records
/// every request it gets.
pub struct RestApi {
    pub port: u16,
    log: PathBuf,
    _process: crate::process::Supervised,
}

impl RestApi {
    pub fn start() -> RestApi {
        let log = log_file("rest-requests");
        let (port, process) = start_script("rest_api.py", "rest-api", &[], &[("REST_LOG", log.to_string_lossy().into_owned())]);
        RestApi { port, log, _process: process }
    }

    /// The requests it got, in order: {"method", "path", "headers", "body"}.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// Runs one scenario of the SDK client (see its docstring); `headers` go
/// on every request it sends.
pub fn client(url: &str, scenario: &str, headers: &[(&str, &str)], mode: &str) -> serde_json::Value {
    let mut cmd = std::process::Command::new(python());
    cmd.arg(repo_root().join("tests/sdk/mcp_client.py")).args([url, scenario, "--mode", mode]);
    for (k, v) in headers {
        cmd.arg("--header").arg(format!("{k}={v}"));
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("run the MCP client: {e} (scripts/setup-test-deps.sh installs it)"));
    assert!(out.status.success(), "{scenario} via {url}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}
