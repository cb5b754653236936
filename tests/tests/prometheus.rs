//! The Grafana dashboard proven against a real Prometheus: known traffic
//! through envoy/chain.yaml, scraped with the compose profile's own scrape
//! config, then every query of every panel (read from the dashboard JSON,
//! so a new panel is covered automatically) must answer, and the panels
//! whose numbers the traffic determines must show those numbers.

use ai_gateway_tests::envoy::repo_root;
use ai_gateway_tests::http::{send, Request, Response};
use ai_gateway_tests::prometheus::{Prometheus, Sample};
use ai_gateway_tests::{test_id, Gateway};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Scrape interval of the test's Prometheus (the shipped one uses 15s).
const SCRAPE_SECS: f64 = 1.0;

/// What one round of traffic should add to the dashboard's numbers, tallied
/// from what the gateway answered.
#[derive(Default, Debug)]
struct Tally {
    /// (consumer, token type) -> tokens
    tokens: BTreeMap<(String, String), f64>,
    cost_micro: BTreeMap<String, f64>,
    outcomes: BTreeMap<String, f64>,
    guard_blocks: f64,
    budget_refusals: f64,
    template_errors: f64,
    trial_team_tokens: f64,
    /// Requests ai-proxy answered from the provider (latency samples).
    latency_samples: u64,
    streams: u64,
}

fn usage_of(resp: &Response) -> (f64, f64) {
    let (p, c) = resp.tokens();
    (p as f64, c as f64)
}

fn post(gw: &Gateway, consumer: &str, body: Value, extra: &[(&'static str, &'static str)]) -> Response {
    call(gw, "POST", consumer, body, extra)
}

fn call(gw: &Gateway, method: &'static str, consumer: &str, body: Value, extra: &[(&'static str, &'static str)]) -> Response {
    let mut req = Request::post_json("/v1/chat/completions", &body);
    req.method = method;
    let mut req = req
        .header("x-consumer-id", consumer)
        .header("authorization", format!("Bearer key-{consumer}"))
        .header("x-request-id", test_id("prom"));
    for (k, v) in extra {
        req = req.header(k, *v);
    }
    send(gw.envoy.ports.listener, &req)
}

fn chat(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
}

/// One round: successes (plain and streamed), an upstream error, a guard
/// block, a budget refusal, a template error and a request ai-proxy itself
/// refuses. Every label combination appears in every round.
fn traffic_round(gw: &Gateway) -> Tally {
    let mut t = Tally::default();
    let served = |t: &mut Tally, consumer: &str, resp: &Response| {
        assert_eq!(resp.status, 200, "{}", resp.text());
        let (p, c) = usage_of(resp);
        for (kind, n) in [("prompt", p), ("completion", c), ("total", p + c)] {
            *t.tokens.entry((consumer.to_string(), kind.to_string())).or_default() += n;
        }
        // 0.15 / 0.6 per million tokens (chain.yaml), in millionths per request.
        *t.cost_micro.entry(consumer.to_string()).or_default() += (p * 0.15 + c * 0.6).round();
        *t.outcomes.entry("success".into()).or_default() += 1.0;
        t.latency_samples += 1;
    };
    for text in ["hello there", "and again"] {
        let r = post(gw, "alice", chat(text), &[]);
        served(&mut t, "alice", &r);
    }
    let mut stream = chat("stream a long answer please");
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({"include_usage": true});
    let r = post(gw, "bob", stream, &[]);
    served(&mut t, "bob", &r);
    t.streams += 1;

    let r = post(gw, "alice", chat("fail"), &[("x-fake-status", "500")]);
    assert_eq!(r.status, 500, "{}", r.text());
    *t.outcomes.entry("upstream_error".into()).or_default() += 1.0;
    t.latency_samples += 1;

    let r = post(gw, "alice", chat("my password is x"), &[]);
    assert_eq!(r.status, 400, "{}", r.text());
    t.guard_blocks += 1.0;

    let r = post(gw, "alice", json!({"messages": "{template://nope}"}), &[]);
    assert_eq!(r.status, 400, "{}", r.text());
    t.template_errors += 1.0;

    // A request every governance filter passes and ai-proxy refuses.
    let r = call(gw, "PUT", "alice", chat("hi"), &[]);
    assert_eq!(r.status, 405, "{}", r.text());
    *t.outcomes.entry("gateway_reject".into()).or_default() += 1.0;

    // trial-team: 50 tokens a minute; the long request may pass (first
    // round), after which its budget refuses.
    let long = vec!["word"; 60].join(" ");
    for text in [long.as_str(), "again"] {
        let r = post(gw, "carol", chat(text), &[("x-team", "trial")]);
        match r.status {
            200 => {
                served(&mut t, "carol", &r);
                let (p, c) = usage_of(&r);
                t.trial_team_tokens += p + c;
            }
            429 => t.budget_refusals += 1.0,
            other => panic!("trial-team request: {other} {}", r.text()),
        }
    }
    assert!(t.budget_refusals >= 1.0, "the trial budget refused at least once per round");
    t
}

/// Envoy's own count of a histogram (buckets reach /stats/prometheus at
/// the stats flush, every 5 s).
fn envoy_histogram_count(gw: &Gateway, family: &str) -> u64 {
    // Summed over the routes (the `route` label) that serve the model.
    let series = format!("{family}_count{{");
    gw.envoy
        .admin("/stats/prometheus")
        .lines()
        .filter(|l| l.starts_with(&series) && l.contains(r#"provider="openai""#) && l.contains(r#"model="gpt-4o-mini""#))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.trim().parse::<u64>().ok()))
        .sum()
}

fn wait_for_flush(gw: &Gateway, latency_samples: u64, streams: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while envoy_histogram_count(gw, "ai_llm_provider_latency_ms") < latency_samples
        || envoy_histogram_count(gw, "ai_llm_time_to_first_token_ms") < streams
    {
        assert!(Instant::now() < deadline, "Envoy never flushed the histograms");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every panel query of the dashboard, with its panel's title.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = repo_root().join("envoy/grafana/ai-gateway-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"))).unwrap_or_else(|e| panic!("{e}"));
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_else(|| panic!("panel {} has a target without expr", panel["title"]));
            queries.push((panel["title"].as_str().unwrap_or_default().to_string(), expr.to_string()));
        }
    }
    queries
}

/// Prometheus extrapolates `rate` and `increase` to the edges of the
/// window: by up to half a scrape interval before the first sample and up
/// to one interval after the last. Over `span` seconds of samples a count
/// n may show as anything in [n, n × (span + 1.5 intervals) / span].
fn assert_count(what: &str, shown: f64, expected: f64, span: f64) {
    let upper = expected * (span + 1.5 * SCRAPE_SECS) / span + 1e-9;
    assert!(
        shown >= expected - 1e-9 && shown <= upper,
        "{what}: the dashboard shows {shown}, the traffic makes it {expected} (allowed up to {upper:.3} by extrapolation)"
    );
}

/// A rounded count must be exact.
fn assert_exact(what: &str, shown: f64, expected: f64) {
    assert_eq!(shown, expected, "{what}: the dashboard shows {shown}, the traffic makes it {expected}");
}

fn label(s: &Sample, name: &str) -> String {
    s.labels[name].as_str().unwrap_or_default().to_string()
}

/// The value of the series whose labels match all of `want`.
fn value_of(samples: &[Sample], want: &[(&str, &str)], expr: &str) -> f64 {
    samples
        .iter()
        .find(|s| want.iter().all(|(k, v)| label(s, k) == *v))
        .map(|s| s.value)
        .unwrap_or_else(|| panic!("{expr}: no series with {want:?} in {samples:?}"))
}

#[test]
fn every_dashboard_query_answers_with_the_numbers_the_traffic_made() {
    let gw = Gateway::start("chain.yaml", &[], &|y| y);
    let vms = gw.envoy.vm_baseline();

    // Every series is born in a warm-up round before Prometheus scrapes:
    // `rate` and `increase` only see what a series gains after its first
    // sample (README: Observability).
    let warm = traffic_round(&gw);
    wait_for_flush(&gw, warm.latency_samples, warm.streams);

    let prom = Prometheus::start(gw.envoy.ports.admin, "1s");
    prom.wait_for("count_over_time(ai_llm_requests_total[1m])", Duration::from_secs(30), |s| !s.is_empty() && s.iter().all(|x| x.value >= 2.0));
    let started = Instant::now();

    let known = traffic_round(&gw);
    let total_latency = warm.latency_samples + known.latency_samples;
    wait_for_flush(&gw, total_latency, warm.streams + known.streams);
    // The newest scrape holds all of it.
    let expected_requests: f64 = warm.outcomes.values().chain(known.outcomes.values()).sum();
    prom.wait_for("sum(ai_llm_requests_total)", Duration::from_secs(10), |s| s.first().is_some_and(|x| x.value == expected_requests));
    prom.wait_for(r#"sum(ai_llm_provider_latency_ms_count)"#, Duration::from_secs(10), |s| s.first().is_some_and(|x| x.value == total_latency as f64));
    std::thread::sleep(Duration::from_secs_f64(SCRAPE_SECS * 1.5)); // one more sample after the last change
    // `increase` stretches a count by up to (span + 1.5 scrapes) / span: over
    // a short span a rounded 2 would show as 3. Over 15 s it stays under +0.5.
    let min_span = Duration::from_secs(15);
    if let Some(rest) = min_span.checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
    let span = started.elapsed().as_secs_f64();

    let queries = dashboard_queries();
    assert!(queries.len() >= 8, "the dashboard has its panels: {queries:?}");
    let mut answers: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    for (title, expr) in &queries {
        let samples = prom.query(expr);
        // Shown with --nocapture: what each panel answers after the traffic.
        eprintln!("{title}: {expr}\n  {}", samples.iter().map(|s| format!("{} {}", s.labels, s.value)).collect::<Vec<_>>().join("\n  "));
        assert!(!samples.is_empty(), "panel {title:?}: {expr} returned nothing after known traffic");
        for s in &samples {
            assert!(s.value.is_finite(), "panel {title:?}: {expr} gave {} for {}", s.value, s.labels);
        }
        answers.insert(expr.clone(), samples);
    }

    // The panels whose numbers the traffic determines. Each expression must
    // still be on the dashboard (a changed panel must change this test).
    let get = |expr: &str| answers.get(expr).unwrap_or_else(|| panic!("the dashboard no longer has the query {expr}"));
    let per_second = 300.0; // the [5m] rate window: rate × 300 s = the count in it

    let expr = r#"sum by (provider, model) (rate(ai_llm_tokens_total{token_type="total"}[5m]))"#;
    let total_tokens: f64 = known.tokens.iter().filter(|((_, k), _)| k == "total").map(|(_, n)| n).sum();
    assert_count("tokens per model", value_of(get(expr), &[("provider", "openai"), ("model", "gpt-4o-mini")], expr) * per_second, total_tokens, span);

    let expr = "sum by (provider, outcome) (rate(ai_llm_requests_total[5m]))";
    for (outcome, n) in &known.outcomes {
        assert_count(&format!("requests {outcome}"), value_of(get(expr), &[("provider", "openai"), ("outcome", outcome)], expr) * per_second, *n, span);
    }
    assert_eq!(get(expr).len(), known.outcomes.len(), "{expr}: one series per outcome: {:?}", get(expr));

    let expr = "sum by (consumer) (increase(ai_llm_cost_microunits_total[1h])) / 1e6";
    for (consumer, micro) in &known.cost_micro {
        assert_count(&format!("cost of {consumer}"), value_of(get(expr), &[("consumer", consumer)], expr), micro / 1e6, span);
    }

    let expr = r#"sum by (consumer, token_type) (rate(ai_llm_tokens_total{token_type!="total"}[5m]))"#;
    for ((consumer, kind), n) in known.tokens.iter().filter(|((_, k), _)| k != "total") {
        assert_count(&format!("{kind} tokens of {consumer}"), value_of(get(expr), &[("consumer", consumer), ("token_type", kind)], expr) * per_second, *n, span);
    }

    // Counts of refusals are rounded on the dashboard: `increase` over a
    // series younger than its window extrapolates (1 block showed as 1.2).
    let expr = "round(sum by (rule) (increase(ai_prompt_guard_blocked_total[1h])))";
    assert_exact("guard blocks", value_of(get(expr), &[("rule", "deny_0")], expr), known.guard_blocks);
    let expr = r#"round(sum by (policy) (increase(ai_ratelimit_requests_total{outcome="rejected"}[1h])))"#;
    assert_exact("budget refusals", value_of(get(expr), &[("policy", "trial-team")], expr), known.budget_refusals);
    let expr = r#"round(sum by (outcome) (increase(ai_prompt_template_requests_total{outcome="error"}[1h])))"#;
    assert_exact("template errors", value_of(get(expr), &[("outcome", "error")], expr), known.template_errors);
    let expr = r#"round(sum by (provider) (increase(ai_llm_requests_total{outcome="gateway_reject"}[1h])))"#;
    assert_exact("ai-proxy refusals", value_of(get(expr), &[("provider", "openai")], expr), known.outcomes["gateway_reject"]);

    let expr = "sum by (policy) (rate(ai_ratelimit_units_charged_total[5m]))";
    assert_count("budget spent, gateway-total", value_of(get(expr), &[("policy", "gateway-total")], expr) * per_second, total_tokens, span);
    if known.trial_team_tokens > 0.0 {
        assert_count("budget spent, trial-team", value_of(get(expr), &[("policy", "trial-team")], expr) * per_second, known.trial_team_tokens, span);
    }

    // Percentile panels: finite (checked above) and within the histogram's
    // range: the fake answers in milliseconds, not minutes.
    for (title, expr) in queries.iter().filter(|(_, e)| e.starts_with("histogram_quantile")) {
        for s in get(expr) {
            assert!(s.value >= 0.0 && s.value < 60_000.0, "panel {title:?}: {expr} = {}", s.value);
            assert_eq!((label(s, "provider"), label(s, "model")), ("openai".into(), "gpt-4o-mini".into()), "{expr}");
        }
    }
    gw.envoy.assert_no_vm_crash(vms);
}
