#!/usr/bin/env python3
"""What each filter and the whole chain cost, against bare Envoy in the same run.

Every target is an Envoy (pinned to core 0, --concurrency 1) in front of the
same fast upstream; wrk and the upstream share core 1. Targets run one after
another and rounds interleave them (A B C ... A B C ...), so drift hits all
alike; ratios compare each target with bare Envoy of the same round.
Writes bench/results.md and bench/results.json; exits 1 if any request failed.
"""
import argparse, json, os, pathlib, re, shutil, signal, socket, statistics, subprocess, sys, time, urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENVOY = os.environ.get("ENVOY_BIN", str(ROOT / ".venv/bin/envoy"))
WORK = ROOT / "target/bench"
TICKS = os.sysconf("SC_CLK_TCK")
OUT = ROOT / "bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FLOOR_WASM = ROOT / "target/wasm32-wasip1/release/bench_floor_filter.wasm"
MODULES = ROOT / "dist"  # switched to COUNTING_MODULES for the host-call table
COUNTING_MODULES = ROOT / "target/count/wasm32-wasip1/release"


def wasm_filter(name, module, config):
    body = (config if isinstance(config, str) else json.dumps(config)).replace("'", "''")
    return f"""
          - name: {name}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {name}
                root_id: {name}
                allow_on_headers_stop_iteration: true
                vm_config:
                  vm_id: {module}
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {FLOOR_WASM if module == "floor" else MODULES / (module + ".wasm")} }} }}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{body}'"""


# As the shipped configs run ai-proxy: publishing the access log's keys.
STATISTICS = {"logging": {"log_statistics": True}}


def filters(upstream):
    url = f"http://127.0.0.1:{upstream}"
    passthrough = {"route_type": "llm/v1/chat", "model": {"provider": "openai", "options": {"upstream_url": url + "/v1/chat/completions"}}}
    return {
        "proxy": ("ai-proxy", "ai_proxy", {**passthrough, **STATISTICS}),
        # What a user without access-log analytics runs.
        "proxy_quiet": ("ai-proxy", "ai_proxy", passthrough),
        "anthropic": ("ai-proxy-anthropic", "ai_proxy", {"auth": {"header_name": "x-api-key", "header_value": "bench"}, "model": {"provider": "anthropic", "options": {"upstream_url": url}}, **STATISTICS}),
        # OpenAI Responses API clients, translated to Anthropic through chat.
        "responses_anthropic": ("ai-proxy-responses", "ai_proxy", {"route_type": "llm/v1/responses", "auth": {"header_name": "x-api-key", "header_value": "bench"},
                                                                  "model": {"provider": "anthropic", "options": {"upstream_url": url}}, **STATISTICS}),
        "guard": ("ai-prompt-guard", "ai_prompt_guard", {"deny_patterns": GUARD_PATTERNS}),
        "guard_stream": ("ai-prompt-guard", "ai_prompt_guard", {"deny_patterns": GUARD_PATTERNS, "guard_response": True}),
        "decorator": ("ai-prompt-decorator", "ai_prompt_decorator", {"prompts": {"prepend": [{"role": "system", "content": "You are the ACME assistant."}], "append": [{"role": "user", "content": "Answer briefly."}]}}),
        "template": ("ai-prompt-template", "ai_prompt_template", {"templates": [{"name": "t", "template": "{\"messages\":[{\"role\":\"user\",\"content\":\"{{q}}\"}]}"}]}),
        "ratelimit": ("ai-token-ratelimit", "ai_token_ratelimit", {"policies": RATELIMIT_POLICIES}),
        # Round-robin over two OpenAI-format targets, no failures: the
        # balancer, the route's matcher and a translator on every try.
        "advanced": ("ai-proxy-advanced", "ai_proxy_advanced", {
            "balancer": {"algorithm": "round-robin", "retries": 1, "failover_criteria": ["error", "http_429"]},
            "targets": [{"model": {"provider": "openai", "name": f"bench-{i}", "options": {"upstream_url": url + "/v1/chat/completions"}}, **STATISTICS} for i in range(2)]}),
        # MCP in front of a tool server: ACLs on calls, tool lists cut down.
        "mcp": ("ai-mcp-proxy", "ai_mcp_proxy", {"mode": "passthrough-listener", "default_acl": [{"scope": "tools", "deny": ["suspended"]}],
                                                 "tools": [{"name": "delete_everything", "description": "d", "acl": {"allow": ["admins"]}}]}),
        # A2A in front of an agent: every call read, method ACLs, cards rewritten.
        "a2a": ("ai-a2a-proxy", "ai_a2a_proxy", {"consumer_header": "x-consumer", "methods": [{"name": "tasks/cancel", "acl": {"allow": ["ops"]}}]}),
        # The host's own cost: a bench-only filter (bench/floor-filter).
        "noop": ("floor-noop", "floor", "noop"),
        "read": ("floor-read", "floor", "read"),
        "rewrite": ("floor-rewrite", "floor", "rewrite"),
        # The same policies, counted by the rate-limit service in Redis.
        "ratelimit_shared": ("ai-token-ratelimit", "ai_token_ratelimit", dict(SHARED_POLICIES)),
    }


GUARD_PATTERNS = [
    "(?i)\\b(password|passwd)\\b", "\\b\\d{16}\\b", "(?i)ignore (all )?previous instructions", "(?i)api[_ -]?key",
    "(?i)ssn:?\\s*\\d{3}-\\d{2}-\\d{4}", "(?i)drop\\s+table", "(?i)<script", "(?i)sudo\\s+rm", "(?i)jailbreak", "(?i)secret\\s+token"]

RATELIMIT_POLICIES = [
    {"name": "total", "limits": [{"limit": 4e9, "window_size": 86400}]},
    {"name": "per-key", "partition_by": "header", "partition_header": "authorization", "limits": [{"limit": 4e9, "window_size": 60}]}]
SHARED_POLICIES = {"strategy": "cluster", "policies": RATELIMIT_POLICIES}


TARGETS = [
    ("bare envoy", []),
    ("floor: 1 no-op wasm filter", ["noop"]),
    ("floor: 5 no-op wasm filters", ["noop"] * 5),
    ("floor: 5 body-reading filters", ["read"] * 5),
    ("floor: 1 parse-and-rewrite filter", ["rewrite"]),
    ("floor: 5 parse-and-rewrite filters", ["rewrite"] * 5),
    ("ai-proxy openai passthrough", ["proxy"]),
    ("ai-proxy by the body's model (one base URL)", ["by_model", "proxy"]),
    ("ai-proxy passthrough, statistics off", ["proxy_quiet"]),
    ("ai-proxy to anthropic", ["anthropic"]),
    ("ai-proxy responses to anthropic", ["responses_anthropic"]),
    ("ai-proxy-advanced, round-robin", ["advanced"]),
    ("guard, 10 patterns", ["guard"]),
    ("decorator", ["decorator"]),
    ("template", ["template"]),
    ("token rate limit", ["ratelimit"]),
    ("rate limit + ai-proxy, local", ["ratelimit", "proxy"]),
    ("rate limit + ai-proxy, shared (RLS, Redis)", ["ratelimit_shared", "proxy"]),
    ("full chain", ["template", "decorator", "guard", "ratelimit", "proxy"]),
    ("full chain, statistics off", ["template", "decorator", "guard", "ratelimit", "proxy_quiet"]),
    ("mcp tools/call, ACLs", ["mcp"]),
    ("mcp tools/list of 100, filtered", ["mcp"]),
    ("a2a message/send, ACLs", ["a2a"]),
    ("a2a agent card rewrite", ["a2a"]),
]


# Targets whose clients speak another API than OpenAI chat: their bodies
# are the same prompts in that API (workloads()).
CLIENT_API = {"ai-proxy responses to anthropic": "responses", "mcp tools/call, ACLs": "mcp_call", "mcp tools/list of 100, filtered": "mcp_list",
              "a2a message/send, ACLs": "a2a_send", "a2a agent card rewrite": "a2a_card"}
# Targets whose requests are not a POST to /v1/chat/completions.
CLIENT_REQUEST = {"a2a agent card rewrite": ("GET", "/.well-known/agent-card.json")}


def request_of(target):
    return CLIENT_REQUEST.get(target, ("POST", "/v1/chat/completions"))


def body_for(bodies, target, workload):
    return bodies[f"{CLIENT_API[target]}-{workload}" if target in CLIENT_API else workload]


# The 128 KB prompt goes through these only (c=8).
BIG_BODY_TARGETS = {"bare envoy", "floor: 1 parse-and-rewrite filter", "guard, 10 patterns", "full chain"}

SHARED = {}  # rls port and rendered rate_limits, set in main() when a target needs them


def native_ratelimit():
    rate_limits = "".join("              " + l + "\n" if l.strip() else "\n" for l in SHARED["rate_limits"].splitlines())
    return f"""
          - name: envoy.filters.http.ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
              domain: ai-gateway
              failure_mode_deny: false
              timeout: 0.25s
              rate_limit_service:
                transport_api_version: V3
                grpc_service:
                  envoy_grpc: {{ cluster_name: ratelimit }}
              rate_limits:
{rate_limits}"""


def upstream_cluster(upstream):
    return f"""  - name: upstream
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream} }} }} }}"""


def by_model_config(target_filters, upstream, port, admin):
    """The gateway file's root API path: json_to_metadata reads `model`, the
    request goes through the internal listener to the model's route, where
    its filters run (cli/src/render.rs, root_routes)."""
    fs = filters(upstream)
    chain = "".join(wasm_filter(f"{fs[f][0]}-{i}", *fs[f][1:]) for i, f in enumerate(target_filters))
    hcm = lambda prefix, routes, http_filters: f"""
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {prefix}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:{routes}
          http_filters:{http_filters}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"""
    root = """
              - match: { prefix: "/" }
                route: { cluster: internal, timeout: 60s }
                request_headers_to_add:
                - header: { key: x-ai-model, value: "%DYNAMIC_METADATA(ai_gateway:model)%" }
                  keep_empty_value: true"""
    to_metadata = """
          - name: envoy.filters.http.json_to_metadata
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.json_to_metadata.v3.JsonToMetadata
              request_rules:
                rules:
                - selectors: [{ key: model }]
                  on_present: { metadata_namespace: ai_gateway, key: model, type: STRING }
                  on_missing: { metadata_namespace: ai_gateway, key: model, value: "" }"""
    model = """
              - match: { prefix: "/", headers: [{ name: x-ai-model, string_match: { exact: bench-model } }] }
                route: { cluster: upstream, timeout: 60s }
                request_headers_to_remove: [x-ai-model]"""
    return f"""bootstrap_extensions:
- name: envoy.bootstrap.internal_listener
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener
static_resources:
  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    per_connection_buffer_limit_bytes: 16777216
    filter_chains:
    - filters:{hcm("bench", root, to_metadata)}
  - name: internal
    internal_listener: {{}}
    per_connection_buffer_limit_bytes: 16777216
    filter_chains:
    - filters:{hcm("bench_internal", model, chain)}
  clusters:
{upstream_cluster(upstream)}
  - name: internal
    connect_timeout: 1s
    per_connection_buffer_limit_bytes: 16777216
    load_assignment:
      cluster_name: internal
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ envoy_internal_address: {{ server_listener_name: internal }} }} }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
"""


def config(target_filters, upstream, port, admin):
    if "by_model" in target_filters:
        return by_model_config([f for f in target_filters if f != "by_model"], upstream, port, admin)
    fs = filters(upstream)
    # A filter used more than once gets a name per instance.
    chain = "".join(wasm_filter(f"{fs[f][0]}-{i}", *fs[f][1:]) for i, f in enumerate(target_filters))
    rls_cluster = ""
    if "ratelimit_shared" in target_filters:
        chain += native_ratelimit().rstrip("\n")
        rls_cluster = f"""
  - name: ratelimit
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: ratelimit
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {SHARED["port"]} }} }} }}"""
    route = "route: { cluster: upstream, timeout: 60s }"
    router_filters = attempt_count = ""
    if "advanced" in target_filters:
        route, router_filters = advanced_routing(fs["advanced"][1])
        attempt_count = "\n              include_request_attempt_count: true"
    return f"""static_resources:
  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    per_connection_buffer_limit_bytes: 16777216
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]{attempt_count}
              routes:
              - match: {{ prefix: "/" }}
                {route}
          http_filters:{chain}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router{router_filters}
  clusters:
{upstream_cluster(upstream)}{rls_cluster}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
"""


def advanced_routing(module):
    """The route and router of envoy/advanced.yaml, both targets on one cluster."""
    header = lambda name: f'{{ "@type": type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput, header_name: {name} }}'
    action = '{ action: { name: up, typed_config: { "@type": type.googleapis.com/envoy.extensions.router.cluster_specifiers.matcher.v3.ClusterAction, cluster: upstream } } }'
    tries = ", ".join(f'"{k}": {{ matcher: {{ matcher_tree: {{ input: {{ name: t, typed_config: {header(f"x-ai-try-{k}")} }}, exact_match_map: {{ map: {{ "0": {action}, "1": {action} }} }} }} }} }}' for k in range(2))
    route = f"""route:
                  timeout: 60s
                  retry_policy: {{ num_retries: 0, refresh_cluster_on_retry: true }}
                  inline_cluster_specifier_plugin:
                    extension:
                      name: envoy.router.cluster_specifier_plugin.matcher
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.router.cluster_specifiers.matcher.v3.MatcherClusterSpecifier
                        cluster_matcher: {{ matcher_tree: {{ input: {{ name: a, typed_config: {header("x-envoy-attempt-count")} }}, exact_match_map: {{ map: {{ {tries} }} }} }} }}"""
    router = f"""
              upstream_http_filters:
              - name: ai-proxy-advanced-upstream
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
                  config:
                    name: ai-proxy-advanced-upstream
                    root_id: ai-proxy-advanced-upstream
                    allow_on_headers_stop_iteration: true
                    vm_config:
                      vm_id: {module}
                      runtime: envoy.wasm.runtime.v8
                      code: {{ local: {{ filename: {MODULES / (module + ".wasm")} }} }}
              - name: envoy.filters.http.upstream_codec
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"""
    return route, router


def workloads():
    filler = "The history of this conversation goes on for a while. " * 14
    small = {"model": "bench-model", "messages": [
        {"role": "system", "content": "You are a helpful assistant for a logistics company."},
        {"role": "user", "content": "Summarize the following shipment notes: " + filler}]}
    long_history = {"model": "bench-model", "messages": [{"role": "system", "content": "You are a helpful assistant."}] + [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"Turn {i}: " + filler} for i in range(40)]}
    huge = {"model": "bench-model", "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                                 {"role": "user", "content": "Review this document: " + filler * 170}]}
    stream = dict(small, stream=True)
    out = {}
    def as_responses(chat):
        system, *turns = chat["messages"]
        body = {"model": chat["model"], "instructions": system["content"], "input": turns, "max_output_tokens": 256}
        return dict(body, stream=True) if chat.get("stream") else body
    for name, body in [("1kb", small), ("32kb", long_history), ("128kb", huge), ("stream", stream)]:
        for key, b in [(name, body), (f"responses-{name}", as_responses(body))]:
            path = WORK / f"body-{key}.json"
            path.write_text(json.dumps(b, separators=(",", ":")))
            out[key] = path
    # MCP: a tools/call with 1 KB or 32 KB of arguments (streamed: with a
    # progress token, answered as SSE), and a tools/list.
    def call(size, progress=False):
        params = {"name": "add", "arguments": {"a": 2, "b": 3, "note": "x" * size}}
        if progress:
            params["_meta"] = {"progressToken": 1}
        return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    mcp = {"mcp_call-1kb": call(1000), "mcp_call-32kb": call(32000), "mcp_call-stream": call(1000, True)}
    mcp.update({f"mcp_list-{w}": {"jsonrpc": "2.0", "id": 1, "method": "tools/list"} for w in ["1kb", "32kb", "stream"]})
    for key, b in mcp.items():
        path = WORK / f"body-{key}.json"
        path.write_text(json.dumps(b, separators=(",", ":")))
        out[key] = path
    # A2A 1.0: a SendMessage with 1 KB or 32 KB of text (streamed:
    # SendStreamingMessage); the card is a GET without a body.
    def send(size, stream=False):
        message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "x" * size}], "metadata": {"skillId": "echo"}}
        return {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage" if stream else "SendMessage", "params": {"message": message}}
    for key, b in {"a2a_send-1kb": send(1000), "a2a_send-32kb": send(32000), "a2a_send-stream": send(1000, True)}.items():
        path = WORK / f"body-{key}.json"
        path.write_text(json.dumps(b, separators=(",", ":")))
        out[key] = path
    for w in ["1kb", "32kb", "stream"]:
        path = WORK / f"body-a2a_card-{w}.json"
        path.write_text("")
        out[f"a2a_card-{w}"] = path
    return out


class Envoy:
    def __init__(self, name, make_config, log_level=("-l", "error"), cores="0"):
        self.cores = cores
        # A free port can be taken by another process before Envoy binds it
        # (ports are picked, then released): try again on fresh ones.
        for attempt in range(3):
            if self.start(name, make_config, log_level):
                return
            print(f"envoy for {name}: a port was taken, retrying ({attempt + 1})", file=sys.stderr)
        sys.exit(f"envoy for {name} did not start; see {self.log.name}")

    def start(self, name, make_config, log_level):
        self.port, self.admin = free_port(), free_port()
        text = make_config(self.port, self.admin)
        cfg = WORK / (re.sub(r"[^a-z0-9]+", "-", name.lower()) + ".yaml")
        cfg.write_text(text)
        self.log = open(WORK / (cfg.stem + ".log"), "w")
        started = time.perf_counter()
        self.proc = subprocess.Popen(["taskset", "-c", self.cores, ENVOY, "-c", str(cfg), "--concurrency", "1", "--base-id", str(self.port), *log_level],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline and self.proc.poll() is None:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/ready", timeout=1).status == 200:
                    self.ready_s = time.perf_counter() - started
                    return True
            except OSError:
                time.sleep(0.02)
        self.stop()
        if "Address already in use" in pathlib.Path(self.log.name).read_text(errors="replace"):
            return False
        sys.exit(f"envoy for {name} did not start; see {self.log.name}")

    def cpu_ticks(self):
        fields = pathlib.Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def cpu_ns(self):
        """On-CPU time of all Envoy's threads (schedstat: nanoseconds)."""
        total = 0
        for task in pathlib.Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return total

    def rss_kib(self):
        for line in pathlib.Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def wrk(port, body, connections, seconds, target=None):
    method, path = request_of(target)
    env = dict(os.environ, BENCH_BODY=str(body), BENCH_METHOD=method)
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          "-s", str(ROOT / "bench/post.lua"), f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, env=env, timeout=seconds + 60)
    line = next((l for l in out.stdout.splitlines() if l.startswith("BENCH ")), None)
    if line is None:
        sys.exit(f"wrk failed: {out.stdout}{out.stderr}")
    v = dict(kv.split("=") for kv in line.split()[1:])
    return {"rps": int(v["requests"]) / (int(v["duration_us"]) / 1e6), "requests": int(v["requests"]),
            "errors": int(v["socket_errors"]) + int(v["status_errors"]), "p50_us": float(v["p50"]), "p90_us": float(v["p90"]), "p99_us": float(v["p99"])}


def complete(response):
    """A whole HTTP/1.1 answer: chunked to its last chunk, or content-length bytes."""
    head, sep, body = response.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head) if sep else None
    return len(body) >= int(length.group(1)) if length else response.endswith(b"\r\n0\r\n\r\n")


def stream_times(port, body, n, events=None, target=None):
    """Time to first byte and to the end of a stream (~50 events, or
    `events`), one at a time."""
    data = body.read_bytes()
    method, path = request_of(target)
    extra = f"x-bench-events: {events}\r\n" if events else ""
    request = (f"{method} {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n{extra}"
               f"authorization: Bearer bench-key\r\ncontent-length: {len(data)}\r\n\r\n").encode() + data
    ttfb, total, failed = [], [], 0
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            start = time.perf_counter()
            s.sendall(request)
            buf = s.recv(65536)
            first = time.perf_counter()
            s.settimeout(10)
            while not complete(buf):
                more = s.recv(65536)
                if not more:
                    break
                buf += more
            end = time.perf_counter()
            # Chat streams end with [DONE], Responses streams with response.completed, MCP and A2A with a result; a card is a card.
            if not buf.startswith(b"HTTP/1.1 200") or not (b"[DONE]" in buf or b"response.completed" in buf or b'"result"' in buf or b'"supportedInterfaces"' in buf):
                failed += 1
            ttfb.append((first - start) * 1e6)
            total.append((end - start) * 1e6)
    return {"ttfb_p50_us": statistics.median(ttfb), "total_p50_us": statistics.median(total), "errors": failed}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="one round, 1 s runs, concurrency 1 and 8 (under 2 minutes)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench"), help="where results.md and results.json go")
    ap.add_argument("--only", help="semicolon-separated targets (names hold commas) to compare (bare Envoy and their floor are added); skips the extra sections")
    args = ap.parse_args()
    targets = TARGETS
    if args.only:
        wanted = {t.strip() for t in args.only.split(";")}
        unknown = wanted - {n for n, _ in TARGETS}
        if unknown:
            sys.exit(f"--only: unknown targets {sorted(unknown)}; known: {[n for n, _ in TARGETS]}")
        chain = any(len(fs) >= 5 for n, fs in TARGETS if n in wanted)
        wanted |= {"bare envoy", "floor: 1 parse-and-rewrite filter"} | ({"floor: 5 parse-and-rewrite filters"} if chain else set())
        targets = [(n, fs) for n, fs in TARGETS if n in wanted]
    global OUT
    OUT = pathlib.Path(args.out)
    OUT.mkdir(parents=True, exist_ok=True)
    rounds, seconds, concurrencies, stream_n = (1, 1, [1, 8], 30) if args.quick else (args.rounds, args.seconds, [1, 8, 32], 100)
    WORK.mkdir(parents=True, exist_ok=True)
    bodies = workloads()
    upstream_port = free_port()
    upstream = subprocess.Popen(["taskset", "-c", "1", str(ROOT / "target/release/bench-upstream"), str(upstream_port)])
    services = [upstream] + start_shared_services(args.quick)
    time.sleep(0.3)
    results = []  # one record per round, target, workload, concurrency
    failed = 0
    try:
        for rnd in range(rounds):
            for name, fs in targets:
                envoy = Envoy(name, lambda port, admin: config(fs, upstream_port, port, admin))
                wrk(envoy.port, body_for(bodies, name, "1kb"), 8, 1, name)  # warm up the VMs and pools
                for workload in ["1kb", "32kb"] + (["128kb"] if name in BIG_BODY_TARGETS else []):
                    for c in (concurrencies if workload != "128kb" else [8]):
                        ticks = envoy.cpu_ticks()
                        r = wrk(envoy.port, body_for(bodies, name, workload), c, seconds, name)
                        cpu_us = (envoy.cpu_ticks() - ticks) / TICKS * 1e6 / max(r["requests"], 1)
                        failed += r["errors"]
                        results.append(dict(r, round=rnd, target=name, workload=workload, concurrency=c, cpu_us_per_req=cpu_us, rss_kib=envoy.rss_kib()))
                s = stream_times(envoy.port, body_for(bodies, name, "stream"), stream_n, target=name)
                failed += s["errors"]
                results.append(dict(s, round=rnd, target=name, workload="stream", concurrency=1))
                envoy.stop()
                print(f"round {rnd + 1}/{rounds}: {name} done", file=sys.stderr)
        if args.only:
            per_event, calls, cold_start, split = {}, {}, {}, {}
        else:
            per_event = stream_event_cost(upstream_port, bodies["stream"], 5 if args.quick else 20)
            calls = host_calls(upstream_port, bodies)
            cold_start = cold_starts(upstream_port, 1 if args.quick else 5)
            split = cpu_split(upstream_port, bodies, 1 if args.quick else 5)
    finally:
        for p in services:
            p.terminate()
    failed += per_event.pop("errors", 0)
    report(results, rounds, seconds, cold_start, failed, per_event, calls, split)
    return 1 if failed else 0


SPLIT_TARGETS = ["bare envoy", "floor: 1 parse-and-rewrite filter", "ai-proxy openai passthrough", "token rate limit", "full chain"]


def cpu_split(upstream_port, bodies, seconds):
    """Where each request's CPU goes (1 KB, c=8): Envoy's own code, the
    filters' wasm code (V8's JIT code), the kernel, and the rest (libc,
    vdso), from `perf record` samples. Skipped where perf cannot sample."""
    if not shutil.which("perf"):
        return {}
    out = {}
    for name in SPLIT_TARGETS:
        envoy = Envoy(name + " perf", lambda port, admin: config(dict(TARGETS)[name], upstream_port, port, admin))
        wrk(envoy.port, bodies["1kb"], 8, 1)
        data = WORK / "perf.data"
        perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-o", str(data), "-p", str(envoy.proc.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        before = envoy.cpu_ns()
        r = wrk(envoy.port, bodies["1kb"], 8, seconds)
        cpu_us = (envoy.cpu_ns() - before) / 1000 / max(r["requests"], 1)
        perf.send_signal(signal.SIGINT)
        perf.wait(30)
        envoy.stop()
        shares = {"envoy": 0.0, "wasm": 0.0, "kernel": 0.0, "other": 0.0}
        rep = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso", "-g", "none"],
                             capture_output=True, text=True)
        for line in rep.stdout.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(.+?)\s*$", line)
            if not m:
                continue
            dso = m.group(2)
            kind = "wasm" if dso.startswith("[JIT]") else "kernel" if "kernel" in dso else "envoy" if dso == "envoy" else "other"
            shares[kind] += float(m.group(1))
        if sum(shares.values()) > 0:
            out[name] = {k: cpu_us * v / 100 for k, v in shares.items()}
    return out


def cold_starts(upstream_port, n):
    """Seconds from exec to /ready with the full chain, median of n starts:
    on the benchmark's one core (V8 compiles every module there), and on
    all of the machine's cores (V8 compiles on background threads)."""
    chain = dict(TARGETS)["full chain"]
    out = {}
    for label, cores in [("one core", "0"), ("all cores", f"0-{os.cpu_count() - 1}")]:
        times = []
        for _ in range(n):
            envoy = Envoy("cold start", lambda port, admin: config(chain, upstream_port, port, admin), cores=cores)
            times.append(envoy.ready_s)
            envoy.stop()
        out[label] = statistics.median(times)
    return out


def stream_event_cost(upstream_port, body, n):
    """CPU per streamed event through the guard with guard_response, against
    bare Envoy: the marginal cost between 10 and 200 events and between
    200 and 2,000 (flat means the work per event does not grow)."""
    out = {"errors": 0}
    for name, fs in [("bare envoy", []), ("guard, streamed answers", ["guard_stream"])]:
        envoy = Envoy(name + " stream", lambda port, admin: config(fs, upstream_port, port, admin))
        per_stream = {}
        for events in [10, 200, 2000]:
            stream_times(envoy.port, body, 2, events)  # warm up
            before = envoy.cpu_ns()
            r = stream_times(envoy.port, body, n, events)
            per_stream[events] = (envoy.cpu_ns() - before) / n
            out["errors"] += r["errors"]
        envoy.stop()
        out[name] = {"early_ns": (per_stream[200] - per_stream[10]) / 190, "late_ns": (per_stream[2000] - per_stream[200]) / 1800}
    return out


def host_calls(upstream_port, bodies):
    """Host calls per request and filter, from the counting builds (one
    request at a time, the last of a few: configuration-time calls excluded)."""
    global MODULES
    MODULES = COUNTING_MODULES
    table = {}
    try:
        for name, fs in TARGETS:
            if name == "bare envoy" or name.startswith("floor") or "shared" in name:
                continue
            envoy = Envoy(name + " counted", lambda port, admin: config(fs, upstream_port, port, admin),
                          ("-l", "error", "--component-log-level", "wasm:info"))
            for workload in ["1kb", "stream"]:
                start = pathlib.Path(envoy.log.name).stat().st_size
                for _ in range(3):
                    method, path = request_of(name)
                    req = urllib.request.Request(f"http://127.0.0.1:{envoy.port}{path}", data=body_for(bodies, name, workload).read_bytes() if method == "POST" else None,
                                                 headers={"content-type": "application/json", "authorization": "Bearer bench-key"}, method=method)
                    with urllib.request.urlopen(req, timeout=10) as r:
                        r.read()
                time.sleep(0.2)
                envoy.log.flush()
                with open(envoy.log.name) as f:
                    f.seek(start)
                    seen = re.findall(r"host calls: (\S+) (\d+)", f.read())
                last = {}
                for filt, n in seen:
                    last[filt] = int(n)
                table[(name, workload)] = last
            envoy.stop()
    finally:
        MODULES = ROOT / "dist"
    return table


def start_shared_services(quick):
    """Redis and ai-ratelimit-service on core 1 (beside wrk and the upstream),
    and the rate_limits rendered from the shared target's policies."""
    service = ROOT / "target" / ("debug" if quick else "release") / "ai-ratelimit-service"
    if not service.exists():
        sys.exit(f"{service} is not built (bench/run.sh builds it)")
    policies, service_cfg, rate_limits = WORK / "shared-policies.json", WORK / "shared-rls.yaml", WORK / "shared-rate-limits.yaml"
    policies.write_text(json.dumps(SHARED_POLICIES))
    subprocess.run([str(service), "render", str(policies), "--service-config", str(service_cfg), "--envoy-rate-limits", str(rate_limits)], check=True)
    redis_port, rls_port = free_port(), free_port()
    redis = subprocess.Popen(["taskset", "-c", "1", "redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rls = subprocess.Popen(["taskset", "-c", "1", str(service), "serve", "--config", str(service_cfg), "--redis", f"redis://127.0.0.1:{redis_port}",
                            "--listen", f"127.0.0.1:{rls_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", rls_port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    SHARED.update(port=rls_port, rate_limits=rate_limits.read_text())
    return [rls, redis]


def report(results, rounds, seconds, cold_start, failed, per_event, calls, split):
    def rows(target, workload, c):
        return [r for r in results if r["target"] == target and r["workload"] == workload and r["concurrency"] == c]

    def ratio(target, workload, c, key):
        pairs = []
        for rnd in range(rounds):
            a = [r for r in rows(target, workload, c) if r["round"] == rnd]
            b = [r for r in rows("bare envoy", workload, c) if r["round"] == rnd]
            if a and b:
                pairs.append((a[0][key], b[0][key]))
        return pairs

    sizes = {p.name: p.stat().st_size for p in sorted((ROOT / "dist").glob("*.wasm"))}
    machine = f"{os.cpu_count()} cores, {platform()}"
    lines = [f"Machine: {machine}. Envoy 1.40 pinned to core 0 (--concurrency 1); wrk and the upstream on core 1.",
             f"{rounds} round(s), {seconds} s per run; medians over rounds; ratios against bare Envoy of the same round.", "",
             "| target | body | conc | req/s | vs bare | p50 µs | p90 µs | p99 µs | p50 added µs | CPU µs/req | RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    summary = []
    for name, _ in TARGETS:
        for workload in ["1kb", "32kb", "128kb"]:
            for c in sorted({r["concurrency"] for r in results if r["workload"] == workload}):
                rs = rows(name, workload, c)
                if not rs:
                    continue
                med = lambda k: statistics.median(r[k] for r in rs)
                tp = ratio(name, workload, c, "rps")
                lat = ratio(name, workload, c, "p50_us")
                vs = statistics.median(a / b for a, b in tp) if tp else 0
                added = statistics.median(a - b for a, b in lat) if lat else 0
                rec = {"target": name, "workload": workload, "concurrency": c, "rps": med("rps"), "throughput_vs_bare": vs,
                       "p50_us": med("p50_us"), "p90_us": med("p90_us"), "p99_us": med("p99_us"), "p50_added_us": added,
                       "cpu_us_per_req": med("cpu_us_per_req"), "rss_mib": med("rss_kib") / 1024}
                summary.append(rec)
                lines.append(f"| {name} | {workload} | {c} | {rec['rps']:.0f} | {vs:.0%} | {rec['p50_us']:.0f} | {rec['p90_us']:.0f} | {rec['p99_us']:.0f} | {added:+.0f} | {rec['cpu_us_per_req']:.0f} | {rec['rss_mib']:.0f} |")
    # Each real filter's CPU above bare Envoy, against the host's floor:
    # one filter against one parse-and-rewrite filter, the chain against five.
    cpu = {(r["target"], r["workload"], r["concurrency"]): r["cpu_us_per_req"] for r in summary if "cpu_us_per_req" in r}
    lines += ["", "CPU added per request over bare Envoy (1 KB, c=8), against the host's floor:", "",
              "| target | added µs | floor | floor added µs | × floor |", "|---|---|---|---|---|"]
    for name, fs in TARGETS:
        if name == "bare envoy" or name.startswith("floor"):
            continue
        floor = "floor: 5 parse-and-rewrite filters" if len(fs) >= 5 else "floor: 1 parse-and-rewrite filter"
        key, base, fl = (name, "1kb", 8), ("bare envoy", "1kb", 8), (floor, "1kb", 8)
        if key in cpu and base in cpu and fl in cpu:
            added, floor_added = cpu[key] - cpu[base], cpu[fl] - cpu[base]
            times = f"{added / floor_added:.1f}" if floor_added > 0 else "–"
            lines.append(f"| {name} | {added:+.0f} | {floor} | {floor_added:+.0f} | {times} |")
    lines += ["", "Streams (~50 SSE events, one request at a time):", "", "| target | TTFB p50 µs | vs bare | total p50 µs |", "|---|---|---|---|"]
    for name, _ in TARGETS:
        rs = rows(name, "stream", 1)
        if rs:
            ttfb = statistics.median(r["ttfb_p50_us"] for r in rs)
            delta = statistics.median(a - b for a, b in ratio(name, "stream", 1, "ttfb_p50_us"))
            total = statistics.median(r["total_p50_us"] for r in rs)
            summary.append({"target": name, "workload": "stream", "ttfb_p50_us": ttfb, "ttfb_added_us": delta, "total_p50_us": total})
            lines.append(f"| {name} | {ttfb:.0f} | {delta:+.0f} | {total:.0f} |")
    bare, guard = per_event.get("bare envoy", {}), per_event.get("guard, streamed answers", {})
    if bare and guard:
        early, late = guard["early_ns"] - bare["early_ns"], guard["late_ns"] - bare["late_ns"]
        summary.append({"target": "guard, streamed answers", "workload": "stream-events", "added_ns_per_event_10_200": early, "added_ns_per_event_200_2000": late})
        lines += ["", "The guard on streamed answers (`guard_response`, 10 deny patterns), CPU per event above bare Envoy:", "",
                  "| events 10 → 200 | events 200 → 2,000 | late / early |", "|---|---|---|",
                  f"| {early / 1000:.1f} µs | {late / 1000:.1f} µs | {late / early:.2f} |" if early > 0 else f"| {early / 1000:.1f} µs | {late / 1000:.1f} µs | – |"]
    if calls:
        filters_seen = sorted({f for per in calls.values() for f in per})
        lines += ["", "Host calls per request and filter (1 KB chat; a ~50-event stream), from builds that count them:", "",
                  "| target | path | " + " | ".join(filters_seen) + " |", "|---|---|" + "---|" * len(filters_seen)]
        for (name, workload), per in calls.items():
            lines.append(f"| {name} | {workload} | " + " | ".join(str(per[f]) if f in per else "" for f in filters_seen) + " |")
            summary.append({"target": name, "workload": workload, "host_calls": per})
    if split:
        bare = split.get("bare envoy", {})
        lines += ["", "Where the CPU goes (1 KB, c=8; `perf record` samples of Envoy's threads, one short run each): µs per request in Envoy's own code, in the filters' wasm code (V8's JIT code), in the kernel, and elsewhere (libc, vdso), and each over bare Envoy:", "",
                  "| target | Envoy | wasm | kernel | other | total |", "|---|---|---|---|---|---|"]
        for name, parts in split.items():
            cell = lambda k: f"{parts[k]:.0f}" + (f" ({parts[k] - bare.get(k, 0):+.0f})" if bare and name != "bare envoy" else "")
            lines.append(f"| {name} | {cell('envoy')} | {cell('wasm')} | {cell('kernel')} | {cell('other')} | {sum(parts.values()):.0f} |")
            summary.append({"target": name, "workload": "cpu-split", **{f"{k}_us": v for k, v in parts.items()}})
    lines += ["", "Module sizes: " + ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in sizes.items()) + ".",
              "Cold start to ready with the full chain loaded (median of the starts): " + ", ".join(f"{v:.2f} s on {k}" for k, v in cold_start.items()) + ".",
              f"Failed requests: {failed}."]
    text = "\n".join(lines) + "\n"
    (OUT / "results.md").write_text(text)
    (OUT / "results.json").write_text(json.dumps({"machine": machine, "rounds": rounds, "seconds": seconds, "cold_start_s": cold_start,
                                                         "wasm_bytes": sizes, "failed_requests": failed, "summary": summary, "runs": results}, indent=1))
    print(text)


def platform():
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        model = "unknown CPU"
    return model


if __name__ == "__main__":
    sys.exit(main())
