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
    #[command(
        after_help = "Examples:\n  sovereign config validate\n  sovereign config validate --json | jq .ok   # false, with errors[], when invalid"
    )]
    Validate {
        /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
        #[arg(long)]
        json: bool,
    },
    /// Print the effective configuration, defaults included.
    #[command(
        after_help = "Examples:\n  sovereign config show\n  sovereign config show --json | jq .server"
    )]
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
    /// Problems of the state directory: orphaned or missing key files, peers
    /// whose block was deleted by hand.
    state: Vec<sovereign_wg::StoreFinding>,
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
                state: state_findings(context, &deployment)?,
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
                for finding in &report.state {
                    println!("warning: {}: {}", finding.path, finding.message);
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

/// The state directory's findings; the same checks (file modes included) as every
/// command that opens it, so a readable key fails here with the same message.
fn state_findings(
    context: &Context,
    deployment: &sovereign_model::Deployment,
) -> anyhow::Result<Vec<sovereign_wg::StoreFinding>> {
    let store = sovereign_wg::KeyStore::open(context.state_dir()).map_err(store_error)?;
    store.audit(deployment).map_err(store_error)
}

fn store_error(error: sovereign_wg::StoreError) -> anyhow::Error {
    if error.is_usage() {
        crate::context::usage(error.to_string())
    } else {
        anyhow::Error::new(error)
    }
}
