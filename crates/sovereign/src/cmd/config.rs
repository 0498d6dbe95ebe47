//! `sovereign config validate | show`.

use crate::context::{Context, Outcome};
use crate::output::print_json;

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Check the file; errors name the file, line and field. Exit 2 when invalid.
    Validate {
        /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
        #[arg(long)]
        json: bool,
    },
    /// Print the effective configuration, defaults included.
    Show {
        /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
        #[arg(long)]
        json: bool,
    },
}

#[derive(serde::Serialize)]
struct Validation {
    file: String,
    valid: bool,
    active_peers: usize,
    warnings: Vec<sovereign_model::Warning>,
}

pub fn run(context: &Context, args: ConfigArgs) -> anyhow::Result<Outcome> {
    let deployment = context.load()?;
    match args.command {
        ConfigCommand::Validate { json } => {
            let report = Validation {
                file: context.config_path().display().to_string(),
                valid: true,
                active_peers: deployment.active_peers().count(),
                warnings: sovereign_model::warnings(&deployment),
            };
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "{}: valid ({} active peers)",
                    report.file, report.active_peers
                );
                for warning in &report.warnings {
                    println!("warning: {}: {}", warning.field, warning.message);
                }
            }
        }
        ConfigCommand::Show { json } => {
            if json {
                print_json(&deployment)?;
            } else {
                print!("{}", toml::to_string_pretty(&deployment)?);
            }
        }
    }
    Ok(Outcome::Success)
}
