//! The codec crate: wire types, configuration and pure translation shared
//! by every ai-gateway filter. Nothing here knows about proxy-wasm, so all
//! of it runs under `cargo test` natively and compiled to wasm32.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod a2a;
pub mod acl;
pub mod balancer;
pub mod config;
pub mod decorator;
pub mod digest;
pub mod error;
pub mod guard;
pub mod headers;
pub mod json_edit;
pub mod jsonrpc;
pub mod mcp;
pub mod metrics;
pub mod openai;
pub mod patterns;
pub mod proxy;
pub mod ratelimit;
pub mod sse;
pub mod store;
pub mod template;
pub mod transformer;
pub mod usage;

pub use error::{ErrorKind, GatewayError};
