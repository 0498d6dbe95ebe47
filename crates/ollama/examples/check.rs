//! Runs `sovereign check` logic from the command line before the binary wires it up:
//! `cargo run -p sovereign-ollama --example check -- [URL] [MODEL] [--json]`.

use std::process::ExitCode;

use sovereign_ollama::check::{self, CheckOptions};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    args.retain(|a| a != "--json");
    let mut options = CheckOptions::default();
    if let Some(url) = args.first() {
        options.url = url.clone();
    }
    options.model = args.get(1).cloned();
    let report = check::run(&options);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", check::render_table(&report));
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
