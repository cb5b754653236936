//! Servers the tests start (Envoy, Prometheus, ...), each under a tiny
//! shell wrapper that kills it by PID when our end of its stdin closes:
//! however the test process ends, nothing it started outlives it.

use std::path::Path;
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
