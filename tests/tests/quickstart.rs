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
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    {
        let _gw = quickstart(&dir, port, &[("OPENAI_API_KEY", "")], How::Typed("y|sk-typed-key|n|n|n|n"));
        chat_through(port, "/local/v1/chat/completions");
        let models = send(port, &Request { method: "GET", path: "/v1/models", headers: vec![], body: vec![] }).json();
        let ids: Vec<String> = models["data"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str().map(str::to_string)).collect();
        assert_eq!(ids, ["openai", "local", "local-messages", "local-responses"], "the names the root API paths take: {models}");
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
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    {
        let _gw = quickstart(&dir, port, &[("QUICKSTART_PROVIDERS", "anthropic"), ("ANTHROPIC_API_KEY", "sk-ant-env")], How::FromEnvironment);
        chat_through(port, "/local");
    }
    let gateway = std::fs::read_to_string(dir.join("gateway.yaml")).unwrap_or_default();
    assert!(gateway.contains("identifier: anthropic"), "{gateway}");
    assert!(!gateway.contains("sk-ant-env"), "keys stay in .env");
    // Run again without providers: the existing file is kept, not replaced.
    let port = free_port();
    {
        let _gw = quickstart(&dir, port, &[("ANTHROPIC_API_KEY", "")], How::FromEnvironment);
        chat_through(port, "/local");
    }
    assert_eq!(std::fs::read_to_string(dir.join("gateway.yaml")).unwrap_or_default(), gateway, "an existing gateway.yaml was replaced");
    assert!(std::fs::read_to_string(dir.join("quickstart.log")).unwrap_or_default().contains("Keeping"));
}

#[test]
fn the_quickstarts_files_are_ignored_by_git_and_a_taken_port_is_named() {
    for file in ["gateway.yaml", ".env"] {
        let ignored = Command::new("git").args(["check-ignore", "-q", file]).current_dir(repo_root()).status();
        assert!(ignored.is_ok_and(|s| s.success()), "{file} (keys) must be in .gitignore");
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = repo_root().join("target/e2e/quickstart-taken");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = taken.local_addr().map(|a| a.port()).unwrap_or_default();
    let out = Command::new(repo_root().join("quickstart.sh"))
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .env("QUICKSTART_NONINTERACTIVE", "1")
        .env("QUICKSTART_DIR", &dir)
        .env("QUICKSTART_PORT", port.to_string())
        .env("QUICKSTART_ADMIN_PORT", free_port().to_string())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(&format!("the port {port} is taken")), "{text}");
    assert!(!text.contains("curl http"), "printed how to call a gateway that is not running:\n{text}");
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
    let ids: Vec<String> = models["data"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str().map(str::to_string)).collect();
    assert_eq!(ids, ["local", "local-messages", "local-responses"], "{models}");
    // One base URL: the same name on the OpenAI and Anthropic APIs.
    let resp = send(port, &Request::post_json("/v1/chat/completions", &json!({"model": "local", "messages": [{"role": "user", "content": "hello root"}]})));
    assert!(resp.status == 200 && resp.text().contains("hello root"), "{}", resp.text());
    let resp = send(port, &Request::post_json("/v1/messages", &json!({"model": "local", "max_tokens": 20, "messages": [{"role": "user", "content": "hello claude"}]})));
    assert!(resp.status == 200 && resp.json()["type"] == "message", "{}", resp.text());
    let gateway = std::fs::read_to_string(repo_root().join("target/run/gateway.yaml")).unwrap_or_default();
    assert!(gateway.contains("identifier: local") || gateway.contains("identifier: ollama"), "{gateway}");
}
