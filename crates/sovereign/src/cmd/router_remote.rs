//! `sovereign router apply|audit|status --ssh USER@HOST` (issue #10): the router
//! over the system ssh client, through `sovereign-remote`.

use std::path::PathBuf;

use anyhow::Context as _;
use sovereign_model::{Deployment, RouterTarget};
use sovereign_remote::status::RuleRole;
use sovereign_remote::{
    ApplyOptions, AuditReport, DriftChange, LinuxConfig, OpenwrtConfig, RouterConfig, SshTarget,
    SshTransport, StatusReport, Verification,
};
use sovereign_wg::KeyStore;

use crate::context::{Context, Outcome, usage};
use crate::output::{Table, print_json};

/// How to reach the router.
#[derive(Debug, Clone, clap::Args)]
pub struct SshArgs {
    /// The router as USER@HOST, or a Host alias from ~/.ssh/config. Host keys are always
    /// checked against known_hosts; keys come from ssh-agent or ~/.ssh/config.
    #[arg(long, value_name = "USER@HOST")]
    pub ssh: String,
    /// The router's ssh port (default: 22, or what ~/.ssh/config says).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// Log in with this private key only (ssh -i FILE -o IdentitiesOnly=yes).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Read this ssh client config instead of ~/.ssh/config (ssh -F FILE).
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Show the diff against the live config and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds until the router restores its previous config unless a fresh ssh
    /// session confirms the new one.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(10..=3600))]
    pub confirm_timeout: u32,
    /// Testing only: never confirm, so the armed rollback fires.
    #[arg(long, hide = true)]
    pub no_confirm: bool,
    /// Machine-readable report: the steps done, or the dry run's diff.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
    #[arg(long)]
    pub json: bool,
}

pub fn apply(context: &Context, args: ApplyArgs) -> anyhow::Result<Outcome> {
    let (_, config) = rendered_config(context, true)?;
    let transport = transport(&args.ssh)?;
    let options = ApplyOptions {
        confirm_timeout_secs: args.confirm_timeout,
        dry_run: args.dry_run,
        simulate_lost_connection: args.no_confirm,
    };
    let report = match sovereign_remote::apply(&transport, &config, &options) {
        Ok(report) => report,
        Err(sovereign_remote::ApplyError::Transport { source, .. }) => {
            return Err(anyhow::Error::new(source).context(format!(
                "cannot apply to {}; nothing was changed",
                transport_name(&args.ssh)
            )));
        }
        Err(error) => return Err(error.into()),
    };
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    if args.json {
        print_json(&report)?;
        return Ok(Outcome::Success);
    }
    if let Some(diff) = &report.diff {
        if diff.is_empty() {
            println!(
                "{}: the live config already matches sovereign.toml",
                report.router
            );
        } else {
            print!("{diff}");
            println!("(dry run: nothing was changed on {})", report.router);
        }
        return Ok(Outcome::Success);
    }
    for (index, step) in report.steps.iter().enumerate() {
        println!("{}. {}: {}", index + 1, step.step.describe(), step.detail);
    }
    println!(
        "{} now runs the config rendered from {}",
        report.router,
        context.config_path().display()
    );
    Ok(Outcome::Success)
}

pub fn audit(context: &Context, args: AuditArgs) -> anyhow::Result<Outcome> {
    let (deployment, config) = rendered_config(context, false)?;
    let transport = transport(&args.ssh)?;
    let verify = |ruleset: &serde_json::Value| -> Verification {
        match sovereign_verify::verify_nft_json(&deployment, &ruleset.to_string()) {
            Ok(report) => Verification {
                passed: report.holds(),
                summary: format!(
                    "{} of {} intent cells hold, {} violated, {} unknown, {} unenforceable",
                    report.summary.holding,
                    report.summary.cells,
                    report.summary.violated,
                    report.summary.unknown,
                    report.summary.unenforceable
                ),
                report: serde_json::to_value(&report).unwrap_or_default(),
            },
            Err(error) => Verification {
                passed: false,
                summary: format!("the live ruleset could not be verified: {error}"),
                report: serde_json::Value::Null,
            },
        }
    };
    let report = sovereign_remote::audit(&transport, &deployment, &config, Some(&verify))
        .with_context(|| format!("cannot audit {}", transport_name(&args.ssh)))?;
    if args.json {
        print_json(&report)?;
    } else {
        print!("{}", audit_text(&report));
    }
    Ok(Outcome::from_passed(report.passed()))
}

pub fn status(context: &Context, args: StatusArgs) -> anyhow::Result<Outcome> {
    let deployment = context.load()?;
    let transport = transport(&args.ssh)?;
    let report = sovereign_remote::status(&transport, &deployment)
        .with_context(|| format!("cannot read the status of {}", transport_name(&args.ssh)))?;
    if args.json {
        print_json(&report)?;
    } else {
        print!("{}", status_text(&report));
    }
    Ok(Outcome::Success)
}

/// The ssh transport the flags describe; a named file that is not there is a usage
/// error here rather than an ssh failure later.
pub(crate) fn transport(ssh: &SshArgs) -> anyhow::Result<SshTransport> {
    let mut target = SshTarget::new(ssh.ssh.clone()).with_port(ssh.port);
    for (flag, file) in [
        ("--identity", &ssh.identity),
        ("--ssh-config", &ssh.ssh_config),
    ] {
        if let Some(file) = file
            && !file.is_file()
        {
            return Err(usage(format!(
                "{flag} {}: no such file; name the private key (or ssh config) to use",
                file.display()
            )));
        }
    }
    if let Some(config) = &ssh.ssh_config {
        target
            .extra_args
            .extend(["-F".to_string(), config.display().to_string()]);
    }
    if let Some(identity) = &ssh.identity {
        target.extra_args.extend([
            "-i".to_string(),
            identity.display().to_string(),
            "-o".to_string(),
            "IdentitiesOnly=yes".to_string(),
        ]);
    }
    Ok(SshTransport::new(target))
}

fn transport_name(ssh: &SshArgs) -> String {
    match ssh.port {
        Some(port) => format!("{} (port {port})", ssh.ssh),
        None => ssh.ssh.clone(),
    }
}

/// The deployment and the router config rendered from it and the keys in the state
/// dir, both read under the shared lock, so a concurrent `peer add` or `revoke` is
/// never seen half done. Only apply may generate the router key (on first use).
fn rendered_config(
    context: &Context,
    may_create_router_key: bool,
) -> anyhow::Result<(Deployment, RouterConfig)> {
    let (deployment, secrets) = if may_create_router_key {
        super::read_deployment_and_router_secrets(context)?
    } else {
        let store = KeyStore::open(context.state_dir())?;
        let _shared = store.lock_shared()?;
        if store.router_private_key()?.is_none() {
            return Err(usage(format!(
                "{} holds no router key yet, so nothing can have been applied from this file; run \
                 `sovereign router apply --ssh USER@HOST` first",
                context.state_dir().display()
            )));
        }
        let deployment = context.load()?;
        let secrets = store.router_secrets(&deployment)?;
        // As `router render` sees it: expired peers are not expected on the router.
        (deployment.as_of(std::time::SystemTime::now()), secrets)
    };
    let deployment = &deployment;
    let target = deployment.router.target;
    let rendering =
        sovereign_router::render(deployment, &secrets, target).map_err(|e| usage(e.to_string()))?;
    let file = |path: &str| -> anyhow::Result<String> {
        rendering
            .file(path)
            .map(|f| f.contents.clone())
            .with_context(|| format!("the {target} rendering has no {path}"))
    };
    let wg_interface = deployment.wireguard.interface.clone();
    let config = match target {
        RouterTarget::Linux => RouterConfig::Linux(LinuxConfig {
            nft_ruleset: file("nftables.nft")?,
            wg_config: file(&format!("{wg_interface}.conf"))?,
            wg_interface,
        }),
        RouterTarget::Openwrt => RouterConfig::Openwrt(OpenwrtConfig {
            uci_batch: file("sovereign.uci")?,
            wire_script: file(sovereign_router::openwrt_wire::WIRE_SCRIPT)?,
            wg_interface,
            // Proxy ARP for dedicated-port isolation; shared isolation renders none,
            // and then apply removes the router's copy.
            sysctl_conf: rendering
                .file("etc/sysctl.d/90-sovereign.conf")
                .map(|f| f.contents.clone()),
        }),
    };
    Ok((deployment.clone(), config))
}

fn audit_text(report: &AuditReport) -> String {
    let mut out = String::new();
    if report.drift.is_empty() {
        out.push_str(&format!(
            "{}: no drift from sovereign.toml\n",
            report.router
        ));
    } else {
        out.push_str(&format!(
            "{}: {} differences from sovereign.toml\n",
            report.router,
            report.drift.len()
        ));
        let mut table = Table::new(["WHAT", "CHANGE", "KEY", "DETAIL"]);
        for drift in &report.drift {
            let what = serde_json::to_value(drift.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let change = match drift.change {
                DriftChange::Missing => "missing",
                DriftChange::Extra => "extra",
                DriftChange::Changed => "changed",
            };
            let key = match &drift.name {
                Some(name) => format!("{name} ({})", drift.key),
                None => drift.key.clone(),
            };
            table.row([what, change.to_string(), key, drift.detail.clone()]);
        }
        out.push_str(&table.render());
    }
    match &report.verification {
        Some(v) => out.push_str(&format!(
            "verification of the live ruleset: {} ({})\n",
            if v.passed { "holds" } else { "FAILS" },
            v.summary
        )),
        None => out.push_str("verification: unavailable\n"),
    }
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

fn status_text(report: &StatusReport) -> String {
    let mut out = format!(
        "{}: {} {}\n",
        report.router,
        report.interface,
        match (report.interface_up, report.listen_port) {
            (false, _) => "does not exist".to_string(),
            (true, Some(port)) => format!("listening on UDP {port}"),
            (true, None) => "up".to_string(),
        }
    );
    let mut peers = Table::new([
        "PEER",
        "LAST HANDSHAKE",
        "ENDPOINT",
        "RX",
        "TX",
        "PUBLIC KEY",
    ]);
    for peer in &report.peers {
        peers.row([
            peer.name.clone().unwrap_or_else(|| "(unknown)".into()),
            match peer.handshake_age_secs {
                Some(age) => format!("{} ago", age_text(age)),
                None => "never".into(),
            },
            peer.endpoint.clone().unwrap_or_else(|| "-".into()),
            bytes_text(peer.rx_bytes),
            bytes_text(peer.tx_bytes),
            peer.public_key.clone(),
        ]);
    }
    out.push_str(&peers.render());
    let mut counters = Table::new(["RULE", "FOR", "PACKETS", "BYTES", "CHAIN"]);
    for counter in &report.counters {
        counters.row([
            counter.comment.clone(),
            match counter.role {
                RuleRole::Api => "api".to_string(),
                RuleRole::Wireguard => "wireguard".to_string(),
            },
            counter.packets.map_or("-".into(), |p| p.to_string()),
            counter.bytes.map_or("-".into(), bytes_text),
            counter.chain.clone(),
        ]);
    }
    out.push('\n');
    out.push_str(&counters.render());
    out
}

fn age_text(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
