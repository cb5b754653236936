//! Runs the real Envoy with one of the shipped config files from `envoy/`,
//! rewritten only where a test machine differs from a deployment: ports,
//! upstream addresses (every cluster points at the fake provider, TLS off)
//! and where the .wasm modules are.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or_else(|e| panic!("free port: {e}"))
}

pub fn envoy_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("ENVOY_BIN") {
        return PathBuf::from(bin);
    }
    let bin = repo_root().join(".venv/bin/envoy");
    assert!(bin.exists(), "Envoy not found at {}: run scripts/setup-envoy.sh (or ./test.sh)", bin.display());
    bin
}

/// Builds the modules once per test process, so tests never run stale wasm.
pub fn dist_dir() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = Command::new(repo_root().join("build.sh")).stdout(Stdio::null()).status();
        assert!(status.is_ok_and(|s| s.success()), "./build.sh failed");
    });
    let dist = repo_root().join("dist");
    assert!(dist.join("ai_proxy.wasm").exists(), "no modules in {}: run ./build.sh (or ./test.sh)", dist.display());
    dist
}

#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub listener: u16,
    pub admin: u16,
    /// Every upstream cluster is sent here...
    pub upstream: u16,
}

/// ... except clusters whose shipped port is listed here (a service the
/// test runs itself, such as the rate-limit service): shipped port, test port.
pub type PortMap<'a> = &'a [(u16, u16)];

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Rewrites a shipped envoy config for a test run (see module docs).
pub fn rewrite_config(yaml: &str, ports: Ports, dist: &Path) -> String {
    rewrite_config_mapped(yaml, ports, dist, &[])
}

pub fn rewrite_config_mapped(yaml: &str, ports: Ports, dist: &Path, mapped: PortMap) -> String {
    let mut out = Vec::new();
    let mut in_clusters = false;
    let mut skip_deeper_than: Option<usize> = None;
    for line in yaml.lines() {
        if let Some(level) = skip_deeper_than {
            if line.trim().is_empty() || indent(line) > level {
                continue;
            }
            skip_deeper_than = None;
        }
        if indent(line) == 2 && line.trim_start().starts_with("clusters:") {
            in_clusters = true;
        } else if indent(line) <= 2 && !line.trim().is_empty() && !line.trim_start().starts_with('-') && !line.trim_start().starts_with('#') {
            in_clusters = line.trim_start().starts_with("clusters:");
        }
        let mut l = line.replace("/etc/envoy/wasm/", &format!("{}/", dist.display()));
        if in_clusters {
            if l.trim_start().starts_with("transport_socket:") {
                skip_deeper_than = Some(indent(&l));
                continue;
            }
            if let Some(i) = l.find("socket_address: {") {
                let end = l[i..].find('}').map(|e| i + e + 1).unwrap_or(l.len());
                let shipped = l[i..end].split("port_value:").nth(1).and_then(|p| p.trim().trim_end_matches('}').trim().parse::<u16>().ok());
                let port = mapped.iter().find(|(from, _)| Some(*from) == shipped).map(|(_, to)| *to).unwrap_or(ports.upstream);
                l = format!("{}socket_address: {{ address: 127.0.0.1, port_value: {port} }}{}", &l[..i], &l[end..]);
            }
        } else {
            l = l.replace("address: 0.0.0.0, port_value: 10000", &format!("address: 127.0.0.1, port_value: {}", ports.listener));
            l = l.replace("address: 127.0.0.1, port_value: 9901", &format!("address: 127.0.0.1, port_value: {}", ports.admin));
        }
        out.push(l);
    }
    out.join("\n") + "\n"
}

pub struct Envoy {
    pub ports: Ports,
    pub log_path: PathBuf,
    pub config_path: PathBuf,
    pid_path: PathBuf,
    _process: crate::process::Supervised,
}

impl Envoy {
    /// Starts Envoy with `envoy/<file>` rewritten for the test.
    pub fn start(file: &str, upstream: u16, concurrency: u32, env: &[(&str, &str)]) -> Envoy {
        Self::start_with(file, upstream, concurrency, env, &|yaml| yaml)
    }

    /// Like `start`, with one more rewrite of the config text (a test that
    /// needs, say, shorter windows says so where it calls this).
    pub fn start_with(file: &str, upstream: u16, concurrency: u32, env: &[(&str, &str)], rewrite: &dyn Fn(String) -> String) -> Envoy {
        Self::start_mapped(file, upstream, concurrency, env, rewrite, &[])
    }

    /// Like `start_with`; clusters on the shipped ports in `mapped` go to
    /// the test's own services instead of the fake provider.
    pub fn start_mapped(file: &str, upstream: u16, concurrency: u32, env: &[(&str, &str)], rewrite: &dyn Fn(String) -> String, mapped: PortMap) -> Envoy {
        let root = repo_root();
        let yaml = std::fs::read_to_string(root.join("envoy").join(file)).unwrap_or_else(|e| panic!("read envoy/{file}: {e}"));
        let yaml = rewrite(yaml);
        let ports = Ports { listener: free_port(), admin: free_port(), upstream };
        let dir = root.join("target/e2e");
        std::fs::create_dir_all(&dir).ok();
        let stem = format!("{}-{}", file.trim_end_matches(".yaml"), ports.listener);
        let config_path = dir.join(format!("{stem}.yaml"));
        let log_path = dir.join(format!("{stem}.log"));
        std::fs::write(&config_path, rewrite_config_mapped(&yaml, ports, &dist_dir(), mapped)).unwrap_or_else(|e| panic!("write config: {e}"));
        let pid_path = dir.join(format!("{stem}.pid"));
        let mut args: Vec<String> = vec!["-c".into(), config_path.to_string_lossy().into_owned(), "--concurrency".into(), concurrency.to_string()];
        // Flush access logs often (a command-line flag, not config): tests read them.
        for a in ["--base-id", &ports.listener.to_string(), "--log-level", "info", "--drain-time-s", "1", "--file-flush-interval-msec", "100"] {
            args.push(a.to_string());
        }
        let process = crate::process::spawn(&envoy_binary(), &args, env, &log_path, &pid_path);
        let envoy = Envoy { ports, log_path, config_path, pid_path, _process: process };
        envoy.wait_ready();
        envoy
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.ports.admin)).is_ok() {
                let r = crate::http::send(self.ports.admin, &crate::http::Request { method: "GET", path: "/ready", headers: vec![], body: vec![] });
                if r.status == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("Envoy did not become ready; log:\n{}", self.log());
    }

    /// Envoy's resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let pid = std::fs::read_to_string(&self.pid_path).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
    }

    /// Panics if any wasm VM crashed or was reloaded since `baseline`
    /// (the value of `vm_baseline()` taken after start).
    pub fn assert_no_vm_crash(&self, baseline: u64) {
        let stats = self.admin("/stats?filter=wasm");
        for line in stats.lines() {
            if line.contains("vm_reload") || line.contains("vm_failed") {
                assert!(line.trim_end().ends_with(": 0"), "a wasm VM failed: {line}");
            }
        }
        assert_eq!(self.vm_baseline(), baseline, "wasm VMs were created after start (a crash and reload)");
        let log = self.log();
        for sign in ["panicked", "RuntimeError", "unreachable"] {
            assert!(!log.contains(sign), "Envoy's log shows a wasm failure ({sign}):\n{}", log.lines().filter(|l| l.contains(sign)).take(5).collect::<Vec<_>>().join("\n"));
        }
    }

    /// Number of wasm VMs created so far.
    pub fn vm_baseline(&self) -> u64 {
        self.stat("wasm.envoy.wasm.runtime.v8.created")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn admin(&self, path: &str) -> String {
        crate::http::send(self.ports.admin, &crate::http::Request { method: "GET", path, headers: vec![], body: vec![] }).text()
    }

    /// The access-log line (JSON) of the request with this `x-request-id`.
    pub fn access_log(&self, request_id: &str) -> serde_json::Value {
        let needle = format!("\"request_id\":\"{request_id}\"");
        for _ in 0..100 {
            if let Some(line) = self.log().lines().find(|l| l.contains(&needle)) {
                return serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no access log line for {request_id}")
    }

    /// A stat's value from the admin endpoint. Panics when Envoy has no
    /// stat of that name: a misspelt name must not read as 0.
    pub fn stat(&self, name: &str) -> u64 {
        self.admin(&format!("/stats?filter=^{}$", name.replace('.', "\\.")))
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("Envoy has no stat named {name}"))
    }
}

/// Runs `envoy --mode validate` on a config text; returns (success, output).
pub fn validate(yaml: &str, name: &str) -> (bool, String) {
    let dir = repo_root().join("target/e2e");
    std::fs::create_dir_all(&dir).ok();
    let path = dir.join(format!("validate-{name}.yaml"));
    let ports = Ports { listener: free_port(), admin: free_port(), upstream: 1 };
    std::fs::write(&path, rewrite_config(yaml, ports, &dist_dir())).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(envoy_binary())
        .args(["--mode", "validate", "-c", &path.to_string_lossy(), "--base-id", &ports.listener.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("run envoy: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}
