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
    #[arg(long, default_value = "0.0.0.0")]
    address: String,
    #[arg(long, default_value_t = 10000)]
    port: u16,
    #[arg(long, default_value_t = 9901)]
    admin_port: u16,
    /// Where Envoy finds the .wasm modules (the compose file mounts them here).
    #[arg(long, default_value = "/etc/envoy/wasm")]
    wasm_dir: String,
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
    /// Render and run Envoy on 127.0.0.1 with the built modules (./build.sh);
    /// prints each model's URL. Ctrl-C stops it.
    Run {
        file: PathBuf,
        #[arg(long, default_value_t = 10000)]
        port: u16,
        #[arg(long, default_value_t = 9901)]
        admin_port: u16,
    },
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn envoy_binary() -> Option<PathBuf> {
    if let Ok(bin) = std::env::var("ENVOY_BIN") {
        return Some(PathBuf::from(bin));
    }
    let local = repo_root().join(".venv/bin/envoy");
    if local.exists() {
        return Some(local);
    }
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("envoy")).find(|p| p.exists()))
}

fn load(args: &RenderArgs) -> Result<(gateway::Gateway, String), String> {
    let text = std::fs::read_to_string(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let g = gateway::parse(&text).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let options = render::Options {
        address: args.address.clone(),
        port: args.port,
        admin_port: args.admin_port,
        wasm_dir: args.wasm_dir.clone(),
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
    let path = std::env::temp_dir().join(format!("aigw-validate-{}.yaml", std::process::id()));
    std::fs::write(&path, yaml).map_err(|e| e.to_string())?;
    let out = Command::new(envoy)
        .args(["--mode", "validate", "-c"])
        .arg(&path)
        .args(["--base-id", &(std::process::id() % 60000).to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&path);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("envoy --mode validate refused the rendered config:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

fn run(file: &Path, port: u16, admin_port: u16) -> Result<(), String> {
    let dist = repo_root().join("dist");
    if !dist.join("ai_proxy.wasm").exists() {
        return Err(format!("no modules in {}: run ./build.sh first", dist.display()));
    }
    let args = RenderArgs { file: file.to_path_buf(), address: "127.0.0.1".into(), port, admin_port, wasm_dir: dist.to_string_lossy().into_owned() };
    let (g, yaml) = load(&args)?;
    let envoy = envoy_binary().ok_or("Envoy not found: run scripts/setup-envoy.sh or set ENVOY_BIN")?;
    let config = repo_root().join(format!("target/aigw-{port}.envoy.yaml"));
    std::fs::create_dir_all(repo_root().join("target")).map_err(|e| e.to_string())?;
    std::fs::write(&config, yaml).map_err(|e| e.to_string())?;
    println!("gateway {} on http://127.0.0.1:{port} (config: {})", g.name, config.display());
    for m in &g.models {
        let (base, path) = render::endpoint(m);
        let body = match (m.prompt_type, m.anthropic_format) {
            (_, true) => r#"{"max_tokens":256,"messages":[{"role":"user","content":"Say hello"}]}"#,
            ("completions", _) => r#"{"prompt":"Say hello"}"#,
            ("embeddings", _) => r#"{"input":"hello"}"#,
            ("responses", _) => r#"{"input":"Say hello"}"#,
            _ => r#"{"messages":[{"role":"user","content":"Say hello"}]}"#,
        };
        println!("  {} ({} {}): curl http://127.0.0.1:{port}{path} -H 'content-type: application/json' -d '{body}'", m.identifier, m.provider, m.model.as_deref().unwrap_or(""));
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

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Render { args, output } => load(&args).and_then(|(_, yaml)| match output {
            Some(path) => std::fs::write(&path, yaml).map_err(|e| format!("{}: {e}", path.display())),
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
        Cmd::Run { file, port, admin_port } => run(&file, port, admin_port),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aigw: {e}");
            ExitCode::FAILURE
        }
    }
}
