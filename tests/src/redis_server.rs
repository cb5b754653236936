//! Debian's redis-server on 127.0.0.1 with a free port, no persistence,
//! stopped by PID (dropping it); restartable on the same port.

use crate::envoy::{free_port, repo_root};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    process: Option<crate::process::Supervised>,
}

fn binary() -> PathBuf {
    let bin = PathBuf::from(std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "/usr/bin/redis-server".into()));
    assert!(bin.exists(), "redis-server not found at {}: run scripts/setup-test-deps.sh (or ./test.sh)", bin.display());
    bin
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = free_port();
        let dir = repo_root().join(format!("target/e2e/redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mut r = RedisServer { port, dir, process: None };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (its data is gone: no persistence).
    pub fn stop(&mut self) {
        self.process = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "redis-server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it (again) on the same port.
    pub fn restart(&mut self) {
        let args: Vec<String> = ["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--appendonly", "no", "--dir", &self.dir.to_string_lossy()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        self.process = Some(crate::process::spawn(&binary(), &args, &[], &self.dir.join("redis.log"), &self.dir.join("redis.pid")));
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.connection().is_none() {
            assert!(Instant::now() < deadline, "redis-server did not start: {}", std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn connection(&self) -> Option<redis::Connection> {
        redis::Client::open(self.url()).ok()?.get_connection().ok()
    }

    /// A counter's value (0 when the key does not exist).
    pub fn get(&self, key: &str) -> u64 {
        let Some(mut con) = self.connection() else { return 0 };
        redis::cmd("GET").arg(key).query::<Option<u64>>(&mut con).ok().flatten().unwrap_or(0)
    }

    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let Some(mut con) = self.connection() else { return Vec::new() };
        redis::cmd("KEYS").arg(pattern).query::<Vec<String>>(&mut con).unwrap_or_default()
    }
}
