//! ./quickstart.sh as a new user runs it: under a pseudo-terminal with
//! typed answers, and non-interactively from the environment. Each time a
//! request through the gateway it started must succeed.

use ai_gateway_tests::envoy::{free_port, repo_root};
use ai_gateway_tests::http::{send, Request};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The quickstart's process group, stopped when the test ends.
struct Started {
    child: Child,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.wait();
    }
}

fn wait_for(port: u16, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let models = send(port, &Request { method: "GET", path: "/v1/models", headers: vec![], body: vec![] });
            if models.status == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the gateway did not come up; log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn chat_through(port: u16, path: &str) {
    let resp = send(port, &Request::post_json(path, &json!({"messages": [{"role": "user", "content": "hello quickstart"}]})));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains("hello quickstart"), "{}", resp.text());
}

/// One quickstart at a time: each starts the fake provider on 127.0.0.1:8000
/// when nothing listens there, and stops it when it ends.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How the gateway is started.
enum How<'a> {
    /// ./quickstart.sh under a terminal, typing these answers (`|`-separated).
    Typed(&'a str),
    /// ./quickstart.sh without a terminal.
    FromEnvironment,
    /// ./run.sh, the README's first command (the quickstart's default).
    RunSh,
}

fn quickstart(dir: &std::path::Path, port: u16, env: &[(&str, &str)], how: How) -> Started {
    std::fs::create_dir_all(dir).ok();
    let log = dir.join("quickstart.log");
    let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = match how {
        // Python's pty module gives the script a real terminal and types the answers.
        How::Typed(answers) => {
            let script = r#"
import os, pty, sys, time
answers = sys.argv[1].split("|")
pid, fd = pty.fork()
if pid == 0:
    os.execv("./quickstart.sh", ["./quickstart.sh"])
out = b""
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    sys.stdout.buffer.write(data); sys.stdout.flush()
    while answers and (out.rstrip().endswith(b"?") or out.rstrip().endswith(b"]") or out.rstrip().endswith(b":")):
        os.write(fd, (answers.pop(0) + "\n").encode())
        out = b""
        time.sleep(0.05)
"#;
            let mut c = Command::new(repo_root().join(".venv/bin/python"));
            c.args(["-c", script, answers]);
            c
        }
        How::FromEnvironment => {
            let mut c = Command::new(repo_root().join("quickstart.sh"));
            c.stdin(Stdio::null()).env("QUICKSTART_NONINTERACTIVE", "1");
            c
        }
        How::RunSh => {
            let mut c = Command::new(repo_root().join("run.sh"));
            c.stdin(Stdio::null());
            c
        }
    };
    cmd.current_dir(repo_root())
        .env("QUICKSTART_DIR", dir)
        .env("QUICKSTART_PORT", port.to_string())
        .env("QUICKSTART_ADMIN_PORT", free_port().to_string())
        .stdout(out.try_clone().unwrap_or_else(|e| panic!("{e}")))
        .stderr(out)
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap_or_else(|e| panic!("quickstart: {e}"));
    let started = Started { child };
    wait_for(port, &log);
    started
}

#[test]
fn quickstart_with_typed_answers_then_from_the_environment() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Typed: OpenAI with a key, nothing else; the local model answers.
    let dir = repo_root().join("target/e2e/quickstart-pty");
    let port = free_port();
    {
        let _gw = quickstart(&dir, port, &[("OPENAI_API_KEY", "")], How::Typed("y|sk-typed-key|n|n|n|n"));
        chat_through(port, "/local/v1/chat/completions");
        let models = send(port, &Request { method: "GET", path: "/v1/models", headers: vec![], body: vec![] }).json();
        let ids: Vec<String> = models["data"].as_array().into_iter().flatten().filter_map(|m| m["owned_by"].as_str().map(str::to_string)).collect();
        assert_eq!(ids, ["openai", "openai"], "the OpenAI model and the local OpenAI-compatible one: {models}");
        let env = std::fs::read_to_string(dir.join(".env")).unwrap_or_default();
        assert_eq!(env.trim(), "OPENAI_API_KEY=sk-typed-key");
        let mode = std::fs::metadata(dir.join(".env")).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o600);
        let log = std::fs::read_to_string(dir.join("quickstart.log")).unwrap_or_default();
        assert!(!log.contains("sk-typed-key"), "the key was echoed");
        assert!(log.contains("base_url=\"http://127.0.0.1:"), "prints how to call each model:\n{log}");
    }
    // Non-interactive: the same from environment variables.
    let dir = repo_root().join("target/e2e/quickstart-env");
    let port = free_port();
    let _gw = quickstart(&dir, port, &[("QUICKSTART_PROVIDERS", "anthropic"), ("ANTHROPIC_API_KEY", "sk-ant-env")], How::FromEnvironment);
    chat_through(port, "/local");
    let gateway = std::fs::read_to_string(dir.join("gateway.yaml")).unwrap_or_default();
    assert!(gateway.contains("identifier: anthropic"), "{gateway}");
    assert!(!gateway.contains("sk-ant-env"), "keys stay in .env");
}

#[test]
fn run_sh_serves_the_quickstart_default_without_a_key() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // QUICKSTART_DIR is run.sh's own (target/run); the log goes beside the test's files.
    let dir = repo_root().join("target/e2e/run-sh");
    let port = free_port();
    let _gw = quickstart(&dir, port, &[("OPENAI_API_KEY", ""), ("ANTHROPIC_API_KEY", "")], How::RunSh);
    chat_through(port, "/local/v1/chat/completions");
    chat_through(port, "/local");
    // The same model answers OpenAI's Responses API.
    let resp = send(port, &Request::post_json("/local/v1/responses", &json!({"input": "hello responses"})));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["object"], "response", "{}", resp.text());
    assert!(resp.text().contains("hello responses"), "{}", resp.text());
    let models = send(port, &Request { method: "GET", path: "/v1/models", headers: vec![], body: vec![] }).json();
    assert_eq!(models["data"].as_array().map(Vec::len), Some(1), "the local model only, once: {models}");
    let gateway = std::fs::read_to_string(repo_root().join("target/run/gateway.yaml")).unwrap_or_default();
    assert!(gateway.contains("identifier: local") || gateway.contains("identifier: ollama"), "{gateway}");
}
