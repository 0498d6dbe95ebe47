//! `sovereign init`: write a commented sovereign.toml.

use std::io::{BufRead, IsTerminal, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::Context as _;
use ipnet::Ipv4Net;
use sovereign_model::{Endpoint, InitOptions, Platform, RouterTarget};

use crate::context::{Context, Outcome, usage};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sovereign init                      # asks on a terminal\n  \
    sovereign init --yes --endpoint vpn.example.com:51820 --router linux --platform linux\n  \
    sovereign init --yes --lan 10.0.5.0/24 --force")]
pub struct InitArgs {
    /// Never prompt: take the flags given and defaults for the rest.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
    /// The AI server's LAN address [default: .20 of the LAN].
    #[arg(long, value_name = "IP")]
    pub server_ip: Option<Ipv4Addr>,
    /// The LAN subnet [default: 192.168.250.0/24].
    #[arg(long, value_name = "CIDR")]
    pub lan: Option<Ipv4Net>,
    /// The VPN subnet [default: 10.10.10.0/24].
    #[arg(long, value_name = "CIDR")]
    pub vpn: Option<Ipv4Net>,
    /// The public host:port peers dial [default: 192.168.2.90:51820].
    #[arg(long, value_name = "HOST:PORT")]
    pub endpoint: Option<Endpoint>,
    /// The router software.
    #[arg(long, value_enum)]
    pub router: Option<RouterChoice>,
    /// The AI server's operating system.
    #[arg(long, value_enum)]
    pub platform: Option<PlatformChoice>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RouterChoice {
    Openwrt,
    Linux,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PlatformChoice {
    Macos,
    Linux,
}

pub fn run(context: &Context, args: InitArgs) -> anyhow::Result<Outcome> {
    let path = context.config_path();
    if path.exists() && !args.force {
        return Err(usage(format!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        )));
    }
    let interactive = !args.yes;
    if interactive && !std::io::stdin().is_terminal() {
        return Err(usage(
            "standard input is not a terminal, so init cannot ask; pass --yes and give choices as flags",
        ));
    }
    let options = if interactive {
        ask(&args)?
    } else {
        from_flags(&args)
    };
    let text = sovereign_model::render_template(&options);
    // Errors name the file init would have written, which does not exist.
    let unwritten = std::path::PathBuf::from(format!("{} (not written)", path.display()));
    if let Err(errors) = sovereign_model::parse(&text, &unwritten) {
        return Err(usage(format!(
            "these choices do not make a valid deployment, so nothing was written:\n{errors}"
        )));
    }
    write_atomically(path, &text)?;
    println!("wrote {}", path.display());
    println!(
        "next: `sovereign plan` shows what it turns into; `sovereign peer add NAME` adds a device"
    );
    Ok(Outcome::Success)
}

fn from_flags(args: &InitArgs) -> InitOptions {
    let defaults = InitOptions::default();
    let lan = args.lan.map(|n| n.trunc()).unwrap_or(defaults.lan);
    // A custom LAN moves the server's default address with it.
    let server_ip = args
        .server_ip
        .unwrap_or_else(|| Ipv4Addr::from(u32::from(lan.network()) + 20));
    InitOptions {
        server_ip,
        lan,
        vpn: args.vpn.map(|n| n.trunc()).unwrap_or(defaults.vpn),
        endpoint: args.endpoint.clone().unwrap_or(defaults.endpoint),
        router: match args.router {
            Some(RouterChoice::Linux) => RouterTarget::Linux,
            Some(RouterChoice::Openwrt) => RouterTarget::Openwrt,
            None => defaults.router,
        },
        platform: match args.platform {
            Some(PlatformChoice::Linux) => Platform::Linux,
            Some(PlatformChoice::Macos) => Platform::Macos,
            None => defaults.platform,
        },
    }
}

/// Ask for each choice not given as a flag, offering the default. Each answer is
/// checked as it is given, and asked again until it is valid, so no answer is
/// lost to a mistake in a later one.
fn ask(args: &InitArgs) -> anyhow::Result<InitOptions> {
    let mut o = from_flags(args);
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    if args.endpoint.is_none() {
        o.endpoint = prompt(
            &mut input,
            "Public endpoint peers dial (host:port)",
            o.endpoint,
            any,
        )?;
    }
    if args.router.is_none() {
        o.router = prompt(&mut input, "Router (openwrt|linux)", o.router, any)?;
    }
    if args.lan.is_none() {
        o.lan = prompt(&mut input, "LAN subnet", o.lan, any)?.trunc();
        if args.server_ip.is_none() {
            o.server_ip = Ipv4Addr::from(u32::from(o.lan.network()) + 20);
        }
    }
    if args.server_ip.is_none() {
        let lan = o.lan;
        o.server_ip = prompt(&mut input, "AI server address", o.server_ip, |ip| {
            server_address_problem(lan, *ip)
        })?;
    }
    if args.vpn.is_none() {
        let lan = o.lan;
        o.vpn = prompt(&mut input, "VPN subnet", o.vpn, |vpn: &Ipv4Net| {
            if vpn.contains(&lan.network()) || lan.contains(&vpn.network()) {
                Err(format!(
                    "{vpn} overlaps the LAN {lan}; pick a separate range such as 10.10.10.0/24"
                ))
            } else {
                Ok(())
            }
        })?
        .trunc();
    }
    if args.platform.is_none() {
        o.platform = prompt(
            &mut input,
            "AI server platform (macos|linux)",
            o.platform,
            any,
        )?;
    }
    Ok(o)
}

/// Every answer that parses will do.
fn any<T>(_: &T) -> Result<(), String> {
    Ok(())
}

/// Why `ip` cannot be the AI server in `lan` (as `validate` would say), or `Ok`.
fn server_address_problem(lan: Ipv4Net, ip: Ipv4Addr) -> Result<(), String> {
    let router = Ipv4Addr::from(u32::from(lan.network()) + 1);
    if !lan.contains(&ip) {
        Err(format!("{ip} is not in the LAN {lan}"))
    } else if ip == lan.network() || ip == lan.broadcast() {
        Err(format!("{ip} is the LAN's network or broadcast address"))
    } else if ip == router {
        Err(format!("{ip} is the router's own address"))
    } else {
        Ok(())
    }
}

fn prompt<T>(
    input: &mut impl BufRead,
    question: &str,
    default: T,
    check: impl Fn(&T) -> Result<(), String>,
) -> anyhow::Result<T>
where
    T: std::str::FromStr + std::fmt::Display + Clone,
    T::Err: std::fmt::Display,
{
    loop {
        print!("{question} [{default}]: ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            return Err(usage(
                "input ended before init finished asking; nothing was written",
            ));
        }
        let answer = line.trim();
        let value = if answer.is_empty() {
            Ok(default.clone())
        } else {
            answer.parse().map_err(|e: T::Err| e.to_string())
        };
        match value.and_then(|v| check(&v).map(|()| v)) {
            Ok(value) => return Ok(value),
            Err(error) => println!("  {error}; try again"),
        }
    }
}

/// Write via a temporary file and a rename, so a reader never sees half a file.
pub fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("sovereign.toml");
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&temp, text).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, path)
        .with_context(|| format!("cannot move {} into place", temp.display()))?;
    Ok(())
}
