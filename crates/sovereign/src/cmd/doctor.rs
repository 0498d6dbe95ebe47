//! `sovereign doctor` (issue 18): name the broken layer between this machine and the
//! AI server. The judging is `sovereign_client::doctor`; this module finds what
//! `client setup` wrote, reads the router and the server over ssh when asked, owns
//! the clock and prints.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sovereign_client::doctor::{
    self, BundleFacts, Diagnosis, Inputs, Layer, OllamaNetwork, RouterProbe, RouterSample,
    ServerProbeView, ServerView, Status,
};
use sovereign_client::{ClientPaths, DEFAULT_INTERFACE, Platform, SystemRunner};
use sovereign_remote::{SshTransport, Transport};

use crate::cmd::router::remote::{SshArgs, transport};
use crate::context::{Context, Outcome, usage};
use crate::output::print_json;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Layers, inside out: config, interface, handshake, route, firewall, server, \
    api, model, mtu. Doctor stops at the first that fails and says what is wrong, how it knows, \
    and the one command that fixes or confirms it.\n\n\
    Examples:\n  \
    sovereign doctor                      # on a client set up with `sovereign client setup`\n  \
    sudo sovereign doctor --json          # with the rights to read the WireGuard handshake\n  \
    sovereign doctor --ssh root@192.168.1.1   # the router's view tells silent faults apart\n\n\
    Exit codes: 0 every layer passes, 1 a layer fails, 2 a usage error."
)]
pub struct DoctorArgs {
    /// Print every layer's status and the first failing layer as JSON.
    #[arg(long)]
    pub json: bool,
    /// The server's Ollama URL [default: what `client setup` configured].
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The WireGuard interface [default: the one `client setup` installed, else sovereign].
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,
    /// The tunnel's wg-quick config [default: the one `client setup` wrote].
    /// (Not `--config`: that global option names the deployment file.)
    #[arg(long, value_name = "FILE")]
    pub tunnel_config: Option<PathBuf>,
    /// The env file [default: the one `client setup` wrote].
    #[arg(long, value_name = "FILE")]
    pub env: Option<PathBuf>,
    /// Also compare the tunnel config with this peer bundle.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Read the router's view over ssh: its peers, its key, its rule counters.
    #[arg(long, value_name = "USER@HOST")]
    pub ssh: Option<String>,
    /// The router's ssh port.
    #[arg(long, value_name = "N", requires = "ssh")]
    pub port: Option<u16>,
    /// Log in to the router with this private key only.
    #[arg(long, value_name = "FILE", requires = "ssh")]
    pub identity: Option<PathBuf>,
    /// Read the AI server's listeners over ssh (tells "Ollama down" from "bound to 127.0.0.1").
    #[arg(long, value_name = "USER@HOST")]
    pub server_ssh: Option<String>,
    /// The server's ssh port.
    #[arg(long, value_name = "N", requires = "server_ssh")]
    pub server_port: Option<u16>,
    /// Budget for one connection or request, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3)]
    pub timeout: u64,
    /// How long to wait for a handshake after provoking one, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3)]
    pub handshake_wait: u64,
    /// Directory of the wg-quick config [default: as `client setup`].
    #[arg(long, value_name = "DIR")]
    pub wg_dir: Option<PathBuf>,
}

pub fn run(_context: &Context, args: DoctorArgs) -> anyhow::Result<Outcome> {
    if args.timeout == 0 {
        return Err(usage("--timeout must be at least 1 second"));
    }
    let paths = client_paths(args.wg_dir.as_deref())?;
    let manifest = sovereign_client::load_manifest(&paths).ok().flatten();
    let interface = args
        .interface
        .clone()
        .or_else(|| manifest.as_ref().map(|m| m.interface.clone()))
        .unwrap_or_else(|| DEFAULT_INTERFACE.to_string());
    sovereign_client::check_interface(&interface).map_err(|e| usage(e.to_string()))?;
    let config_path = args
        .tunnel_config
        .clone()
        .or_else(|| manifest.as_ref().map(|m| m.wg_config.clone()))
        .unwrap_or_else(|| paths.wg_config(&interface));
    let config_text = std::fs::read_to_string(&config_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!("{e} (it is 0600: run doctor with sudo, or pass --tunnel-config)")
        } else if manifest.is_none() && args.tunnel_config.is_none() {
            format!("{e}; this machine is not set up (run `sovereign client setup --bundle FILE`)")
        } else {
            e.to_string()
        }
    });
    let env_path = args.env.clone().unwrap_or_else(|| paths.env_sh());
    let env_text = (args.env.is_some() || manifest.is_some())
        .then(|| std::fs::read_to_string(&env_path).map_err(|e| e.to_string()));
    let env_url = env_text
        .as_ref()
        .and_then(|t| t.as_ref().ok())
        .and_then(|t| doctor::env_ollama_host(t));
    let bundle = match &args.bundle {
        Some(path) => {
            let b = sovereign_client::load_bundle(path).map_err(|e| usage(e.to_string()))?;
            Some(BundleFacts {
                path: path.display().to_string(),
                endpoint: b.wireguard.endpoint.clone(),
                router_public_key: b.wireguard.router_public_key.clone(),
                ollama_url: b.api.ollama.clone(),
            })
        }
        None => None,
    };
    let url = args
        .url
        .clone()
        .or_else(|| manifest.as_ref().map(|m| m.server_url.clone()))
        .or(env_url)
        .or_else(|| bundle.as_ref().map(|b| b.ollama_url.clone()))
        .unwrap_or_default();
    let client_public_key = config_text
        .as_ref()
        .ok()
        .and_then(|t| sovereign_wg::quick::value(t, "PrivateKey"))
        .and_then(|k| sovereign_wg::Key::from_base64(&k).ok())
        .map(|k| k.public_key().to_base64());
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let inputs = Inputs {
        interface,
        config_path: config_path.display().to_string(),
        config_text,
        env_path: env_path.display().to_string(),
        env_text,
        bundle,
        url,
        client_public_key,
        required_context: manifest
            .as_ref()
            .filter(|m| !m.tools.is_empty())
            .map(|_| sovereign_client::CODING_AGENT_MIN_CONTEXT),
        connect_timeout: Duration::from_secs(args.timeout),
        handshake_wait: Duration::from_secs(args.handshake_wait),
        now_unix,
    };
    let router = match &args.ssh {
        Some(ssh) => Some(SshRouter {
            transport: transport(&SshArgs {
                ssh: ssh.clone(),
                port: args.port,
                identity: args.identity.clone(),
                ssh_config: None,
            })?,
            api_port: doctor::server_address(&inputs.url).map_or(11434, |s| s.port()),
        }),
        None => None,
    };
    let server = match &args.server_ssh {
        Some(ssh) => Some(SshServer {
            transport: transport(&SshArgs {
                ssh: ssh.clone(),
                port: args.server_port,
                identity: None,
                ssh_config: None,
            })?,
        }),
        None => None,
    };
    let network = OllamaNetwork {
        timeout: Duration::from_secs(args.timeout),
    };
    let diagnosis = doctor::run_doctor(
        &inputs,
        &SystemRunner,
        &network,
        router.as_ref().map(|r| r as &dyn RouterProbe),
        server.as_ref().map(|s| s as &dyn ServerProbeView),
    );
    if args.json {
        print_json(&diagnosis)?;
    } else {
        print!("{}", render(&diagnosis));
    }
    Ok(Outcome::from_passed(diagnosis.ok))
}

fn client_paths(wg_dir: Option<&std::path::Path>) -> anyhow::Result<ClientPaths> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            usage("$HOME is not set; doctor needs it to find what `client setup` wrote")
        })?;
    let env_path = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    Ok(ClientPaths::new(
        &home,
        env_path("XDG_CONFIG_HOME").as_deref(),
        env_path("CODEX_HOME").as_deref(),
        wg_dir,
        Platform::current(),
    ))
}

/// The human report: one line per layer, the failure spelled out.
pub fn render(d: &Diagnosis) -> String {
    let mut out = String::new();
    for l in &d.layers {
        let mark = match l.status {
            Status::Pass => "ok  ",
            Status::Fail => "FAIL",
            Status::Unknown => "?   ",
            Status::Skipped => "-   ",
        };
        out.push_str(&format!("{mark} {:<10} {}\n", l.layer.name(), l.what));
        if l.status == Status::Fail {
            if let Some(e) = &l.evidence {
                out.push_str(&format!("     {:<10} how: {e}\n", ""));
            }
            for c in &l.candidates {
                out.push_str(&format!("     {:<10} - maybe: {c}\n", ""));
            }
            if let Some(fix) = &l.fix {
                out.push_str(&format!("     {:<10} fix: {fix}\n", ""));
            }
        }
    }
    for note in &d.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    match d.first_failure {
        None => out.push_str(&format!("every layer passes ({} ms)\n", d.elapsed_ms)),
        Some(layer) => out.push_str(&format!(
            "first failing layer: {} ({} ms)\n",
            Layer::name(layer),
            d.elapsed_ms
        )),
    }
    out
}

/// The router read over ssh with `router status`'s script, plus its addresses.
struct SshRouter {
    transport: SshTransport,
    api_port: u16,
}

impl RouterProbe for SshRouter {
    fn sample(
        &self,
        client_public_key: Option<&str>,
        endpoint: Option<&str>,
    ) -> Result<RouterSample, String> {
        let script = format!(
            "{}echo '### addresses'\nip -4 -o addr show\n",
            sovereign_remote::status::status_script()
        );
        let output = self
            .transport
            .run(&script, &[])
            .map_err(|e| e.to_string())?;
        if !output.success() {
            return Err(format!(
                "reading the router failed: {}",
                output.stderr.trim()
            ));
        }
        let listen_port = endpoint
            .and_then(|e| e.rsplit_once(':'))
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .unwrap_or(51820);
        router_sample(
            &self.transport.describe(),
            &output.stdout,
            client_public_key,
            listen_port,
            self.api_port,
        )
    }
}

fn sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("### ") {
            out.push((name.trim().to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// One sample from the gathered text (pure).
fn router_sample(
    router: &str,
    gathered: &str,
    client_public_key: Option<&str>,
    listen_port: u16,
    api_port: u16,
) -> Result<RouterSample, String> {
    use sovereign_remote::{nftjson, wgdump};
    let parts = sections(gathered);
    let part = |name: &str| {
        parts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_str())
            .unwrap_or("")
    };
    let now: u64 = part("now").trim().parse().unwrap_or(0);
    let dump = wgdump::parse_dump(part("wg")).map_err(|e| e.to_string())?;
    let interface = dump.iter().find(|i| i.listen_port == Some(listen_port));
    let peer = interface.and_then(|i| {
        i.peers
            .iter()
            .find(|p| Some(p.public_key.as_str()) == client_public_key)
    });
    let ruleset = nftjson::parse(part("ruleset").trim()).map_err(|e| e.to_string())?;
    let rules = nftjson::rules(&ruleset).map_err(|e| e.to_string())?;
    let openwrt = rules.iter().any(|r| r.family == "inet" && r.table == "fw4");
    let ours = |r: &&nftjson::NftRule| {
        let table = format!("{} {}", r.family, r.table);
        table == sovereign_remote::LINUX_TABLE || table == "inet fw4"
    };
    let count = |port: u16| {
        let matching: Vec<_> = rules
            .iter()
            .filter(ours)
            .filter(|r| nftjson::matches_dport(r, port))
            .collect();
        (!matching.is_empty()).then(|| matching.iter().filter_map(|r| r.packets).sum::<u64>())
    };
    let addresses = part("addresses")
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let i = words.iter().position(|w| *w == "inet")?;
            words.get(i + 1)?.parse::<ipnet::Ipv4Net>().ok()
        })
        .collect();
    Ok(RouterSample {
        router: router.to_string(),
        interface_found: interface.is_some(),
        router_public_key: interface.map(|i| i.public_key.clone()),
        peer_present: peer.is_some(),
        peer_handshake_age_secs: peer
            .and_then(|p| p.latest_handshake)
            .map(|t| now.saturating_sub(t)),
        addresses,
        wireguard_packets: count(listen_port),
        api_packets: count(api_port),
        openwrt,
    })
}

/// The AI server's listening sockets over ssh (`ss -Hltn`).
struct SshServer {
    transport: SshTransport,
}

impl ServerProbeView for SshServer {
    fn listeners(&self, port: u16) -> Result<ServerView, String> {
        let output = self
            .transport
            .run("ss -Hltn\n", &[])
            .map_err(|e| e.to_string())?;
        if !output.success() {
            return Err(format!("`ss -Hltn` failed: {}", output.stderr.trim()));
        }
        Ok(ServerView {
            bound: bound_addresses(&output.stdout, port),
        })
    }
}

/// The addresses bound to `port` in `ss -Hltn` output; `*` and `[::]` count as 0.0.0.0.
fn bound_addresses(text: &str, port: u16) -> Vec<Ipv4Addr> {
    text.lines()
        .filter_map(|line| {
            let local = line.split_whitespace().nth(3)?;
            let (host, p) = local.rsplit_once(':')?;
            if p.parse::<u16>().ok()? != port {
                return None;
            }
            match host {
                "*" | "[::]" | "0.0.0.0" => Some(Ipv4Addr::UNSPECIFIED),
                "[::1]" => Some(Ipv4Addr::LOCALHOST),
                other => other.parse().ok(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_human_report_spells_out_the_failure() {
        use sovereign_client::doctor::LayerReport;
        let report = |layer, status, cause: Option<&str>| LayerReport {
            layer,
            status,
            cause: cause.map(String::from),
            what: format!("{} said so", Layer::name(layer)),
            evidence: cause.map(|_| "TCP connect answered with a reset".to_string()),
            fix: cause.map(|_| "sovereign server start".to_string()),
            candidates: cause
                .map(|_| vec!["Ollama is not running".to_string()])
                .unwrap_or_default(),
        };
        let d = Diagnosis {
            ok: false,
            first_failure: Some(Layer::Server),
            layers: vec![
                report(Layer::Firewall, Status::Pass, None),
                report(Layer::Server, Status::Fail, Some("refused")),
                report(Layer::Api, Status::Skipped, None),
            ],
            notes: vec!["handshake: no rights".into()],
            elapsed_ms: 12,
        };
        let text = render(&d);
        assert!(text.contains("ok   firewall"), "{text}");
        assert!(text.contains("FAIL server     server said so"), "{text}");
        assert!(
            text.contains("how: TCP connect answered with a reset"),
            "{text}"
        );
        assert!(text.contains("- maybe: Ollama is not running"), "{text}");
        assert!(text.contains("fix: sovereign server start"), "{text}");
        assert!(text.contains("note: handshake: no rights"), "{text}");
        assert!(
            text.ends_with("first failing layer: server (12 ms)\n"),
            "{text}"
        );
    }

    #[test]
    fn listeners_from_ss() {
        let text = "LISTEN 0 4096 127.0.0.1:11434 0.0.0.0:*\nLISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n";
        assert_eq!(bound_addresses(text, 11434), [Ipv4Addr::LOCALHOST]);
        assert_eq!(
            bound_addresses("LISTEN 0 4096 *:11434 *:*\n", 11434),
            [Ipv4Addr::UNSPECIFIED]
        );
        assert!(bound_addresses(text, 8080).is_empty());
    }

    #[test]
    fn a_router_sample_finds_the_peer_the_key_and_the_counters() {
        let gathered = "### now\n1000\n### wg\n\
            wg0\t(hidden)\tROUTERPUB=\t51820\toff\n\
            wg0\tCLIENT=\t(set)\t203.0.113.5:4000\t10.10.10.2/32\t990\t1\t2\toff\n\
            ### ruleset\n{\"nftables\": [{\"rule\": {\"family\": \"inet\", \"table\": \"sovereign\", \"chain\": \"input\", \"handle\": 3, \
            \"expr\": [{\"match\": {\"op\": \"==\", \"left\": {\"payload\": {\"protocol\": \"udp\", \"field\": \"dport\"}}, \"right\": 51820}}, \
            {\"counter\": {\"packets\": 7, \"bytes\": 700}}, {\"accept\": null}]}}]}\n\
            ### addresses\n2: wan0    inet 203.0.113.2/24 brd 203.0.113.255 scope global wan0\n";
        let s = router_sample("r", gathered, Some("CLIENT="), 51820, 11434).unwrap();
        assert!(s.interface_found && s.peer_present && !s.openwrt, "{s:?}");
        assert_eq!(s.router_public_key.as_deref(), Some("ROUTERPUB="));
        assert_eq!(s.peer_handshake_age_secs, Some(10));
        assert_eq!(s.wireguard_packets, Some(7));
        assert_eq!(s.api_packets, None);
        assert_eq!(
            s.addresses,
            ["203.0.113.2/24".parse::<ipnet::Ipv4Net>().unwrap()]
        );
        let other = router_sample("r", gathered, Some("SOMEONE="), 51820, 11434).unwrap();
        assert!(!other.peer_present);
    }
}
