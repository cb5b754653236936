//! The official MCP Python SDK on both sides of the gateway: a real server
//! (`tests/sdk/mcp_server.py`) and its client (`tests/sdk/mcp_client.py`).

use crate::envoy::{free_port, repo_root};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct McpServer {
    pub port: u16,
    call_log: PathBuf,
    _process: crate::process::Supervised,
}

fn python() -> PathBuf {
    repo_root().join(".venv/bin/python")
}

/// Starts `tests/sdk/<script> PORT` on a free port with `env`, and waits
/// for it to print `ready`. `name` names its files in target/e2e.
fn start_script(script: &str, name: &str, flags: &[&str], env: &[(&str, String)]) -> (u16, crate::process::Supervised) {
    let port = free_port();
    let dir = repo_root().join("target/e2e");
    let out = dir.join(format!("{name}-{port}.log"));
    let mut args = vec![repo_root().join("tests/sdk").join(script).to_string_lossy().into_owned(), port.to_string()];
    args.extend(flags.iter().map(|f| f.to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let process = crate::process::spawn(&python(), &args, &env, &out, &dir.join(format!("{name}-{port}.pid")));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&out).unwrap_or_default().contains("ready") {
        assert!(Instant::now() < deadline, "{script} did not start: {}", std::fs::read_to_string(&out).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    (port, process)
}

/// A fresh, empty log file for a server to append to.
fn log_file(name: &str) -> PathBuf {
    let dir = repo_root().join("target/e2e");
    std::fs::create_dir_all(&dir).ok();
    let path = dir.join(format!("{name}-{}.jsonl", free_port()));
    std::fs::write(&path, "").ok();
    path
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
