//! Semantic checks that the TOML types alone cannot express.
//!
//! Every check yields a [`Finding`] keyed by the dotted field path, so the loader
//! can point at the line that holds the value.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::config::{BindMode, Deployment, Isolation, MacService, Platform};

/// A problem with one field, before it is mapped to a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

fn finding(
    field: impl Into<String>,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> Finding {
    Finding {
        field: field.into(),
        message: message.into(),
        hint: Some(hint.into()),
    }
}

/// Something that is valid but deserves the user's attention; `plan` prints these.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub field: String,
    pub message: String,
}

/// All errors in a parsed deployment; empty means valid.
pub fn check(d: &Deployment) -> Vec<Finding> {
    let mut out = Vec::new();
    check_interfaces(d, &mut out);
    check_subnets(d, &mut out);
    check_hosts(d, &mut out);
    check_ports(d, &mut out);
    check_wireguard(d, &mut out);
    check_ollama(d, &mut out);
    check_service(d, &mut out);
    check_admin_hosts(d, &mut out);
    check_peers(d, &mut out);
    out
}

/// Valid but risky or unenforceable choices.
pub fn warnings(d: &Deployment) -> Vec<Warning> {
    let mut out = Vec::new();
    if d.server.isolation == Isolation::Shared {
        out.push(Warning {
            field: "server.isolation".into(),
            message: "shared: the AI server shares the LAN bridge, so traffic between it and other LAN \
                      devices never passes the router; \"server -> LAN: deny\" is NOT enforceable. Use \
                      isolation = \"dedicated-port\"."
                .into(),
        });
    }
    if d.server.bind == BindMode::All {
        out.push(Warning {
            field: "server.bind".into(),
            message: "all: Ollama listens on 0.0.0.0 and exposes its unauthenticated API on every network \
                      the server joins (Wi-Fi, hotel, tethering). Prefer bind = \"lan-ip\"."
                .into(),
        });
    }
    if d.ollama.context_length < 65536 {
        out.push(Warning {
            field: "ollama.context_length".into(),
            message: format!(
                "{} tokens: coding agents such as Claude Code need at least 65536",
                d.ollama.context_length
            ),
        });
    }
    if let Some(problem) = endpoint_problem(&d.wan.endpoint.host) {
        out.push(Warning {
            field: "wan.endpoint".into(),
            message: format!(
                "{} {problem}: peers outside this network cannot dial it. Set wan.endpoint to the \
                 public name or address of the router (a DNS name that follows a dynamic IP is best)",
                d.wan.endpoint
            ),
        });
    }
    if let Some(net) = d
        .wireguard
        .client_allowed_ips
        .iter()
        .find(|net| net.prefix_len() == 0)
    {
        out.push(Warning {
            field: "wireguard.client_allowed_ips".into(),
            message: format!(
                "{net} sends all of a client's traffic into the tunnel, but the firewall denies VPN -> \
                 internet, so the client loses its internet while connected; leave the list empty \
                 (the server's address only)"
            ),
        });
    }
    if d.wan.endpoint.port != d.wireguard.listen_port {
        out.push(Warning {
            field: "wan.endpoint".into(),
            message: format!(
                "peers dial port {} but the router listens on {}: the upstream router must forward one to the other",
                d.wan.endpoint.port, d.wireguard.listen_port
            ),
        });
    }
    out
}

/// Why an endpoint host cannot be reached from the internet, or `None` (a DNS name,
/// or a public address). Private (RFC 1918), CGNAT (100.64/10), link-local and
/// loopback addresses are reachable only nearby (the default endpoint, the
/// router's WAN address behind an ISP router, is one of them).
fn endpoint_problem(host: &str) -> Option<&'static str> {
    let ip: std::net::Ipv4Addr = host.parse().ok()?;
    let cgnat: ipnet::Ipv4Net = "100.64.0.0/10".parse().expect("static");
    if ip.is_private() {
        Some("is a private (RFC 1918) address")
    } else if cgnat.contains(&ip) {
        Some("is a carrier-grade NAT (100.64.0.0/10) address")
    } else if ip.is_loopback() || ip.is_link_local() || ip.is_unspecified() {
        Some("is not a routable address")
    } else {
        None
    }
}

const INTERFACE_HINT: &str = "Linux interface names are 1-15 characters without '/', ':' or spaces";

fn check_interfaces(d: &Deployment, out: &mut Vec<Finding>) {
    let names = [
        ("wan.interface", &d.wan.interface),
        ("lan.interface", &d.lan.interface),
        ("wireguard.interface", &d.wireguard.interface),
        ("server.router_port", &d.server.router_port),
    ];
    for (field, name) in names {
        let valid = !name.is_empty()
            && name.len() <= 15
            && name
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
        if !valid {
            out.push(finding(
                field,
                format!("`{name}` is not a valid interface name"),
                INTERFACE_HINT,
            ));
        }
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (field, name) in names {
        if field == "server.router_port" && d.server.isolation == Isolation::Shared {
            continue;
        }
        if let Some(first) = seen.insert(name.as_str(), field) {
            out.push(finding(
                field,
                format!("`{name}` is already used by {first}"),
                "each network needs its own router interface",
            ));
        }
    }
}

fn check_subnets(d: &Deployment, out: &mut Vec<Finding>) {
    let wan_net = d.wan.address.trunc();
    let subnets = [
        ("lan.subnet", d.lan.subnet),
        ("wireguard.subnet", d.wireguard.subnet),
        ("wan.address", wan_net),
    ];
    for (i, (field_a, a)) in subnets.iter().enumerate() {
        for (field_b, b) in &subnets[i + 1..] {
            if overlaps(*a, *b) {
                out.push(finding(
                    *field_b,
                    format!("{b} overlaps {field_a} {a}"),
                    "the LAN, VPN and WAN subnets must be disjoint, or routing becomes ambiguous; pick another private range",
                ));
            }
        }
    }
    for (field, net) in [
        ("lan.subnet", d.lan.subnet),
        ("wireguard.subnet", d.wireguard.subnet),
    ] {
        if net.prefix_len() > 30 {
            out.push(finding(
                field,
                format!("/{} leaves no room for hosts", net.prefix_len()),
                "use a /24 (or at least a /30)",
            ));
        }
    }
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Checks that `address` is a usable host of `net`.
fn host_in(
    field: &str,
    address: Ipv4Addr,
    net: Ipv4Net,
    net_field: &str,
    out: &mut Vec<Finding>,
) -> bool {
    if !net.contains(&address) {
        out.push(finding(
            field,
            format!("{address} is outside {net_field} {net}"),
            format!("pick an address inside {net}, or change {net_field}"),
        ));
        return false;
    }
    if net.prefix_len() < 31 && (address == net.network() || address == net.broadcast()) {
        let which = if address == net.network() {
            "network"
        } else {
            "broadcast"
        };
        out.push(finding(
            field,
            format!("{address} is the {which} address of {net}"),
            format!(
                "pick a host address between {} and {}",
                first_host(net),
                last_host(net)
            ),
        ));
        return false;
    }
    true
}

fn first_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

fn last_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.broadcast()) - 1)
}

fn check_hosts(d: &Deployment, out: &mut Vec<Finding>) {
    host_in(
        "lan.router_address",
        d.lan.router_address,
        d.lan.subnet,
        "lan.subnet",
        out,
    );
    if host_in(
        "server.address",
        d.server.address,
        d.lan.subnet,
        "lan.subnet",
        out,
    ) && d.server.address == d.lan.router_address
    {
        out.push(finding(
            "server.address",
            format!("{} is the router's own LAN address", d.server.address),
            "give the AI server its own address, e.g. .20",
        ));
    }
    host_in(
        "wireguard.address",
        d.wireguard.address,
        d.wireguard.subnet,
        "wireguard.subnet",
        out,
    );
    let wan = d.wan.address;
    if wan.prefix_len() < 31 && (wan.addr() == wan.network() || wan.addr() == wan.broadcast()) {
        out.push(finding(
            "wan.address",
            format!("{} is not a host address of {}", wan.addr(), wan.trunc()),
            "write the router's WAN address with its prefix, e.g. 192.168.2.90/24",
        ));
    }
}

fn check_ports(d: &Deployment, out: &mut Vec<Finding>) {
    let ports = [
        ("wireguard.listen_port", d.wireguard.listen_port),
        ("server.api_port", d.server.api_port),
        ("server.ssh_port", d.server.ssh_port),
    ];
    for (field, port) in ports {
        if port == 0 {
            out.push(finding(
                field,
                "port 0 is not a usable port",
                "use a port between 1 and 65535",
            ));
        }
    }
    if d.wireguard.listen_port == d.server.api_port {
        out.push(finding(
            "wireguard.listen_port",
            format!("{} is also server.api_port", d.wireguard.listen_port),
            "keep the WireGuard port (default 51820) apart from the API port (default 11434), so the one open WAN port can never be confused with the API",
        ));
    }
    if d.server.ssh_port == d.server.api_port {
        out.push(finding(
            "server.ssh_port",
            format!("{} is also server.api_port", d.server.ssh_port),
            "SSH and the API need different ports",
        ));
    }
}

fn check_wireguard(d: &Deployment, out: &mut Vec<Finding>) {
    let mtu = d.wireguard.mtu;
    if !(1280..=1500).contains(&mtu) {
        out.push(finding(
            "wireguard.mtu",
            format!("{mtu} is outside 1280-1500"),
            "1420 fits a 1500-byte underlay; use 1380 behind PPPoE or another tunnel",
        ));
    }
    for (i, net) in d.wireguard.client_allowed_ips.iter().enumerate() {
        if *net != net.trunc() {
            out.push(finding(
                format!("wireguard.client_allowed_ips[{i}]"),
                format!("{net} has host bits set"),
                format!("write {}", net.trunc()),
            ));
        }
    }
}

fn check_ollama(d: &Deployment, out: &mut Vec<Finding>) {
    let o = &d.ollama;
    if o.context_length < 2048 {
        out.push(finding(
            "ollama.context_length",
            format!("{} tokens is too small to be useful", o.context_length),
            "use 65536 or more for coding agents",
        ));
    }
    if o.num_parallel == 0 {
        out.push(finding(
            "ollama.num_parallel",
            "0 parallel requests serves nothing",
            "use 1 or more",
        ));
    }
    if !is_keep_alive(&o.keep_alive) {
        out.push(finding(
            "ollama.keep_alive",
            format!("`{}` is not a duration", o.keep_alive),
            "write a Go duration such as \"24h\", \"30m\", \"1h30m\", a number of seconds, or \"-1\" to keep models loaded forever",
        ));
    }
    for (i, model) in o.models.iter().enumerate() {
        if model.trim().is_empty() || model.chars().any(char::is_whitespace) {
            out.push(finding(
                format!("ollama.models[{i}]"),
                format!("`{model}` is not a model name"),
                "write names as Ollama does, e.g. \"qwen2.5-coder:32b\"",
            ));
        }
    }
}

/// Ollama accepts a Go duration (`5m`, `1h30m`, `-1s`) or a plain number of seconds.
fn is_keep_alive(text: &str) -> bool {
    let body = text.strip_prefix('-').unwrap_or(text);
    if body.is_empty() {
        return false;
    }
    if body.parse::<u64>().is_ok() {
        return true;
    }
    let mut rest = body;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

fn check_service(d: &Deployment, out: &mut Vec<Finding>) {
    if d.server.service == MacService::Daemon && d.server.platform != Platform::Macos {
        out.push(finding(
            "server.service",
            "\"daemon\" is a macOS LaunchDaemon, but server.platform is not macos",
            "remove server.service on Linux: the systemd unit already starts at boot without a login",
        ));
    }
    if !is_service_account(&d.server.service_account) {
        out.push(finding(
            "server.service_account",
            format!(
                "`{}` is not a usable account name",
                d.server.service_account
            ),
            SERVICE_ACCOUNT_HINT,
        ));
    }
}

/// A short name macOS accepts for a service account and that needs no quoting in
/// `dscl`, `chown` or newsyslog.conf: `^_?[a-z][a-z0-9_-]{0,30}$`.
pub fn is_service_account(name: &str) -> bool {
    let body = name.strip_prefix('_').unwrap_or(name);
    let mut chars = body.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && body.len() <= 31
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

const SERVICE_ACCOUNT_HINT: &str = "use a lower-case name of up to 32 characters, optionally starting with '_' \
                                    (the macOS convention for service accounts), e.g. _ollama";

fn check_admin_hosts(d: &Deployment, out: &mut Vec<Finding>) {
    let mut seen = HashMap::new();
    for (i, host) in d.policy.admin_hosts.iter().enumerate() {
        let field = format!("policy.admin_hosts[{i}]");
        if !host_in(&field, *host, d.lan.subnet, "lan.subnet", out) {
            continue;
        }
        if *host == d.server.address || *host == d.lan.router_address {
            out.push(finding(
                &field,
                format!("{host} is the server or the router itself"),
                "list the LAN addresses of the machines you administer the server from",
            ));
        }
        if let Some(first) = seen.insert(*host, i) {
            out.push(finding(
                &field,
                format!("{host} is listed twice (also at [{first}])"),
                "remove the duplicate",
            ));
        }
    }
}

/// Peer names become file names in the state directory and labels on the router.
pub fn is_peer_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub const PEER_NAME_HINT: &str = "use 1-32 letters, digits, '-', '_' or '.', starting with a letter or digit, e.g. laptop or phone-anna";

/// A WireGuard key: 32 bytes in standard base64 (44 characters, one '=' of padding).
pub fn is_wireguard_key(text: &str) -> bool {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    if bytes.len() != 44 || bytes[43] != b'=' {
        return false;
    }
    if !bytes[..43].iter().all(|b| ALPHABET.contains(b)) {
        return false;
    }
    // 32 bytes leave 2 unused bits in the last symbol; canonical base64 has them zero.
    let last = ALPHABET.iter().position(|b| *b == bytes[42]).unwrap_or(0);
    last & 0b11 == 0
}

fn check_peers(d: &Deployment, out: &mut Vec<Finding>) {
    let vpn = d.wireguard.subnet;
    let mut names = HashMap::new();
    let mut addresses = HashMap::new();
    let mut keys = HashMap::new();
    for (i, peer) in d.peers.iter().enumerate() {
        let field = |key: &str| format!("peer[{i}].{key}");
        if !is_peer_name(&peer.name) {
            out.push(finding(
                field("name"),
                format!("`{}` is not a valid peer name", peer.name),
                PEER_NAME_HINT,
            ));
        }
        if let Some(first) = names.insert(peer.name.as_str(), i) {
            out.push(finding(
                field("name"),
                format!("peer name `{}` is already used by peer[{first}]", peer.name),
                "peer names are unique, revoked peers included; choose another name",
            ));
        }
        if host_in(
            &field("address"),
            peer.address,
            vpn,
            "wireguard.subnet",
            out,
        ) {
            if peer.address == d.wireguard.address {
                out.push(finding(
                    field("address"),
                    format!("{} is the router's own VPN address", peer.address),
                    "let `sovereign peer add` allocate the next free address",
                ));
            }
            if let Some(first) = addresses.insert(peer.address, i) {
                out.push(finding(
                    field("address"),
                    format!("{} is already used by peer[{first}]", peer.address),
                    "every peer needs its own address; revoked peers keep theirs forever",
                ));
            }
        }
        if let Some(expires) = &peer.expires
            && humantime::parse_rfc3339(expires).is_err()
        {
            out.push(finding(
                field("expires"),
                format!("`{expires}` is not an RFC 3339 UTC timestamp"),
                "write it like 2027-01-31T00:00:00Z, or set it with `sovereign peer extend NAME --expires 2027-01-31`",
            ));
        }
        if !is_wireguard_key(&peer.public_key) {
            out.push(finding(
                field("public_key"),
                "not a WireGuard public key",
                "a key is 44 characters of base64 ending in '=', as printed by `wg pubkey`",
            ));
        } else if peer.holds_keys()
            && let Some(first) = keys.insert(peer.public_key.as_str(), i)
        {
            out.push(finding(
                field("public_key"),
                format!("the same public key as peer[{first}]"),
                "each device needs its own key pair",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_accepts_go_durations_and_seconds() {
        for ok in ["24h", "5m", "1h30m", "-1", "0", "300", "-1s", "1.5h"] {
            assert!(is_keep_alive(ok), "{ok}");
        }
        for bad in ["", "forever", "5 m", "h", "5x", "-"] {
            assert!(!is_keep_alive(bad), "{bad}");
        }
    }

    #[test]
    fn wireguard_keys_are_44_chars_of_canonical_base64() {
        assert!(is_wireguard_key(
            "YNqHbfBQKaGvzefSSuufuJpMWOX+X1ApM6aeN2xoU2s="
        ));
        assert!(!is_wireguard_key(
            "YNqHbfBQKaGvzefSSuufuJpMWOX+X1ApM6aeN2xoU2t="
        ));
        assert!(!is_wireguard_key("too-short="));
        assert!(!is_wireguard_key(
            "YNqHbfBQKaGvzefSSuufuJpMWOX+X1ApM6aeN2xoU2s"
        ));
    }

    #[test]
    fn service_accounts_follow_the_macos_short_name_rule() {
        for ok in ["_ollama", "ollama", "_ai-server", "a", "_a1_b"] {
            assert!(is_service_account(ok), "{ok}");
        }
        for bad in [
            "",
            "_",
            "__x",
            "Ollama",
            "1ollama",
            "_ol lama",
            "o:x",
            &"a".repeat(32),
        ] {
            assert!(!is_service_account(bad), "{bad}");
        }
        assert!(is_service_account(&format!("_{}", "a".repeat(31))));
    }

    #[test]
    fn a_daemon_needs_macos_and_a_valid_account() {
        let mut d = Deployment::reference();
        d.server.service = MacService::Daemon;
        assert!(check(&d).is_empty(), "{:?}", check(&d));
        d.server.platform = Platform::Linux;
        d.server.service_account = "Bad Name".into();
        let fields: Vec<String> = check(&d).into_iter().map(|f| f.field).collect();
        assert_eq!(fields, ["server.service", "server.service_account"]);
    }

    #[test]
    fn peer_names_are_file_name_safe() {
        assert!(is_peer_name("laptop"));
        assert!(is_peer_name("phone-anna.2"));
        assert!(!is_peer_name("../etc"));
        assert!(!is_peer_name("-x"));
        assert!(!is_peer_name("a b"));
        assert!(!is_peer_name(""));
        assert!(!is_peer_name(&"x".repeat(33)));
    }
}
