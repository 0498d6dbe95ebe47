//! `sovereign peer add | list | show | export | rotate | revoke` (issue #4).
//!
//! The peers are `[[peer]]` entries of the deployment file; their secrets live in
//! the state directory. The logic is in `sovereign-wg`; this module parses flags,
//! owns the clock and prints.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sovereign_model::{Peer, PeerStatus};
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
    sovereign peer revoke phone\n\n\
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
    /// List peers (revoked ones too): name, address, public key, created, status. Never any secret.
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
    /// Revoke a peer: its keys are deleted, its address is never handed out again.
    #[command(
        after_help = "Examples:\n  sovereign peer revoke phone\n  sovereign router apply   # the router drops it"
    )]
    Revoke {
        /// The peer to revoke (its name stays retired).
        name: String,
    },
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
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// The peer's name, as `peer list` shows it.
    pub name: String,
    /// For a peer whose device generates its keys: the device's new public key.
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<String>,
}

pub fn run(context: &Context, args: PeerArgs) -> anyhow::Result<Outcome> {
    match args.command {
        PeerCommand::Add(args) => add(context, args),
        PeerCommand::List { json } => list(context, json),
        PeerCommand::Show(args) => show(context, args),
        PeerCommand::Export(args) => export(context, args),
        PeerCommand::Rotate(args) => rotate(context, args),
        PeerCommand::Revoke { name } => revoke(context, &name),
    }
}

fn add(context: &Context, args: AddArgs) -> anyhow::Result<Outcome> {
    let registry = open(context)?;
    let request = AddRequest {
        name: args.name,
        address: args.ip,
        public_key: args.public_key,
        preshared_key: !args.no_psk,
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    };
    let device_keyed = request.public_key.is_some();
    let peer = registry.add(&request).map_err(registry_error)?;
    println!("added peer {} at {}", peer.name, peer.address);
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
    let rows: Vec<PeerRow> = deployment.peers.iter().map(PeerRow::from).collect();
    if json {
        print_json(&rows)?;
        return Ok(Outcome::Success);
    }
    if rows.is_empty() {
        println!("no peers yet; add one with `sovereign peer add NAME`");
        return Ok(Outcome::Success);
    }
    let mut table = Table::new(["NAME", "ADDRESS", "PUBLIC KEY", "CREATED", "STATUS", "PSK"]);
    for row in &rows {
        table.row([
            row.name.clone(),
            row.address.to_string(),
            row.public_key.clone(),
            row.created.clone(),
            row.status.to_string(),
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
}

impl From<&Peer> for PeerRow {
    fn from(peer: &Peer) -> Self {
        PeerRow {
            name: peer.name.clone(),
            address: peer.address,
            public_key: peer.public_key.clone(),
            created: peer.created.clone(),
            status: match peer.status {
                PeerStatus::Active => "active",
                PeerStatus::Revoked => "revoked",
            },
            preshared_key: peer.preshared_key,
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
    let row = PeerRow::from(peer);
    if json {
        print_json(&row)?;
        return Ok(Outcome::Success);
    }
    println!("name:        {}", row.name);
    println!("address:     {}", row.address);
    println!("public key:  {}", row.public_key);
    println!("created:     {}", row.created);
    println!("status:      {}", row.status);
    println!(
        "psk:         {}",
        if row.preshared_key { "yes" } else { "no" }
    );
    if peer.is_active() {
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

fn revoke(context: &Context, name: &str) -> anyhow::Result<Outcome> {
    let registry = open(context)?;
    match registry.revoke(name).map_err(registry_error)? {
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
fn write_private_file(path: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
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
