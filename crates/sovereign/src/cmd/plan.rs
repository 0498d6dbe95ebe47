//! `sovereign plan`: the offline main job. Load the file (or the reference
//! deployment), render every artifact in memory and show what would run where.

use serde::Serialize;
use sovereign_model::{
    BindMode, Deployment, Expect, IntentMatrix, Isolation, MacService, Platform, RouterTarget,
    Warning,
};
use sovereign_router::{IsolationVerdict, Rendering};
use sovereign_wg::{KeyStore, RouterSecrets};

use crate::context::{ConfigSource, Context, Outcome};
use crate::output::{Table, print_json};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  sovereign plan\n  sovereign plan --json | jq .intent")]
pub struct PlanArgs {
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Plan<'a> {
    /// The file the plan came from, or null for the built-in reference deployment.
    config: Option<String>,
    deployment: &'a Deployment,
    layers: Vec<Layer>,
    router: RouterPlan,
    intent: IntentMatrix,
    /// The static verifier's verdict on the rendered firewall.
    verifier: VerifierPlan,
    warnings: Vec<Warning>,
    /// Active peers with an expiry, soonest first; expired ones are left out of the router.
    expiries: Vec<PeerExpiry>,
}

#[derive(Debug, Serialize)]
struct PeerExpiry {
    peer: String,
    expires: String,
    expired: bool,
    /// Whole days left (0 when less than a day, or expired).
    days_left: u64,
}

fn expiries(d: &Deployment, now: std::time::SystemTime) -> Vec<PeerExpiry> {
    let mut out: Vec<(std::time::SystemTime, PeerExpiry)> = d
        .active_peers()
        .filter_map(|p| {
            let at = p.expires_at()?;
            let left = at.duration_since(now).unwrap_or_default();
            Some((
                at,
                PeerExpiry {
                    peer: p.name.clone(),
                    expires: p.expires.clone().unwrap_or_default(),
                    expired: at <= now,
                    days_left: left.as_secs() / 86_400,
                },
            ))
        })
        .collect();
    out.sort_by_key(|(at, _)| *at);
    out.into_iter().map(|(_, e)| e).collect()
}

/// What `router render` would write, without the file contents (they hold keys).
#[derive(Debug, Serialize)]
struct RouterPlan {
    target: RouterTarget,
    /// True when no keys exist yet, so the files were rendered with stand-in keys.
    placeholder_keys: bool,
    files: Vec<PlannedFile>,
    isolation: IsolationVerdict,
    checklist: Vec<String>,
}

#[derive(Debug, Serialize)]
struct VerifierPlan {
    summary: sovereign_verify::Summary,
    /// One line per violated or unknown cell and per lint error.
    problems: Vec<String>,
}

#[derive(Debug, Serialize)]
struct PlannedFile {
    path: String,
    bytes: usize,
    secret: bool,
    purpose: String,
}

#[derive(Debug, Serialize)]
struct Layer {
    name: &'static str,
    runs: Vec<String>,
}

pub fn run(context: &Context, args: PlanArgs) -> anyhow::Result<Outcome> {
    let (deployment, source) = context.load_or_reference()?;
    let now = std::time::SystemTime::now();
    // The router as it would be rendered now: expired peers left out.
    let (rendering, placeholder_keys) = render_router(context, &deployment.as_of(now))?;
    tracing::info!(
        "rendered {} router files for {}{}",
        rendering.files.len(),
        rendering.target,
        if placeholder_keys {
            " (placeholder keys: no state directory yet)"
        } else {
            ""
        }
    );
    let verifier = verify_rendered(&deployment)?;
    tracing::info!("verified the rendered firewall against the intent");
    let plan = Plan {
        config: match &source {
            ConfigSource::File(path) => Some(path.display().to_string()),
            ConfigSource::Reference => None,
        },
        deployment: &deployment,
        layers: layers(&deployment),
        router: RouterPlan {
            target: rendering.target,
            placeholder_keys,
            files: rendering
                .files
                .iter()
                .map(|f| PlannedFile {
                    path: f.path.clone(),
                    bytes: f.contents.len(),
                    secret: f.secret,
                    purpose: f.purpose.clone(),
                })
                .collect(),
            isolation: rendering.isolation.clone(),
            checklist: rendering.checklist.clone(),
        },
        intent: sovereign_model::intent(&deployment),
        verifier,
        warnings: sovereign_model::warnings(&deployment),
        expiries: expiries(&deployment, now),
    };
    if args.json {
        print_json(&plan)?;
        return Ok(Outcome::Success);
    }
    match &source {
        ConfigSource::File(path) => println!("sovereign plan for {}\n", path.display()),
        ConfigSource::Reference => println!(
            "No {} here: showing the built-in reference deployment. `sovereign init` writes your own.\n",
            context.config_path().display()
        ),
    }
    println!("Topology\n{}", topology(&deployment));
    println!("What each layer runs");
    for layer in &plan.layers {
        println!("  {}", layer.name);
        for line in &layer.runs {
            println!("    - {line}");
        }
    }
    print_router(&plan.router);
    println!(
        "\nIntended reachability (rows: from, columns: to)\n{}",
        matrix_table(&plan.intent)
    );
    print_verifier(&plan.verifier, &deployment);
    if !plan.expiries.is_empty() {
        println!("Peer expiries");
        for e in &plan.expiries {
            if e.expired {
                println!(
                    "  {}: EXPIRED at {}; left out of the router config (`sovereign peer extend {}` brings it back)",
                    e.peer, e.expires, e.peer
                );
            } else {
                println!(
                    "  {}: expires {} (in {} days)",
                    e.peer, e.expires, e.days_left
                );
            }
        }
    }
    if !plan.warnings.is_empty() {
        println!("Warnings");
        for warning in &plan.warnings {
            println!("  ! {}: {}", warning.field, warning.message);
        }
    }
    Ok(Outcome::Success)
}

fn topology(d: &Deployment) -> String {
    let peers: Vec<String> = d
        .active_peers()
        .map(|p| format!("{} {}", p.name, p.address))
        .collect();
    let peers = if peers.is_empty() {
        "no peers yet".to_string()
    } else {
        peers.join(", ")
    };
    let server_link = match d.server.isolation {
        Isolation::DedicatedPort => format!(
            "own router port {} (dedicated-port: routed /32, own zone)",
            d.server.router_port
        ),
        Isolation::Shared => format!(
            "shared LAN bridge {} (NOT isolated from the LAN)",
            d.lan.interface
        ),
    };
    format!(
        "  internet -> {endpoint} -> router WAN {wan_if} {wan}, UDP {port} open\n\
         \x20              |-- {wg_if} {wg_addr}/{wg_len} MTU {mtu}: {peers}\n\
         \x20              `-- LAN {lan_if} {lan}, router {lan_rtr}\n\
         \x20                    |-- AI server {server}:{api} via {server_link}\n\
         \x20                    `-- other LAN devices\n",
        endpoint = d.wan.endpoint,
        wan_if = d.wan.interface,
        wan = d.wan.address,
        port = d.wireguard.listen_port,
        wg_if = d.wireguard.interface,
        wg_addr = d.wireguard.address,
        wg_len = d.wireguard.subnet.prefix_len(),
        mtu = d.wireguard.mtu,
        lan_if = d.lan.interface,
        lan = d.lan.subnet,
        lan_rtr = d.lan.router_address,
        server = d.server.address,
        api = d.server.api_port,
    )
}

fn layers(d: &Deployment) -> Vec<Layer> {
    let router = match d.router.target {
        RouterTarget::Openwrt => "OpenWrt (fw4 + netifd WireGuard), applied as one uci batch",
        RouterTarget::Linux => {
            "Linux (one nftables table `inet sovereign` + WireGuard), loaded atomically"
        }
    };
    let vpn_ports = if d.policy.vpn_ssh {
        format!("TCP {} and {}", d.server.api_port, d.server.ssh_port)
    } else {
        format!("TCP {}", d.server.api_port)
    };
    let bind = match d.server.bind {
        BindMode::LanIp => format!("{}:{}", d.server.address, d.server.api_port),
        BindMode::All => format!("0.0.0.0:{}", d.server.api_port),
    };
    let service = match (d.server.platform, d.server.service) {
        (Platform::Macos, MacService::Agent) => {
            "a LaunchAgent of its own (EnvironmentVariables survive reboots and app updates; \
             runs only while its user is logged in)"
                .to_string()
        }
        (Platform::Macos, MacService::Daemon) => format!(
            "a system LaunchDaemon as {} (starts at boot with nobody logged in, waits for its \
             LAN address, models in /Library/Application Support/sovereign/ollama/models)",
            d.server.service_account
        ),
        (Platform::Linux, _) => "a systemd system unit (starts at boot without a login), \
                                 ordered after the server's address exists"
            .to_string(),
    };
    let mut server_runs = vec![
        format!("ollama serve as {service}"),
        format!(
            "OLLAMA_HOST={bind} OLLAMA_CONTEXT_LENGTH={} OLLAMA_KEEP_ALIVE={} OLLAMA_NUM_PARALLEL={} OLLAMA_FLASH_ATTENTION={}",
            d.ollama.context_length,
            d.ollama.keep_alive,
            d.ollama.num_parallel,
            u8::from(d.ollama.flash_attention)
        ),
    ];
    if d.server.platform == Platform::Macos {
        // Always-on needs the Mac awake and booting by itself; plan is offline, so
        // FileVault is described, not probed (`server status` reports it).
        server_runs.extend(
            sovereign_server::power::policy_lines(d.server.service == MacService::Daemon)
                .into_iter()
                .map(|line| format!("power policy: {line}")),
        );
        server_runs.push(sovereign_server::power::filevault_note(None));
    }
    let urls = d.api_urls();
    vec![
        Layer {
            name: "router",
            runs: vec![
                router.to_string(),
                format!(
                    "WireGuard {} on UDP {}, {} active peers, per-peer keys and preshared keys",
                    d.wireguard.interface,
                    d.wireguard.listen_port,
                    d.active_peers().count()
                ),
                format!(
                    "VPN peers -> {} {vpn_ports} only; everything else rejected",
                    d.server.address
                ),
                format!(
                    "AI server -> internet {}; -> LAN and router: rejected except DNS",
                    if d.policy.server_internet {
                        "allowed (masqueraded)"
                    } else {
                        "blocked (air-gapped)"
                    }
                ),
                format!(
                    "MSS clamped to the path MTU; tunnel MTU {}",
                    d.wireguard.mtu
                ),
            ],
        },
        Layer {
            name: "AI server",
            runs: server_runs,
        },
        Layer {
            name: "clients",
            runs: vec![
                format!(
                    "wg-quick config per peer: AllowedIPs {}, MTU {}",
                    join(&d.client_allowed_ips()),
                    d.wireguard.mtu
                ),
                format!(
                    "OLLAMA_HOST={}  OPENAI_BASE_URL={}  ANTHROPIC_BASE_URL={} (no /v1)",
                    urls.ollama, urls.openai, urls.anthropic
                ),
            ],
        },
    ]
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The intent as a grid; `!` marks a cell the router cannot enforce.
pub fn matrix_table(intent: &IntentMatrix) -> String {
    let mut table = Table::new(
        std::iter::once("from \\ to".to_string())
            .chain(intent.destinations.iter().map(|d| d.label().to_string())),
    );
    for &source in &intent.sources {
        let cells =
            intent
                .destinations
                .iter()
                .map(|&destination| match intent.get(source, destination) {
                    None => "-".to_string(),
                    Some(cell) => {
                        let word = match cell.expect {
                            Expect::Allow => "allow",
                            Expect::Deny => "deny",
                        };
                        if cell.enforceable {
                            word.to_string()
                        } else {
                            format!("{word}!")
                        }
                    }
                });
        table.row(std::iter::once(source.label().to_string()).chain(cells));
    }
    let mut text = table.render();
    if intent.unenforceable().next().is_some() {
        text.push_str(
            "  ! = the router never sees this traffic (shared L2 segment): NOT enforceable\n",
        );
    }
    text
}

/// Render the router in memory. `plan` never creates keys: it reads the ones that
/// exist and stands in fixed fake keys otherwise (contents are not shown anyway).
fn render_router(context: &Context, d: &Deployment) -> anyhow::Result<(Rendering, bool)> {
    let existing = existing_secrets(context, d);
    let placeholder = existing.is_none();
    let secrets = existing
        .unwrap_or_else(|| RouterSecrets::for_tests(d.active_peers().map(|p| p.name.as_str())));
    let rendering = sovereign_router::render(d, &secrets, d.router.target)
        .map_err(|e| crate::context::usage(format!("cannot render the router config: {e}")))?;
    Ok((rendering, placeholder))
}

fn existing_secrets(context: &Context, d: &Deployment) -> Option<RouterSecrets> {
    let store = KeyStore::open(context.state_dir()).ok()?;
    // Only existing keys: router_secrets would generate a missing one.
    store.router_private_key().ok()??;
    store.router_secrets(d).ok()
}

fn print_router(router: &RouterPlan) {
    let target = match router.target {
        RouterTarget::Openwrt => "openwrt",
        RouterTarget::Linux => "linux",
    };
    println!("\nRouter files (`sovereign router render --target {target}`)");
    let mut table = Table::new(["file", "bytes", "", "purpose"]);
    for file in &router.files {
        let secret = if file.secret { "0600" } else { "" };
        table.row([
            file.path.clone(),
            file.bytes.to_string(),
            secret.to_string(),
            file.purpose.clone(),
        ]);
    }
    for line in table.render().lines() {
        println!("  {line}");
    }
    if router.placeholder_keys {
        println!(
            "  (no keys yet: rendered with stand-in keys; `sovereign router render` creates the router key)"
        );
    }
    let verdict = if router.isolation.enforceable {
        "enforced"
    } else {
        "NOT enforceable"
    };
    println!("\nServer isolation: {verdict}: {}", router.isolation.reason);
    if !router.checklist.is_empty() {
        println!("\nBy hand (cannot be scripted)");
        for item in &router.checklist {
            println!("  [ ] {item}");
        }
    }
}

fn verify_rendered(d: &Deployment) -> anyhow::Result<VerifierPlan> {
    use sovereign_verify::{Severity, Status};
    let report = sovereign_verify::verify_rendered(d, d.router.target)
        .map_err(|e| anyhow::anyhow!("the verifier could not read the rendered firewall: {e}"))?;
    let cells = report.cells.iter().filter(|c| {
        c.status == Status::Unknown || (c.status != Status::NotRouted && !c.witnesses.is_empty())
    });
    let mut problems: Vec<String> = cells
        .map(|c| {
            format!(
                "{} -> {} ({}): expected {}, found {}",
                c.source.label(),
                c.destination.label(),
                c.family,
                c.expect,
                c.status
            )
        })
        .collect();
    problems.extend(
        report
            .lints
            .iter()
            .filter(|l| l.severity == Severity::Error)
            .map(|l| format!("{}: {}", l.code, l.message)),
    );
    Ok(VerifierPlan {
        summary: report.summary,
        problems,
    })
}

fn print_verifier(verifier: &VerifierPlan, d: &Deployment) {
    let s = &verifier.summary;
    let verdict = if s.holds { "HOLDS" } else { "DOES NOT HOLD" };
    println!(
        "\nStatic verification of the rendered firewall: {verdict} ({} of {} cells as intended, {} violated, {} unknown, {} unenforceable)",
        s.holding, s.cells, s.violated, s.unknown, s.unenforceable
    );
    for problem in &verifier.problems {
        println!("  ! {problem}");
    }
    if !s.holds {
        let target = match d.router.target {
            RouterTarget::Openwrt => "openwrt",
            RouterTarget::Linux => "linux",
        };
        println!("  `sovereign verify --rendered --target {target}` shows the traces");
    }
}
