//! The one definition of the command line. Help, the man page and shell
//! completions are all generated from it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::cmd;

#[derive(Debug, Parser)]
#[command(
    name = "sovereign",
    version,
    about = "A private AI server you can reach from anywhere and nobody else can",
    long_about = "sovereign turns one declarative file (sovereign.toml) into the whole deployment: \
                  the router's WireGuard and firewall, the peers' configs, the Ollama service and \
                  the clients' setup. Then it proves the result: statically, by evaluating the real \
                  firewall ruleset, and live, by probing from every vantage point.",
    after_help = "Examples:\n  \
        sovereign init --yes --endpoint vpn.example.com:51820\n  \
        sovereign plan\n  \
        sovereign peer add laptop\n  \
        sovereign router render --out ./router\n  \
        sovereign demo\n\n\
        Exit codes: 0 ok, 1 a check failed, 2 a usage or config error."
)]
pub struct Cli {
    /// The deployment file.
    #[arg(
        long,
        global = true,
        env = "SOVEREIGN_CONFIG",
        default_value = sovereign_model::DEFAULT_CONFIG_FILE,
        value_name = "PATH"
    )]
    pub config: PathBuf,

    /// Log what sovereign does to stderr: -v the steps, -vv every command, ssh call and
    /// HTTP request, -vvv everything (SOVEREIGN_LOG=info|debug|trace does the same).
    /// Keys are never logged.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Seconds to wait for the state lock while another sovereign command holds it
    /// (it says which); then give up with exit 2.
    #[arg(long, global = true, default_value_t = 30, value_name = "SECS")]
    pub lock_timeout: u64,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented sovereign.toml.
    Init(cmd::init::InitArgs),
    /// Validate or show the effective configuration.
    Config(cmd::config::ConfigArgs),
    /// Render everything in memory and show what would run where (offline).
    Plan(cmd::plan::PlanArgs),
    /// Render, apply, audit and inspect the router.
    Router(cmd::router::RouterArgs),
    /// Manage WireGuard peers: add, list, show, export, rotate, disable, enable, extend, rename, revoke, purge.
    Peer(cmd::peer::PeerArgs),
    /// Write sovereign.toml and the state directory (keys included) to one encrypted archive.
    Backup(cmd::backup::BackupArgs),
    /// Restore a `sovereign backup` archive, checked before anything is written.
    Restore(cmd::backup::RestoreArgs),
    /// Prove that a firewall ruleset enforces the intended reachability matrix.
    Verify(cmd::verify::VerifyArgs),
    /// Install and operate Ollama as a supervised service on the AI server.
    Server(cmd::server::ServerArgs),
    /// Check that an Ollama server speaks every API it should.
    Check(cmd::check::CheckArgs),
    /// Set up a client machine from a peer bundle.
    Client(cmd::client::ClientArgs),
    /// Name the broken layer between this machine and the AI server, and the fix.
    Doctor(cmd::doctor::DoctorArgs),
    /// Build the whole system in network namespaces on this Linux machine.
    Lab(cmd::lab::LabArgs),
    /// Bring the lab up, show the matrix and an API call through the tunnel, tear down.
    Demo(cmd::demo::DemoArgs),
    /// Print shell completions.
    #[command(
        after_help = "Examples:\n  sovereign completions bash > /etc/bash_completion.d/sovereign\n  sovereign completions zsh > \"${fpath[1]}/_sovereign\"\n  sovereign completions fish > ~/.config/fish/completions/sovereign.fish"
    )]
    Completions(cmd::docs::CompletionsArgs),
    /// Print the man page (roff), or write one page per command with --out DIR.
    Man(cmd::docs::ManArgs),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every flag and argument of every command says what it does in --help.
    #[test]
    fn every_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "sovereign", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }

    /// Every command that runs something shows an example in its --help.
    #[test]
    fn every_command_has_an_example() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let subs: Vec<&clap::Command> = command
                .get_subcommands()
                .filter(|s| !s.is_hide_set())
                .collect();
            if subs.is_empty() {
                let help = command
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if !help.contains("Example") {
                    missing.push(path.to_string());
                }
            }
            for sub in subs {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "sovereign", &mut missing);
        assert!(
            missing.is_empty(),
            "commands without an example: {missing:#?}"
        );
    }
}
