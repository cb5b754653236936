//! aigw's logic, for its binary and for the end-to-end tests: the gateway
//! file (`gateway`) and its rendering to envoy.yaml (`render`).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod gateway;
pub mod render;
