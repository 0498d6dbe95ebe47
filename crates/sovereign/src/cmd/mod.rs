//! One module per top-level subcommand. Each owns its clap arguments and its `run`.

pub mod check;
pub mod client;
pub mod config;
pub mod demo;
pub mod docs;
pub mod init;
pub mod lab;
pub mod peer;
pub mod plan;
pub mod router;
pub mod server;
pub mod verify;

/// Arguments of a command whose implementation has not landed yet.
#[derive(Debug, clap::Args)]
pub struct NotBuiltArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

/// A command that is not built yet says so plainly and exits 2.
pub fn not_built(command: &str, issue: u32) -> anyhow::Result<crate::context::Outcome> {
    Err(crate::context::usage(format!(
        "`sovereign {command}` is not built yet (tracked in issue #{issue})"
    )))
}
