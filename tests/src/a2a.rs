//! The official A2A Python SDK on both sides of the gateway: a real agent
//! built with the SDK's server (`tests/sdk/a2a_agent.py`, A2A 1.0 and 0.3
//! through its compat layer, both bindings) and its client
//! (`tests/sdk/a2a_client.py`).

use crate::process::{log_file, python, start_script};
use crate::envoy::repo_root;
use std::path::PathBuf;

pub struct Agent {
    pub port: u16,
    seen: PathBuf,
    _process: crate::process::Supervised,
}

impl Agent {
    /// `flags`: the script's (`--v03`, `--slow-seconds N`).
    pub fn start(flags: &[&str]) -> Agent {
        let seen = log_file("a2a-seen");
        let mut args = vec!["--seen", seen.to_str().unwrap_or_default()];
        args.extend_from_slice(flags);
        let (port, process) = start_script("a2a_agent.py", "a2a-agent", &args, &[]);
        Agent { port, seen, _process: process }
    }

    /// Every HTTP request the agent got, in order: {"method", "path",
    /// "query", "headers", "body"}.
    pub fn seen(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.seen).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// Runs the SDK client (`--op`, `--binding` and the rest: see its
/// docstring) and returns the JSON it printed; `Err` with it when it failed.
pub fn client(base: &str, args: &[&str]) -> Result<serde_json::Value, serde_json::Value> {
    let out = std::process::Command::new(python())
        .arg(repo_root().join("tests/sdk/a2a_client.py"))
        .args(["--base", base])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run the A2A client: {e} (scripts/setup-test-deps.sh installs it)"));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    if out.status.success() {
        Ok(printed)
    } else {
        Err(printed)
    }
}
