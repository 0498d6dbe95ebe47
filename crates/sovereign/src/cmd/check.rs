//! `sovereign check`: does the AI service speak every API it should?

use std::time::Duration;

use sovereign_ollama::check::{self, CheckOptions};

use crate::context::{Context, Outcome, usage};
use crate::output::print_json;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sovereign check                                   # the server in sovereign.toml\n  \
    sovereign check --url http://192.168.250.20:11434 --model qwen2.5-coder:32b\n  \
    sovereign check --url 127.0.0.1:11434 --json")]
pub struct CheckArgs {
    /// The server to check [default: the server in sovereign.toml, else 127.0.0.1:11434].
    #[arg(long)]
    pub url: Option<String>,
    /// The model to generate with [default: the first local chat model the server lists, by the capabilities /api/show reports].
    #[arg(long)]
    pub model: Option<String>,
    /// Seconds one request may take, a cold model load included.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub request_timeout: u64,
    /// Seconds the whole run may take.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(context: &Context, args: CheckArgs) -> anyhow::Result<Outcome> {
    let url = match args.url {
        Some(url) => url,
        None if context.config_path().exists() => context.load()?.api_urls().ollama,
        None => format!("http://127.0.0.1:{}", sovereign_ollama::DEFAULT_PORT),
    };
    let url = sovereign_ollama::normalize_base_url(&url).map_err(|e| usage(e.to_string()))?;
    let options = CheckOptions {
        url,
        model: args.model,
        request_timeout: Duration::from_secs(args.request_timeout),
        overall_timeout: Duration::from_secs(args.timeout),
        ..CheckOptions::default()
    };
    let report = check::run(&options);
    if args.json {
        print_json(&report)?;
    } else {
        print!("{}", check::render_table(&report));
    }
    Ok(Outcome::from_passed(report.passed()))
}
