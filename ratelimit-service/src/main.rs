//! ai-ratelimit-service: Envoy's global rate-limit service
//! (`envoy.service.ratelimit.v3.RateLimitService`) with counters in Redis,
//! reading envoyproxy/ratelimit's configuration files, for users without
//! Docker and for the tests. `render` turns ai-token-ratelimit policies
//! into that configuration and Envoy's matching `rate_limits`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

mod config;
mod limiter;
mod render;

use clap::{Parser, Subcommand};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus, RateLimit};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{RateLimitService, RateLimitServiceServer};
use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use limiter::{Descriptor, Verdict};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the RLS gRPC API.
    Serve {
        /// Configuration files (envoyproxy/ratelimit's YAML format), one domain each.
        #[arg(long = "config", required = true)]
        configs: Vec<PathBuf>,
        /// Where the counters live.
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// A Redis call slower than this fails the request (Envoy then
        /// applies its failure_mode_deny).
        #[arg(long, default_value = "200")]
        redis_timeout_ms: u64,
        /// Log every request's descriptors and counters (debugging).
        #[arg(long)]
        log_requests: bool,
    },
    /// Render the service's configuration and Envoy's `rate_limits` from
    /// ai-token-ratelimit policies with "strategy": "cluster".
    Render {
        /// The filter's JSON configuration, or an Envoy YAML file holding
        /// the `ai-token-ratelimit` filter.
        policies: PathBuf,
        #[arg(long, default_value = "ai-gateway")]
        domain: String,
        /// Where to write the service's configuration.
        #[arg(long)]
        service_config: PathBuf,
        /// Where to write Envoy's `rate_limits` list.
        #[arg(long, conflicts_with = "update_envoy")]
        envoy_rate_limits: Option<PathBuf>,
        /// Rewrite the block between `# BEGIN rendered rate_limits` and
        /// `# END rendered rate_limits` in the Envoy YAML given as POLICIES.
        #[arg(long)]
        update_envoy: bool,
    },
}

/// Adds `hits` to a counter and returns the new count; a new counter
/// expires with its window. One atomic script per descriptor; a check
/// (0 hits) only reads.
const COUNT_SCRIPT: &str = r"
if ARGV[1] == '0' then
  return tonumber(redis.call('GET', KEYS[1]) or '0')
end
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return count
";

struct Service {
    config: config::Config,
    log_requests: bool,
    redis: redis::aio::ConnectionManager,
    script: redis::Script,
}

fn to_descriptor(d: &envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor) -> Descriptor {
    Descriptor {
        entries: d.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect(),
        limit_override: d.limit.as_ref().and_then(|l| Some((l.requests_per_unit, config::Unit::from_proto(l.unit)?))),
        hits: d.hits_addend.as_ref().map(|h| h.value),
    }
}

fn status_of(v: &Verdict) -> DescriptorStatus {
    DescriptorStatus {
        code: if v.over_limit { Code::OverLimit } else { Code::Ok } as i32,
        current_limit: v.limit.map(|(requests_per_unit, unit)| RateLimit {
            name: String::new(),
            requests_per_unit,
            unit: unit.proto(),
        }),
        limit_remaining: v.remaining,
        duration_until_reset: v.limit.map(|_| envoy_types::pb::google::protobuf::Duration { seconds: v.reset_in as i64, nanos: 0 }),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl RateLimitService for Service {
    async fn should_rate_limit(&self, request: tonic::Request<RateLimitRequest>) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        let req = request.into_inner();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let descriptors: Vec<Descriptor> = req.descriptors.iter().map(to_descriptor).collect();
        let planned = limiter::plan(&self.config, &req.domain, &descriptors, req.hits_addend, now);
        if self.log_requests {
            eprintln!("request domain={} hits={} descriptors={descriptors:?} -> {planned:?}", req.domain, req.hits_addend);
        }
        let mut statuses = Vec::with_capacity(planned.len());
        let mut over = false;
        // A refused client may retry when every exhausted window has reset.
        let mut retry_after = 0;
        for p in &planned {
            let verdict = match p {
                None => Verdict::unlimited(),
                Some(p) if p.limit.unlimited => Verdict::unlimited(),
                Some(p) => {
                    let mut conn = self.redis.clone();
                    let count: u64 = self
                        .script
                        .key(&p.key)
                        .arg(p.hits)
                        .arg(p.reset_in.max(1))
                        .invoke_async(&mut conn)
                        .await
                        .map_err(|e| {
                            eprintln!("ai-ratelimit-service: redis: {e}");
                            tonic::Status::unavailable("the counter store is unavailable")
                        })?;
                    limiter::verdict(p, count)
                }
            };
            over |= verdict.over_limit;
            if verdict.over_limit {
                retry_after = retry_after.max(verdict.reset_in);
            }
            statuses.push(status_of(&verdict));
        }
        let overall = if over { Code::OverLimit } else { Code::Ok };
        // Envoy's ratelimit filter adds these to its 429 (the OpenAI SDK's
        // retry reads Retry-After).
        let response_headers_to_add = if over {
            vec![HeaderValue { key: "retry-after".into(), value: retry_after.max(1).to_string(), ..Default::default() }]
        } else {
            Vec::new()
        };
        Ok(tonic::Response::new(RateLimitResponse { overall_code: overall as i32, statuses, response_headers_to_add, ..Default::default() }))
    }
}

fn load_configs(paths: &[PathBuf]) -> Result<config::Config, String> {
    let mut files = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        files.push((p.display().to_string(), text));
    }
    config::Config::load(&files).map_err(|e| e.to_string())
}

async fn serve(configs: Vec<PathBuf>, redis_url: String, listen: SocketAddr, redis_timeout: Duration, log_requests: bool) -> Result<(), String> {
    let config = load_configs(&configs)?;
    let client = redis::Client::open(redis_url.as_str()).map_err(|e| format!("--redis {redis_url}: {e}"))?;
    let manager_config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(redis_timeout))
        .set_connection_timeout(Some(redis_timeout))
        .set_number_of_retries(1);
    // Starts even while Redis is down: requests then fail (Envoy applies
    // failure_mode_deny) until it is back.
    let redis = redis::aio::ConnectionManager::new_lazy_with_config(client, manager_config).map_err(|e| format!("redis: {e}"))?;
    let service = Service { config, log_requests, redis, script: redis::Script::new(COUNT_SCRIPT) };
    eprintln!("ai-ratelimit-service: listening on {listen}, counters in {redis_url}");
    tonic::transport::Server::builder()
        .add_service(RateLimitServiceServer::from_arc(Arc::new(service)))
        .serve_with_shutdown(listen, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| format!("serve on {listen}: {e}"))
}

fn run_render(policies: &std::path::Path, domain: &str, service_config: &std::path::Path, rate_limits: Option<&std::path::Path>, update_envoy: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(policies).map_err(|e| format!("{}: {e}", policies.display()))?;
    let is_yaml = matches!(policies.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
    let json = if is_yaml { render::policies_in_envoy_yaml(&text).map_err(|e| format!("{}: {e}", policies.display()))? } else { text.clone() };
    let source = if is_yaml { format!("the ai-token-ratelimit policies in {}", policies.display()) } else { policies.display().to_string() };
    let r = render::render(json.as_bytes(), domain, &source)?;
    std::fs::write(service_config, r.service_config).map_err(|e| format!("{}: {e}", service_config.display()))?;
    if let Some(path) = rate_limits {
        std::fs::write(path, &r.envoy_rate_limits).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if update_envoy {
        if !is_yaml {
            return Err("--update-envoy needs the Envoy YAML file as POLICIES".into());
        }
        let updated = render::replace_marked_block(&text, &r.envoy_rate_limits).map_err(|e| format!("{}: {e}", policies.display()))?;
        std::fs::write(policies, updated).map_err(|e| format!("{}: {e}", policies.display()))?;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { configs, redis, listen, redis_timeout_ms, log_requests } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(serve(configs, redis, listen, Duration::from_millis(redis_timeout_ms), log_requests))),
        Command::Render { policies, domain, service_config, envoy_rate_limits, update_envoy } => {
            run_render(&policies, &domain, &service_config, envoy_rate_limits.as_deref(), update_envoy)
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ai-ratelimit-service: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
