//! The shipped envoy/*.yaml are renders of the gateway files beside them:
//! this fails when one was edited by hand or not rendered again.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // a test: failing loudly is its job

use ai_gateway_cli::{gateway, render};
use std::path::Path;

#[test]
fn shipped_envoy_configs_are_fresh_renders_of_their_gateway_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".gateway.yaml") else { continue };
        let text = std::fs::read_to_string(&path).unwrap();
        let g = gateway::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        // `aigw render --for docker`: what the compose file runs.
        let options = render::Options {
            address: "0.0.0.0".into(),
            port: 10000,
            admin_port: 9901,
            wasm_dir: "/etc/envoy/wasm".into(),
            source: name.clone(),
            notes: render::leading_comment(&text),
        };
        let rendered = render::render(&g, &options);
        let shipped = std::fs::read_to_string(dir.join(format!("{stem}.yaml"))).unwrap_or_default();
        assert!(shipped == rendered, "envoy/{stem}.yaml is not the render of envoy/{name}: run scripts/render-shipped.sh");
        checked.push(stem.to_string());
    }
    checked.sort();
    assert_eq!(checked, ["a2a", "chain", "envoy", "mcp", "ratelimit"]);
}
