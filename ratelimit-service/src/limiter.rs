//! What a rate-limit request means, apart from gRPC and Redis: which limit
//! each descriptor hits, its counter key on clock-aligned windows, and the
//! verdict once the counter is known.

use crate::config::{Config, Limit, Unit};

/// One descriptor of a request, as the protocol sends it.
#[derive(Debug, Clone, Default)]
pub struct Descriptor {
    pub entries: Vec<(String, String)>,
    /// The request's own limit (RLS `limit` override).
    pub limit_override: Option<(u32, Unit)>,
    /// Per-descriptor hits (RLS `hits_addend` wrapper: 0 is a check).
    pub hits: Option<u64>,
}

/// A descriptor that has a limit: what to add to which counter.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub key: String,
    pub hits: u64,
    pub limit: Limit,
    /// Seconds until the window ends (the counter's expiry).
    pub reset_in: u64,
}

/// The verdict for one descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub over_limit: bool,
    pub limit: Option<(u32, Unit)>,
    pub remaining: u32,
    pub reset_in: u64,
}

impl Verdict {
    pub fn unlimited() -> Verdict {
        Verdict { over_limit: false, limit: None, remaining: 0, reset_in: 0 }
    }
}

/// Which counter each descriptor adds to (None: no limit applies). Hits
/// are the descriptor's own, else the request's, else 1, as in the
/// protocol; limits another matched limit `replaces` are dropped.
pub fn plan(config: &Config, domain: &str, descriptors: &[Descriptor], request_hits: u32, now_unix: u64) -> Vec<Option<Planned>> {
    let limits: Vec<Option<Limit>> = descriptors
        .iter()
        .map(|d| match d.limit_override {
            Some((requests_per_unit, unit)) => {
                Some(Limit { requests_per_unit, unit, unlimited: false, shadow_mode: false, name: None, replaces: Vec::new() })
            }
            None => config.limit(domain, &d.entries).cloned(),
        })
        .collect();
    let replaced: Vec<&String> = limits.iter().flatten().flat_map(|l| l.replaces.iter()).collect();
    descriptors
        .iter()
        .zip(limits.iter())
        .map(|(d, limit)| {
            let limit = limit.as_ref()?;
            if limit.name.as_ref().is_some_and(|n| replaced.contains(&n)) {
                return None;
            }
            let window = limit.unit.seconds();
            let start = now_unix - now_unix % window;
            let hits = d.hits.unwrap_or(if request_hits == 0 { 1 } else { u64::from(request_hits) });
            Some(Planned { key: counter_key(domain, &d.entries, start), hits, limit: limit.clone(), reset_in: start + window - now_unix })
        })
        .collect()
}

/// `domain_key_value_..._windowstart`, as envoyproxy/ratelimit names its
/// Redis keys.
pub fn counter_key(domain: &str, entries: &[(String, String)], window_start: u64) -> String {
    let mut key = String::from(domain);
    for (k, v) in entries {
        key.push('_');
        key.push_str(k);
        key.push('_');
        key.push_str(v);
    }
    key.push('_');
    key.push_str(&window_start.to_string());
    key
}

/// The verdict once the counter holds `count` (after adding the hits).
/// As in envoyproxy/ratelimit, a descriptor is over its limit once its
/// count exceeds the limit; a check (0 hits) then refuses too. Shadow-mode
/// limits count but never refuse.
pub fn verdict(planned: &Planned, count: u64) -> Verdict {
    let l = &planned.limit;
    if l.unlimited {
        return Verdict::unlimited();
    }
    let limit = u64::from(l.requests_per_unit);
    Verdict {
        over_limit: count > limit && !l.shadow_mode,
        limit: Some((l.requests_per_unit, l.unit)),
        remaining: u32::try_from(limit.saturating_sub(count)).unwrap_or(u32::MAX),
        reset_in: planned.reset_in,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = "domain: d\ndescriptors:\n  - key: consumer\n    rate_limit: {unit: minute, requests_per_unit: 100}\n  - key: team\n    rate_limit: {unit: hour, requests_per_unit: 10, name: team}\n  - key: vip\n    rate_limit: {unit: hour, requests_per_unit: 1000, replaces: [{name: team}]}\n  - key: shadow\n    shadow_mode: true\n    rate_limit: {unit: second, requests_per_unit: 1}\n";
        Config::load(&[("f".into(), text.into())]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn d(k: &str, v: &str, hits: Option<u64>) -> Descriptor {
        Descriptor { entries: vec![(k.into(), v.into())], limit_override: None, hits }
    }

    #[test]
    fn windows_are_clock_aligned_and_hits_follow_the_protocol() {
        let p = plan(&config(), "d", &[d("consumer", "alice", None), d("consumer", "bob", Some(0)), d("nothing", "x", None)], 0, 1_000_000_030);
        let alice = p[0].clone().unwrap_or_else(|| panic!("limit"));
        assert_eq!(alice.key, "d_consumer_alice_1000000020", "minute windows start on the minute");
        assert_eq!((alice.hits, alice.reset_in), (1, 50));
        assert_eq!(p[1].as_ref().map(|x| x.hits), Some(0), "a descriptor's own 0 only checks");
        assert!(p[2].is_none());
        let p = plan(&config(), "d", &[d("consumer", "alice", None)], 250, 60);
        assert_eq!(p[0].as_ref().map(|x| (x.hits, x.key.as_str())), Some((250, "d_consumer_alice_60")));
    }

    #[test]
    fn verdicts_refuse_past_the_limit_and_report_the_rest() {
        let p = plan(&config(), "d", &[d("consumer", "a", Some(0))], 0, 0)[0].clone().unwrap_or_else(|| panic!());
        assert_eq!(verdict(&p, 99), Verdict { over_limit: false, limit: Some((100, Unit::Minute)), remaining: 1, reset_in: 60 });
        assert!(!verdict(&p, 100).over_limit, "at the limit: not over (envoyproxy/ratelimit's rule)");
        assert!(verdict(&p, 101).over_limit);
        assert_eq!(verdict(&p, 5000).remaining, 0);
    }

    #[test]
    fn replaces_unlimited_shadow_and_overrides() {
        let c = config();
        let p = plan(&c, "d", &[d("team", "t", None), d("vip", "v", None)], 0, 0);
        assert!(p[0].is_none(), "vip's limit replaces team's");
        assert!(p[1].is_some());
        let shadow = plan(&c, "d", &[d("shadow", "s", None)], 0, 0)[0].clone().unwrap_or_else(|| panic!());
        assert!(!verdict(&shadow, 50).over_limit);
        let o = Descriptor { entries: vec![("x".into(), "y".into())], limit_override: Some((7, Unit::Hour)), hits: None };
        let p = plan(&c, "d", &[o], 0, 3601)[0].clone().unwrap_or_else(|| panic!());
        assert_eq!((p.limit.requests_per_unit, p.reset_in), (7, 3599));
    }
}
