// What a filter's own wasm code costs per request, without Envoy: runs one
// module's request path in Node's V8 (TurboFan only, as Envoy runs it) under
// a minimal proxy-wasm host, and prints time per request and, with --profile,
// the functions that take it (names from a module built with strip = false).
//
//   node --no-liftoff --no-wasm-tier-up bench/wasm-profile.mjs MODULE CONFIG_JSON BODY_FILE [RESPONSE_FILE] [--profile] [--stream]
//
// The host answers every property with "not found" and keeps metrics and
// shared data in memory: the numbers are the filter's work, not the host's.
import fs from "node:fs";
import { Session } from "node:inspector/promises";

const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const profile = process.argv.includes("--profile");
const streamed = process.argv.includes("--stream");
const [modulePath, configJson, bodyPath, responsePath] = args;
const requestBody = fs.readFileSync(bodyPath);
const responseBody = responsePath
    ? fs.readFileSync(responsePath)
    : Buffer.from('{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox jumps over the lazy dog."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":250,"completion_tokens":10,"total_tokens":260}}');

const enc = new TextEncoder();
const dec = new TextDecoder();
let instance;
const mem = () => new DataView(instance.exports.memory.buffer);
const bytes = (ptr, len) => new Uint8Array(instance.exports.memory.buffer, ptr, len);
const str = (ptr, len) => dec.decode(bytes(ptr, len));

// Copies `data` into the module's memory and writes its address and size.
function give(data, retPtr, retSize) {
    const ptr = data.length ? instance.exports.proxy_on_memory_allocate(data.length) : 0;
    if (data.length) bytes(ptr, data.length).set(data);
    mem().setUint32(retPtr, ptr, true);
    mem().setUint32(retSize, data.length, true);
    return 0;
}

function encodePairs(pairs) {
    const parts = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)]);
    let size = 4 + parts.length * 8;
    for (const [k, v] of parts) size += k.length + v.length + 2;
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer);
    view.setUint32(0, parts.length, true);
    let at = 4;
    for (const [k, v] of parts) { view.setUint32(at, k.length, true); view.setUint32(at + 4, v.length, true); at += 8; }
    for (const [k, v] of parts) { out.set(k, at); at += k.length + 1; out.set(v, at); at += v.length + 1; }
    return out;
}

function decodePairs(ptr, size) {
    const view = mem();
    const n = view.getUint32(ptr, true);
    const lens = [];
    for (let i = 0; i < n; i++) lens.push([view.getUint32(ptr + 4 + i * 8, true), view.getUint32(ptr + 8 + i * 8, true)]);
    let at = ptr + 4 + n * 8;
    const out = [];
    for (const [kl, vl] of lens) { const k = str(at, kl); at += kl + 1; const v = str(at, vl); at += vl + 1; out.push([k, v]); }
    return out;
}

// One request's state, as Envoy would hold it.
const requestHeaders = () => [[":method", "POST"], [":path", "/v1/chat/completions"], [":authority", "127.0.0.1"], [":scheme", "http"],
    ["content-type", "application/json"], ["authorization", "Bearer bench-key"], ["content-length", String(requestBody.length)],
    ["user-agent", "wrk"], ["x-request-id", "6f1c1f6e-9d1c-4f0e-8a57-2a3c0c6d7e11"]];
const responseHeaders = () => streamed
    ? [[":status", "200"], ["content-type", "text/event-stream"], ["transfer-encoding", "chunked"]]
    : [[":status", "200"], ["content-type", "application/json"], ["content-length", String(responseBody.length)]];
let maps = {}, buffers = {}, properties = new Map(), published = [];
let encoded = {};
const shared = new Map();
const metrics = [];
const calls = {};

const count = (name, fn) => (...a) => { calls[name] = (calls[name] || 0) + 1; return fn(...a); };
const env = {
    proxy_log: (level, ptr, len) => { if (level >= 3) console.error(str(ptr, len)); return 0; },
    proxy_get_buffer_bytes: (type, start, max, retPtr, retSize) => {
        const buf = type === 7 ? enc.encode(configJson) : buffers[type];
        if (!buf) return 1;
        return give(buf.subarray(start, start + Math.min(max >>> 0, buf.length)), retPtr, retSize);
    },
    proxy_set_buffer_bytes: (type, start, size, ptr, len) => { buffers[type] = bytes(ptr, len).slice(); return 0; },
    proxy_get_header_map_pairs: (type, retPtr, retSize) => give(encoded[type] || encodePairs(maps[type] || []), retPtr, retSize),
    proxy_set_header_map_pairs: (type, ptr, size) => { maps[type] = decodePairs(ptr, size); encoded[type] = null; return 0; },
    proxy_get_header_map_value: (type, kp, kl, retPtr, retSize) => {
        const k = str(kp, kl);
        const hit = (maps[type] || []).find(([n]) => n === k);
        return hit ? give(enc.encode(hit[1]), retPtr, retSize) : 1;
    },
    proxy_replace_header_map_value: (type, kp, kl, vp, vl) => {
        const k = str(kp, kl);
        maps[type] = (maps[type] || []).filter(([n]) => n !== k).concat([[k, str(vp, vl)]]);
        return 0;
    },
    proxy_add_header_map_value: (type, kp, kl, vp, vl) => { (maps[type] ||= []).push([str(kp, kl), str(vp, vl)]); return 0; },
    proxy_remove_header_map_value: (type, kp, kl) => { const k = str(kp, kl); maps[type] = (maps[type] || []).filter(([n]) => n !== k); return 0; },
    proxy_get_property: (pp, pl, retPtr, retSize) => { const v = properties.get(str(pp, pl)); return v ? give(v, retPtr, retSize) : 1; },
    // Kept as given: a filter never reads back what it published.
    proxy_set_property: (pp, pl, vp, vl) => { published.push(bytes(vp, vl).slice()); return 0; },
    proxy_get_current_time_nanoseconds: (retPtr) => { mem().setBigUint64(retPtr, process.hrtime.bigint() + 1_700_000_000_000_000_000n, true); return 0; },
    proxy_define_metric: (type, np, nl, retId) => { metrics.push(0n); mem().setUint32(retId, metrics.length - 1, true); return 0; },
    proxy_increment_metric: (id, by) => { metrics[id] += by; return 0; },
    proxy_record_metric: (id, v) => { metrics[id] = v; return 0; },
    proxy_get_shared_data: (kp, kl, retPtr, retSize, retCas) => {
        const hit = shared.get(str(kp, kl));
        if (!hit) return 1;
        mem().setUint32(retCas, hit.cas, true);
        return give(hit.value, retPtr, retSize);
    },
    proxy_set_shared_data: (kp, kl, vp, vl, cas) => {
        const k = str(kp, kl);
        const hit = shared.get(k);
        if (cas && hit && hit.cas !== cas) return 8;
        shared.set(k, { value: bytes(vp, vl).slice(), cas: (hit ? hit.cas : 0) + 1 });
        return 0;
    },
    proxy_send_local_response: () => { throw new Error("the filter refused the benchmark request"); },
    proxy_set_effective_context: () => 0,
    proxy_continue_stream: () => 0,
    proxy_close_stream: () => 0,
    proxy_done: () => 0,
    proxy_set_tick_period_milliseconds: () => 0,
    proxy_get_status: () => 1,
};
for (const name of Object.keys(env)) env[name] = count(name, env[name]);
const module = new WebAssembly.Module(fs.readFileSync(modulePath));
for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.module === "env" && !env[imp.name]) env[imp.name] = () => { throw new Error(`host call ${imp.name} is not in this host`); };
}
const wasi = {
    fd_write: (fd, iovs, n, written) => { mem().setUint32(written, 0, true); return 0; },
    environ_sizes_get: (count, size) => { mem().setUint32(count, 0, true); mem().setUint32(size, 0, true); return 0; },
    environ_get: () => 0,
    random_get: (ptr, len) => { for (let i = 0; i < len; i++) bytes(ptr, len)[i] = (i * 131 + 7) & 255; return 0; },
    proc_exit: (code) => { throw new Error(`proc_exit ${code}`); },
    clock_time_get: (id, precision, ret) => { mem().setBigUint64(ret, process.hrtime.bigint(), true); return 0; },
};
instance = new WebAssembly.Instance(module, { env, wasi_snapshot_preview1: wasi });
const x = instance.exports;
x._initialize?.();
x.proxy_on_context_create(1, 0);
if (!x.proxy_on_vm_start(1, 0)) throw new Error("vm start refused");
if (!x.proxy_on_configure(1, enc.encode(configJson).length)) throw new Error("configuration refused");

// Streamed answers arrive in two chunks, as the bench upstream sends them.
const cut = responseBody.indexOf("\n\n") + 2;
const chunks = streamed ? [responseBody.subarray(0, cut), responseBody.subarray(cut)] : [responseBody];

const encodedRequestHeaders = encodePairs(requestHeaders());
const encodedResponseHeaders = encodePairs(responseHeaders());
let nextContext = 2;
function request() {
    const ctx = nextContext++;
    maps = { 0: requestHeaders(), 2: responseHeaders() };
    encoded = { 0: encodedRequestHeaders, 2: encodedResponseHeaders };
    published = [];
    buffers = { 0: requestBody };
    properties = new Map();
    x.proxy_on_context_create(ctx, 1);
    x.proxy_on_request_headers(ctx, maps[0].length, 0);
    x.proxy_on_request_body(ctx, requestBody.length, 1);
    x.proxy_on_response_headers(ctx, maps[2].length, 0);
    chunks.forEach((chunk, i) => {
        buffers[1] = chunk;
        x.proxy_on_response_body(ctx, chunk.length, i === chunks.length - 1 ? 1 : 0);
    });
    x.proxy_on_log(ctx);
    x.proxy_on_done(ctx);
    x.proxy_on_delete(ctx);
}

for (let i = 0; i < 20000; i++) request(); // TurboFan has compiled everything; warm caches
for (const k of Object.keys(calls)) delete calls[k];
let session;
if (profile) {
    session = new Session();
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 50 });
    await session.post("Profiler.start");
}
// The fastest of 20 batches: other load on the machine only ever adds time.
const batches = 20, n = 5000;
let best = Infinity;
for (let b = 0; b < batches; b++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < n; i++) request();
    best = Math.min(best, Number(process.hrtime.bigint() - started) / n / 1000);
}
const perRequest = best;
console.log(`${modulePath}: ${perRequest.toFixed(2)} us per request (wasm and this host, fastest batch)`);
console.log("host calls per request: " + Object.entries(calls).map(([k, v]) => `${k.replace("proxy_", "")} ${v / (n * batches)}`).join(", "));
if (profile) {
    const { profile: p } = await session.post("Profiler.stop");
    const self = new Map();
    const dt = new Map();
    p.samples.forEach((id, i) => dt.set(id, (dt.get(id) || 0) + (p.timeDeltas[i] || 0)));
    let total = 0;
    for (const node of p.nodes) {
        const t = dt.get(node.id) || 0;
        total += t;
        const name = node.callFrame.functionName || node.callFrame.url || "(anonymous)";
        self.set(name, (self.get(name) || 0) + t);
    }
    const isWasm = (name) => /^(_ZN|_RN|wasm-function|dl|mem|__)/.test(name);
    const wasmTotal = [...self.entries()].filter(([name]) => isWasm(name)).reduce((a, [, t]) => a + t, 0);
    console.log(`in the module's own code: ${(100 * wasmTotal / total).toFixed(0)}% (${(perRequest * wasmTotal / total).toFixed(2)} us per request)`);
    const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 40);
    for (const [name, t] of rows) console.log(`${(100 * t / total).toFixed(1).padStart(5)}%  ${name.slice(0, 160)}`);
    // Inclusive time of the module's own functions (a name counted once per stack).
    const parent = new Map();
    for (const node of p.nodes) for (const c of node.children || []) parent.set(c, node);
    const byId = new Map(p.nodes.map((node) => [node.id, node]));
    const inclusive = new Map();
    for (const [id, t] of dt) {
        const seen = new Set();
        for (let node = byId.get(id); node; node = parent.get(node.id)) seen.add(node.callFrame.functionName);
        for (const name of seen) if (isWasm(name)) inclusive.set(name, (inclusive.get(name) || 0) + t);
    }
    console.log("--- inclusive");
    for (const [name, t] of [...inclusive.entries()].sort((a, b) => b[1] - a[1]).slice(0, 45))
        console.log(`${(100 * t / total).toFixed(1).padStart(5)}%  ${name.slice(0, 160)}`);
}
