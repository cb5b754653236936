//! A gateway as envoy.yaml: one ai-proxy instance per model, the
//! governance filters it asks for (one instance per distinct
//! configuration), routes at its paths, a cluster per upstream host, the
//! model lists at `/v1/models`. The output is deterministic: the same file
//! renders the same bytes.

use crate::gateway::{A2aAgent, Filter, FilterKind, Gateway, McpServer, Model};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

pub struct Options {
    pub address: String,
    pub port: u16,
    pub admin_port: u16,
    /// Where the .wasm modules are.
    pub wasm_dir: String,
    /// Named in the header comment.
    pub source: String,
    /// The gateway file's own opening comment, repeated at the top.
    pub notes: String,
}

/// The comment lines a gateway file opens with (its description).
pub fn leading_comment(text: &str) -> String {
    text.lines().take_while(|l| l.starts_with('#')).map(|l| format!("{l}\n")).collect()
}

const STATS_TAGS: &str = r#"stats_config:
  # ai-gateway metrics carry their labels in the name
  # (ai_llm_requests_total.provider.openai.model.gpt-4o...); these rules turn
  # them into Prometheus labels: ai_llm_requests_total{provider="openai",...}.
  stats_tags:
  - { tag_name: provider, regex: '^wasmcustom\.ai_.*?(\.provider\.([^.]+))' }
  - { tag_name: model, regex: '^wasmcustom\.ai_.*?(\.model\.([^.]+))' }
  - { tag_name: consumer, regex: '^wasmcustom\.ai_.*?(\.consumer\.([^.]+))' }
  - { tag_name: route, regex: '^wasmcustom\.ai_llm_.*?(\.route\.([^.]+))' }
  - { tag_name: outcome, regex: '^wasmcustom\.ai_.*?(\.outcome\.([^.]+))' }
  - { tag_name: token_type, regex: '^wasmcustom\.ai_.*?(\.token_type\.([^.]+))' }
  - { tag_name: rule, regex: '^wasmcustom\.ai_.*?(\.rule\.([^.]+))' }
  - { tag_name: template, regex: '^wasmcustom\.ai_.*?(\.template\.([^.]+))' }
  - { tag_name: policy, regex: '^wasmcustom\.ai_.*?(\.policy\.([^.]+))' }
  - { tag_name: plugin, regex: '^wasmcustom\.ai_.*?(\.plugin\.([^.]+))' }
  - { tag_name: server, regex: '^wasmcustom\.ai_mcp_.*?(\.server\.([^.]+))' }
  - { tag_name: method, regex: '^wasmcustom\.ai_(?:mcp|a2a)_.*?(\.method\.([^.]+))' }
  - { tag_name: tool, regex: '^wasmcustom\.ai_mcp_.*?(\.tool\.([^.]+))' }
  - { tag_name: agent, regex: '^wasmcustom\.ai_a2a_.*?(\.agent\.([^.]+))' }
  - { tag_name: binding, regex: '^wasmcustom\.ai_a2a_.*?(\.binding\.([^.]+))' }
  - { tag_name: state, regex: '^wasmcustom\.ai_a2a_.*?(\.state\.([^.]+))' }
"#;

/// The access log's keys (docs/observability.md, access-log keys); absent
/// values are left out of the line.
const ACCESS_LOG_FIELDS: &str = r#"time: "%START_TIME%"
method: "%REQ(:METHOD)%"
client_path: "%FILTER_STATE(wasm.ai.client_path:PLAIN)%"
upstream_path: "%PATH(NQ)%"
status: "%RESPONSE_CODE%"
response_flags: "%RESPONSE_FLAGS%"
details: "%RESPONSE_CODE_DETAILS%"
upstream_host: "%UPSTREAM_HOST%"
duration_ms: "%DURATION%"
request_id: "%REQ(X-REQUEST-ID)%"
ai_provider: "%FILTER_STATE(wasm.ai.provider:PLAIN)%"
ai_route_type: "%FILTER_STATE(wasm.ai.route_type:PLAIN)%"
ai_consumer: "%FILTER_STATE(wasm.ai.consumer:PLAIN)%"
ai_request_model: "%FILTER_STATE(wasm.ai.request_model:PLAIN)%"
ai_response_model: "%FILTER_STATE(wasm.ai.response_model:PLAIN)%"
ai_prompt_tokens: "%FILTER_STATE(wasm.ai.prompt_tokens:PLAIN)%"
ai_completion_tokens: "%FILTER_STATE(wasm.ai.completion_tokens:PLAIN)%"
ai_total_tokens: "%FILTER_STATE(wasm.ai.total_tokens:PLAIN)%"
ai_usage_estimated: "%FILTER_STATE(wasm.ai.usage_estimated:PLAIN)%"
ai_cached_tokens: "%FILTER_STATE(wasm.ai.cached_tokens:PLAIN)%"
ai_reasoning_tokens: "%FILTER_STATE(wasm.ai.reasoning_tokens:PLAIN)%"
ai_cost: "%FILTER_STATE(wasm.ai.cost:PLAIN)%"
ai_upstream_latency_ms: "%FILTER_STATE(wasm.ai.upstream_latency_ms:PLAIN)%"
ai_ttft_ms: "%FILTER_STATE(wasm.ai.ttft_ms:PLAIN)%"
ai_template: "%FILTER_STATE(wasm.ai.template:PLAIN)%"
ai_decorator: "%FILTER_STATE(wasm.ai.decorator:PLAIN)%"
ai_guard: "%FILTER_STATE(wasm.ai.guard:PLAIN)%"
ai_ratelimit: "%FILTER_STATE(wasm.ai.ratelimit:PLAIN)%"
ai_request_payload: "%FILTER_STATE(wasm.ai.request_payload:PLAIN)%"
ai_response_payload: "%FILTER_STATE(wasm.ai.response_payload:PLAIN)%"
ai_target: "%FILTER_STATE(wasm.ai.target:PLAIN)%"
ai_tries: "%FILTER_STATE(wasm.ai.tries:PLAIN)%"
ai_failed_targets: "%FILTER_STATE(wasm.ai.failed_targets:PLAIN)%"
ai_fallback_skipped: "%FILTER_STATE(wasm.ai.fallback_skipped:PLAIN)%"
ai_mcp_method: "%FILTER_STATE(wasm.ai.mcp.method:PLAIN)%"
ai_mcp_tool: "%FILTER_STATE(wasm.ai.mcp.tool:PLAIN)%"
ai_mcp_outcome: "%FILTER_STATE(wasm.ai.mcp.outcome:PLAIN)%"
ai_mcp_error_code: "%FILTER_STATE(wasm.ai.mcp.error_code:PLAIN)%"
ai_mcp_session: "%FILTER_STATE(wasm.ai.mcp.session:PLAIN)%"
ai_mcp_consumer: "%FILTER_STATE(wasm.ai.mcp.consumer:PLAIN)%"
ai_mcp_audit: "%FILTER_STATE(wasm.ai.mcp.audit:PLAIN)%"
ai_a2a_method: "%FILTER_STATE(wasm.ai.a2a.method:PLAIN)%"
ai_a2a_binding: "%FILTER_STATE(wasm.ai.a2a.binding:PLAIN)%"
ai_a2a_task_id: "%FILTER_STATE(wasm.ai.a2a.task_id:PLAIN)%"
ai_a2a_context_id: "%FILTER_STATE(wasm.ai.a2a.context_id:PLAIN)%"
ai_a2a_task_state: "%FILTER_STATE(wasm.ai.a2a.task_state:PLAIN)%"
ai_a2a_outcome: "%FILTER_STATE(wasm.ai.a2a.outcome:PLAIN)%"
ai_a2a_error: "%FILTER_STATE(wasm.ai.a2a.error:PLAIN)%"
ai_a2a_consumer: "%FILTER_STATE(wasm.ai.a2a.consumer:PLAIN)%"
ai_a2a_skill: "%FILTER_STATE(wasm.ai.a2a.skill:PLAIN)%"
"#;

/// The access log: one JSON line per request with its AI facts. `filter`:
/// an access-log filter (the root route's hand-over is logged once, by the
/// model's route).
fn access_log(filter: Option<&str>) -> String {
    let mut out = String::from("          access_log:\n          - name: envoy.access_loggers.stdout\n");
    if let Some(f) = filter {
        out.push_str(f);
    }
    out.push_str("            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog\n              log_format:\n                omit_empty_values: true\n                json_format:\n");
    for line in ACCESS_LOG_FIELDS.lines() {
        let _ = writeln!(out, "                  {line}");
    }
    out
}

/// Envoy's own answers to upstream failures: the flag, its code for
/// clients, and what it means.
const UPSTREAM_FAILURES: [(&str, &str, &str); 11] = [
    ("UH", "no_healthy_upstream", "no healthy upstream host for this route"),
    ("UF", "upstream_connect_failed", "the gateway could not connect to the upstream"),
    ("UO", "upstream_overflow", "the upstream's connection or request limit is reached"),
    ("UC", "upstream_connection_terminated", "the upstream closed the connection"),
    ("UT", "upstream_timeout", "the upstream did not answer in time"),
    ("URX", "upstream_retries_exhausted", "every try failed"),
    ("UPE", "upstream_protocol_error", "the upstream broke the HTTP protocol"),
    ("UMSDR", "upstream_max_stream_duration", "the upstream stream exceeded its maximum duration"),
    ("DT", "request_timeout", "the request exceeded its maximum duration"),
    ("NC", "no_cluster", "the route's upstream cluster does not exist"),
    ("NR", "no_route", "no route for this request"),
];

/// A CEL test for requests in Anthropic's Messages format.
const MESSAGES_PATH: &str = "request.url_path.endsWith('/v1/messages') || request.url_path.endsWith('/v1/messages/count_tokens')";

fn cel(expression: &str) -> String {
    format!("{{ extension_filter: {{ name: envoy.access_loggers.extension_filters.cel, typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter, expression: \"{expression}\" }} }} }}")
}

/// A mapper that also sets the status.
fn status_mapper(filter: &str, status: u16, body: &Value) -> String {
    mapper(filter, body).replacen("              body_format_override:", &format!("              status_code: {status}\n              body_format_override:"), 1)
}

/// One local-reply mapper: the replies `filter` matches get this JSON body
/// (Envoy's format strings allowed in its strings). A text format, as
/// json_format cannot write OpenAI's `"param": null`.
fn mapper(filter: &str, body: &Value) -> String {
    format!("            - filter: {filter}\n              body_format_override:\n                content_type: application/json\n                text_format_source: {{ inline_string: {} }}\n", quoted(body))
}

/// Envoy's own answers in the client's error shape: upstream failures
/// (connect error, reset, timeout, no healthy host, also when a filter was
/// holding the upstream's headers), and with consumers, a missing or
/// wrong key (401) and a model the key may not use (403).
fn local_replies(g: &Gateway, anchor: bool) -> String {
    let mut out = format!("          local_reply_config:{}\n            mappers:\n", if anchor { " &local_replies" } else { "" });
    if !g.consumers.is_empty() {
        for (details, status_kind, message, code, param) in [
            ("response.code_details in ['missing_api_key', 'unknown_api_key']", "authentication_error", "missing or unknown API key (send it as `Authorization: Bearer <key>` or `x-api-key`)", "invalid_api_key", None),
            ("response.code_details == 'client_not_allowed'", "permission_error", "this API key may not use this model", "model_not_allowed", Some("model")),
        ] {
            let is_auth = details.to_string();
            out.push_str(&mapper(&cel(&format!("({is_auth}) && ({MESSAGES_PATH})")), &anthropic_error(status_kind, message)));
            out.push_str(&mapper(&cel(&is_auth), &openai_error("invalid_request_error", message, param, code)));
        }
    }
    if !root_apis(g).is_empty() {
        // A `model` Envoy cannot put in a header (control characters).
        let bad_name = format!("response.code_details.contains('invalid_header_value_for:_{MODEL_HEADER}')");
        let message = "`model` holds characters no model name has (control characters)";
        out.push_str(&status_mapper(&cel(&format!("({bad_name}) && ({MESSAGES_PATH})")), 400, &anthropic_error("invalid_request_error", message)));
        out.push_str(&status_mapper(&cel(&bad_name), 400, &openai_error("invalid_request_error", message, Some("model"), "model_not_found")));
    }
    for (flag, code, meaning) in UPSTREAM_FAILURES {
        let message = format!("{meaning} (%LOCAL_REPLY_BODY%)");
        let flag_filter = format!("{{ response_flag_filter: {{ flags: [{flag}] }} }}");
        let messages = format!("{{ and_filter: {{ filters: [{flag_filter}, {}] }} }}", cel(MESSAGES_PATH));
        out.push_str(&mapper(&messages, &anthropic_error("api_error", &message)));
        out.push_str(&mapper(&flag_filter, &openai_error("upstream_error", &message, None, code)));
    }
    out
}

const ADVANCED_VM: &str = "ai-proxy-advanced";

/// A JSON value as a single-quoted YAML scalar.
fn quoted(v: &Value) -> String {
    format!("'{}'", v.to_string().replace('\'', "''"))
}

/// The route's filters: the disabled-by-default ones it enables, and
/// api_key_auth's per-route configuration when consumers have keys.
fn enable(names: &[String], auth: Option<String>) -> String {
    let mut out = String::from("                typed_per_filter_config:\n");
    for n in names {
        let _ = writeln!(out, "                  {n}: {{ \"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig, config: {{}} }}");
    }
    if let Some(auth) = auth {
        out.push_str(&auth);
    }
    out
}

const KEY_AUTH: &str = "envoy.filters.http.api_key_auth";

/// api_key_auth on one route: the consumers that may use its model, and
/// the forwarding every per-route configuration must repeat (without it,
/// Envoy 1.40 forwards no consumer name and a client's own header passes).
/// `hide`: the key is removed here; the root route keeps it for the
/// model's route to check again.
fn key_auth(g: &Gateway, model: Option<&Model>, hide: bool) -> Option<String> {
    if g.consumers.is_empty() {
        return None;
    }
    let mut out = format!("                  {KEY_AUTH}:\n                    \"@type\": type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuthPerRoute\n");
    if let Some(m) = model {
        if g.consumers.iter().any(|c| !c.may_use(&m.identifier)) {
            let allowed: Vec<&str> = g.consumers.iter().filter(|c| c.may_use(&m.identifier)).map(|c| c.name.as_str()).collect();
            let _ = writeln!(out, "                    allowed_clients: [{}]", allowed.join(", "));
        }
    }
    let _ = writeln!(out, "                    forwarding: {{ header: {}, hide_credentials: {hide} }}", g.consumer_header);
    Some(out)
}

fn metadata(m: &Model) -> String {
    format!("                metadata: {{ filter_metadata: {{ ai_gateway: {{ provider: {} }} }} }}\n", m.route_provider)
}

fn proxy_name(m: &Model) -> String {
    match m.balanced {
        Some(_) => format!("ai-proxy-advanced-{}", m.identifier),
        None => format!("ai-proxy-{}", m.identifier),
    }
}

fn count_tokens_name(m: &Model) -> String {
    format!("ai-proxy-{}-count-tokens", m.identifier)
}

/// The governance filter instances: one per distinct configuration of a
/// kind (identical instances behave as one, budgets included: counters are
/// keyed by policy name), named after the module when it is the only one.
struct Instances<'a> {
    list: Vec<(&'a Filter, String)>,
}

impl<'a> Instances<'a> {
    fn new(models: &'a [Model]) -> Self {
        let mut list: Vec<(&Filter, String)> = Vec::new();
        for kind in [FilterKind::Template, FilterKind::Decorator, FilterKind::Guard, FilterKind::Budgets] {
            let mut distinct: Vec<(&Filter, &str)> = Vec::new();
            for m in models {
                for f in m.filters.iter().filter(|f| f.kind == kind) {
                    if !distinct.iter().any(|(d, _)| d.config == f.config && d.instance == f.instance) {
                        distinct.push((f, &m.identifier));
                    }
                }
            }
            let single = distinct.len() == 1;
            for (f, first) in distinct {
                let mut name = match f.instance {
                    Some(n) => n.to_string(),
                    None if single => kind.module().to_string(),
                    None => format!("{}-{first}", kind.module()),
                };
                // One model's two instances of a kind (its own budgets and
                // the consumers') must not share a name.
                let base = name.clone();
                let mut n = 2;
                while list.iter().any(|(_, taken)| *taken == name) || models.iter().any(|m| proxy_name(m) == name || count_tokens_name(m) == name) {
                    name = format!("{base}-{n}");
                    n += 1;
                }
                list.push((f, name));
            }
        }
        Instances { list }
    }

    fn name(&self, f: &Filter) -> String {
        self.list.iter().find(|(d, _)| d.kind == f.kind && d.config == f.config && d.instance == f.instance).map(|(_, n)| n.clone()).unwrap_or_default()
    }

    /// The filters a model's routes enable, in chain order.
    fn chain(&self, m: &Model) -> Vec<String> {
        let mut names: Vec<String> = m.filters.iter().map(|f| self.name(f)).collect();
        if m.passthrough.is_none() {
            names.push(proxy_name(m));
        }
        names
    }
}

/// The route of a balanced model: the matcher reads the try's number
/// (`x-envoy-attempt-count`), then the balancer's `x-ai-try-<k>`, and
/// picks that target's cluster; every retry picks again.
fn balanced_route(b: &crate::gateway::Balanced) -> String {
    let header = |name: &str| format!("{{ \"@type\": type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput, header_name: {name} }}");
    let targets: Vec<String> = b
        .targets
        .iter()
        .enumerate()
        .map(|(i, u)| format!("\"{i}\": {{ action: {{ name: t{i}, typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.router.cluster_specifiers.matcher.v3.ClusterAction, cluster: {} }} }} }}", u.cluster))
        .collect();
    let map = targets.join(", ");
    let mut out = String::from("                route:\n                  timeout: 300s\n                  retry_policy: { num_retries: 0, refresh_cluster_on_retry: true, retry_back_off: { base_interval: 0.01s, max_interval: 0.05s } }\n                  inline_cluster_specifier_plugin:\n                    extension:\n                      name: envoy.router.cluster_specifier_plugin.matcher\n                      typed_config:\n                        \"@type\": type.googleapis.com/envoy.extensions.router.cluster_specifiers.matcher.v3.MatcherClusterSpecifier\n                        cluster_matcher:\n                          matcher_tree:\n");
    let _ = write!(out, "                            input: {{ name: attempt, typed_config: {} }}\n                            exact_match_map:\n                              map:\n", header("x-envoy-attempt-count"));
    for k in 0..b.tries {
        let _ = writeln!(
            out,
            "                                \"{k}\": {{ matcher: {{ matcher_tree: {{ input: {{ name: try, typed_config: {} }}, exact_match_map: {{ map: {{ {map} }} }} }} }} }}",
            header(&format!("x-ai-try-{k}"))
        );
    }
    out
}

/// The suffix that makes a path an API endpoint (so its prefix is an SDK's
/// `base_url`), if it has one.
fn api_suffix(path: &str) -> Option<&'static str> {
    ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages"].into_iter().find(|s| path.ends_with(s))
}

/// Where an SDK's `base_url` points for this model (`…/v1`), and the path
/// to post to: its first API path, else its first path.
pub fn endpoint(m: &Model) -> (Option<String>, String) {
    let api = m.paths.iter().find(|p| api_suffix(p).is_some());
    let base = api.and_then(|p| api_suffix(p).map(|s| format!("{}/v1", &p[..p.len() - s.len()])));
    (base, m.paths.first().cloned().unwrap_or_default())
}

/// OpenAI's model list: each name once, though several routes (chat and
/// Responses, say) serve it.
fn model_list(models: &[&Model]) -> Value {
    let mut seen = BTreeSet::new();
    let data: Vec<Value> = models
        .iter()
        .map(|m| (m.model.clone().unwrap_or_else(|| m.identifier.clone()), m))
        .filter(|(id, _)| seen.insert(id.clone()))
        .map(|(id, m)| json!({"id": id, "object": "model", "created": 0, "owned_by": m.provider}))
        .collect();
    json!({"object": "list", "data": data})
}

fn direct_json(path: &str, status: u16, body: &Value) -> String {
    direct_json_match(&format!("{{ path: \"{path}\" }}"), status, body)
}

fn direct_json_match(matcher: &str, status: u16, body: &Value) -> String {
    format!(
        "              - match: {matcher}\n                direct_response:\n                  status: {status}\n                  body: {{ inline_string: {} }}\n                response_headers_to_add:\n                - header: {{ key: content-type, value: application/json }}\n",
        quoted(body)
    )
}

/// `GET /v1/models`: the names clients may send on the root API paths,
/// once each; without any, every model's own name.
fn root_model_list(g: &Gateway) -> Value {
    let apis = root_apis(g);
    if apis.is_empty() {
        let all: Vec<&Model> = g.models.iter().collect();
        return model_list(&all);
    }
    let mut seen = BTreeSet::new();
    let data: Vec<Value> = apis
        .values()
        .flatten()
        .flat_map(|m| m.names.iter().map(move |n| (n, m)))
        .filter(|(n, _)| seen.insert(n.as_str()))
        .map(|(n, m)| json!({"id": n, "object": "model", "created": 0, "owned_by": m.provider}))
        .collect();
    json!({"object": "list", "data": data})
}

fn wasm_filter(name: &str, module: &str, vm_id: &str, env: &[String], config: &Value, o: &Options) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "          - name: {name}\n            disabled: true\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n              config:\n                name: {name}\n                root_id: {vm_id}\n                failure_policy: FAIL_RELOAD\n                # Hold headers while the body is read (docs/ai-proxy.md, wiring in Envoy).\n                allow_on_headers_stop_iteration: true\n                vm_config:\n                  vm_id: {vm_id}\n                  runtime: envoy.wasm.runtime.v8\n                  code: {{ local: {{ filename: {} }} }}\n",
        json!(format!("{}/{module}", o.wasm_dir))
    );
    if !env.is_empty() {
        let _ = writeln!(out, "                  environment_variables:\n                    host_env_keys: [{}]", env.join(", "));
    }
    let _ = write!(
        out,
        "                configuration:\n                  \"@type\": type.googleapis.com/google.protobuf.StringValue\n                  value: {}\n",
        quoted(config)
    );
    out
}

fn header(g: &Gateway, o: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Rendered by `aigw render` from {} (AIGateway {}).", o.source, g.name);
    let _ = writeln!(out, "# Do not edit: change the gateway file and render again.");
    if !o.notes.is_empty() {
        out.push_str("#\n");
        out.push_str(&o.notes);
    }
    out.push_str("#\n# Models (public paths, provider, model):\n");
    for m in &g.models {
        let _ = writeln!(out, "#   {}: {}  {} {}", m.identifier, m.paths.join(", "), m.provider, m.model.as_deref().unwrap_or("(model from the request)"));
    }
    out.push_str("#   GET /v1/models lists them.\n");
    if !g.mcp_servers.is_empty() {
        out.push_str("#\n# MCP servers (public path, mode, upstream):\n");
        for m in &g.mcp_servers {
            let mode = if m.conversion { "a REST API as MCP tools" } else { "MCP server" };
            let _ = writeln!(out, "#   {}: {}  {mode} at {}:{}{}", m.identifier, m.path, m.upstream.host, m.upstream.port, if m.conversion { "" } else { &m.upstream_path });
        }
    }
    if !g.a2a_agents.is_empty() {
        out.push_str("#\n# A2A agents (public base, upstream):\n");
        for a in &g.a2a_agents {
            let _ = writeln!(out, "#   {}: /{}  agent at {}:{}", a.identifier, a.identifier, a.upstream.host, a.upstream.port);
        }
    }
    out
}

fn a2a_name(a: &A2aAgent) -> String {
    format!("a2a-{}", a.identifier)
}

/// An agent at `/<identifier>`, its paths below it those of the agent's
/// root. No route timeout: streams last as long as their task.
fn a2a_routes(g: &Gateway) -> String {
    let mut out = String::new();
    for a in &g.a2a_agents {
        let _ = write!(
            out,
            "              # {id}: the A2A agent at {h}:{p}; its card at /{id}/.well-known/agent-card.json.\n              - match: {{ path_separated_prefix: \"/{id}\" }}\n                route: {{ cluster: {c}, timeout: 0s, idle_timeout: 300s, regex_rewrite: {{ pattern: {{ regex: \"^/{id}/?(.*)$\" }}, substitution: \"/\\\\1\" }} }}\n{e}",
            id = a.identifier,
            h = a.upstream.host,
            p = a.upstream.port,
            c = a.upstream.cluster,
            e = enable(&[a2a_name(a)], key_auth(g, None, true))
        );
    }
    out
}

fn mcp_name(m: &McpServer) -> String {
    format!("mcp-{}", m.identifier)
}

/// An MCP server's routes: its public path, and for a REST API the route
/// the filter's rewritten request (stamped with its name) is matched by.
fn mcp_routes(g: &Gateway) -> String {
    let mut out = String::new();
    for m in &g.mcp_servers {
        let name = mcp_name(m);
        let c = &m.upstream.cluster;
        if m.conversion {
            let _ = write!(
                out,
                "              # {id}: a REST API as MCP tools; the stamped route takes each tools/call's REST request.\n              - match: {{ prefix: \"/\", headers: [{{ name: x-ai-mcp-proxy, string_match: {{ exact: {name} }} }}] }}\n                route: {{ cluster: {c}, timeout: 60s }}\n                request_headers_to_remove: [x-ai-mcp-proxy]\n{e}              - match: {{ path: \"{p}\" }}\n                route: {{ cluster: {c}, timeout: 60s }}\n{e}",
                id = m.identifier,
                p = m.path,
                e = enable(std::slice::from_ref(&name), key_auth(g, None, true))
            );
        } else {
            // No route timeout: a GET stream lasts as long as its session.
            let _ = write!(
                out,
                "              # {id}: the MCP server at {up}; streams have no route timeout.\n              - match: {{ path: \"{p}\" }}\n                route: {{ cluster: {c}, timeout: 0s, idle_timeout: 300s, prefix_rewrite: \"{up}\" }}\n{e}",
                id = m.identifier,
                p = m.path,
                up = m.upstream_path,
                e = enable(std::slice::from_ref(&name), key_auth(g, None, true))
            );
        }
    }
    out
}

/// The header the root route sets from the body's `model` (Envoy's
/// json_to_metadata) before handing the request to the internal listener,
/// whose routes pick the model by it.
const MODEL_HEADER: &str = "x-ai-model";
const INTERNAL: &str = "ai-gateway-internal";

/// The root API paths routed by the body's `model`, each with its models:
/// those the gateway decides the model of, on every API path no model
/// claims as its own `paths`.
pub fn root_apis(g: &Gateway) -> BTreeMap<&'static str, Vec<&Model>> {
    let mut apis: BTreeMap<&'static str, Vec<&Model>> = BTreeMap::new();
    for m in g.models.iter().filter(|m| !m.names.is_empty()) {
        apis.entry(m.api()).or_default().push(m);
    }
    apis.retain(|api, _| !g.models.iter().any(|m| m.paths.iter().any(|p| p == api)));
    apis
}

/// An error body in the shape of the API at `api`.
fn client_error(api: &str, kind: &str, message: &str, param: Option<&str>, code: &str) -> Value {
    if api == "/v1/messages" {
        anthropic_error(if kind == "not_found" { "not_found_error" } else { "invalid_request_error" }, message)
    } else {
        openai_error("invalid_request_error", message, param, code)
    }
}

/// Anthropic's error body.
fn anthropic_error(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// OpenAI's error body.
fn openai_error(kind: &str, message: &str, param: Option<&str>, code: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// The root API paths: the body's `model` names the model. The root route
/// reads it (json_to_metadata), sets `x-ai-model` and sends the request to
/// the gateway's internal listener, where the route of that name runs the
/// model's own filters, exactly as on its `/<identifier>` path. (A route's
/// filters are fixed when its headers arrive, before any body is read: a
/// second pass is how a body picks them.)
fn root_routes(g: &Gateway, filters: &Instances) -> String {
    let mut out = String::new();
    for (api, models) in root_apis(g) {
        let names: Vec<&str> = models.iter().flat_map(|m| m.names.iter().map(String::as_str)).collect();
        let _ = writeln!(out, "              # {api} for every model by the body's `model`: {}.", names.join(", "));
        for m in &models {
            let route = model_route(m);
            for n in &m.names {
                let _ = write!(
                    out,
                    "              - match: {{ path: \"{api}\", headers: [{{ name: {MODEL_HEADER}, string_match: {{ exact: \"{n}\" }} }}] }}\n{}{route}                request_headers_to_remove: [{MODEL_HEADER}]\n{}",
                    metadata(m),
                    enable(&filters.chain(m), key_auth(g, Some(m), true))
                );
            }
        }
        let listed = names.join(", ");
        let missing = client_error(api, "invalid", &format!("`model` is required in a JSON body (content-type: application/json): one of {listed}"), Some("model"), "model_required");
        out.push_str(&direct_json_match(&format!("{{ path: \"{api}\", headers: [{{ name: {MODEL_HEADER}, string_match: {{ exact: \"\" }} }}] }}"), 400, &missing));
        let unknown = client_error(api, "not_found", &format!("no model of that name on {api}: one of {listed} (GET /v1/models lists them)"), Some("model"), "model_not_found");
        out.push_str(&direct_json_match(&format!("{{ path: \"{api}\", headers: [{{ name: {MODEL_HEADER}, present_match: true }}] }}"), 404, &unknown));
        let _ = write!(
            out,
            "              - name: by-model\n                match: {{ path: \"{api}\" }}\n                route: {{ cluster: {INTERNAL}, timeout: 0s, idle_timeout: 330s }}\n                request_headers_to_add:\n                - header: {{ key: {MODEL_HEADER}, value: \"%DYNAMIC_METADATA(ai_gateway:model)%\" }}\n                  keep_empty_value: true\n                  append_action: OVERWRITE_IF_EXISTS_OR_ADD\n{}",
            enable(&["envoy.filters.http.json_to_metadata".to_string()], key_auth(g, None, false))
        );
    }
    out
}

/// The route action of a model's public paths.
fn model_route(m: &Model) -> String {
    match (&m.balanced, &m.passthrough) {
        (Some(b), _) => balanced_route(b),
        (None, Some(upstream_path)) => format!("                route: {{ cluster: {}, timeout: 300s, prefix_rewrite: \"{upstream_path}\" }}\n", m.upstream.cluster),
        (None, None) => format!("                route: {{ cluster: {}, timeout: 300s }}\n", m.upstream.cluster),
    }
}

fn routes(g: &Gateway, filters: &Instances) -> String {
    let mut out = String::from("              routes:\n");
    out.push_str(&mcp_routes(g));
    out.push_str(&a2a_routes(g));
    out.push_str("              # ai-proxy stamps `x-ai-proxy: <its name>` on the requests it\n              # rewrote, and Envoy matches routes again: these send them on. They\n              # enable the same filters as the public routes, so a client that\n              # forges the header is still governed by them.\n");
    for m in g.models.iter().filter(|m| m.balanced.is_none() && m.passthrough.is_none()) {
        let _ = write!(
            out,
            "              - match: {{ prefix: \"/\", headers: [{{ name: x-ai-proxy, string_match: {{ exact: {p} }} }}] }}\n{}                route: {{ cluster: {c}, timeout: 300s }}\n                request_headers_to_remove: [x-ai-proxy, {MODEL_HEADER}]\n{}",
            metadata(m),
            enable(&filters.chain(m), key_auth(g, Some(m), true)),
            p = proxy_name(m),
            c = m.upstream.cluster
        );
        if m.count_tokens.is_some() {
            let _ = write!(
                out,
                "              - match: {{ prefix: \"/\", headers: [{{ name: x-ai-proxy, string_match: {{ exact: {p} }} }}] }}\n{}                route: {{ cluster: {c}, timeout: 300s, regex_rewrite: {{ pattern: {{ regex: \"^.*$\" }}, substitution: /v1/messages/count_tokens }} }}\n                request_headers_to_remove: [x-ai-proxy, {MODEL_HEADER}]\n{}",
                metadata(m),
                enable(&[count_tokens_name(m)], key_auth(g, Some(m), true)),
                p = count_tokens_name(m),
                c = m.upstream.cluster
            );
        }
    }
    let mut bases: BTreeMap<String, Vec<&Model>> = BTreeMap::new();
    for m in &g.models {
        let filter_list = filters.chain(m);
        let _ = writeln!(out, "              # {}: {} {} ({}{})", m.identifier, m.provider, m.model.as_deref().unwrap_or("model from the request"), m.prompt_type, if m.anthropic_format { ", Anthropic's Messages API" } else { "" });
        for path in &m.paths {
            let route = model_route(m);
            let _ = write!(out, "              - match: {{ path: \"{path}\" }}\n{}{route}{}", metadata(m), enable(&filter_list, key_auth(g, Some(m), true)));
            let base = match api_suffix(path) {
                Some(suffix) => &path[..path.len() - suffix.len()],
                None if path == &format!("/{}", m.identifier) => path.as_str(),
                None => "",
            };
            let listed = bases.entry(base.to_string()).or_default();
            if !base.is_empty() && !listed.iter().any(|l| l.identifier == m.identifier) {
                listed.push(m);
            }
            if !m.anthropic_format || !path.ends_with("/v1/messages") {
                continue;
            }
            // Token counting is Anthropic's own endpoint: other targets
            // cannot count honestly, so they say so (in Anthropic's shape).
            let counting = format!("{path}/count_tokens");
            match &m.count_tokens {
                Some(_) => {
                    let _ = write!(
                        out,
                        "              - match: {{ path: \"{counting}\" }}\n{}                route: {{ cluster: {}, timeout: 300s, regex_rewrite: {{ pattern: {{ regex: \"^.*$\" }}, substitution: /v1/messages/count_tokens }} }}\n{}",
                        metadata(m),
                        m.upstream.cluster,
                        enable(&[count_tokens_name(m)], key_auth(g, Some(m), true))
                    );
                }
                None => {
                    let message = json!({"type": "error", "error": {"type": "not_found_error", "message": "count_tokens is answered only on routes whose target is Anthropic's own API"}});
                    out.push_str(&direct_json(&counting, 404, &message));
                }
            }
        }
    }
    out.push_str(&root_routes(g, filters));
    for (base, models) in bases.iter().filter(|(b, _)| !b.is_empty()) {
        out.push_str(&direct_json(&format!("{base}/v1/models"), 200, &model_list(models)));
    }
    out.push_str(&direct_json("/v1/models", 200, &root_model_list(g)));
    let not_found = json!({"error": {"message": "no such route on this gateway (GET /v1/models lists its models)", "type": "invalid_request_error", "param": null, "code": "not_found"}});
    let _ = write!(
        out,
        "              - match: {{ prefix: \"/\" }}\n                direct_response:\n                  status: 404\n                  body: {{ inline_string: {} }}\n                response_headers_to_add:\n                - header: {{ key: content-type, value: application/json }}\n",
        quoted(&not_found)
    );
    out
}

/// Envoy's health answer on the gateway's own port: 200 while it serves,
/// 503 once it drains or the admin's `/healthcheck/fail` says so.
const HEALTH: &str = "          - name: envoy.filters.http.health_check\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck\n              pass_through_mode: false\n              headers:\n              - name: \":path\"\n                string_match: { safe_regex: { regex: \"^/(healthz|readyz|ready|health)$\" } }\n";

/// The consumers' keys: `Authorization: Bearer` (OpenAI's SDKs) or
/// `x-api-key` (Anthropic's), the consumer's name forwarded in the
/// consumers' header (a client's own value replaced), the key removed.
fn key_auth_filter(g: &Gateway) -> String {
    let mut out = format!("          - name: {KEY_AUTH}\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth\n              credentials:\n");
    for c in &g.consumers {
        for k in &c.keys {
            let _ = writeln!(out, "              - {{ key: '{}', client: {} }}", k.replace('\'', "''"), c.name);
        }
    }
    let _ = write!(out, "              key_sources: [{{ header: authorization }}, {{ header: x-api-key }}]\n              forwarding: {{ header: {}, hide_credentials: true }}\n", g.consumer_header);
    out
}

/// The body's `model` as dynamic metadata, on the root routes only; a
/// missing model or a body that is not JSON reads as "".
const MODEL_TO_METADATA: &str = "          - name: envoy.filters.http.json_to_metadata\n            disabled: true\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.json_to_metadata.v3.JsonToMetadata\n              request_rules:\n                allow_content_types_regex: { regex: \"(?i)^application/json\\\\s*(;.*)?$\" }\n                rules:\n                - selectors: [{ key: model }]\n                  on_present: { metadata_namespace: ai_gateway, key: model, type: STRING }\n                  on_missing: { metadata_namespace: ai_gateway, key: model, value: \"\" }\n                  on_error: { metadata_namespace: ai_gateway, key: model, value: \"\" }\n";

fn http_filters(g: &Gateway, filters: &Instances, o: &Options, anchor: bool) -> String {
    let mut out = format!("          http_filters:{}\n", if anchor { " &filters" } else { "" });
    out.push_str(HEALTH);
    if !g.consumers.is_empty() {
        out.push_str(&key_auth_filter(g));
    }
    if anchor {
        out.push_str(MODEL_TO_METADATA);
    }
    out.push_str("          # Each route enables its model's filters: template, decorator, guard,\n          # budgets, then ai-proxy.\n");
    for (f, name) in &filters.list {
        let module = format!("{}.wasm", f.kind.module().replace('-', "_"));
        out.push_str(&wasm_filter(name, &module, f.kind.module(), &[], &f.config, o));
    }
    let env: BTreeSet<String> = g.models.iter().flat_map(|m| m.env.iter().cloned()).collect();
    let env: Vec<String> = env.into_iter().collect();
    for m in &g.models {
        match (&m.balanced, &m.passthrough) {
            (Some(b), _) => out.push_str(&wasm_filter(&proxy_name(m), "ai_proxy_advanced.wasm", ADVANCED_VM, &env, &b.config, o)),
            (None, Some(_)) => {}
            (None, None) => out.push_str(&wasm_filter(&proxy_name(m), "ai_proxy.wasm", "ai-proxy", &env, &m.proxy, o)),
        }
        if let Some(config) = &m.count_tokens {
            out.push_str(&wasm_filter(&count_tokens_name(m), "ai_proxy.wasm", "ai-proxy", &env, config, o));
        }
    }
    for m in &g.mcp_servers {
        out.push_str(&wasm_filter(&mcp_name(m), "ai_mcp_proxy.wasm", "ai-mcp-proxy", &[], &m.config, o));
    }
    for a in &g.a2a_agents {
        out.push_str(&wasm_filter(&a2a_name(a), "ai_a2a_proxy.wasm", "ai-a2a-proxy", &[], &a.config, o));
    }
    out.push_str("          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n");
    if g.models.iter().any(|m| m.balanced.is_some()) {
        // ai-proxy-advanced's translator: once per try, in the balancer's VM.
        let _ = write!(
            out,
            "              upstream_http_filters:\n              - name: ai-proxy-advanced-upstream\n                typed_config:\n                  \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n                  config:\n                    name: ai-proxy-advanced-upstream\n                    root_id: ai-proxy-advanced-upstream\n                    failure_policy: FAIL_RELOAD\n                    allow_on_headers_stop_iteration: true\n                    vm_config:\n                      vm_id: {ADVANCED_VM}\n                      runtime: envoy.wasm.runtime.v8\n                      code: {{ local: {{ filename: {} }} }}\n",
            json!(format!("{}/ai_proxy_advanced.wasm", o.wasm_dir))
        );
        if !env.is_empty() {
            let _ = writeln!(out, "                      environment_variables:\n                        host_env_keys: [{}]", env.join(", "));
        }
        out.push_str("              - name: envoy.filters.http.upstream_codec\n                typed_config:\n                  \"@type\": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec\n");
    }
    out
}

/// A balanced route's retries are all charged to the cluster of its first
/// try, and Envoy allows 3 in flight per cluster by default: past that,
/// fallbacks are silently skipped. A request has at most one try in flight,
/// so retries sized like requests (Envoy's default 1024) never refuse a
/// fallback the cluster could have taken as a request.
const RETRY_BREAKER: &str = "    circuit_breakers:\n      thresholds:\n      - { priority: DEFAULT, max_requests: 1024, max_retries: 1024 }\n";

fn clusters(g: &Gateway) -> String {
    let mut out = String::from("  clusters:\n");
    let mut seen = BTreeSet::new();
    let balanced: BTreeSet<&str> = g.models.iter().filter_map(|m| m.balanced.as_ref()).flat_map(|b| b.targets.iter().map(|t| t.cluster.as_str())).collect();
    let upstreams = g
        .models
        .iter()
        .flat_map(|m| match &m.balanced {
            Some(b) => b.targets.clone(),
            None => vec![m.upstream.clone()],
        })
        .chain(g.mcp_servers.iter().map(|m| m.upstream.clone()))
        .chain(g.a2a_agents.iter().map(|a| a.upstream.clone()));
    for u in upstreams {
        if !seen.insert(u.cluster.clone()) {
            continue;
        }
        let kind = if u.host.parse::<std::net::IpAddr>().is_ok() { "STATIC" } else { "LOGICAL_DNS\n    dns_lookup_family: V4_PREFERRED" };
        let _ = write!(
            out,
            "  - name: {c}\n    type: {kind}\n    connect_timeout: 10s\n    per_connection_buffer_limit_bytes: 16777216\n    load_assignment:\n      cluster_name: {c}\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: {h}, port_value: {p} }} }} }}\n",
            c = u.cluster,
            h = u.host,
            p = u.port
        );
        if balanced.contains(u.cluster.as_str()) {
            out.push_str(RETRY_BREAKER);
        }
        if u.tls {
            let _ = write!(
                out,
                "    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n        sni: {}\n",
                u.host
            );
        }
    }
    out
}

/// The main listener's HTTP connection manager up to its routes; with
/// root routing, its routes, filters and local replies are YAML anchors
/// the internal listener's manager repeats.
fn connection_manager(stat_prefix: &str, edge: bool, log_filter: Option<&str>, replies: &str) -> String {
    let mut out = format!(
        "      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          stat_prefix: {stat_prefix}\n          # Keep the caller's x-request-id so logs correlate across services.\n          preserve_external_request_id: true\n"
    );
    if edge {
        out.push_str(EDGE);
    }
    out.push_str(&access_log(log_filter));
    out.push_str(replies);
    out
}

/// The public listener only: the headers the gateway routes by removed
/// before any route is chosen: a client cannot pick a model's route by
/// `x-ai-model` or a rewritten request's by `x-ai-proxy`.
const EDGE: &str = "          early_header_mutation_extensions:\n          - name: envoy.http.early_header_mutation.header_mutation\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation\n              mutations:\n              - remove: x-ai-model\n              - remove: x-ai-proxy\n              - remove: x-ai-mcp-proxy\n";

/// The internal listener the root routes hand requests to (no socket: an
/// in-process hop), and the cluster that reaches it.
fn internal_listener() -> String {
    let mut out = format!("  - name: {INTERNAL}\n    internal_listener: {{}}\n    per_connection_buffer_limit_bytes: 16777216\n    filter_chains:\n    - filters:\n");
    out.push_str(&connection_manager("ai_gateway_internal", false, None, "          local_reply_config: *local_replies\n"));
    out.push_str("          route_config: *routes\n          http_filters: *filters\n");
    out
}

/// The cluster the root routes send to: the internal listener, in process.
const INTERNAL_CLUSTER: &str = "  - name: ai-gateway-internal\n    connect_timeout: 1s\n    # Every root request passes here (one connection each: HTTP/1.1):\n    # Envoy's default 1024 would cap the whole gateway's root traffic.\n    circuit_breakers:\n      thresholds:\n      - { priority: DEFAULT, max_connections: 1000000, max_pending_requests: 1000000, max_requests: 1000000 }\n    per_connection_buffer_limit_bytes: 16777216\n    load_assignment:\n      cluster_name: ai-gateway-internal\n      endpoints:\n      - lb_endpoints:\n        - endpoint: { address: { envoy_internal_address: { server_listener_name: ai-gateway-internal } } }\n";

pub fn render(g: &Gateway, o: &Options) -> String {
    let filters = Instances::new(&g.models);
    let internal = !root_apis(g).is_empty();
    let mut out = header(g, o);
    if internal {
        out.push_str("bootstrap_extensions:\n- name: envoy.bootstrap.internal_listener\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener\n");
    }
    out.push_str(STATS_TAGS);
    let _ = write!(
        out,
        "static_resources:\n  listeners:\n  - name: gateway\n    address:\n      socket_address: {{ address: {}, port_value: {} }}\n    # Chat histories with images exceed Envoy's 1 MiB default buffer.\n    per_connection_buffer_limit_bytes: 16777216\n    filter_chains:\n    - filters:\n",
        o.address, o.port
    );
    // The root route's hand-over is logged by the model's route, once.
    let handed_over = format!("            filter: {}\n", cel("!(xds.route_name == 'by-model' && response.code_details == 'via_upstream')"));
    out.push_str(&connection_manager("ai_gateway", true, internal.then_some(handed_over.as_str()), &local_replies(g, internal)));
    out.push_str(&format!("          route_config:{}\n            name: gateway\n            virtual_hosts:\n            - name: gateway\n              domains: [\"*\"]\n", if internal { " &routes" } else { "" }));
    if g.models.iter().any(|m| m.balanced.is_some()) {
        out.push_str("              # ai-proxy-advanced's matchers read the try's number.\n              include_request_attempt_count: true\n");
    }
    out.push_str(&routes(g, &filters));
    out.push_str(&http_filters(g, &filters, o, internal));
    if internal {
        out.push_str(&internal_listener());
    }
    out.push_str(&clusters(g));
    if internal {
        out.push_str(INTERNAL_CLUSTER);
    }
    let _ = write!(out, "admin:\n  address:\n    socket_address: {{ address: 127.0.0.1, port_value: {} }}\n", o.admin_port);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options { address: "0.0.0.0".into(), port: 10000, admin_port: 9901, wasm_dir: "/etc/envoy/wasm".into(), source: "kong-aigateway.yaml".into(), notes: String::new() }
    }

    #[test]
    fn kongs_manifest_renders_deterministically() {
        let g = crate::gateway::parse(include_str!("../../envoy/kong-aigateway.yaml")).unwrap();
        let a = render(&g, &options());
        assert_eq!(a, render(&g, &options()));
        for needle in [
            "path: \"/devteam-chatgpt\"",
            "path: \"/devteam-chatgpt/v1/chat/completions\"",
            "path: \"/marketing-team-classic-chatgpt/v1/completions\"",
            "path: \"/devteam-chatgpt/v1/models\"",
            "path: \"/v1/models\"",
            "sni: api.openai.com",
            "name: ai-prompt-decorator\n",
            "host_env_keys: [OPENAI_API_KEY]",
            "allow_on_headers_stop_iteration: true",
        ] {
            assert!(a.contains(needle), "{needle} missing");
        }
        // The rendered YAML parses, and its one provider cluster serves
        // both models (the other is the root routes' internal hop).
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&a).unwrap();
        let clusters: Vec<&str> = v["static_resources"]["clusters"].as_sequence().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(clusters, ["openai-api-openai-com", INTERNAL]);
    }

    fn routes_of(yaml: &str) -> Vec<serde_yaml_ng::Value> {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
        let hcm = &v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        hcm["route_config"]["virtual_hosts"][0]["routes"].as_sequence().cloned().unwrap_or_default()
    }

    fn enabled(route: &serde_yaml_ng::Value) -> Vec<String> {
        route["typed_per_filter_config"].as_mapping().map(|m| m.keys().filter_map(|k| k.as_str().map(String::from)).collect()).unwrap_or_default()
    }

    #[test]
    fn shared_filters_render_once_and_rewritten_requests_stay_governed() {
        let file = "kind: AIGateway\nmetadata: {name: g}\nspec:\n  largeLanguageModels:\n    selfHosted:\n    - {identifier: a, url: 'http://127.0.0.1:8000', promptGuard: &guard {deny_patterns: [secret]}}\n    - {identifier: b, url: 'http://127.0.0.1:8000', promptGuard: *guard, paths: [/team-b/v1/chat/completions]}\n    - {identifier: c, url: 'http://127.0.0.1:8000', promptGuard: {deny_patterns: [other]}, format: passthrough}\n";
        let g = crate::gateway::parse(file).unwrap();
        let yaml = render(&g, &options());
        assert_eq!(yaml.matches("- name: ai-prompt-guard-a\n").count(), 1, "a and b share one instance");
        assert!(yaml.contains("name: ai-prompt-guard-c\n"));
        let routes = routes_of(&yaml);
        // The route a forged `x-ai-proxy: ai-proxy-a` lands on still runs the guard.
        let rematch = routes.iter().find(|r| r["match"]["headers"][0]["string_match"]["exact"].as_str() == Some("ai-proxy-a")).unwrap();
        assert_eq!(enabled(rematch), ["ai-prompt-guard-a", "ai-proxy-a"]);
        let b = routes.iter().find(|r| r["match"]["path"].as_str() == Some("/team-b/v1/chat/completions")).unwrap();
        assert_eq!(enabled(b), ["ai-prompt-guard-a", "ai-proxy-b"]);
        assert_eq!(b["metadata"]["filter_metadata"]["ai_gateway"]["provider"].as_str(), Some("openai"));
        // Each base lists its models once, though two paths lead to it.
        let listed = |p: &str| -> Value {
            let r = routes.iter().find(|r| r["match"]["path"].as_str() == Some(p)).unwrap();
            serde_json::from_str(r["direct_response"]["body"]["inline_string"].as_str().unwrap()).unwrap()
        };
        assert_eq!(listed("/team-b/v1/models")["data"].as_array().unwrap().len(), 1);
        assert_eq!(listed("/a/v1/models")["data"].as_array().unwrap().len(), 1);
        assert_eq!(listed("/v1/models")["data"].as_array().unwrap().len(), 3);
        // A passthrough model has no ai-proxy: the request goes on to the API path.
        let c = routes.iter().find(|r| r["match"]["path"].as_str() == Some("/c/v1/chat/completions")).unwrap();
        assert_eq!(enabled(c), ["ai-prompt-guard-c"]);
        assert_eq!(c["route"]["prefix_rewrite"].as_str(), Some("/v1/chat/completions"));
        assert!(!yaml.contains("name: ai-proxy-c\n"));
    }

    #[test]
    fn every_route_with_its_own_key_check_forwards_the_consumer() {
        // Envoy 1.40 drops the listener's forwarding for a per-route
        // configuration without its own: a forged consumer header would pass.
        let file = "kind: Secret\nmetadata: {name: k}\nstringData: {a: key-aaaa-1, b: key-bbbb-2}\n---\nkind: AIGateway\nmetadata: {name: g}\nspec:\n  consumers:\n  - {name: a, keys: [{secretKeyRef: {name: k, key: a}}]}\n  - {name: b, keys: [{secretKeyRef: {name: k, key: b}}], models: [claude]}\n  mcpServers:\n  - {identifier: tools, url: 'http://127.0.0.1:8001/mcp'}\n  a2aAgents:\n  - {identifier: agent, url: 'http://127.0.0.1:8003'}\n  largeLanguageModels:\n    cloudHosted:\n    - {identifier: claude, model: c, llmFormat: anthropic, aiCloudProvider: {name: anthropic}}\n    - {identifier: both, targets: [{model: g, aiCloudProvider: {name: openai}}, {model: c, aiCloudProvider: {name: anthropic}}]}\n    selfHosted:\n    - {identifier: raw, url: 'http://127.0.0.1:8000', format: passthrough}\n";
        let g = crate::gateway::parse(file).unwrap();
        let yaml = render(&g, &options());
        let routes = routes_of(&yaml);
        let mut checked = 0;
        for r in &routes {
            let auth = &r["typed_per_filter_config"][KEY_AUTH];
            if auth.is_null() {
                assert!(r["direct_response"].is_mapping(), "a route without its own key check that is not a direct answer: {r:?}");
                continue;
            }
            assert_eq!(auth["forwarding"]["header"].as_str(), Some("x-consumer-id"), "{r:?}");
            checked += 1;
        }
        assert!(checked >= 10, "{checked}");
        // b may use claude only: the other models' routes say who may.
        let claude = routes.iter().find(|r| r["match"]["path"].as_str() == Some("/claude/v1/messages")).unwrap();
        assert!(claude["typed_per_filter_config"][KEY_AUTH]["allowed_clients"].is_null(), "everyone may");
        let both = routes.iter().find(|r| r["match"]["path"].as_str() == Some("/both")).unwrap();
        assert_eq!(both["typed_per_filter_config"][KEY_AUTH]["allowed_clients"][0].as_str(), Some("a"));
        // The root route keeps the key for the model's route to check again.
        let root = routes.iter().find(|r| r["name"].as_str() == Some("by-model")).unwrap();
        assert_eq!(root["typed_per_filter_config"][KEY_AUTH]["forwarding"]["hide_credentials"].as_bool(), Some(false));
        assert!(yaml.contains("internal_listener: {}"));
    }

    #[test]
    fn a_models_own_budgets_and_the_consumers_are_two_instances() {
        let file = "kind: Secret\nmetadata: {name: k}\nstringData: {a: key-aaaa-1}\n---\nkind: AIGateway\nmetadata: {name: g}\nspec:\n  consumers:\n  - {name: a, keys: [{secretKeyRef: {name: k, key: a}}], tokenBudget: {limits: [{limit: 10, window_size: 60}]}}\n  largeLanguageModels:\n    selfHosted:\n    - {identifier: a, model: gpt-4o, aliases: [fast], url: 'http://127.0.0.1:8000', tokenBudgets: {policies: [{name: tight, match: {model: [gpt-4o]}, limits: [{limit: 5, window_size: 60}]}]}}\n    - {identifier: b, model: m, url: 'http://127.0.0.1:8000'}\n";
        let g = crate::gateway::parse(file).unwrap();
        let yaml = render(&g, &options());
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        let names: Vec<&str> = v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"].as_sequence().into_iter().flatten().filter_map(|f| f["name"].as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        let routes = routes_of(&yaml);
        let b = routes.iter().find(|r| r["match"]["path"].as_str() == Some("/b")).unwrap();
        assert_eq!(enabled(b).iter().filter(|n| n.starts_with("ai-token-ratelimit")).collect::<Vec<_>>(), ["ai-token-ratelimit-consumers"], "b runs the consumers' budgets only");
        // `tight` matches gpt-4o, which root clients call `a` or `fast`.
        let own = g.models[0].filters.iter().find(|f| f.instance.is_none() && f.kind == crate::gateway::FilterKind::Budgets).unwrap();
        assert_eq!(own.config["policies"][0]["match"]["model"], json!(["gpt-4o", "a", "fast"]));
    }

    #[test]
    fn claude_clients_get_messages_routes_and_count_tokens_where_anthropic_counts() {
        let file = "kind: AIGateway\nmetadata: {name: g}\nspec:\n  largeLanguageModels:\n    cloudHosted:\n    - {identifier: claude, llmFormat: anthropic, aiCloudProvider: {name: anthropic}}\n    - {identifier: vertex-claude, llmFormat: anthropic, aiCloudProvider: {name: anthropic, options: {gemini: {project_id: p, location_id: us-east5}}}}\n    selfHosted:\n    - {identifier: local, url: 'http://127.0.0.1:8000', llmFormat: anthropic}\n";
        let g = crate::gateway::parse(file).unwrap();
        let yaml = render(&g, &options());
        let routes = routes_of(&yaml);
        let path = |p: &str| routes.iter().find(|r| r["match"]["path"].as_str() == Some(p)).cloned();
        assert!(path("/claude/v1/messages").is_some());
        let counting = path("/claude/v1/messages/count_tokens").unwrap();
        assert_eq!(enabled(&counting), ["ai-proxy-claude-count-tokens"]);
        assert!(yaml.contains(r#""route_type":"preserve""#));
        for other in ["/vertex-claude/v1/messages/count_tokens", "/local/v1/messages/count_tokens"] {
            assert_eq!(path(other).unwrap()["direct_response"]["status"].as_u64(), Some(404), "{other}");
        }
        // Vertex takes an access token, not Anthropic's key.
        assert!(yaml.contains("Bearer {vault://env/VERTEX_ACCESS_TOKEN}"));
        assert!(yaml.contains(r#""llm_format":"anthropic""#));
    }
}
