use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ollama_emulator::{DEFAULT_MODEL, DEFAULT_VERSION, Emulator, EmulatorConfig, ModelKind};

/// TEST DOUBLE: an Ollama API emulator. It is not Ollama and runs no model.
///
/// It speaks Ollama's native (/api/*), OpenAI-compatible (/v1/*) and
/// Anthropic-compatible (/v1/messages) wire formats as the claimed version has them
/// (profiles below), with Ollama's status codes,
/// error bodies, NDJSON/SSE streaming and CORS rules, backed by a deterministic toy
/// model: the same request gives the same tokens; when tools are offered and the
/// last message is the user's, it calls the tool named in that message (else the
/// first tool) with arguments built from the tool's schema; JSON mode emits valid
/// JSON; models that think by default (qwen3, gpt-oss, deepseek-r1, *think*) spend
/// tokens on thinking unless told think:false / reasoning_effort "none".
/// Model kinds come from the name (*embed* embedding-only, llava/*vision* vision,
/// *-cloud cloud, llama2/gemma2/*notools* no tools) or NAME=cap+cap.
/// Use it for tests, CI and the lab, never as a server.
///
/// The first line on stdout is `listening on ADDR` once the socket is bound.
#[derive(Parser, Debug)]
#[command(
    name = "ollama-emulator",
    disable_version_flag = true,
    verbatim_doc_comment,
    after_help = ollama_emulator::profiles_help()
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:11434")]
    listen: String,
    /// Ollama version to claim; it selects the wire-format profile (listed below).
    #[arg(long = "version", visible_aliases = ["ollama-version", "version-profile"], default_value = DEFAULT_VERSION)]
    ollama_version: String,
    /// Installed models, comma-separated; NAME=cap+cap sets capabilities
    /// (completion, tools, insert, vision, thinking, embedding, cloud).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_MODEL)]
    models: Vec<String>,
    /// Milliseconds before each generated token.
    #[arg(long, default_value_t = 0)]
    token_delay_ms: u64,
    /// Extra allowed CORS origins, comma-separated (like OLLAMA_ORIGINS; `*` allows all).
    #[arg(long, value_delimiter = ',')]
    origins: Vec<String>,
    /// Context length reported for loaded models.
    #[arg(long, default_value_t = 65_536)]
    context_length: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    for spec in &args.models {
        if let Err(e) = ModelKind::parse_spec(spec) {
            eprintln!("ollama-emulator: --models: {e}");
            return ExitCode::from(2);
        }
    }
    let config = EmulatorConfig {
        version: args.ollama_version,
        models: args
            .models
            .into_iter()
            .filter(|m| !m.trim().is_empty())
            .collect(),
        token_delay: Duration::from_millis(args.token_delay_ms),
        extra_origins: args.origins,
        context_length: args.context_length,
    };
    let emulator = match Emulator::start(args.listen.as_str(), config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ollama-emulator: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {}", emulator.local_addr());
    let _ = stdout.flush();
    emulator.wait();
    ExitCode::SUCCESS
}
