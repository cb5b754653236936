//! A real Prometheus (Debian's package, installed by
//! scripts/setup-test-deps.sh) scraping a test Envoy with the scrape
//! config the compose profile ships, and a client for its HTTP query API.

use crate::envoy::{free_port, repo_root};
use crate::http::{send, Request};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Prometheus {
    pub port: u16,
    pub log_path: PathBuf,
    _process: crate::process::Supervised,
}

/// One series of an instant query's answer.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: Value,
    pub value: f64,
}

fn binary() -> PathBuf {
    let bin = std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "/usr/bin/prometheus".into());
    let bin = PathBuf::from(bin);
    assert!(bin.exists(), "Prometheus not found at {}: run scripts/setup-test-deps.sh (or ./test.sh)", bin.display());
    bin
}

/// `envoy/prometheus.yml` with the test's admin port and scrape interval.
pub fn scrape_config(admin_port: u16, scrape_interval: &str) -> String {
    let shipped = std::fs::read_to_string(repo_root().join("envoy/prometheus.yml")).unwrap_or_else(|e| panic!("envoy/prometheus.yml: {e}"));
    assert!(shipped.contains("127.0.0.1:9901") && shipped.contains("scrape_interval:"), "the shipped scrape config changed shape");
    shipped
        .lines()
        .map(|l| match l.split_once("scrape_interval:") {
            Some((indent, _)) => format!("{indent}scrape_interval: {scrape_interval}"),
            None => l.replace("127.0.0.1:9901", &format!("127.0.0.1:{admin_port}")),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Prometheus {
    pub fn start(admin_port: u16, scrape_interval: &str) -> Prometheus {
        let port = free_port();
        let dir = repo_root().join(format!("target/e2e/prometheus-{port}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, scrape_config(admin_port, scrape_interval)).unwrap_or_else(|e| panic!("{e}"));
        let args: Vec<String> = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=warn".into(),
        ];
        let log_path = dir.join("prometheus.log");
        let process = crate::process::spawn(&binary(), &args, &[], &log_path, &dir.join("prometheus.pid"));
        let prometheus = Prometheus { port, log_path, _process: process };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && send(port, &Request { method: "GET", path: "/-/ready", headers: vec![], body: vec![] }).status == 200
            {
                return prometheus;
            }
            assert!(Instant::now() < deadline, "Prometheus did not become ready:\n{}", prometheus.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// An instant query at `time` (Unix seconds), or now.
    pub fn query_at(&self, expr: &str, time: Option<f64>) -> Vec<Sample> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("query", expr);
        if let Some(t) = time {
            form.append_pair("time", &format!("{t:.3}"));
        }
        let req = Request {
            method: "POST",
            path: "/api/v1/query",
            headers: vec![("content-type", "application/x-www-form-urlencoded".into())],
            body: form.finish().into_bytes(),
        };
        let resp = send(self.port, &req);
        let v = resp.json();
        assert_eq!(v["status"], "success", "query {expr} failed: {v}");
        let result = &v["data"]["result"];
        match v["data"]["resultType"].as_str() {
            Some("vector") => result
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| Sample { labels: s["metric"].clone(), value: parse_value(&s["value"][1]) })
                .collect(),
            Some("scalar") => vec![Sample { labels: Value::Null, value: parse_value(&result[1]) }],
            other => panic!("query {expr}: unexpected result type {other:?}"),
        }
    }

    pub fn query(&self, expr: &str) -> Vec<Sample> {
        self.query_at(expr, None)
    }

    /// Runs every query of every panel of the dashboard at `path` (relative
    /// to the repository); each must answer with finite values. Returns the
    /// answers by query.
    pub fn dashboard_answers(&self, path: &str) -> std::collections::BTreeMap<String, Vec<Sample>> {
        let path = crate::envoy::repo_root().join(path);
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default()).unwrap_or_default();
        let mut answers = std::collections::BTreeMap::new();
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default().to_string();
                let samples = self.query(&expr);
                assert!(!samples.is_empty() && samples.iter().all(|x| x.value.is_finite()), "panel {}: {expr} answered {:?}", panel["title"], samples.iter().map(|x| x.value).collect::<Vec<_>>());
                answers.insert(expr, samples);
            }
        }
        answers
    }

    /// Polls `expr` until `done` holds for its answer, or panics at the deadline.
    pub fn wait_for(&self, expr: &str, within: Duration, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
        let deadline = Instant::now() + within;
        loop {
            let samples = self.query(expr);
            if done(&samples) {
                return samples;
            }
            assert!(Instant::now() < deadline, "{expr} never reached the expected value; last answer {samples:?}\nlog:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Prometheus sends sample values as strings ("1.5", "NaN", "+Inf").
fn parse_value(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}
