-- wrk script: sends the body in $BENCH_BODY (POST, or $BENCH_METHOD) and
-- prints one machine-readable summary line (latencies in microseconds).
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = os.getenv("BENCH_METHOD") or "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-key"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d socket_errors=%d status_errors=%d p50=%.1f p90=%.1f p99=%.1f\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
