//! `sovereign lab`: the whole system on this Linux machine, in network namespaces,
//! running exactly what sovereign renders (issue #5).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use sovereign_lab::bench::{self, BenchOptions};
use sovereign_lab::probe;
use sovereign_lab::{AgentCommand, ApiServer, Lab, LabName, LabOptions};
use sovereign_model::{Deployment, Isolation};

use crate::context::{ConfigSource, Context, Outcome, usage};
use crate::output::{Table, print_json};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sudo sovereign lab up\n  \
    sudo sovereign lab probe\n  \
    sudo sovereign lab bench --json\n  \
    sudo sovereign lab exec v1 -- curl -s http://192.168.250.20:11434/api/version\n  \
    sudo sovereign lab down\n\n\
    Needs root, /dev/net/tun and ip, nft, wg, wireguard-go (Debian: nftables wireguard-tools wireguard-go iproute2).")]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the lab: namespaces, the rendered router, WireGuard, listeners, the API server.
    #[command(
        after_help = "Examples:\n  sudo sovereign lab up\n  sudo sovereign lab up --isolation shared --name t1"
    )]
    Up(UpArgs),
    /// Remove the lab: its processes, namespaces and WireGuard sockets (also after a crash).
    #[command(
        after_help = "Examples:\n  sudo sovereign lab down\n  sudo sovereign lab down --name t1"
    )]
    Down(NameArgs),
    /// Show the lab's nodes, processes and tunnels.
    #[command(
        after_help = "Examples:\n  sudo sovereign lab status\n  sudo sovereign lab status --json"
    )]
    Status(StatusArgs),
    /// Measure the reachability matrix against the intent, plus a flushed-ruleset control run.
    #[command(
        after_help = "Examples:\n  sudo sovereign lab probe\n  sudo sovereign lab probe --json | jq .summary"
    )]
    Probe(ProbeArgs),
    /// Benchmark the API through the tunnel against the direct path (reports, never fails).
    #[command(after_help = "Examples:\n  sudo sovereign lab bench")]
    Bench(BenchArgs),
    /// Run a command inside one node's namespace.
    #[command(
        after_help = "Examples:\n  sudo sovereign lab exec v1 -- ip -4 addr\n  sudo sovereign lab exec srv -- ss -ltn"
    )]
    Exec(ExecArgs),
    /// Internal: run a node's listeners (started by `lab up` inside a namespace).
    #[command(name = "_serve", hide = true)]
    Serve(ServeArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct NameArgs {
    /// The lab's name (1-10 lowercase letters/digits). Default: derived from the
    /// deployment file's path, so labs of different files can run side by side.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IsolationArg {
    DedicatedPort,
    Shared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApiServerArg {
    /// A real `ollama serve` when one is on PATH, else the emulator.
    Auto,
    Emulator,
    Ollama,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub name: NameArgs,
    /// How many ephemeral VPN peers (one client namespace each).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(0..=16))]
    pub peers: u16,
    /// Override server.isolation of the deployment (e.g. `shared` to see the L2 leak).
    #[arg(long, value_enum)]
    pub isolation: Option<IsolationArg>,
    /// What answers on the server's API port.
    #[arg(long, value_enum, default_value_t = ApiServerArg::Auto)]
    pub api_server: ApiServerArg,
    /// Print the lab's state as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub name: NameArgs,
    /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub name: NameArgs,
    /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
    #[arg(long)]
    pub json: bool,
    /// Skip the control run (ruleset flushed, every probe must open).
    #[arg(long)]
    pub no_control: bool,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub name: NameArgs,
    /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
    #[arg(long)]
    pub json: bool,
    /// Samples per latency metric.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub samples: u32,
    /// Seconds per bulk transfer (each direction and path); 0 skips them.
    #[arg(long, default_value_t = 2.0)]
    pub bulk_seconds: f64,
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub name: NameArgs,
    /// The node: net (internet), rtr (router), srv (AI server), dev, dev2, adm, v1, v2, ...
    pub node: String,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[arg(long)]
    pub node: String,
    /// PROTO:SERVICE:IP:PORT, e.g. tcp:http:0.0.0.0:80.
    #[arg(long = "listen")]
    pub listen: Vec<String>,
}

pub fn run(context: &Context, args: LabArgs) -> anyhow::Result<Outcome> {
    match args.command {
        LabCommand::Up(a) => up(context, a),
        LabCommand::Down(a) => down(context, a),
        LabCommand::Status(a) => status(context, a),
        LabCommand::Probe(a) => probe_cmd(context, a),
        LabCommand::Bench(a) => bench_cmd(context, a),
        LabCommand::Exec(a) => exec(context, a),
        LabCommand::Serve(a) => serve(a),
    }
}

/// The lab name: `--name`, else derived from the deployment file's path.
pub fn lab_name(context: &Context, args: &NameArgs) -> anyhow::Result<LabName> {
    match &args.name {
        Some(name) => LabName::new(name).map_err(|e| usage(e.to_string())),
        None => Ok(LabName::derived_from(context.config_path())),
    }
}

/// Options shared by `lab up` and `demo`: the listener agent is this very binary.
pub fn lab_options(
    name: LabName,
    peers: usize,
    api_server: ApiServerArg,
) -> anyhow::Result<LabOptions> {
    let program = std::env::current_exe().context("cannot locate the sovereign executable")?;
    let ollama = sovereign_lab_find("ollama");
    let api_server = match (api_server, ollama) {
        (ApiServerArg::Emulator, _) | (ApiServerArg::Auto, None) => ApiServer::Emulator,
        (ApiServerArg::Auto | ApiServerArg::Ollama, Some(program)) => ApiServer::Ollama { program },
        (ApiServerArg::Ollama, None) => {
            return Err(usage("--api-server ollama: no `ollama` on PATH"));
        }
    };
    Ok(LabOptions {
        name,
        peers,
        agent: AgentCommand {
            program,
            args: vec!["lab".into(), "_serve".into()],
        },
        api_server,
    })
}

fn sovereign_lab_find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|p| p.is_file())
}

/// The deployment the lab runs: the file, or the reference deployment when there is none.
pub fn deployment(
    context: &Context,
    isolation: Option<IsolationArg>,
) -> anyhow::Result<(Deployment, ConfigSource)> {
    let (mut d, source) = context.load_or_reference()?;
    if let Some(isolation) = isolation {
        d.server.isolation = match isolation {
            IsolationArg::DedicatedPort => Isolation::DedicatedPort,
            IsolationArg::Shared => Isolation::Shared,
        };
    }
    Ok((d, source))
}

fn up(context: &Context, args: UpArgs) -> anyhow::Result<Outcome> {
    let name = lab_name(context, &args.name)?;
    let (deployment, source) = deployment(context, args.isolation)?;
    let options = lab_options(name.clone(), usize::from(args.peers), args.api_server)?;
    let lab =
        Lab::up(&deployment, options).with_context(|| format!("lab {name} could not be built"))?;
    if args.json {
        print_json(lab.state())?;
    } else {
        if source == ConfigSource::Reference {
            println!(
                "No {} here: the lab runs the built-in reference deployment.",
                context.config_path().display()
            );
        }
        print_up(&lab);
        println!(
            "\nNext: sovereign lab probe{0} | sovereign lab bench{0} | sovereign lab down{0}",
            name_flag(&args.name)
        );
    }
    lab.detach();
    Ok(Outcome::Success)
}

fn name_flag(args: &NameArgs) -> String {
    args.name
        .as_ref()
        .map(|n| format!(" --name {n}"))
        .unwrap_or_default()
}

pub fn print_up(lab: &Lab) {
    let t = &lab.state().setup;
    println!(
        "lab {} is up in {:.3} s: namespaces and links {:.3} s, WireGuard {:.3} s, router {:.3} s,\n  listeners {:.3} s, first API answer through every tunnel {:.3} s",
        lab.name(),
        t.total_ms as f64 / 1000.0,
        t.wiring_ms as f64 / 1000.0,
        t.wireguard_ms as f64 / 1000.0,
        t.router_ms as f64 / 1000.0,
        t.listeners_ms as f64 / 1000.0,
        t.tunnels_ms as f64 / 1000.0,
    );
    let api = match &lab.state().api_server {
        ApiServer::Emulator => "Ollama API emulator (test double)".to_string(),
        ApiServer::Ollama { program } => format!("{} serve", program.display()),
    };
    println!("AI server API: {api}");
    println!(
        "each node runs in the network namespace {}-NODE (`sovereign lab exec NODE -- CMD`)\n",
        lab.name()
    );
    println!("{}", nodes_table(lab).render());
}

fn nodes_table(lab: &Lab) -> Table {
    // The namespace is `<lab>-<node>` (print_up says so), which keeps this in 100 columns.
    let mut table = Table::new(["node", "role", "address", "tunnel", "listens"]);
    for node in &lab.topology().nodes {
        let tunnel = node
            .tunnel
            .as_ref()
            .map(|t| format!("{} {} ({})", t.interface, t.address, t.peer_name))
            .unwrap_or_default();
        let listens: Vec<String> = node
            .listeners
            .iter()
            .map(|l| format!("{}/{}", l.address.port(), l.proto))
            .collect();
        table.row([
            node.key.clone(),
            serde_json::to_value(node.role)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            node.address.to_string(),
            tunnel,
            listens.join(" "),
        ]);
    }
    table
}

fn down(context: &Context, args: NameArgs) -> anyhow::Result<Outcome> {
    let name = lab_name(context, &args)?;
    let started = std::time::Instant::now();
    // Down is idempotent: a lab that is not up is already where `down` leads.
    let report = match sovereign_lab::down(&name) {
        Err(sovereign_lab::LabError::NotUp(_)) => {
            println!("lab {name} is not up: nothing to remove");
            return Ok(Outcome::Success);
        }
        other => other?,
    };
    println!(
        "lab {name} is down in {:.2} s: stopped {} processes, removed {} namespaces",
        started.elapsed().as_secs_f64(),
        report.daemons,
        report.namespaces.len()
    );
    Ok(Outcome::Success)
}

#[derive(Debug, Serialize)]
struct Status<'a> {
    up: bool,
    name: String,
    state: Option<&'a sovereign_lab::LabState>,
    processes: Vec<ProcessStatus>,
    tunnels: Vec<TunnelStatus>,
}

#[derive(Debug, Serialize)]
struct ProcessStatus {
    name: String,
    pid: u32,
    alive: bool,
}

#[derive(Debug, Serialize)]
struct TunnelStatus {
    node: String,
    rx_bytes: u64,
    tx_bytes: u64,
}

fn status(context: &Context, args: StatusArgs) -> anyhow::Result<Outcome> {
    let name = lab_name(context, &args.name)?;
    let lab = match Lab::attach(&name) {
        Ok(lab) => lab,
        Err(sovereign_lab::LabError::NotUp(_)) => {
            if args.json {
                print_json(&Status {
                    up: false,
                    name: name.to_string(),
                    state: None,
                    processes: vec![],
                    tunnels: vec![],
                })?;
            } else {
                let others = sovereign_lab::lab::list();
                println!("lab {name} is not up");
                if !others.is_empty() {
                    let names: Vec<String> = others.iter().map(ToString::to_string).collect();
                    println!("labs that are up: {}", names.join(", "));
                }
            }
            return Ok(Outcome::CheckFailed);
        }
        Err(e) => return Err(e.into()),
    };
    let processes: Vec<ProcessStatus> = lab
        .state()
        .daemons
        .iter()
        .map(|d| ProcessStatus {
            name: d.name.clone(),
            pid: d.pid,
            alive: d.is_alive(),
        })
        .collect();
    let tunnels: Vec<TunnelStatus> = lab
        .topology()
        .clients()
        .map(|c| {
            let (rx, tx) = lab.client_transfer(&c.key).unwrap_or((0, 0));
            TunnelStatus {
                node: c.key.clone(),
                rx_bytes: rx,
                tx_bytes: tx,
            }
        })
        .collect();
    let healthy = processes.iter().all(|p| p.alive);
    if args.json {
        print_json(&Status {
            up: true,
            name: name.to_string(),
            state: Some(lab.state()),
            processes,
            tunnels,
        })?;
        return Ok(Outcome::from_passed(healthy));
    }
    print_up(&lab);
    let mut table = Table::new(["process", "pid", "state"]);
    for p in &processes {
        table.row([
            p.name.clone(),
            p.pid.to_string(),
            if p.alive {
                "running".into()
            } else {
                "GONE".to_string()
            },
        ]);
    }
    println!("{}", table.render());
    for t in &tunnels {
        println!(
            "tunnel {}: rx {} bytes, tx {} bytes",
            t.node, t.rx_bytes, t.tx_bytes
        );
    }
    Ok(Outcome::from_passed(healthy))
}

fn probe_cmd(context: &Context, args: ProbeArgs) -> anyhow::Result<Outcome> {
    let name = lab_name(context, &args.name)?;
    let lab = Lab::attach(&name)?;
    let report = probe::probe(&lab, !args.no_control)?;
    if args.json {
        print_json(&report)?;
    } else {
        print!("{}", probe::render_text(&report));
    }
    Ok(Outcome::from_passed(report.passed()))
}

fn bench_cmd(context: &Context, args: BenchArgs) -> anyhow::Result<Outcome> {
    let name = lab_name(context, &args.name)?;
    if !(args.bulk_seconds >= 0.0 && args.bulk_seconds <= 60.0) {
        return Err(usage("--bulk-seconds must be between 0 and 60"));
    }
    let mut lab = Lab::attach(&name)?;
    let options = BenchOptions {
        samples: args.samples as usize,
        bulk_seconds: args.bulk_seconds,
        ..BenchOptions::default()
    };
    let report = bench::bench(&mut lab, &options)?;
    if args.json {
        print_json(&report)?;
    } else {
        print!("{}", bench::render_text(&report));
    }
    Ok(Outcome::Success)
}

fn exec(context: &Context, args: ExecArgs) -> anyhow::Result<Outcome> {
    let name = lab_name(context, &args.name)?;
    let lab = Lab::attach(&name)?;
    let key = match args.node.as_str() {
        "internet" => "net",
        "router" => "rtr",
        "server" => "srv",
        "admin" => "adm",
        other => other,
    };
    let Some(node) = lab.topology().node(key) else {
        let keys: Vec<&str> = lab
            .topology()
            .nodes
            .iter()
            .map(|n| n.key.as_str())
            .collect();
        return Err(usage(format!(
            "lab {name} has no node `{}`; nodes: {}",
            args.node,
            keys.join(", ")
        )));
    };
    let status = std::process::Command::new("ip")
        .args(["netns", "exec", &node.netns])
        .args(&args.command)
        .status()
        .context("cannot run `ip netns exec`")?;
    match status.code() {
        Some(0) => Ok(Outcome::Success),
        Some(code) => std::process::exit(code),
        None => Ok(Outcome::CheckFailed),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<Outcome> {
    let listeners = args
        .listen
        .iter()
        .map(|l| sovereign_lab::agent::parse_listener(l))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    sovereign_lab::agent::serve(&args.node, &listeners)?;
    Ok(Outcome::Success)
}
