//! The docs pages against the code: every filter module (`filters/*` built
//! as a `cdylib`) has `docs/<crate>.md`, and that page's field tables name
//! every configuration field its strict parser accepts. The field names are
//! not kept by hand: each parser is fed a configuration with an unknown key
//! at every object level, and serde's `deny_unknown_fields` error lists the
//! fields that level takes ("unknown field `x`, expected one of `a`, `b`").
//! A last test checks that the relative links between the pages resolve.
//!
//! Native only: it reads the repository's files.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use codec::config::ConfigError;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Secrets resolve to a dummy value: the probes are about field names.
fn env(_: &str) -> Option<String> {
    Some("v".into())
}

type Parser = fn(&[u8]) -> Result<(), ConfigError>;

/// One filter: its crate, its parser, a minimal configuration it accepts,
/// and the object levels to probe. A level is a path into the
/// configuration (`targets[]` is the first element of `targets`); its
/// fields must be named on the filter's page, unless the level is
/// ai-proxy's own shape, given as `Some(<ai-proxy level>)`: then its fields
/// must be exactly ai-proxy's there, and the page must link to ai-proxy.md.
struct Filter {
    krate: &'static str,
    parse: Parser,
    base: fn() -> Value,
    levels: &'static [(&'static str, Option<&'static str>)],
}

const AI_PROXY_LEVELS: &[(&str, Option<&str>)] = &[
    ("", None),
    ("auth", None),
    ("model", None),
    ("model.options", None),
    ("model.options.gemini", None),
    ("model.options.bedrock", None),
    ("logging", None),
];

const TRANSFORMER_LEVELS: &[(&str, Option<&str>)] = &[("", None), ("llm", Some(""))];

fn filters() -> Vec<Filter> {
    vec![
        Filter {
            krate: "ai-proxy",
            parse: |b| codec::proxy::config::ProxyConfig::from_json(b, &env).map(drop),
            base: || json!({"model": {"provider": "openai"}}),
            levels: AI_PROXY_LEVELS,
        },
        Filter {
            krate: "ai-proxy-advanced",
            parse: |b| codec::balancer::AdvancedConfig::from_json(b, &env).map(drop),
            base: || json!({"targets": [{"model": {"provider": "openai"}}]}),
            levels: &[
                ("", None),
                ("balancer", None),
                ("targets[]", None),
                ("targets[].auth", Some("auth")),
                ("targets[].model", Some("model")),
                ("targets[].model.options", Some("model.options")),
                ("targets[].logging", Some("logging")),
            ],
        },
        Filter {
            krate: "ai-prompt-guard",
            parse: |b| codec::guard::Guard::from_json(b).map(drop),
            base: || json!({"deny_patterns": ["x"]}),
            levels: &[("", None)],
        },
        Filter {
            krate: "ai-prompt-decorator",
            parse: |b| codec::decorator::Decorator::from_json(b).map(drop),
            base: || json!({"prompts": {"prepend": [{"role": "system", "content": "s"}]}}),
            levels: &[("", None), ("prompts", None), ("prompts.prepend[]", None), ("prompts.append[]", None)],
        },
        Filter {
            krate: "ai-prompt-template",
            parse: |b| codec::template::Templates::from_json(b).map(drop),
            base: || json!({"templates": [{"name": "t", "template": "{\"messages\":[]}"}]}),
            levels: &[("", None), ("templates[]", None)],
        },
        Filter {
            krate: "ai-token-ratelimit",
            parse: |b| codec::ratelimit::RateLimitConfig::from_json(b).map(drop),
            base: || json!({"policies": [{"name": "p", "limits": [{"limit": 1, "window_size": 60}]}]}),
            levels: &[
                ("", None),
                ("policies[]", None),
                ("policies[].match", None),
                ("policies[].match.header", None),
                ("policies[].limits[]", None),
            ],
        },
        Filter {
            krate: "ai-mcp-proxy",
            parse: |b| codec::mcp::config::McpConfig::from_json(b).map(drop),
            base: || json!({"mode": "conversion-listener", "default_acl": [{}], "server": {},
                "tools": [{"name": "t", "description": "d", "path": "/x", "acl": {}, "annotations": {},
                           "parameters": [{"name": "p", "in": "query"}], "request_body": {"content": {}}}]}),
            levels: &[
                ("", None),
                ("default_acl[]", None),
                ("tools[]", None),
                ("tools[].acl", None),
                ("tools[].parameters[]", None),
                ("tools[].request_body", None),
                ("tools[].annotations", None),
                ("server", None),
                ("logging", None),
            ],
        },
        Filter {
            krate: "ai-a2a-proxy",
            parse: |b| codec::a2a::config::A2aConfig::from_json(b).map(drop),
            base: || json!({"default_acl": [{"scope": "methods"}], "logging": {},
                "methods": [{"name": "message/send", "acl": {}}], "skills": [{"id": "s", "acl": {}}]}),
            levels: &[
                ("", None),
                ("logging", None),
                ("default_acl[]", None),
                ("methods[]", None),
                ("methods[].acl", None),
                ("skills[]", None),
                ("skills[].acl", None),
            ],
        },
        Filter {
            krate: "ai-request-transformer",
            parse: |b| codec::transformer::TransformerConfig::from_json(codec::transformer::Side::Request, b, &env).map(drop),
            base: || json!({"prompt": "p", "llm_cluster": "c", "llm": {"model": {"provider": "openai"}}}),
            levels: TRANSFORMER_LEVELS,
        },
        Filter {
            krate: "ai-response-transformer",
            parse: |b| codec::transformer::TransformerConfig::from_json(codec::transformer::Side::Response, b, &env).map(drop),
            base: || json!({"prompt": "p", "llm_cluster": "c", "llm": {"model": {"provider": "openai"}}}),
            levels: TRANSFORMER_LEVELS,
        },
    ]
}

const PROBE: &str = "zz_docs_probe";

/// The fields `parse` takes at `level`: `base` with an unknown key put
/// there, and the names serde's error says it expected.
fn fields_at(parse: Parser, base: &Value, level: &str) -> Vec<String> {
    let mut config = base.clone();
    let mut at = &mut config;
    let mut expected_path = String::new();
    for segment in level.split('.').filter(|s| !s.is_empty()) {
        let (key, element) = match segment.strip_suffix("[]") {
            Some(key) => (key, true),
            None => (segment, false),
        };
        let object = at.as_object_mut().unwrap_or_else(|| panic!("{level}: {key} is not under an object"));
        at = object.entry(key).or_insert_with(|| if element { json!([{}]) } else { json!({}) });
        expected_path.push_str(&format!("{}{key}", if expected_path.is_empty() { "" } else { "." }));
        if element {
            if at.as_array().is_none_or(Vec::is_empty) {
                *at = json!([{}]);
            }
            at = &mut at[0];
            expected_path.push_str("[0]");
        }
    }
    at.as_object_mut().unwrap_or_else(|| panic!("{level} is not an object")).insert(PROBE.into(), json!(0));
    expected_path.push_str(&format!("{}{PROBE}", if expected_path.is_empty() { "" } else { "." }));

    let err = match parse(config.to_string().as_bytes()) {
        Ok(()) => panic!("{level}: the parser accepted an unknown key: {config}"),
        Err(err) => err,
    };
    // The probe must have been refused where it was put, not elsewhere.
    assert_eq!(err.path, expected_path, "{level}: {err}");
    let expected = err.message.split_once(", expected ").map(|(_, rest)| rest).unwrap_or_else(|| panic!("{level}: {err}"));
    let names: Vec<String> = expected.split('`').skip(1).step_by(2).map(str::to_string).collect();
    assert!(!names.is_empty(), "{level}: no field names in {err}");
    names
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The filter crates: every `filters/*/Cargo.toml` built as a cdylib, as
/// build.sh and test.sh find them.
fn filter_crates() -> BTreeSet<String> {
    let mut crates = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("filters")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        if manifest.exists() && read(&manifest).contains(r#"crate-type = ["cdylib"]"#) {
            crates.insert(manifest.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    crates
}

/// The names a page's field tables give (tables whose first heading is
/// `field`): every backticked span of a row's first cell, and each segment
/// of a dotted one (`policies[].limits[].limit` names `policies`, `limits`
/// and `limit`).
fn table_names(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_field_table = false;
    let mut previous_was_row = false;
    for line in page.lines().map(str::trim) {
        let is_row = line.starts_with('|');
        let first_cell = line.trim_start_matches('|').split('|').next().unwrap_or_default().trim();
        if is_row && !previous_was_row {
            in_field_table = first_cell.starts_with("field");
        }
        previous_was_row = is_row;
        if !is_row || !in_field_table {
            continue;
        }
        for span in first_cell.split('`').skip(1).step_by(2) {
            names.insert(span.to_string());
            names.extend(span.split('.').map(|segment| segment.trim_end_matches("[]").to_string()));
        }
    }
    names
}

#[test]
fn every_filter_has_a_page_naming_every_config_field() {
    let filters = filters();
    let listed: BTreeSet<String> = filters.iter().map(|f| f.krate.to_string()).collect();
    assert_eq!(listed, filter_crates(), "the filters this test knows are not the filters/*/ cdylib crates: add the new one to `filters()`");
    let proxy = filters.iter().find(|f| f.krate == "ai-proxy").unwrap();

    let mut missing = Vec::new();
    for filter in &filters {
        let page_path = repo().join("docs").join(format!("{}.md", filter.krate));
        assert!(page_path.exists(), "{} has no docs page: {}", filter.krate, page_path.display());
        let page = read(&page_path);
        let named = table_names(&page);
        let base = (filter.base)();
        assert!((filter.parse)(base.to_string().as_bytes()).is_ok(), "{}: the base configuration is refused: {base}", filter.krate);
        for &(level, as_proxy) in filter.levels {
            let fields = fields_at(filter.parse, &base, level);
            if let Some(proxy_level) = as_proxy {
                let proxy_fields = fields_at(proxy.parse, &(proxy.base)(), proxy_level);
                assert_eq!(fields, proxy_fields, "{}: `{level}` is documented as ai-proxy's `{proxy_level}`", filter.krate);
                assert!(page.contains("ai-proxy.md"), "{}: `{level}` is ai-proxy's shape, but the page does not link ai-proxy.md", filter.krate);
                continue;
            }
            for field in fields {
                if !named.contains(&field) {
                    let at = if level.is_empty() { field.clone() } else { format!("{level}.{field}") };
                    missing.push(format!("docs/{}.md: `{at}`", filter.krate));
                }
            }
        }
    }
    assert!(missing.is_empty(), "config fields no field table names (a table headed `field`, first column, in backticks):\n{}", missing.join("\n"));
}

/// GitHub's heading anchors: lower case, punctuation but `-` and `_`
/// dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(page: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.insert(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// Relative links `](target)` outside code blocks.
fn links(page: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        for rest in line.split("](").skip(1) {
            let target = rest.split(')').next().unwrap_or_default();
            if !target.contains("://") && !target.starts_with("mailto:") {
                out.push(target.to_string());
            }
        }
    }
    out
}

#[test]
fn links_between_the_pages_resolve() {
    let mut pages = vec![repo().join("README.md")];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let index = read(&repo().join("docs/README.md"));
    let mut broken = Vec::new();
    for page_path in &pages {
        let page = read(page_path);
        let dir = page_path.parent().unwrap();
        let name = page_path.strip_prefix(repo()).unwrap_or(page_path).display().to_string();
        if page_path.parent().is_some_and(|d| d.ends_with("docs")) && !name.ends_with("docs/README.md") {
            let file = page_path.file_name().unwrap().to_string_lossy().into_owned();
            if !index.contains(&format!("]({file})")) {
                broken.push(format!("{name}: not linked from docs/README.md"));
            }
        }
        for link in links(&page) {
            let (file, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() { page_path.clone() } else { dir.join(file) };
            if !target.exists() {
                broken.push(format!("{name}: {link}: no such file"));
            } else if !fragment.is_empty() && target.extension().is_some_and(|e| e == "md") && !anchors(&read(&target)).contains(fragment) {
                broken.push(format!("{name}: {link}: no such heading"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
