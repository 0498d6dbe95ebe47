//! `sovereign router`: render the router configuration (issue #3); apply, audit
//! and status over ssh (issue #10, in router_remote.rs).

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;
use sovereign_model::RouterTarget;
use sovereign_router::{Rendering, render};
use sovereign_wg::{PeerRegistry, RouterSecrets};

use super::peer::{print_next, registry_error};

use crate::context::{Context, Outcome, usage};
use crate::output::{Table, print_json};

#[path = "router_remote.rs"]
pub(crate) mod remote;

#[derive(Debug, clap::Args)]
pub struct RouterArgs {
    #[command(subcommand)]
    pub command: RouterCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RouterCommand {
    /// Render the router's configuration files from sovereign.toml and the state directory.
    #[command(
        after_help = "Examples:\n  sovereign router render                      # print every file, keys hidden\n  sovereign router render --out router/        # write them (0600 for key files)\n  sovereign router render --target linux --json"
    )]
    Render(RenderArgs),
    /// Upload, validate and apply the rendered configuration over ssh, with automatic rollback.
    #[command(
        after_help = "Examples:\n  sovereign router apply --ssh root@192.168.250.1 --dry-run   # the diff, nothing changed\n  sovereign router apply --ssh root@192.168.250.1"
    )]
    Apply(remote::ApplyArgs),
    /// Report drift between the live router and sovereign.toml, and verify its live ruleset.
    #[command(
        after_help = "Examples:\n  sovereign router audit --ssh root@192.168.250.1\n  sovereign router audit --ssh root@192.168.250.1 --json | jq .drift"
    )]
    Audit(remote::AuditArgs),
    /// Show each peer's last handshake and traffic, and the API and WireGuard rule counters.
    #[command(
        after_help = "Examples:\n  sovereign router status --ssh root@192.168.250.1\n  sovereign router status --ssh openwrt --json   # a host from ~/.ssh/config"
    )]
    Status(remote::StatusArgs),
    /// Replace the router's WireGuard key pair (after a loss or a compromise); every peer needs its new config.
    #[command(
        after_help = "Examples:\n  sovereign router rekey          # explains what it would do\n  sovereign router rekey --yes    # then: router apply, and peer export for each peer"
    )]
    Rekey(RekeyArgs),
}

#[derive(Debug, clap::Args)]
pub struct RekeyArgs {
    /// Replace an existing key, cutting off every peer until it imports its new config.
    #[arg(long)]
    pub yes: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The router kind; default: router.target in sovereign.toml.
    #[arg(long, value_enum)]
    pub target: Option<TargetArg>,
    /// Write the files into DIR (created 0700 when it will hold keys) instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Print private and preshared keys instead of placeholders (printing only; --out always writes them).
    #[arg(long)]
    pub show_secrets: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TargetArg {
    Openwrt,
    Linux,
}

pub fn run(context: &Context, args: RouterArgs) -> anyhow::Result<Outcome> {
    match args.command {
        RouterCommand::Render(args) => render_command(context, args),
        RouterCommand::Apply(args) => remote::apply(context, args),
        RouterCommand::Audit(args) => remote::audit(context, args),
        RouterCommand::Status(args) => remote::status(context, args),
        RouterCommand::Rekey(args) => rekey(context, args),
    }
}

fn render_command(context: &Context, args: RenderArgs) -> anyhow::Result<Outcome> {
    let (d, secrets) = read_deployment_and_router_secrets(context)?;
    let target = match args.target {
        Some(TargetArg::Openwrt) => RouterTarget::Openwrt,
        Some(TargetArg::Linux) => RouterTarget::Linux,
        None => d.router.target,
    };
    tracing::info!(
        "read {} ({} peers) and the router's keys",
        context.config_path().display(),
        d.peers.len()
    );
    let rendering = render(&d, &secrets, target)
        .map_err(|e| usage(format!("{}: {e}", context.config_path().display())))?;
    for file in &rendering.files {
        tracing::info!(
            "rendered {} for {target}: {} bytes{}",
            file.path,
            file.contents.len(),
            if file.secret { ", holds keys" } else { "" }
        );
    }
    match &args.out {
        Some(dir) => {
            let written = write_files(dir, &rendering)?;
            report_written(dir, &rendering, &written, args.json)?;
        }
        None => print_rendering(&rendering, &secrets, args.show_secrets, args.json)?,
    }
    Ok(Outcome::Success)
}

fn rekey(context: &Context, args: RekeyArgs) -> anyhow::Result<Outcome> {
    let registry = PeerRegistry::open(context.config_path()).map_err(registry_error)?;
    let impact = registry.router_rekey_impact().map_err(registry_error)?;
    if (impact.replaces_key || !impact.peers.is_empty()) && !args.yes {
        let peers = if impact.peers.is_empty() {
            "no peer yet".to_string()
        } else {
            format!("peers {}", impact.peers.join(", "))
        };
        return Err(usage(format!(
            "this replaces the router's WireGuard key: the router ignores the old one after the next \
             `sovereign router apply`, and {peers} stop working until each imports its new config; \
             pass --yes to go ahead"
        )));
    }
    let done = registry.rekey_router().map_err(registry_error)?;
    if args.json {
        print_json(&done)?;
        return Ok(Outcome::Success);
    }
    println!(
        "new router public key: {}",
        done.public_key.as_deref().unwrap_or_default()
    );
    let mut steps = vec![(
        "sovereign router apply".to_string(),
        "install the new key on the router",
    )];
    for peer in &done.peers {
        steps.push((
            format!("sovereign peer export {peer}"),
            "its config carries the new public key",
        ));
    }
    print_next(&steps);
    Ok(Outcome::Success)
}

/// The deployment and the router's secrets (the key generated on first use, the
/// active peers' PSKs), read together under the state lock so they always agree.
pub(crate) fn read_deployment_and_router_secrets(
    context: &Context,
) -> anyhow::Result<(sovereign_model::Deployment, RouterSecrets)> {
    let (d, secrets) = PeerRegistry::open(context.config_path())
        .and_then(|registry| registry.deployment_and_router_secrets())
        .map_err(registry_error)?;
    // The router sees the deployment as of now: expired peers are left out (and
    // `router audit` reports them if the router still has them).
    Ok((d.as_of(std::time::SystemTime::now()), secrets))
}

#[derive(Serialize)]
struct FileView<'a> {
    path: &'a str,
    secret: bool,
    purpose: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    contents: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
}

#[derive(Serialize)]
struct RenderingView<'a> {
    target: RouterTarget,
    #[serde(skip_serializing_if = "Option::is_none")]
    out: Option<&'a Path>,
    isolation: &'a sovereign_router::IsolationVerdict,
    checklist: &'a [String],
    files: Vec<FileView<'a>>,
}

fn print_rendering(
    rendering: &Rendering,
    secrets: &RouterSecrets,
    show_secrets: bool,
    json: bool,
) -> anyhow::Result<()> {
    let shown = |text: &str| {
        if show_secrets {
            text.to_string()
        } else {
            secrets.redact(text)
        }
    };
    if json {
        let files = rendering
            .files
            .iter()
            .map(|f| FileView {
                path: &f.path,
                secret: f.secret,
                purpose: &f.purpose,
                contents: Some(shown(&f.contents)),
                mode: None,
            })
            .collect();
        return print_json(&RenderingView {
            target: rendering.target,
            out: None,
            isolation: &rendering.isolation,
            checklist: &rendering.checklist,
            files,
        });
    }
    let mut out = std::io::stdout().lock();
    for file in &rendering.files {
        writeln!(out, "===== {} ({})", file.path, file.purpose)?;
        write!(out, "{}", shown(&file.contents))?;
        writeln!(out)?;
    }
    if !show_secrets && rendering.files.iter().any(|f| f.secret) {
        writeln!(
            out,
            "(keys are shown as <router-private-key> and <psk:NAME>; --show-secrets prints them, --out DIR writes them)"
        )?;
    }
    write_summary(&mut out, rendering)?;
    Ok(())
}

fn write_summary(out: &mut impl std::io::Write, rendering: &Rendering) -> anyhow::Result<()> {
    let verdict = &rendering.isolation;
    writeln!(
        out,
        "\nServer isolation: {}",
        if verdict.enforceable {
            "enforceable"
        } else {
            "NOT enforceable"
        }
    )?;
    writeln!(out, "  {}", verdict.reason)?;
    writeln!(out, "\nChecklist (what cannot be scripted):")?;
    for (i, item) in rendering.checklist.iter().enumerate() {
        writeln!(out, "  {}. {item}", i + 1)?;
    }
    Ok(())
}

/// Write every file atomically; keys get 0600 and their directory 0700.
fn write_files(dir: &Path, rendering: &Rendering) -> anyhow::Result<Vec<(String, u32)>> {
    let holds_secrets = rendering.files.iter().any(|f| f.secret);
    let dir_mode = if holds_secrets { 0o700 } else { 0o755 };
    create_dir(dir, dir_mode)?;
    let mut written = Vec::new();
    for file in &rendering.files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            create_dir(parent, dir_mode)?;
        }
        let mode = if file.secret {
            0o600
        } else if file.path.ends_with(".sh") {
            0o755
        } else {
            0o644
        };
        write_atomically(&path, &file.contents, mode)?;
        written.push((file.path.clone(), mode));
    }
    Ok(written)
}

fn create_dir(dir: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    // An existing directory keeps its old mode: tighten it when keys go in.
    let current = std::fs::metadata(dir)
        .with_context(|| format!("cannot inspect {}", dir.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode == 0o700 && current != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private (chmod 700)", dir.display()))?;
    }
    Ok(())
}

fn write_atomically(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        // The temp file is created with its final mode, so a key is never readable by others.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

fn report_written(
    dir: &Path,
    rendering: &Rendering,
    written: &[(String, u32)],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let files = rendering
            .files
            .iter()
            .zip(written)
            .map(|(f, (_, mode))| FileView {
                path: &f.path,
                secret: f.secret,
                purpose: &f.purpose,
                contents: None,
                mode: Some(format!("{mode:04o}")),
            })
            .collect();
        return print_json(&RenderingView {
            target: rendering.target,
            out: Some(dir),
            isolation: &rendering.isolation,
            checklist: &rendering.checklist,
            files,
        });
    }
    let mut table = Table::new(["file", "mode", "what"]);
    for (file, (path, mode)) in rendering.files.iter().zip(written) {
        table.row([path.clone(), format!("{mode:04o}"), file.purpose.clone()]);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Wrote {} files for {} to {}:\n",
        written.len(),
        rendering.target,
        dir.display()
    )?;
    write!(out, "{}", table.render())?;
    write_summary(&mut out, rendering)?;
    Ok(())
}
