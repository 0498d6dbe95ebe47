//! `sovereign doctor`: walk the path from this machine to the AI server inside out
//! and name the first layer that is broken, what is wrong, how doctor knows, and the
//! one command that fixes or confirms it.
//!
//! [`diagnose`] is pure: it judges [`Facts`], the observations per layer. [`gather`]
//! collects them through [`CommandRunner`] (`ip`, `wg`), [`Network`] (TCP and HTTP to
//! the server) and, when the admin gave ssh access, [`RouterProbe`] (the router's own
//! view: its peers, its key, its rule counters). Missing access is a note, never a
//! failure: the next layer that can be observed decides.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::status::HANDSHAKE_FRESH_SECS;
use crate::system::CommandRunner;

/// The layers, inside out. Their names are the `--json` vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    Config,
    Interface,
    Handshake,
    Route,
    Firewall,
    Server,
    Api,
    Model,
    Mtu,
}

impl Layer {
    pub const ALL: [Layer; 9] = [
        Layer::Config,
        Layer::Interface,
        Layer::Handshake,
        Layer::Route,
        Layer::Firewall,
        Layer::Server,
        Layer::Api,
        Layer::Model,
        Layer::Mtu,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Layer::Config => "config",
            Layer::Interface => "interface",
            Layer::Handshake => "handshake",
            Layer::Route => "route",
            Layer::Firewall => "firewall",
            Layer::Server => "server",
            Layer::Api => "api",
            Layer::Model => "model",
            Layer::Mtu => "mtu",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    Fail,
    /// Could not be observed (no rights, not applicable); a later layer decides.
    Unknown,
    /// Not looked at: an earlier layer failed.
    Skipped,
}

/// One layer's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerReport {
    pub layer: Layer,
    pub status: Status,
    /// A stable, kebab-case name of the cause (`refused`, `peer-not-on-router`, ...),
    /// for scripts and tests; `None` when the layer passed.
    pub cause: Option<String>,
    /// What is wrong (or what was seen, when it passed).
    pub what: String,
    /// How doctor knows.
    pub evidence: Option<String>,
    /// The one command that fixes or confirms it.
    pub fix: Option<String>,
    /// When the client alone cannot tell the causes apart: every candidate.
    pub candidates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub ok: bool,
    pub first_failure: Option<Layer>,
    pub layers: Vec<LayerReport>,
    /// Missing access and other things worth knowing that are not failures.
    pub notes: Vec<String>,
    pub elapsed_ms: u64,
}

/// An observation that may not have been possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen<T> {
    Yes(T),
    /// Not allowed or not possible here (no rights to read WireGuard state, no `ip`).
    NoAccess(String),
}

/// The tunnel config as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    pub addresses: Vec<Ipv4Net>,
    pub allowed_ips: Vec<Ipv4Net>,
    pub endpoint: Option<String>,
    pub router_public_key: Option<String>,
    pub mtu: Option<u16>,
}

/// What the bundle says, when doctor was given one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFacts {
    pub path: String,
    pub endpoint: String,
    pub router_public_key: String,
    pub ollama_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFacts {
    pub exists: bool,
    pub up: bool,
    pub mtu: Option<u16>,
    pub addresses: Vec<Ipv4Net>,
}

/// `wg show IF dump`, the peer that is the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgFacts {
    /// Public keys of the interface's peers.
    pub peers: Vec<String>,
    /// The live endpoint of the router peer.
    pub endpoint: Option<String>,
    /// Seconds since the latest handshake with the router peer, `None` if never.
    pub handshake_age_secs: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// `ip route get SERVER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFacts {
    pub device: String,
    pub via: Option<Ipv4Addr>,
}

/// How a TCP connect to the server ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connect {
    Connected,
    /// A TCP reset: nothing listens (or an OpenWrt REJECT, which answers TCP with a reset).
    Refused,
    /// An ICMP error came back (admin-prohibited, host unreachable): a reject.
    Unreachable(String),
    /// Nothing came back within the timeout: dropped somewhere.
    Silence,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFacts {
    pub name: String,
    /// `/api/show` capabilities (`completion`, `embedding`, `tools`, ...); empty if unknown.
    pub capabilities: Vec<String>,
    /// The longest context the model supports (`<arch>.context_length` in `model_info`).
    pub context_length: Option<u64>,
}

/// What the server says about its listeners (`--server-ssh`, or doctor on the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerView {
    /// Addresses Ollama's port is bound to (`127.0.0.1`, `0.0.0.0`, ...).
    pub bound: Vec<Ipv4Addr>,
}

/// The router's view, sampled before and after doctor's own traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterView {
    pub router: String,
    /// The router's WireGuard interface was found (by its listen port).
    pub interface_found: bool,
    pub router_public_key: Option<String>,
    pub peer_present: bool,
    /// From the router's clock.
    pub peer_handshake_age_secs: Option<u64>,
    /// The router's IPv4 addresses, with their prefixes.
    pub addresses: Vec<Ipv4Net>,
    /// Packets counted by the rules on the WireGuard port: before, after.
    pub wireguard_packets: Option<(u64, u64)>,
    /// Packets counted by the rules on the API port: before, after; `None`: no such rule.
    pub api_packets: Option<(u64, u64)>,
    /// OpenWrt (fw4 rejects TCP with a reset).
    pub openwrt: bool,
}

/// Everything doctor observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub interface: String,
    pub config_path: String,
    pub env_path: String,
    pub url: String,
    /// The tunnel config, or why it could not be read.
    pub tunnel: Result<TunnelConfig, String>,
    /// The env file's OLLAMA_HOST, or why it could not be read; `None` when there is no env file to check.
    pub env_url: Option<Result<String, String>>,
    pub bundle: Option<BundleFacts>,
    pub link: Seen<LinkFacts>,
    pub wg: Seen<WgFacts>,
    pub route: Seen<RouteFacts>,
    pub connect: Option<Connect>,
    pub version: Option<Result<String, String>>,
    pub models: Option<Result<Vec<ModelFacts>, String>>,
    /// A full-size request and a streamed answer.
    pub mtu: Option<Result<(), String>>,
    pub router: Option<Result<RouterView, String>>,
    pub server: Option<Result<ServerView, String>>,
    /// The context the configured coding agents need, when some are configured.
    pub required_context: Option<u32>,
}

/// The server's socket address from an `http://IP:PORT` URL.
pub fn server_address(url: &str) -> Option<SocketAddrV4> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    if let Ok(address) = authority.parse() {
        return Some(address);
    }
    let ip: Ipv4Addr = authority.parse().ok()?;
    Some(SocketAddrV4::new(ip, 11434))
}

fn host_of(endpoint: &str) -> &str {
    endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h)
}

/// One layer's judgement: it records its verdict and may add notes.
type Step<'a> = dyn Fn(&mut Walk, &mut Vec<String>) + 'a;

struct Walk {
    layers: Vec<LayerReport>,
    failed: bool,
}

impl Walk {
    fn pass(&mut self, layer: Layer, what: impl Into<String>) {
        self.push(layer, Status::Pass, None, what.into(), None, None, vec![]);
    }
    fn unknown(&mut self, layer: Layer, what: impl Into<String>) {
        self.push(
            layer,
            Status::Unknown,
            None,
            what.into(),
            None,
            None,
            vec![],
        );
    }
    fn fail(&mut self, layer: Layer, cause: &str, what: String, evidence: String, fix: String) {
        self.fail_among(layer, cause, what, evidence, fix, vec![]);
    }
    fn fail_among(
        &mut self,
        layer: Layer,
        cause: &str,
        what: String,
        evidence: String,
        fix: String,
        candidates: Vec<String>,
    ) {
        self.push(
            layer,
            Status::Fail,
            Some(cause.into()),
            what,
            Some(evidence),
            Some(fix),
            candidates,
        );
        self.failed = true;
    }
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        layer: Layer,
        status: Status,
        cause: Option<String>,
        what: String,
        evidence: Option<String>,
        fix: Option<String>,
        candidates: Vec<String>,
    ) {
        self.layers.push(LayerReport {
            layer,
            status,
            cause,
            what,
            evidence,
            fix,
            candidates,
        });
    }
}

/// Judge the facts: every layer's status, and the first that fails.
pub fn diagnose(f: &Facts) -> Diagnosis {
    let mut w = Walk {
        layers: Vec::new(),
        failed: false,
    };
    let mut notes = Vec::new();
    let server = server_address(&f.url);
    let router = match &f.router {
        Some(Ok(view)) => Some(view),
        Some(Err(e)) => {
            notes.push(format!("the router's view is missing: {e}"));
            None
        }
        None => None,
    };
    let steps: [&Step; 9] = [
        &|w, _| config(w, f, server),
        &|w, n| interface(w, n, f),
        &|w, n| handshake(w, n, f, router),
        &|w, n| route(w, n, f),
        &|w, _| firewall(w, f, server, router),
        &|w, n| server_layer(w, n, f, server),
        &|w, _| api(w, f),
        &|w, _| model(w, f),
        &|w, _| mtu(w, f),
    ];
    for (layer, step) in Layer::ALL.iter().zip(steps) {
        if w.failed {
            w.push(
                *layer,
                Status::Skipped,
                None,
                "not checked: an earlier layer failed".into(),
                None,
                None,
                vec![],
            );
        } else {
            step(&mut w, &mut notes);
        }
    }
    let first_failure = w
        .layers
        .iter()
        .find(|l| l.status == Status::Fail)
        .map(|l| l.layer);
    Diagnosis {
        ok: first_failure.is_none(),
        first_failure,
        layers: w.layers,
        notes,
        elapsed_ms: 0,
    }
}

fn config(w: &mut Walk, f: &Facts, server: Option<SocketAddrV4>) {
    let path = &f.config_path;
    let tunnel = match &f.tunnel {
        Ok(t) => t,
        Err(e) => {
            return w.fail(
                Layer::Config,
                "tunnel-config-unreadable",
                format!("the tunnel config {path} cannot be used: {e}"),
                format!("reading {path}"),
                "sovereign client setup --bundle FILE   # writes the tunnel config again".into(),
            );
        }
    };
    let Some(server) = server else {
        return w.fail(
            Layer::Config,
            "bad-url",
            format!("`{}` is not an http://IP:PORT URL", f.url),
            "the server URL (from --url or the env file)".into(),
            "sovereign doctor --url http://SERVER:11434".into(),
        );
    };
    if let Some(env) = &f.env_url {
        match env {
            Err(e) => {
                return w.fail(
                    Layer::Config,
                    "env-file-unreadable",
                    format!("the env file {} cannot be used: {e}", f.env_path),
                    format!("reading {}", f.env_path),
                    "sovereign client setup --bundle FILE   # writes the env file again".into(),
                );
            }
            Ok(url) if server_address(url) != Some(server) => {
                return w.fail(
                    Layer::Config,
                    "env-disagrees",
                    format!(
                        "the env file's OLLAMA_HOST is {url}, but doctor checks {}",
                        f.url
                    ),
                    format!("OLLAMA_HOST in {}", f.env_path),
                    "sovereign client setup --bundle FILE   # rewrites env and tunnel together"
                        .into(),
                );
            }
            Ok(_) => {}
        }
    }
    if !tunnel.allowed_ips.iter().any(|n| n.contains(server.ip())) {
        return w.fail(
            Layer::Config,
            "server-not-in-allowed-ips",
            format!(
                "the tunnel does not carry the server's address {}: AllowedIPs are {}",
                server.ip(),
                list(&tunnel.allowed_ips)
            ),
            format!("AllowedIPs in {path}"),
            "sovereign peer show NAME --conf   # on the admin machine: the config the router expects"
                .into(),
        );
    }
    if let Some(b) = &f.bundle {
        let mut diffs = Vec::new();
        if tunnel.endpoint.as_deref() != Some(b.endpoint.as_str()) {
            diffs.push(format!(
                "Endpoint {} vs {}",
                tunnel.endpoint.as_deref().unwrap_or("(none)"),
                b.endpoint
            ));
        }
        if tunnel.router_public_key.as_deref() != Some(b.router_public_key.as_str()) {
            diffs.push("the router's PublicKey".to_string());
        }
        if server_address(&b.ollama_url) != Some(server) {
            diffs.push(format!("server {} vs {}", f.url, b.ollama_url));
        }
        if !diffs.is_empty() {
            return w.fail(
                Layer::Config,
                "bundle-disagrees",
                format!(
                    "the tunnel config and the bundle {} disagree: {}",
                    b.path,
                    diffs.join(", ")
                ),
                format!("comparing {path} with {}", b.path),
                format!("sovereign client setup --bundle {}", b.path),
            );
        }
    }
    w.pass(
        Layer::Config,
        format!(
            "{path} carries {} to {}",
            server.ip(),
            tunnel.endpoint.as_deref().unwrap_or("?")
        ),
    );
}

fn list(nets: &[Ipv4Net]) -> String {
    if nets.is_empty() {
        return "(none)".into();
    }
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn up_command(f: &Facts) -> String {
    format!(
        "sudo wg-quick up {}   # or: sudo systemctl restart wg-quick@{}",
        f.config_path, f.interface
    )
}

fn interface(w: &mut Walk, notes: &mut Vec<String>, f: &Facts) {
    let link = match &f.link {
        Seen::Yes(l) => l,
        Seen::NoAccess(why) => {
            notes.push(format!("interface: {why}"));
            return w.unknown(Layer::Interface, format!("not observed: {why}"));
        }
    };
    let iface = &f.interface;
    if !link.exists {
        return w.fail(
            Layer::Interface,
            "no-interface",
            format!("the WireGuard interface {iface} does not exist"),
            format!("`ip link show {iface}` finds no such device"),
            up_command(f),
        );
    }
    if !link.up {
        return w.fail(
            Layer::Interface,
            "interface-down",
            format!("{iface} exists but is down"),
            format!("`ip link show {iface}` has no UP flag"),
            format!("sudo ip link set {iface} up"),
        );
    }
    if let Ok(tunnel) = &f.tunnel {
        let missing: Vec<_> = tunnel
            .addresses
            .iter()
            .filter(|a| !link.addresses.iter().any(|l| l.addr() == a.addr()))
            .collect();
        if !missing.is_empty() {
            return w.fail(
                Layer::Interface,
                "wrong-address",
                format!(
                    "{iface} lacks the config's address {} (it has {})",
                    missing[0],
                    list(&link.addresses)
                ),
                format!("`ip -4 addr show {iface}` vs Address in {}", f.config_path),
                up_command(f),
            );
        }
    }
    w.pass(
        Layer::Interface,
        format!("{iface} is up with {}", list(&link.addresses)),
    );
}

fn silence_candidates() -> Vec<String> {
    [
        "the router's WireGuard port is blocked on the WAN (ISP, upstream firewall, the router's WAN rule)",
        "the endpoint is wrong, or the router's dynamic IP changed",
        "this peer is not on the router (revoked, or never applied)",
        "the router's key changed (rekey without exporting the bundles again)",
    ]
    .map(String::from)
    .to_vec()
}

fn handshake(w: &mut Walk, notes: &mut Vec<String>, f: &Facts, router: Option<&RouterView>) {
    let wg = match &f.wg {
        Seen::Yes(wg) => wg,
        Seen::NoAccess(why) => {
            notes.push(format!("handshake: {why}"));
            return w.unknown(Layer::Handshake, format!("not observed: {why}"));
        }
    };
    let iface = &f.interface;
    let tunnel = f.tunnel.as_ref().ok();
    let config_key = tunnel.and_then(|t| t.router_public_key.as_deref());
    if let Some(key) = config_key
        && !wg.peers.iter().any(|p| p == key)
    {
        return w.fail(
            Layer::Handshake,
            "interface-disagrees-with-config",
            format!(
                "{iface} has no peer with the router's key from {}",
                f.config_path
            ),
            format!("`wg show {iface} peers` vs PublicKey in {}", f.config_path),
            up_command(f),
        );
    }
    let config_endpoint = tunnel.and_then(|t| t.endpoint.as_deref());
    if let (Some(live), Some(written)) = (wg.endpoint.as_deref(), config_endpoint)
        && host_of(written).parse::<Ipv4Addr>().is_ok()
        && live != written
    {
        return w.fail(
            Layer::Handshake,
            "wrong-endpoint",
            format!("{iface} sends to {live}, but the config says {written}"),
            format!(
                "`wg show {iface} endpoints` vs Endpoint in {}",
                f.config_path
            ),
            up_command(f),
        );
    }
    let fresh = wg
        .handshake_age_secs
        .is_some_and(|age| age <= HANDSHAKE_FRESH_SECS);
    if fresh {
        if let Some(r) = router
            && !r.peer_present
        {
            return fail_peer_absent(w, r, iface);
        }
        return w.pass(
            Layer::Handshake,
            format!(
                "last handshake {} s ago",
                wg.handshake_age_secs.unwrap_or_default()
            ),
        );
    }
    let seen = match wg.handshake_age_secs {
        Some(age) => format!("the last handshake was {age} s ago"),
        None => "there was never a handshake".into(),
    };
    let evidence = format!(
        "`wg show {iface}`: {seen}; doctor sent traffic and got none back ({} B received)",
        wg.rx_bytes
    );
    let endpoint = wg
        .endpoint
        .clone()
        .or_else(|| config_endpoint.map(String::from))
        .unwrap_or_else(|| "(no endpoint)".into());
    let Some(r) = router else {
        return w.fail_among(
            Layer::Handshake,
            "silence",
            format!("the router at {endpoint} does not answer handshakes"),
            evidence,
            "sovereign doctor --ssh ROUTER   # the router's view tells the candidates apart".into(),
            silence_candidates(),
        );
    };
    if !r.interface_found {
        return w.fail(
            Layer::Handshake,
            "router-interface-missing",
            format!(
                "the router {} has no WireGuard interface on the endpoint's port",
                r.router
            ),
            format!("`wg show all dump` on {}", r.router),
            "sovereign router apply --ssh ROUTER".into(),
        );
    }
    if !r.peer_present {
        return fail_peer_absent(w, r, iface);
    }
    if let (Some(theirs), Some(ours)) = (r.router_public_key.as_deref(), config_key)
        && theirs != ours
    {
        return w.fail(
            Layer::Handshake,
            "router-key-changed",
            "the router's key changed: this config still has the old one".into(),
            format!(
                "the router {} has public key {theirs}, {} expects {ours}",
                r.router, f.config_path
            ),
            "sovereign peer export NAME --out FILE && sovereign client setup --bundle FILE".into(),
        );
    }
    let rising = r.wireguard_packets.is_some_and(|(a, b)| b > a);
    let endpoint_ip = host_of(&endpoint).parse::<Ipv4Addr>().ok();
    if let Some(ip) = endpoint_ip
        && !rising
        && !r.addresses.iter().any(|n| n.addr() == ip)
        // Comparable only when the endpoint must be the router itself: an address
        // on one of its subnets, or any address when the router is directly on the
        // internet (behind an ISP box the endpoint is the box's public address).
        && (r.addresses.iter().any(|n| n.contains(&ip))
            || r.addresses.iter().any(|n| is_public(n.addr())))
    {
        let own = r
            .addresses
            .iter()
            .map(|n| n.addr().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let port = endpoint.rsplit_once(':').map_or("51820", |(_, p)| p);
        return w.fail(
            Layer::Handshake,
            "wrong-endpoint",
            format!("the endpoint {endpoint} is not the router (wrong address, or its dynamic IP changed)"),
            format!(
                "the router {} has {own}, not {ip}, and its WireGuard rule saw none of our handshakes",
                r.router
            ),
            format!(
                "sudo wg set {} peer {} endpoint ROUTER:{port}   # confirms it; then fix Endpoint in {}",
                f.interface,
                config_key.unwrap_or("ROUTER_KEY"),
                f.config_path
            ),
        );
    }
    if !rising {
        return w.fail(
            Layer::Handshake,
            "wan-port-blocked",
            format!("our handshakes to {endpoint} never reach the router's WireGuard"),
            format!(
                "the router {} knows this peer and its key matches, but its WireGuard rule counted no new packets while doctor sent handshakes",
                r.router
            ),
            format!(
                "nft -a list ruleset | grep -n 'dport {}'   # on the router: is the port dropped before the accept rule?",
                endpoint.rsplit_once(':').map_or("51820", |(_, p)| p)
            ),
        );
    }
    w.fail(
        Layer::Handshake,
        "router-rejects-handshake",
        "the router receives our handshakes but does not complete them".into(),
        format!(
            "the router {}'s WireGuard rule counted our packets; peer present, key matches (preshared key or client key wrong?)",
            r.router
        ),
        "sovereign peer export NAME --out FILE && sovereign client setup --bundle FILE".into(),
    );
}

/// Behind a NAT (an ISP box in front of the router) the endpoint is an address the
/// router never has itself; only a router with a public address can be compared.
fn is_public(ip: Ipv4Addr) -> bool {
    let cgnat = Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10);
    !(ip.is_private() || ip.is_loopback() || ip.is_link_local() || cgnat.contains(&ip))
}

fn fail_peer_absent(w: &mut Walk, r: &RouterView, iface: &str) {
    w.fail(
        Layer::Handshake,
        "peer-not-on-router",
        "this peer is not on the router (revoked, or never applied)".into(),
        format!("`wg show` on {} lists no peer with this client's key", r.router),
        format!(
            "sovereign peer list   # revoked? re-add it and run `sovereign router apply`; then restart {iface}"
        ),
    );
}

fn route(w: &mut Walk, notes: &mut Vec<String>, f: &Facts) {
    let route = match &f.route {
        Seen::Yes(r) => r,
        Seen::NoAccess(why) => {
            notes.push(format!("route: {why}"));
            return w.unknown(Layer::Route, format!("not observed: {why}"));
        }
    };
    let server =
        server_address(&f.url).map_or_else(|| "the server".to_string(), |s| s.ip().to_string());
    if route.device != f.interface {
        let via = route.via.map(|v| format!(" via {v}")).unwrap_or_default();
        let allowed = f
            .tunnel
            .as_ref()
            .ok()
            .and_then(|t| {
                t.allowed_ips
                    .iter()
                    .find(|n| server.parse::<Ipv4Addr>().is_ok_and(|ip| n.contains(&ip)))
            })
            .map_or_else(|| format!("{server}/32"), ToString::to_string);
        return w.fail(
            Layer::Route,
            "route-not-through-tunnel",
            format!(
                "traffic to {server} leaves by {}{via}, not the tunnel {}",
                route.device, f.interface
            ),
            format!("`ip route get {server}`"),
            format!("sudo ip route add {allowed} dev {}", f.interface),
        );
    }
    w.pass(
        Layer::Route,
        format!("{server} goes through {}", f.interface),
    );
}

fn firewall(w: &mut Walk, f: &Facts, server: Option<SocketAddrV4>, router: Option<&RouterView>) {
    let target = server.map_or_else(|| f.url.clone(), |s| s.to_string());
    let api_rule = router.map(|r| r.api_packets);
    let api_rose = router
        .and_then(|r| r.api_packets)
        .is_some_and(|(a, b)| b > a);
    let rule_missing = matches!(api_rule, Some(None));
    let fix_rule = "sovereign router audit --ssh ROUTER   # shows the missing or changed API rule; `router apply` restores it";
    match &f.connect {
        None => w.unknown(Layer::Firewall, "not checked"),
        Some(Connect::Silence) => {
            if rule_missing || (router.is_some() && !api_rose) {
                let r = router.expect("checked");
                let evidence = if rule_missing {
                    format!("the router {} has no rule for the API port", r.router)
                } else {
                    format!(
                        "the router {}'s API rule counted none of doctor's connection attempts",
                        r.router
                    )
                };
                return w.fail(
                    Layer::Firewall,
                    "dropped-by-router",
                    format!("the router drops our connections to {target}"),
                    evidence,
                    fix_rule.into(),
                );
            }
            if api_rose {
                return w.fail(
                    Layer::Firewall,
                    "dropped-after-router",
                    format!("connections to {target} pass the router but get no answer"),
                    "the router's API rule counted them: the server host drops them (its own firewall) or is off".into(),
                    "sudo nft list ruleset; sudo iptables -S   # on the AI server".into(),
                );
            }
            w.fail_among(
                Layer::Firewall,
                "silence",
                format!("connections to {target} time out: something drops them"),
                "TCP connect: no answer, no reset, no ICMP error, while the tunnel is up".into(),
                "sovereign doctor --ssh ROUTER   # the router's counters tell where".into(),
                vec![
                    "the router's firewall drops the API port for this peer".into(),
                    "the AI server's own firewall drops it, or the server is off".into(),
                ],
            )
        }
        Some(Connect::Unreachable(detail)) => w.fail(
            Layer::Firewall,
            "rejected",
            format!("connections to {target} are rejected by a firewall: {detail}"),
            "TCP connect got an ICMP error (admin-prohibited or unreachable) instead of an answer"
                .into(),
            fix_rule.into(),
        ),
        Some(Connect::Refused) => {
            if let Some(r) = router
                && r.openwrt
                && (rule_missing || !api_rose)
            {
                return w.fail(
                    Layer::Firewall,
                    "rejected",
                    format!("the router rejects connections to {target} with a TCP reset"),
                    format!(
                        "TCP reset, and the router {}'s API rule did not count them (fw4 answers a REJECT with a reset)",
                        r.router
                    ),
                    fix_rule.into(),
                );
            }
            w.pass(
                Layer::Firewall,
                "the connection got through (the server answered, if only with a reset)",
            )
        }
        Some(Connect::Connected) => w.pass(Layer::Firewall, format!("TCP to {target} connects")),
        Some(Connect::Other(e)) => w.fail(
            Layer::Firewall,
            "connect-error",
            format!("connecting to {target} failed: {e}"),
            "TCP connect".into(),
            format!(
                "nc -vz {} {}",
                host_of(&target),
                server.map_or(11434, |s| s.port())
            ),
        ),
    }
}

fn server_layer(w: &mut Walk, notes: &mut Vec<String>, f: &Facts, server: Option<SocketAddrV4>) {
    let target = server.map_or_else(|| f.url.clone(), |s| s.to_string());
    let view = match &f.server {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            notes.push(format!("the server's view is missing: {e}"));
            None
        }
        None => None,
    };
    match &f.connect {
        Some(Connect::Refused) => {
            if let (Some(v), Some(s)) = (view, server)
                && !v.bound.is_empty()
                && !v.bound.iter().any(|b| b.is_unspecified() || *b == *s.ip())
            {
                let bound = v
                    .bound
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                return w.fail(
                    Layer::Server,
                    "wrong-bind",
                    format!("Ollama listens on {bound} only, not on {}", s.ip()),
                    format!("the server's listening sockets for port {}", s.port()),
                    "sovereign server install   # on the server: its unit sets OLLAMA_HOST to the server's address".into(),
                );
            }
            if let Some(v) = view
                && v.bound.is_empty()
            {
                return w.fail(
                    Layer::Server,
                    "server-down",
                    format!("nothing listens on {target}: Ollama is down"),
                    "the server has no listening socket on the API port".into(),
                    "sovereign server start   # on the server; `sovereign server status` shows why it stopped".into(),
                );
            }
            w.fail_among(
                Layer::Server,
                "refused",
                format!("nothing listens on {target}"),
                "TCP connect answered with a reset".into(),
                "sovereign server status   # on the server: is Ollama running, and on which address?".into(),
                vec![
                    "Ollama is not running (crashed, stopped)".into(),
                    "Ollama listens only on 127.0.0.1 or another address (OLLAMA_HOST)".into(),
                ],
            )
        }
        Some(Connect::Connected) => w.pass(Layer::Server, format!("{target} accepts connections")),
        _ => w.unknown(Layer::Server, "not checked"),
    }
}

/// The API families an Ollama version serves (as `sovereign check` knows them).
fn families(version: &str) -> String {
    let parsed: Vec<u64> = version
        .split(['.', '-'])
        .take(3)
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    let at_least = |v: [u64; 3]| parsed.as_slice() >= v.as_slice();
    let mut out = vec!["native", "openai chat"];
    if at_least([0, 13, 3]) {
        out.push("openai responses");
    }
    if at_least([0, 14, 0]) {
        out.push("anthropic messages");
    }
    out.join(", ")
}

fn api(w: &mut Walk, f: &Facts) {
    match &f.version {
        None => w.unknown(Layer::Api, "not checked"),
        Some(Ok(v)) => w.pass(Layer::Api, format!("Ollama {v}: {}", families(v))),
        Some(Err(e)) => w.fail(
            Layer::Api,
            "api-error",
            format!("the server accepts connections but /api/version fails: {e}"),
            format!("GET {}/api/version", f.url.trim_end_matches('/')),
            format!("sovereign client test --url {}", f.url),
        ),
    }
}

fn model(w: &mut Walk, f: &Facts) {
    match &f.models {
        None => w.unknown(Layer::Model, "not checked"),
        Some(Err(e)) => w.fail(
            Layer::Model,
            "models-unlisted",
            format!("/api/tags fails: {e}"),
            format!("GET {}/api/tags", f.url.trim_end_matches('/')),
            format!("sovereign client test --url {}", f.url),
        ),
        Some(Ok(models)) => {
            let chat: Vec<&ModelFacts> = models
                .iter()
                .filter(|m| {
                    m.capabilities.is_empty() || m.capabilities.iter().any(|c| c == "completion")
                })
                .collect();
            if chat.is_empty() {
                let what = if models.is_empty() {
                    "the server has no models".to_string()
                } else {
                    format!(
                        "the server has no chat model, only {}",
                        models
                            .iter()
                            .map(|m| m.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                return w.fail(
                    Layer::Model,
                    "no-chat-model",
                    what,
                    "/api/tags and /api/show capabilities (none has `completion`)".into(),
                    "sovereign server warm   # on the server: pulls and loads the configured model (or `ollama pull MODEL`)".into(),
                );
            }
            if let Some(required) = f.required_context
                && chat
                    .iter()
                    .all(|m| m.context_length.is_some_and(|c| c < u64::from(required)))
            {
                let longest = chat
                    .iter()
                    .filter_map(|m| m.context_length)
                    .max()
                    .unwrap_or(0);
                return w.fail(
                    Layer::Model,
                    "context-too-small",
                    format!(
                        "the configured coding agents need {required} tokens of context; the longest chat model here has {longest}"
                    ),
                    "/api/show model_info context_length of every chat model".into(),
                    "sovereign server warm   # on the server, after setting [models] default to a model with a longer context".into(),
                );
            }
            w.pass(
                Layer::Model,
                format!(
                    "chat models: {}",
                    chat.iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        }
    }
}

fn mtu(w: &mut Walk, f: &Facts) {
    match &f.mtu {
        None => w.unknown(Layer::Mtu, "not checked"),
        Some(Ok(())) => w.pass(Layer::Mtu, "a full-size request and a streamed answer got through"),
        Some(Err(e)) => w.fail(
            Layer::Mtu,
            "mtu-black-hole",
            format!("small requests work, but a full-size request or a streamed answer stalls: {e}"),
            "a /api/version round trip works; a chat request with a large body does not".into(),
            format!(
                "sudo ip link set {} mtu 1280   # confirms it: if doctor then passes, lower MTU in {}",
                f.interface, f.config_path
            ),
        ),
    }
}

// ---- gathering ---------------------------------------------------------------

/// TCP and HTTP to the server.
pub trait Network {
    fn connect(&self, address: SocketAddrV4, timeout: Duration) -> Connect;
    fn version(&self, url: &str) -> Result<String, String>;
    fn models(&self, url: &str) -> Result<Vec<ModelFacts>, String>;
    /// A request with a body larger than one packet, answered by a streamed reply.
    fn full_size(&self, url: &str, model: &str) -> Result<(), String>;
}

/// The router's view, one sample; the binary reads it over ssh.
pub trait RouterProbe {
    fn sample(
        &self,
        client_public_key: Option<&str>,
        endpoint: Option<&str>,
    ) -> Result<RouterSample, String>;
}

/// One reading of the router (its counters before or after doctor's traffic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterSample {
    pub router: String,
    pub interface_found: bool,
    pub router_public_key: Option<String>,
    pub peer_present: bool,
    pub peer_handshake_age_secs: Option<u64>,
    pub addresses: Vec<Ipv4Net>,
    pub wireguard_packets: Option<u64>,
    pub api_packets: Option<u64>,
    pub openwrt: bool,
}

/// The server's listeners (`--server-ssh`).
pub trait ServerProbeView {
    fn listeners(&self, port: u16) -> Result<ServerView, String>;
}

/// What doctor was told to inspect.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub interface: String,
    pub config_path: String,
    pub config_text: Result<String, String>,
    pub env_path: String,
    pub env_text: Option<Result<String, String>>,
    pub bundle: Option<BundleFacts>,
    pub url: String,
    /// This machine's public key, for finding it on the router.
    pub client_public_key: Option<String>,
    /// The context the configured coding agents need (none configured: `None`).
    pub required_context: Option<u32>,
    pub connect_timeout: Duration,
    /// How long to wait for a handshake after provoking one.
    pub handshake_wait: Duration,
    pub now_unix: u64,
}

/// The env file's OLLAMA_HOST value.
pub fn env_ollama_host(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let line = line.strip_prefix("set -gx ").unwrap_or(line);
        let rest = line
            .strip_prefix("OLLAMA_HOST=")
            .or_else(|| line.strip_prefix("OLLAMA_HOST "))?;
        Some(rest.trim().trim_matches(['"', '\'']).to_string())
    })
}

/// Parse a wg-quick client config into what doctor compares.
pub fn tunnel_config(text: &str) -> Result<TunnelConfig, String> {
    let setup = sovereign_wg::quick::split(text)?;
    Ok(TunnelConfig {
        addresses: setup.addresses,
        allowed_ips: setup.routes,
        endpoint: setup.endpoint,
        router_public_key: setup.peer_public_key,
        mtu: setup.mtu,
    })
}

fn run(runner: &dyn CommandRunner, argv: &[&str]) -> Result<String, String> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    match runner.run(&argv) {
        Ok(out) if out.success => Ok(out.stdout),
        Ok(out) => Err(out.stderr.trim().to_string()),
        Err(e) => Err(format!("cannot run {}: {e}", argv[0])),
    }
}

/// `ip -o -4 addr show dev IF` + `ip -o link show dev IF`.
pub fn parse_link(link: &str, addrs: &str) -> LinkFacts {
    let flags = link
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(flags, _)| flags.to_string())
        .unwrap_or_default();
    let words: Vec<&str> = link.split_whitespace().collect();
    let mtu = words
        .iter()
        .position(|w| *w == "mtu")
        .and_then(|i| words.get(i + 1)?.parse().ok());
    let addresses = addrs
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let i = words.iter().position(|w| *w == "inet")?;
            words.get(i + 1)?.parse().ok()
        })
        .collect();
    LinkFacts {
        exists: true,
        up: flags.split(',').any(|f| f == "UP"),
        mtu,
        addresses,
    }
}

/// `ip route get ADDR`: `ADDR dev IF src ...` or `ADDR via GW dev IF ...`.
pub fn parse_route(text: &str) -> Option<RouteFacts> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1).map(|s| s.to_string()))
    };
    Some(RouteFacts {
        device: after("dev")?,
        via: after("via").and_then(|v| v.parse().ok()),
    })
}

/// `wg show IF dump`: the interface line, then one line per peer.
pub fn parse_wg_dump(text: &str, router_key: Option<&str>, now_unix: u64) -> WgFacts {
    let mut facts = WgFacts {
        peers: Vec::new(),
        endpoint: None,
        handshake_age_secs: None,
        rx_bytes: 0,
        tx_bytes: 0,
    };
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 8 {
            continue;
        }
        facts.peers.push(fields[0].to_string());
        if router_key.is_some_and(|k| k != fields[0]) {
            continue;
        }
        facts.endpoint = (fields[2] != "(none)").then(|| fields[2].to_string());
        let at: u64 = fields[4].parse().unwrap_or(0);
        facts.handshake_age_secs = (at > 0).then(|| now_unix.saturating_sub(at));
        facts.rx_bytes = fields[5].parse().unwrap_or(0);
        facts.tx_bytes = fields[6].parse().unwrap_or(0);
    }
    facts
}

fn read_wg(
    runner: &dyn CommandRunner,
    inputs: &Inputs,
    router_key: Option<&str>,
    now: u64,
) -> Seen<WgFacts> {
    match run(runner, &["wg", "show", &inputs.interface, "dump"]) {
        Ok(text) => Seen::Yes(parse_wg_dump(&text, router_key, now)),
        Err(e) if e.contains("ermission") || e.contains("not permitted") => {
            Seen::NoAccess(format!(
                "no rights to read WireGuard state ({e}); run doctor with sudo to see the handshake"
            ))
        }
        Err(e) => Seen::NoAccess(format!("`wg show {}` failed: {e}", inputs.interface)),
    }
}

/// Observe every layer (doctor's I/O), then [`diagnose`].
pub fn run_doctor(
    inputs: &Inputs,
    runner: &dyn CommandRunner,
    net: &dyn Network,
    router: Option<&dyn RouterProbe>,
    server_view: Option<&dyn ServerProbeView>,
) -> Diagnosis {
    let started = Instant::now();
    let facts = gather(inputs, runner, net, router, server_view);
    let mut diagnosis = diagnose(&facts);
    diagnosis.elapsed_ms = started.elapsed().as_millis() as u64;
    diagnosis
}

pub fn gather(
    inputs: &Inputs,
    runner: &dyn CommandRunner,
    net: &dyn Network,
    router: Option<&dyn RouterProbe>,
    server_view: Option<&dyn ServerProbeView>,
) -> Facts {
    let iface = inputs.interface.as_str();
    let tunnel = inputs.config_text.clone().and_then(|t| tunnel_config(&t));
    let env_url = inputs.env_text.clone().map(|r| {
        r.and_then(|text| {
            env_ollama_host(&text).ok_or_else(|| "it sets no OLLAMA_HOST".to_string())
        })
    });
    let router_key = tunnel
        .as_ref()
        .ok()
        .and_then(|t| t.router_public_key.clone());
    let endpoint = tunnel.as_ref().ok().and_then(|t| t.endpoint.clone());
    let server = server_address(&inputs.url);
    let mut facts = Facts {
        interface: iface.to_string(),
        config_path: inputs.config_path.clone(),
        env_path: inputs.env_path.clone(),
        url: inputs.url.clone(),
        tunnel,
        env_url,
        bundle: inputs.bundle.clone(),
        link: Seen::NoAccess("not read".into()),
        wg: Seen::NoAccess("not read".into()),
        route: Seen::NoAccess("not read".into()),
        connect: None,
        version: None,
        models: None,
        mtu: None,
        router: None,
        server: None,
        required_context: inputs.required_context,
    };
    let before = router.map(|r| r.sample(inputs.client_public_key.as_deref(), endpoint.as_deref()));

    facts.link = match run(runner, &["ip", "-o", "link", "show", "dev", iface]) {
        Ok(link) => {
            let addrs =
                run(runner, &["ip", "-o", "-4", "addr", "show", "dev", iface]).unwrap_or_default();
            Seen::Yes(parse_link(&link, &addrs))
        }
        Err(e) if e.contains("does not exist") => Seen::Yes(LinkFacts {
            exists: false,
            up: false,
            mtu: None,
            addresses: vec![],
        }),
        Err(e) => Seen::NoAccess(format!("`ip link show {iface}` failed: {e}")),
    };
    let link_up = matches!(&facts.link, Seen::Yes(l) if l.up);
    if link_up {
        facts.wg = read_wg(runner, inputs, router_key.as_deref(), inputs.now_unix);
        // A stale tunnel sends a handshake only when there is traffic: provoke one
        // and give the router a moment to answer.
        let stale = |wg: &Seen<WgFacts>| matches!(wg, Seen::Yes(w) if w.handshake_age_secs.is_none_or(|a| a > HANDSHAKE_FRESH_SECS));
        if stale(&facts.wg)
            && let Some(server) = server
        {
            let deadline = Instant::now() + inputs.handshake_wait;
            let _ = net.connect(server, Duration::from_millis(300));
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                facts.wg = read_wg(runner, inputs, router_key.as_deref(), inputs.now_unix);
                if !stale(&facts.wg) {
                    break;
                }
            }
        }
    }
    if let Some(server) = server {
        facts.route = match run(runner, &["ip", "route", "get", &server.ip().to_string()]) {
            Ok(text) => parse_route(&text)
                .map(Seen::Yes)
                .unwrap_or_else(|| Seen::NoAccess(format!("`ip route get` printed {text:?}"))),
            Err(e) => Seen::NoAccess(format!("`ip route get {}` failed: {e}", server.ip())),
        };
    }
    let handshake_ok = match &facts.wg {
        Seen::Yes(w) => w
            .handshake_age_secs
            .is_some_and(|a| a <= HANDSHAKE_FRESH_SECS),
        Seen::NoAccess(_) => true,
    };
    let route_ok = !matches!(&facts.route, Seen::Yes(r) if r.device != iface);
    if let Some(server) = server
        && link_up
        && handshake_ok
        && route_ok
    {
        let connect = net.connect(server, inputs.connect_timeout);
        if connect == Connect::Connected {
            facts.version = Some(net.version(&inputs.url));
            if matches!(facts.version, Some(Ok(_))) {
                let models = net.models(&inputs.url);
                let chat = models.as_ref().ok().and_then(|m| {
                    m.iter()
                        .find(|m| {
                            m.capabilities.is_empty()
                                || m.capabilities.iter().any(|c| c == "completion")
                        })
                        .map(|m| m.name.clone())
                });
                facts.models = Some(models);
                if let Some(chat) = chat {
                    facts.mtu = Some(net.full_size(&inputs.url, &chat));
                }
            }
        }
        if connect == Connect::Refused
            && let Some(view) = server_view
        {
            facts.server = Some(view.listeners(server.port()));
        }
        facts.connect = Some(connect);
    }
    if let (Some(router), Some(before)) = (router, before) {
        let after = router.sample(inputs.client_public_key.as_deref(), endpoint.as_deref());
        facts.router = Some(match (before, after) {
            (Ok(b), Ok(a)) => Ok(RouterView {
                router: a.router.clone(),
                interface_found: a.interface_found,
                router_public_key: a.router_public_key.clone(),
                peer_present: a.peer_present,
                peer_handshake_age_secs: a.peer_handshake_age_secs,
                addresses: a.addresses.clone(),
                wireguard_packets: b.wireguard_packets.zip(a.wireguard_packets),
                api_packets: b.api_packets.zip(a.api_packets),
                openwrt: a.openwrt,
            }),
            (Err(e), _) | (_, Err(e)) => Err(e),
        });
    }
    facts
}

mod net;
pub use net::OllamaNetwork;

#[cfg(test)]
mod tests;
