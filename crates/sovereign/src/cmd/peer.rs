//! `sovereign peer add | list | show | export | rotate | disable | enable | revoke`
//! (issues #4, #21).
//!
//! The peers are `[[peer]]` entries of the deployment file; their secrets live in
//! the state directory. The logic is in `sovereign-wg`; this module parses flags,
//! owns the clock and prints.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sovereign_model::Peer;
use sovereign_wg::{AddRequest, ClientMaterial, PeerRegistry, RegistryError, Revoked};

use crate::context::{Context, Outcome, usage};
use crate::output::{Table, print_json};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sovereign peer add laptop                       # next free address, new keys and PSK\n  \
    sovereign peer add phone --ip 10.10.10.50\n  \
    sovereign peer add desktop --public-key \"$(wg pubkey < desktop.key)\"\n  \
    sovereign peer list --json\n  \
    sovereign peer show phone --qr                  # scan with the WireGuard app\n  \
    sovereign peer show laptop --conf --out wg-sovereign.conf\n  \
    sovereign peer export laptop --out laptop.peer.json\n  \
    sovereign peer rotate laptop\n  \
    sovereign peer disable phone                    # off for a while, keys kept\n  \
    sovereign peer enable phone\n  \
    sovereign peer revoke phone --yes\n\n\
    Every command takes --json (mutating ones print a result object).\n\
    Secrets live in <config stem>.state/ (0700, files 0600). Only `show --conf`, `--qr` and `--png` \
    reveal a private key, and only the one asked for.")]
pub struct PeerArgs {
    #[command(subcommand)]
    pub command: PeerCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PeerCommand {
    /// Add a device: the next free VPN address, a key pair and a preshared key.
    #[command(after_help = "Examples:\n  \
        sovereign peer add laptop\n  \
        sovereign peer add phone --ip 10.10.10.50 --no-psk\n  \
        sovereign peer add desktop --public-key \"$(wg pubkey < desktop.key)\"  # the private key stays on the device")]
    Add(AddArgs),
    /// List peers (revoked ones too): name, address, public key, state, expiry, last change. Never any secret.
    #[command(
        after_help = "Examples:\n  sovereign peer list\n  sovereign peer list --json | jq -r '.[].name'"
    )]
    List {
        /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
        #[arg(long)]
        json: bool,
    },
    /// Show a peer, or its client config as text, a terminal QR code or a PNG.
    #[command(after_help = "Examples:\n  \
        sovereign peer show laptop                       # details, no secrets\n  \
        sovereign peer show laptop --conf > wg-sovereign.conf\n  \
        sovereign peer show laptop --conf --out wg-sovereign.conf   # written 0600\n  \
        sovereign peer show phone --qr                   # scan with the WireGuard app\n  \
        sovereign peer show phone --png phone.png")]
    Show(ShowArgs),
    /// Write the bundle a client machine needs (`sovereign client setup` reads it), mode 0600.
    #[command(after_help = "Examples:\n  \
        sovereign peer export laptop                     # writes ./laptop.peer.json\n  \
        sovereign peer export laptop --out /media/usb/laptop.peer.json")]
    Export(ExportArgs),
    /// New keys (and a new PSK if the peer has one), same address.
    #[command(after_help = "Examples:\n  \
        sovereign peer rotate laptop\n  \
        sovereign peer rotate desktop --public-key \"$(wg pubkey < new.key)\"  # device-generated keys")]
    Rotate(RotateArgs),
    /// Cut a peer off for a while: keys and address kept, absent from the router's WireGuard config.
    #[command(
        after_help = "Examples:\n  sovereign peer disable phone\n  sovereign router apply   # its sessions end here"
    )]
    Disable(NameArgs),
    /// Let a disabled peer back in (its old config works again).
    #[command(after_help = "Examples:\n  sovereign peer enable phone\n  sovereign router apply")]
    Enable(NameArgs),
    /// Revoke a peer: its keys are deleted, its address is never handed out again. Asks first.
    #[command(
        after_help = "Examples:\n  sovereign peer revoke phone          # asks on a terminal\n  \
        sovereign peer revoke phone --yes    # scripts\n  sovereign router apply   # the router drops it"
    )]
    Revoke(ConfirmArgs),
    /// Set or clear a peer's expiry (after it, the router no longer accepts the peer).
    #[command(after_help = "Examples:\n  \
        sovereign peer extend guest --expires 2027-01-31   # until the end of that day, UTC\n  \
        sovereign peer extend guest --expires 30d\n  \
        sovereign peer extend guest --expires never\n  \
        sovereign router apply")]
    Extend(ExtendArgs),
    /// Give a peer another name; keys, address and state are kept.
    #[command(
        after_help = "Examples:\n  sovereign peer rename laptop work-laptop\n  sovereign router apply   # the router's peer label follows"
    )]
    Rename(RenameArgs),
    /// Free a revoked peer's name. Its address stays retired; the ledger keeps its public key. Asks first.
    #[command(
        after_help = "Examples:\n  sovereign peer purge phone --yes\n  sovereign peer add phone   # a new device, a new address"
    )]
    Purge(ConfirmArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExtendArgs {
    /// The peer's name, as `peer list` shows it.
    pub name: String,
    /// A date (2027-01-31: the end of that day, UTC), an RFC 3339 time, a duration (30d, 2w), or `never`.
    #[arg(long, value_name = "DATE|DURATION")]
    pub expires: String,
    /// The result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RenameArgs {
    /// The peer's current name.
    pub old: String,
    /// Its new name (1-32 letters, digits, '-', '_' or '.'; not in use, not retired).
    pub new: String,
    /// The result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// The peer's name, as `peer list` shows it.
    pub name: String,
    /// The result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ConfirmArgs {
    /// The peer's name, as `peer list` shows it.
    pub name: String,
    /// Do not ask (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// The result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// 1-32 letters, digits, '-', '_' or '.', e.g. laptop or phone-anna.
    pub name: String,
    /// The peer's VPN address [default: the next free one].
    #[arg(long, value_name = "IP")]
    pub ip: Option<Ipv4Addr>,
    /// Register a public key the device generated itself; its private key never leaves it.
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<String>,
    /// No preshared key (it adds post-quantum resistance at no cost, so keep it unless a client cannot).
    #[arg(long)]
    pub no_psk: bool,
    /// Access until: a date (2027-01-31: the end of that day, UTC), an RFC 3339 time or a duration (30d).
    #[arg(long, value_name = "DATE|DURATION")]
    pub expires: Option<String>,
    /// The result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("form").args(["conf", "qr", "png"]))]
pub struct ShowArgs {
    /// The peer's name, as `peer list` shows it.
    pub name: String,
    /// The wg-quick client config, private key included.
    #[arg(long)]
    pub conf: bool,
    /// With --conf: write the config to FILE (mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE", requires = "conf")]
    pub out: Option<PathBuf>,
    /// The client config as a QR code in the terminal.
    #[arg(long)]
    pub qr: bool,
    /// The client config as a QR code in a PNG file (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Replace an existing --out or --png file.
    #[arg(long)]
    pub force: bool,
    /// The peer's details as JSON (without a form flag).
    #[arg(long, conflicts_with = "form")]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The peer's name, as `peer list` shows it.
    pub name: String,
    /// Where to write the bundle [default: ./NAME.peer.json].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
    /// The result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// The peer's name, as `peer list` shows it.
    pub name: String,
    /// For a peer whose device generates its keys: the device's new public key.
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<String>,
    /// The result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(context: &Context, args: PeerArgs) -> anyhow::Result<Outcome> {
    match args.command {
        PeerCommand::Add(args) => add(context, args),
        PeerCommand::List { json } => list(context, json),
        PeerCommand::Show(args) => show(context, args),
        PeerCommand::Export(args) => export(context, args),
        PeerCommand::Rotate(args) => rotate(context, args),
        PeerCommand::Disable(args) => set_enabled(context, args, false),
        PeerCommand::Enable(args) => set_enabled(context, args, true),
        PeerCommand::Revoke(args) => revoke(context, args),
        PeerCommand::Extend(args) => extend(context, args),
        PeerCommand::Rename(args) => rename(context, args),
        PeerCommand::Purge(args) => purge(context, args),
    }
}

fn expiry(text: &str) -> anyhow::Result<Option<String>> {
    sovereign_wg::plan::parse_expiry(text, std::time::SystemTime::now())
        .map_err(|e| usage(e.to_string()))
}

fn extend(context: &Context, args: ExtendArgs) -> anyhow::Result<Outcome> {
    let registry = open(context)?;
    let expires = expiry(&args.expires)?;
    let peer = registry
        .extend(&args.name, expires, &now())
        .map_err(registry_error)?;
    let next = [(
        "sovereign router apply".to_string(),
        "the router takes the new expiry into account",
    )];
    if args.json {
        print_json(&PeerResult::new("extend", true, &peer, &next))?;
        return Ok(Outcome::Success);
    }
    match &peer.expires {
        Some(at) => println!("peer {} now expires at {at}", peer.name),
        None => println!("peer {} never expires now", peer.name),
    }
    print_next(&next);
    Ok(Outcome::Success)
}

fn rename(context: &Context, args: RenameArgs) -> anyhow::Result<Outcome> {
    let registry = open(context)?;
    let peer = registry
        .rename(&args.old, &args.new, &now())
        .map_err(registry_error)?;
    let next = [(
        "sovereign router apply".to_string(),
        "the router's label for the peer follows",
    )];
    if args.json {
        print_json(&PeerResult::new("rename", true, &peer, &next))?;
        return Ok(Outcome::Success);
    }
    println!(
        "renamed peer {} to {} ({}); keys and address kept",
        args.old, peer.name, peer.address
    );
    print_next(&next);
    Ok(Outcome::Success)
}

fn purge(context: &Context, args: ConfirmArgs) -> anyhow::Result<Outcome> {
    let registry = open(context)?;
    // Decided (and refused) before asking, so a wrong name never prompts.
    let d = context.load()?;
    let ledger = registry
        .store()
        .ledger_for(&d)
        .map_err(|e| usage(e.to_string()))?;
    let peer = sovereign_wg::plan::plan_purge(&d, &ledger, &args.name)
        .map_err(|e| usage(e.to_string()))?;
    confirm(
        &format!(
            "purge peer {}? its name becomes free; {} stays retired",
            peer.name, peer.address
        ),
        args.yes,
    )?;
    let peer = registry.purge(&args.name).map_err(registry_error)?;
    if args.json {
        print_json(&PeerResult::new("purge", true, &peer, &[]))?;
        return Ok(Outcome::Success);
    }
    println!(
        "purged peer {}: the name is free; {} stays retired and the state ledger keeps its public key {}",
        peer.name, peer.address, peer.public_key
    );
    Ok(Outcome::Success)
}

/// Now, RFC 3339 to the second: the one clock of the peer commands.
fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// What a mutating peer command prints with --json.
#[derive(serde::Serialize)]
struct PeerResult {
    action: &'static str,
    /// False when there was nothing to do (already disabled, already revoked).
    changed: bool,
    peer: PeerRow,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    next: Vec<String>,
}

impl PeerResult {
    fn new(action: &'static str, changed: bool, peer: &Peer, next: &[(String, &str)]) -> Self {
        PeerResult {
            action,
            changed,
            peer: PeerRow::from(peer),
            file: None,
            next: next.iter().map(|(command, _)| command.clone()).collect(),
        }
    }
}

fn set_enabled(context: &Context, args: NameArgs, enable: bool) -> anyhow::Result<Outcome> {
    let registry = open(context)?;
    let changed = registry
        .set_enabled(&args.name, enable, &now())
        .map_err(registry_error)?;
    let (peer, did) = match changed {
        Some(peer) => (peer, true),
        None => {
            let d = context.load()?;
            let peer = sovereign_wg::plan::find_peer(&d, &args.name)
                .map_err(|e| usage(e.to_string()))?
                .clone();
            (peer, false)
        }
    };
    let action = if enable { "enable" } else { "disable" };
    let next = [(
        "sovereign router apply".to_string(),
        if enable {
            "the router accepts the peer again"
        } else {
            "the router drops the peer and its sessions end"
        },
    )];
    if args.json {
        print_json(&PeerResult::new(action, did, &peer, &next))?;
        return Ok(Outcome::Success);
    }
    let word = if enable { "enabled" } else { "disabled" };
    if !did {
        println!("peer {} is already {word}; nothing to do", peer.name);
        return Ok(Outcome::Success);
    }
    println!("{word} peer {} ({})", peer.name, peer.address);
    if !enable {
        println!(
            "  keys and address kept; `sovereign peer enable {}` lets it back in",
            peer.name
        );
    }
    print_next(&next);
    Ok(Outcome::Success)
}

/// Ask on a terminal; without one, `--yes` is required (exit 2 otherwise).
fn confirm(question: &str, yes: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(usage(format!(
            "{question}: stdin is not a terminal, so nobody can answer; pass --yes to go ahead"
        )));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(usage("not confirmed; nothing changed"))
    }
}

fn add(context: &Context, args: AddArgs) -> anyhow::Result<Outcome> {
    let registry = open(context)?;
    let request = AddRequest {
        name: args.name,
        address: args.ip,
        public_key: args.public_key,
        preshared_key: !args.no_psk,
        created: now(),
        expires: args.expires.as_deref().map(expiry).transpose()?.flatten(),
    };
    let device_keyed = request.public_key.is_some();
    let peer = registry.add(&request).map_err(registry_error)?;
    if args.json {
        let next = [
            (format!("sovereign peer export {}", peer.name), ""),
            ("sovereign router apply".to_string(), ""),
        ];
        print_json(&PeerResult::new("add", true, &peer, &next))?;
        return Ok(Outcome::Success);
    }
    println!("added peer {} at {}", peer.name, peer.address);
    if let Some(at) = &peer.expires {
        println!("  expires: {at} (the router drops it then; `sovereign peer extend` moves it)");
    }
    println!("  public key: {}", peer.public_key);
    let state = registry.store().dir().display().to_string();
    match (device_keyed, peer.preshared_key) {
        (false, true) => println!(
            "  private and preshared keys: {state}/peers/{}.key, .psk (0600)",
            peer.name
        ),
        (false, false) => println!(
            "  private key: {state}/peers/{}.key (0600); no preshared key",
            peer.name
        ),
        (true, true) => println!(
            "  preshared key: {state}/peers/{}.psk (0600); the private key stays on the device",
            peer.name
        ),
        (true, false) => {
            println!("  no secrets stored: the private key stays on the device, no preshared key")
        }
    }
    let first = if device_keyed {
        (
            format!("sovereign peer show {} --conf", peer.name),
            "then put the device's private key in it",
        )
    } else {
        (
            format!("sovereign peer show {} --qr", peer.name),
            "scan it with the WireGuard app",
        )
    };
    print_next(&[
        first,
        (
            format!("sovereign peer export {}", peer.name),
            "the bundle for `sovereign client setup`",
        ),
        (
            "sovereign router apply".into(),
            "the router learns the new peer",
        ),
    ]);
    Ok(Outcome::Success)
}

fn list(context: &Context, json: bool) -> anyhow::Result<Outcome> {
    let deployment = context.load()?;
    let now = std::time::SystemTime::now();
    let rows: Vec<PeerRow> = deployment
        .peers
        .iter()
        .map(|p| PeerRow::from(p).at(p, now))
        .collect();
    if json {
        print_json(&rows)?;
        return Ok(Outcome::Success);
    }
    if rows.is_empty() {
        println!("no peers yet; add one with `sovereign peer add NAME`");
        return Ok(Outcome::Success);
    }
    let mut table = Table::new([
        "NAME",
        "ADDRESS",
        "PUBLIC KEY",
        "STATE",
        "EXPIRES",
        "LAST CHANGE",
        "PSK",
    ]);
    for row in &rows {
        table.row([
            row.name.clone(),
            row.address.to_string(),
            row.public_key.clone(),
            row.status.to_string(),
            row.expires.clone().unwrap_or_else(|| "never".into()),
            if row.changed.is_empty() {
                row.created.clone()
            } else {
                row.changed.clone()
            },
            if row.preshared_key { "yes" } else { "no" }.to_string(),
        ]);
    }
    print!("{}", table.render());
    Ok(Outcome::Success)
}

/// What `list` and `show` print about a peer: public facts only.
#[derive(serde::Serialize)]
struct PeerRow {
    name: String,
    address: Ipv4Addr,
    public_key: String,
    created: String,
    status: &'static str,
    preshared_key: bool,
    /// RFC 3339 of the last change of state; empty for peers from before it was kept.
    changed: String,
    expires: Option<String>,
}

impl PeerRow {
    /// An active peer past its expiry shows as `expired`: what the router does.
    fn at(mut self, peer: &Peer, now: std::time::SystemTime) -> Self {
        if peer.is_active() && peer.is_expired(now) {
            self.status = "expired";
        }
        self
    }
}

impl From<&Peer> for PeerRow {
    fn from(peer: &Peer) -> Self {
        PeerRow {
            name: peer.name.clone(),
            address: peer.address,
            public_key: peer.public_key.clone(),
            created: peer.created.clone(),
            status: peer.status.as_str(),
            preshared_key: peer.preshared_key,
            changed: peer.changed.clone(),
            expires: peer.expires.clone(),
        }
    }
}

fn show(context: &Context, args: ShowArgs) -> anyhow::Result<Outcome> {
    if !(args.conf || args.qr || args.png.is_some()) {
        return show_details(context, &args.name, args.json);
    }
    let registry = open(context)?;
    let material = registry
        .client_material(&args.name)
        .map_err(registry_error)?;
    let config = material.client_config();
    warn_if_device_keyed(&material);
    if args.conf {
        match &args.out {
            Some(path) => {
                write_private_file(path, config.as_bytes(), args.force)?;
                eprintln!("wrote {} (0600); it holds the private key", path.display());
            }
            None => print!("{config}"),
        }
    } else if args.qr {
        let art = sovereign_wg::qr_terminal(&config)?;
        print!("{art}");
        eprintln!("scan with the WireGuard app: + > Create from QR code");
    } else if let Some(path) = &args.png {
        let png = sovereign_wg::qr_png(&config)?;
        write_private_file(path, &png, args.force)?;
        eprintln!("wrote {} (0600); it holds the private key", path.display());
    }
    Ok(Outcome::Success)
}

fn show_details(context: &Context, name: &str, json: bool) -> anyhow::Result<Outcome> {
    let deployment = context.load()?;
    let peer =
        sovereign_wg::plan::find_peer(&deployment, name).map_err(|e| usage(e.to_string()))?;
    let row = PeerRow::from(peer).at(peer, std::time::SystemTime::now());
    if json {
        print_json(&row)?;
        return Ok(Outcome::Success);
    }
    println!("name:        {}", row.name);
    println!("address:     {}", row.address);
    println!("public key:  {}", row.public_key);
    println!("created:     {}", row.created);
    println!("status:      {}", row.status);
    println!("expires:     {}", row.expires.as_deref().unwrap_or("never"));
    if !row.changed.is_empty() {
        println!("changed:     {}", row.changed);
    }
    println!(
        "psk:         {}",
        if row.preshared_key { "yes" } else { "no" }
    );
    if peer.holds_keys() {
        println!("config:      sovereign peer show {name} --conf | --qr | --png FILE");
    }
    Ok(Outcome::Success)
}

fn export(context: &Context, args: ExportArgs) -> anyhow::Result<Outcome> {
    let registry = open(context)?;
    let material = registry
        .client_material(&args.name)
        .map_err(registry_error)?;
    warn_if_device_keyed(&material);
    let bundle = material.bundle();
    let path = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.peer.json", material.peer.name)));
    write_private_file(&path, bundle.to_json().as_bytes(), args.force)?;
    if args.json {
        let mut result = PeerResult::new(
            "export",
            true,
            &material.peer,
            &[(
                format!("sovereign client setup --bundle {}", path.display()),
                "",
            )],
        );
        result.file = Some(path.display().to_string());
        print_json(&result)?;
        return Ok(Outcome::Success);
    }
    println!(
        "wrote {} (0600): the bundle for peer {}",
        path.display(),
        material.peer.name
    );
    println!("  it holds the peer's private key: move it to the device, then delete it here");
    println!(
        "  on the device: sovereign client setup --bundle {}",
        path.display()
    );
    Ok(Outcome::Success)
}

fn rotate(context: &Context, args: RotateArgs) -> anyhow::Result<Outcome> {
    let registry = open(context)?;
    let peer = registry
        .rotate(&args.name, args.public_key.as_deref())
        .map_err(registry_error)?;
    if args.json {
        let next = [
            ("sovereign router apply".to_string(), ""),
            (format!("sovereign peer export {}", peer.name), ""),
        ];
        print_json(&PeerResult::new("rotate", true, &peer, &next))?;
        return Ok(Outcome::Success);
    }
    println!(
        "rotated peer {}: new public key {}",
        peer.name, peer.public_key
    );
    println!(
        "  address {} unchanged; the old keys stop working once the router has the new ones",
        peer.address
    );
    print_next(&[
        (
            "sovereign router apply".into(),
            "the router learns the new keys",
        ),
        (
            format!("sovereign peer show {} --qr", peer.name),
            "re-import the config on the device",
        ),
    ]);
    Ok(Outcome::Success)
}

fn revoke(context: &Context, args: ConfirmArgs) -> anyhow::Result<Outcome> {
    let registry = open(context)?;
    let name = args.name.as_str();
    // Unknown and already revoked peers need no confirmation: nothing is lost.
    let d = context.load()?;
    let peer = sovereign_wg::plan::find_peer(&d, name).map_err(|e| usage(e.to_string()))?;
    if peer.holds_keys() {
        confirm(
            &format!(
                "revoke peer {name}? its keys are deleted and the name stays used until `peer purge`"
            ),
            args.yes,
        )?;
    }
    let revoked = registry.revoke(name, &now()).map_err(registry_error)?;
    if args.json {
        let next = [("sovereign router apply".to_string(), "")];
        let (changed, peer) = match &revoked {
            Revoked::Now(peer) => (true, peer),
            Revoked::Already(peer) => (false, peer),
        };
        print_json(&PeerResult::new("revoke", changed, peer, &next))?;
        return Ok(Outcome::Success);
    }
    match revoked {
        Revoked::Now(peer) => {
            println!("revoked peer {}; its key files are deleted", peer.name);
            println!(
                "  {} stays reserved and is never handed out again",
                peer.address
            );
            println!("next: sovereign router apply   # the router drops the peer");
        }
        Revoked::Already(peer) => println!("peer {} is already revoked; nothing to do", peer.name),
    }
    Ok(Outcome::Success)
}

/// "next:" and aligned `command   # why` lines.
pub(crate) fn print_next(steps: &[(String, &str)]) {
    let width = steps
        .iter()
        .map(|(command, _)| command.len())
        .max()
        .unwrap_or(0);
    println!("next:");
    for (command, why) in steps {
        println!("  {command:<width$}   # {why}");
    }
}

fn open(context: &Context) -> anyhow::Result<PeerRegistry> {
    PeerRegistry::open(context.config_path()).map_err(registry_error)
}

/// Exit 2 for what the user can fix, exit 1 otherwise.
pub(crate) fn registry_error(error: RegistryError) -> anyhow::Error {
    if error.is_usage() {
        usage(error.to_string())
    } else {
        anyhow::Error::new(error)
    }
}

fn warn_if_device_keyed(material: &ClientMaterial) {
    if material.private_key.is_none() {
        eprintln!(
            "note: peer {} registered its own public key, so sovereign has no private key for it; replace `{}` \
             with the device's private key",
            material.peer.name,
            sovereign_wg::PRIVATE_KEY_PLACEHOLDER
        );
    }
}

/// Write a file that holds a secret: created 0600 under a temporary name, then moved
/// into place. Without `force`, an existing file is never replaced (linking fails
/// instead of overwriting).
pub(crate) fn write_private_file(path: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if !force && path.exists() {
        return Err(usage(format!(
            "{} already exists; pass --force to replace it",
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .with_context(|| format!("cannot create {}", temp.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("cannot write {}", temp.display()))?;
        file.sync_all()?;
        if force {
            std::fs::rename(&temp, path)
                .with_context(|| format!("cannot move {} into place", temp.display()))
        } else {
            std::fs::hard_link(&temp, path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    usage(format!(
                        "{} already exists; pass --force to replace it",
                        path.display()
                    ))
                } else {
                    anyhow::Error::new(e).context(format!("cannot write {}", path.display()))
                }
            })
        }
    })();
    let _ = std::fs::remove_file(&temp);
    result
}
