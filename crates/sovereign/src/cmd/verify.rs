//! `sovereign verify` (issue #7): prove statically that a firewall ruleset enforces the
//! intended reachability matrix.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use sovereign_model::RouterTarget;
use sovereign_verify::{Report, VerifyError};

use crate::context::{Context, Outcome, usage};
use crate::output::print_json;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sovereign verify --rendered\n  \
    ssh router nft -j list ruleset > ruleset.json && sovereign verify --ruleset ruleset.json\n  \
    sovereign verify --uci ./etc-config --html report.html\n\n\
    Exit codes: 0 the policy holds, 1 violated or unknown, 2 bad input.")]
pub struct VerifyArgs {
    /// An `nft -j list ruleset` document (`-` reads stdin).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["rendered", "uci"])]
    pub ruleset: Option<PathBuf>,
    /// Verify what sovereign renders for the target (the default when no input is given).
    #[arg(long, conflicts_with = "uci")]
    pub rendered: bool,
    /// An OpenWrt /etc/config directory holding `firewall` and `network`.
    #[arg(long, value_name = "DIR")]
    pub uci: Option<PathBuf>,
    /// Router target for --rendered (default: the deployment's router.target).
    #[arg(long, value_enum)]
    pub target: Option<TargetArg>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML report.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TargetArg {
    Openwrt,
    Linux,
}

pub fn run(context: &Context, args: VerifyArgs) -> anyhow::Result<Outcome> {
    let (deployment, _) = context.load_or_reference()?;
    let target = match args.target {
        Some(TargetArg::Openwrt) => RouterTarget::Openwrt,
        Some(TargetArg::Linux) => RouterTarget::Linux,
        None => deployment.router.target,
    };
    let report = if let Some(path) = &args.ruleset {
        let text = read_input(path)?;
        sovereign_verify::verify_nft_json(&deployment, &text)
            .map_err(|e| bad_input(&path.display().to_string(), e))?
    } else if let Some(dir) = &args.uci {
        let firewall_path = dir.join("firewall");
        let network_path = dir.join("network");
        let firewall = read_input(&firewall_path)?;
        let network = read_input(&network_path)?;
        sovereign_verify::verify_uci(&deployment, &firewall, &network)
            .map_err(|e| bad_input(&dir.display().to_string(), e))?
    } else {
        sovereign_verify::verify_rendered(&deployment, target).map_err(|e| usage(e.to_string()))?
    };
    if let Some(path) = &args.html {
        let provenance = provenance(context, &args);
        let html = sovereign_verify::render_html_with(&report, &deployment, &provenance);
        crate::cmd::init::write_atomically(path, &html)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let s = &report.summary;
    tracing::info!(
        "verified {}: {} cells, {} hold, {} violated, {} unknown, {} unenforceable; {} lint errors",
        report.input,
        s.cells,
        s.holding,
        s.violated,
        s.unknown,
        s.unenforceable,
        s.errors
    );
    print(&report, args.json)?;
    Ok(Outcome::from_passed(report.holds()))
}

/// When, by which sovereign and from which files (with their SHA-256) a report was
/// made, for the HTML page an audit keeps.
fn provenance(context: &Context, args: &VerifyArgs) -> sovereign_verify::Provenance {
    use sha2::Digest as _;
    let mut files: Vec<std::path::PathBuf> = vec![context.config_path().to_path_buf()];
    if let Some(path) = &args.ruleset {
        files.push(path.clone());
    }
    if let Some(dir) = &args.uci {
        files.extend([dir.join("firewall"), dir.join("network")]);
    }
    let inputs = files
        .into_iter()
        .filter_map(|path| {
            let bytes = std::fs::read(&path).ok()?;
            let digest = sha2::Sha256::digest(&bytes);
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            Some((path.display().to_string(), hex))
        })
        .collect();
    sovereign_verify::Provenance {
        generated: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        inputs,
    }
}

fn print(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(report);
    }
    let color = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    print!("{}", sovereign_verify::render_table(report, color));
    Ok(())
}

fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))
}

fn bad_input(what: &str, e: VerifyError) -> anyhow::Error {
    usage(format!("{what}: {e}"))
}
