//! `sovereign client setup | status | test | uninstall` (issue #9).
//!
//! Run on a client machine (Linux or macOS) as the user who will use the coding
//! agents. The logic is in `sovereign-client`; this module reads the environment
//! ($HOME, $XDG_CONFIG_HOME, $CODEX_HOME, $SHELL), owns the clock and prints.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sovereign_client::Key;
use sovereign_client::check::{CheckOptions, render_table};
use sovereign_client::{
    ChangeKind, ClientError, ClientPaths, DEFAULT_INTERFACE, OllamaProbe, Platform, SetupOptions,
    Shell, SystemRunner, TunnelState, UndoKind,
};

use crate::context::{Context, Outcome, usage};
use crate::output::print_json;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sovereign client setup --bundle laptop.peer.json --tools claude-code,codex\n  \
    sovereign client setup --bundle laptop.peer.json --dry-run\n  \
    sudo sovereign client setup --bundle laptop.peer.json --up      # Linux: install and start wg-quick@sovereign\n  \
    sovereign client status --json\n  \
    sovereign client test\n  \
    sovereign client uninstall --dry-run\n\n\
    Files: $XDG_CONFIG_HOME/sovereign (or ~/.config/sovereign): env, env.fish, manifest.json.\n\
    The tunnel config (with the private key, 0600) goes to /etc/wireguard/<IF>.conf on Linux and\n\
    to that directory on macOS. Profiles (~/.bashrc, ~/.zshrc, fish config.fish) get one marked\n\
    block; `uninstall` removes exactly what setup added and restores each file byte for byte.")]
pub struct ClientArgs {
    #[command(subcommand)]
    pub command: ClientCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Install the tunnel, the env file, the profile block and the selected tools' configs.
    #[command(
        after_help = "Examples:\n  sovereign client setup --bundle laptop.peer.json --tools claude-code,codex\n  sovereign client setup --bundle laptop.peer.json --dry-run"
    )]
    Setup(SetupArgs),
    /// Tunnel up? Last handshake? Server reachable? Exit 1 when the server does not answer.
    #[command(
        after_help = "Examples:\n  sovereign client status\n  sovereign client status --json | jq .server.reachable"
    )]
    Status {
        /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        roots: Roots,
    },
    /// Run `sovereign check` against the server through the tunnel.
    #[command(after_help = "Examples:\n  sovereign client test\n  sovereign client test --json")]
    Test(TestArgs),
    /// Remove exactly what setup added (per its manifest) and restore the profiles.
    #[command(
        after_help = "Examples:\n  sovereign client uninstall --dry-run\n  sovereign client uninstall"
    )]
    Uninstall {
        /// Show what would be removed or restored; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        roots: Roots,
    },
}

/// Where things go; the defaults come from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct Roots {
    /// Directory for the wg-quick config [default: /etc/wireguard on Linux, the sovereign config dir on macOS].
    #[arg(long, value_name = "DIR")]
    pub wg_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// The bundle `sovereign peer export NAME` wrote.
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// Coding agents to configure: claude-code, aider, codex, opencode (comma-separated).
    #[arg(long, value_name = "LIST", default_value = "")]
    pub tools: String,
    /// The agents' default model [default: the first model the server lists, when reachable].
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Do not ask the server for its models.
    #[arg(long)]
    pub offline: bool,
    /// WireGuard interface name (<= 15 characters).
    #[arg(long, value_name = "IF", default_value = DEFAULT_INTERFACE)]
    pub interface: String,
    /// The device's private key, for bundles exported without one (`peer add --public-key`).
    #[arg(long, value_name = "FILE")]
    pub private_key_file: Option<PathBuf>,
    /// Start the tunnel now (Linux: systemctl enable --now wg-quick@IF, or wg-quick up with --wg-dir).
    #[arg(long)]
    pub up: bool,
    /// Export OPENAI_* and ANTHROPIC_* in every shell. Without it they are set only in
    /// a shell where you run `sovereign_shell`, so your real cloud keys keep working.
    #[arg(long)]
    pub global_env: bool,
    /// Show what would be written; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the tunnel config, private key included (it is never printed otherwise).
    #[arg(long)]
    pub show_private_key: bool,
    /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub roots: Roots,
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Server to check [default: the one setup configured, else the bundle's].
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Take the server from this bundle instead of the setup on this machine.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Model for the generation checks [default: the first the server lists].
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Budget for one request, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub timeout: u64,
    /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub roots: Roots,
}

pub fn run(_context: &Context, args: ClientArgs) -> anyhow::Result<Outcome> {
    match args.command {
        ClientCommand::Setup(args) => setup(args),
        ClientCommand::Status { json, roots } => status(json, &roots),
        ClientCommand::Test(args) => test(args),
        ClientCommand::Uninstall {
            dry_run,
            json,
            roots,
        } => uninstall(dry_run, json, &roots),
    }
}

/// What `client status` and `client test` say when they fail: they see that the
/// server does not answer, doctor finds which layer on the way broke.
const DOCTOR_HINT: &str =
    "to find the broken layer (tunnel, route, firewall, server, model, MTU): sovereign doctor";

fn paths(roots: &Roots) -> anyhow::Result<ClientPaths> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            usage("$HOME is not set; sovereign client needs it to find your config and profiles")
        })?;
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let codex = std::env::var_os("CODEX_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    Ok(ClientPaths::new(
        &home,
        xdg.as_deref(),
        codex.as_deref(),
        roots.wg_dir.as_deref(),
        Platform::current(),
    ))
}

/// Library errors about the user's input exit 2; the rest exit 1.
fn lift(error: ClientError) -> anyhow::Error {
    if error.is_usage() {
        usage(error.to_string())
    } else {
        anyhow::Error::new(error)
    }
}

fn setup(args: SetupArgs) -> anyhow::Result<Outcome> {
    let paths = paths(&args.roots)?;
    let bundle = sovereign_client::load_bundle(&args.bundle).map_err(lift)?;
    let tools = sovereign_client::parse_tools(&args.tools).map_err(lift)?;
    let private_key = args
        .private_key_file
        .as_deref()
        .map(read_private_key)
        .transpose()?;
    let shell = std::env::var("SHELL")
        .ok()
        .and_then(|s| Shell::from_path(&s));
    let options = SetupOptions {
        tools,
        interface: args.interface.clone(),
        platform: Platform::current(),
        shell,
        model: args.model.clone(),
        probe_models: !args.offline,
        private_key,
        up: args.up,
        global_env: args.global_env,
    };
    let report = sovereign_client::setup(
        &bundle,
        &options,
        &paths,
        &SystemRunner,
        &OllamaProbe::default(),
        args.dry_run,
    )
    .map_err(lift)?;
    if args.json {
        print_json(&report)?;
        return Ok(Outcome::from_passed(report.ok));
    }
    let verb = if report.dry_run {
        "would set up"
    } else {
        "set up"
    };
    println!(
        "sovereign client: {verb} peer {} -> {}",
        report.peer, report.server_url
    );
    for change in &report.changes {
        let mark = match (&change.change, report.dry_run) {
            (ChangeKind::Create, true) => "would create",
            (ChangeKind::Modify, true) => "would modify",
            (ChangeKind::Create, false) => "created",
            (ChangeKind::Modify, false) => "modified",
            (ChangeKind::Unchanged, _) => "unchanged",
        };
        println!("  {mark:<12}  {}  ({})", change.path.display(), change.what);
    }
    for command in &report.commands {
        let verb = if report.dry_run { "would run" } else { "ran" };
        println!("  {verb:<12}  {}", command.join(" "));
    }
    if let Some(model) = &report.model {
        println!("default model: {model}");
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    if let Some(qr) = &report.qr {
        println!(
            "\nScan with the WireGuard app (it holds the private key; don't share a photo of it):\n{qr}"
        );
    }
    if args.show_private_key && !report.dry_run {
        let conf = std::fs::read_to_string(&report.wg_config)
            .with_context(|| format!("cannot read {}", report.wg_config.display()))?;
        println!("\n{}:\n{conf}", report.wg_config.display());
    }
    println!("\nNext:");
    for (i, step) in report.next_steps.iter().enumerate() {
        println!("  {}. {step}", i + 1);
    }
    Ok(Outcome::from_passed(report.ok))
}

fn read_private_key(path: &Path) -> anyhow::Result<Key> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "cannot read the private key file {}: {e}",
            path.display()
        ))
    })?;
    Key::from_base64(text.trim()).map_err(|_| {
        lift(ClientError::BadPrivateKey {
            path: path.to_path_buf(),
        })
    })
}

fn status(json: bool, roots: &Roots) -> anyhow::Result<Outcome> {
    let paths = paths(roots)?;
    let manifest = sovereign_client::load_manifest(&paths).map_err(lift)?;
    let Some(manifest) = manifest else {
        if json {
            print_json(&serde_json::json!({ "configured": false, "manifest": paths.manifest() }))?;
        } else {
            println!(
                "not set up: no {} (run `sovereign client setup --bundle FILE`)",
                paths.manifest().display()
            );
        }
        return Ok(Outcome::CheckFailed);
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let report = sovereign_client::status(
        true,
        Some(manifest.peer.clone()),
        &manifest.interface,
        &manifest.server_url,
        &SystemRunner,
        &OllamaProbe::default(),
        now,
    );
    if json {
        print_json(&report)?;
        if !report.healthy() {
            eprintln!("{DOCTOR_HINT}");
        }
        return Ok(Outcome::from_passed(report.healthy()));
    }
    let t = &report.tunnel;
    let state = match t.state {
        TunnelState::Up => "up",
        TunnelState::Stale => "no recent handshake",
        TunnelState::Down => "down",
        TunnelState::Unknown => "unknown",
    };
    println!("peer:      {}", manifest.peer);
    println!("tunnel:    {} ({state})", t.interface);
    match t.last_handshake_age_secs {
        Some(age) => println!("handshake: {age} s ago"),
        None => println!("handshake: none"),
    }
    if let (Some(rx), Some(tx)) = (t.rx_bytes, t.tx_bytes) {
        println!("transfer:  {rx} B received, {tx} B sent");
    }
    if let Some(detail) = &t.detail {
        println!("           {detail}");
    }
    match (&report.server.version, &report.server.error) {
        (Some(version), _) => println!(
            "server:    {} reachable (Ollama {version})",
            report.server.url
        ),
        (None, Some(error)) => println!("server:    {} NOT reachable: {error}", report.server.url),
        (None, None) => println!("server:    {} NOT reachable", report.server.url),
    }
    if !report.healthy() {
        println!("\n{DOCTOR_HINT}");
    }
    Ok(Outcome::from_passed(report.healthy()))
}

fn test(args: TestArgs) -> anyhow::Result<Outcome> {
    let url = match (&args.url, &args.bundle) {
        (Some(url), _) => url.clone(),
        (None, Some(bundle)) => {
            sovereign_client::load_bundle(bundle)
                .map_err(lift)?
                .api
                .ollama
        }
        (None, None) => {
            let paths = paths(&args.roots)?;
            match sovereign_client::load_manifest(&paths).map_err(lift)? {
                Some(manifest) => manifest.server_url,
                None => {
                    return Err(usage(format!(
                        "not set up (no {}); pass --url URL or --bundle FILE",
                        paths.manifest().display()
                    )));
                }
            }
        }
    };
    let options = CheckOptions {
        url,
        model: args.model,
        request_timeout: Duration::from_secs(args.timeout),
        ..CheckOptions::default()
    };
    let report = sovereign_client::check::run(&options);
    if args.json {
        print_json(&report)?;
        if !report.passed() {
            eprintln!("{DOCTOR_HINT}");
        }
    } else {
        print!("{}", render_table(&report));
        if !report.passed() {
            println!("\n{DOCTOR_HINT}");
        }
    }
    Ok(Outcome::from_passed(report.passed()))
}

fn uninstall(dry_run: bool, json: bool, roots: &Roots) -> anyhow::Result<Outcome> {
    let paths = paths(roots)?;
    let Some(report) = sovereign_client::uninstall(&paths, &SystemRunner, dry_run).map_err(lift)?
    else {
        if json {
            print_json(&serde_json::json!({ "configured": false }))?;
        } else {
            println!("nothing to uninstall: no {}", paths.manifest().display());
        }
        return Ok(Outcome::Success);
    };
    if json {
        print_json(&report)?;
        return Ok(Outcome::from_passed(report.errors.is_empty()));
    }
    let would = if dry_run { "would " } else { "" };
    for command in &report.commands {
        println!("  {would}run       {}", command.join(" "));
    }
    for file in &report.files {
        let action = match file.action {
            UndoKind::Delete => "delete",
            UndoKind::Restore => "restore",
            UndoKind::EditOut => "edit out",
            UndoKind::Missing => "gone",
        };
        println!("  {would}{action:<9} {}", file.path.display());
    }
    for dir in &report.removed_dirs {
        println!("  {would}remove    {}/", dir.display());
    }
    for error in &report.errors {
        eprintln!("error: {error}");
    }
    for reminder in &report.reminders {
        println!("note: {reminder}");
    }
    Ok(Outcome::from_passed(report.errors.is_empty()))
}
