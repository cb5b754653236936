//! ai-request-transformer: glue over `codec::transformer` (see
//! `host::transformer` for the proxy-wasm side, shared with the other
//! transformer).

host::proxy_wasm::main! {{
    host::transformer::register(codec::transformer::Side::Request);
}}
