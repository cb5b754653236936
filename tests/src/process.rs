//! Servers the tests start (Envoy, Prometheus, ...), each under a tiny
//! shell wrapper that kills it by PID when our end of its stdin closes:
//! however the test process ends, nothing it started outlives it.

use crate::envoy::{free_port, repo_root};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use std::process::{Child, ChildStdin, Command, Stdio};

pub struct Supervised {
    /// Dropping (or exiting) closes it, and the wrapper then kills the server.
    _lifeline: ChildStdin,
    _wrapper: Child,
}

/// Starts `program args...` with its output in `log` and its PID written
/// to `pid_path`.
pub fn spawn(program: &Path, args: &[String], env: &[(&str, &str)], log: &Path, pid_path: &Path) -> Supervised {
    let log = std::fs::File::create(log).unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
    let script = r#"prog="$1"; pidfile="$2"; shift 2; "$prog" "$@" </dev/null & pid=$!; echo "$pid" > "$pidfile"; read -r _; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null"#;
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script).arg("supervisor").arg(program).arg(pid_path).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap_or_else(|e| panic!("{e}")))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    let lifeline = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    Supervised { _lifeline: lifeline, _wrapper: child }
}

/// The project venv's Python (scripts/setup-test-deps.sh makes it).
pub fn python() -> PathBuf {
    repo_root().join(".venv/bin/python")
}

/// Starts `tests/sdk/<script> PORT` on a free port with `env`, and waits
/// for it to print `ready`. `name` names its files in target/e2e.
pub fn start_script(script: &str, name: &str, flags: &[&str], env: &[(&str, String)]) -> (u16, crate::process::Supervised) {
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
pub fn log_file(name: &str) -> PathBuf {
    let dir = repo_root().join("target/e2e");
    std::fs::create_dir_all(&dir).ok();
    let path = dir.join(format!("{name}-{}.jsonl", free_port()));
    std::fs::write(&path, "").ok();
    path
}
