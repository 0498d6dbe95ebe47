//! `sovereign`: the command-line front end. Parsing arguments, formatting output and
//! wiring the libraries together; the logic lives in the `sovereign-*` crates.

mod cli;
mod cmd;
mod context;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::context::{Context, Outcome, UsageError};

fn main() -> ExitCode {
    restore_default_sigpipe();
    // Read before parsing: a command that fails still owes a `--json` caller JSON.
    let json = std::env::args().skip(1).any(|arg| arg == "--json");
    let cli = Cli::parse();
    init_logging(cli.verbose);
    sovereign_wg::set_lock_timeout(std::time::Duration::from_secs(cli.lock_timeout));
    let context = Context::new(cli.config.clone());
    let result = match cli.command {
        Command::Init(args) => cmd::init::run(&context, args),
        Command::Config(args) => cmd::config::run(&context, args),
        Command::Plan(args) => cmd::plan::run(&context, args),
        Command::Router(args) => cmd::router::run(&context, args),
        Command::Peer(args) => cmd::peer::run(&context, args),
        Command::Backup(args) => cmd::backup::backup(&context, args),
        Command::Restore(args) => cmd::backup::restore(&context, args),
        Command::Verify(args) => cmd::verify::run(&context, args),
        Command::Server(args) => cmd::server::run(&context, args),
        Command::Check(args) => cmd::check::run(&context, args),
        Command::Client(args) => cmd::client::run(&context, args),
        Command::Doctor(args) => cmd::doctor::run(&context, args),
        Command::Lab(args) => cmd::lab::run(&context, args),
        Command::Demo(args) => cmd::demo::run(&context, args),
        Command::Completions(args) => cmd::docs::completions(args),
        Command::Man(args) => cmd::docs::man(args),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::CheckFailed) => ExitCode::from(1),
        Err(error) => {
            if json {
                print_json_error(&error);
            }
            report(&error)
        }
    }
}

/// `{"ok": false, "errors": [...]}` on stdout for a `--json` command that failed:
/// config errors with the same fields the text shows (file, line, column, field,
/// message, hint); any other error as its message and causes.
fn print_json_error(error: &anyhow::Error) {
    let errors: Vec<serde_json::Value> = match error
        .chain()
        .find_map(|cause| cause.downcast_ref::<sovereign_model::ConfigErrors>())
    {
        Some(config) => config
            .0
            .iter()
            .map(|e| serde_json::to_value(e).expect("config errors serialise"))
            .collect(),
        None => vec![serde_json::json!({
            "message": error.to_string(),
            "causes": error.chain().skip(1).map(|c| c.to_string()).collect::<Vec<_>>(),
        })],
    };
    println!("{}", serde_json::json!({ "ok": false, "errors": errors }));
}

/// Print an error without a backtrace and choose the exit code: 2 for anything the
/// user can fix in their input, 1 for everything else.
fn report(error: &anyhow::Error) -> ExitCode {
    let usage = error
        .chain()
        .any(|cause| cause.is::<UsageError>() || cause.is::<sovereign_model::ConfigErrors>());
    let top = error.to_string();
    eprintln!("error: {top}");
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        // Library errors often repeat their source in their own message.
        if !top.contains(&cause) {
            eprintln!("  caused by: {cause}");
        }
    }
    ExitCode::from(if usage { 2 } else { 1 })
}

/// Logs go to stderr, so `--json` output on stdout stays clean. Warnings only by
/// default; each -v adds a level, and SOVEREIGN_LOG names one directly.
fn init_logging(verbose: u8) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::filter::LevelFilter;
    let from_env = std::env::var("SOVEREIGN_LOG")
        .ok()
        .and_then(|level| level.parse::<LevelFilter>().ok());
    let from_flags = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_timer(tracing_subscriber::fmt::time::Uptime::default())
        .with_max_level(from_env.map_or(from_flags, |level| level.max(from_flags)))
        .init();
}

/// Rust ignores SIGPIPE, so `sovereign verify --json | head` would panic inside
/// `println!`. Like other Unix tools, end quietly when the reader goes away.
fn restore_default_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a
    // valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
