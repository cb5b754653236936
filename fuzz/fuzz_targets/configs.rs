//! Every filter's configuration parser: any bytes are accepted or refused
//! with a field path, never a panic. The balancer's own formats (plans,
//! try records, usage windows) come along, and every accepted balancer
//! configuration plans a request.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = codec::proxy::config::ProxyConfig::from_json(data, &|_| Some("v".into()));
    let _ = codec::guard::Guard::from_json(data);
    let _ = codec::decorator::Decorator::from_json(data);
    let _ = codec::template::Templates::from_json(data);
    let _ = codec::ratelimit::RateLimitConfig::from_json(data);
    let text = String::from_utf8_lossy(data);
    let records = codec::balancer::parse_tries(&text);
    let _ = codec::balancer::parse_plan(&text);
    let _ = codec::balancer::UsageWindow::parse(data).map(|w| w.add(u64::MAX, f64::MAX).estimate(0));
    if let Ok(c) = codec::balancer::AdvancedConfig::from_json(data, &|_| Some("v".into())) {
        let n = data.len() as u64;
        let scores: Vec<Option<f64>> = data.iter().map(|b| (b % 3 != 0).then(|| f64::from(*b))).collect();
        let order = c.order(n.wrapping_mul(0x9e37_79b9_7f4a_7c15), &scores, Some(&text));
        for k in 0..c.tries {
            let _ = codec::balancer::AdvancedConfig::target_of_try(&order, k);
        }
        let _ = c.report(&records);
        for r in &records {
            let _ = c.latency_sample(r, scores.first().copied().flatten());
            let _ = c.usage_amount(r);
        }
    }
});
