//! The OpenWrt target (23.05+, netifd + fw4): an idempotent `uci batch` script,
//! the `/etc/config` fragments it produces (for review), a sysctl file for proxy
//! ARP, and the checklist of what cannot be scripted.
//!
//! Idempotence: every section sovereign owns is named (`sovereign_*`, `wg0`,
//! `sovereign_peer_<name>`) and rewritten as `set S=type; delete S; set S=type;
//! options`, so stale options and list entries vanish and re-running converges.
//! Sections that must not exist (revoked peers, switched-off policies) are
//! removed with `set S=type; delete S`, which never fails.
//!
//! fw4 semantics this relies on (research/anchors.md §B.1): a zone's `forward`
//! governs only traffic inside the zone; traffic between zones that no rule or
//! forwarding accepts falls to `defaults.forward` (set to REJECT here); a rule
//! without `target` only counts, so every rule has one; a rule without `proto`
//! matches only tcp and udp, so deny rules say `proto all`. Sovereign uses rules,
//! not forwardings, for everything it decides, so the order fw4 gives the two does
//! not matter (current fw4 renders rules first, see its test
//! `01_configuration/02_rule_order`; early fw4 rendered forwardings first). Zones
//! `vpn` and `ai` list their subnet, so fw4 admits a packet to the zone only with
//! the right source address (anti-spoofing), and IPv6 from them matches no zone.
//!
//! Stock rules. A fresh OpenWrt ships WAN rules that accept what the intent drops:
//! Allow-IPSec-ESP and Allow-ISAKMP forward to the LAN, Allow-DHCP-Renew,
//! Allow-Ping, Allow-IGMP, Allow-DHCPv6, Allow-MLD and Allow-ICMPv6-* open the
//! router (and, for ICMPv6, the LAN). They are anonymous sections, so a batch can
//! reach them only as `@rule[N]`, which breaks the moment a user's rule list
//! differs from stock. Instead the batch moves sovereign's three WAN rules to the
//! top of the package with `uci reorder`: fw4 walks `config rule` sections in file
//! order (`cursor.foreach("firewall", "rule")` in `load()`) and appends each to its
//! chain, and every src-wan rule lands in `input_wan` or `forward_wan`, so
//! sovereign's accept-WireGuard / drop-the-rest come first there and every stock or
//! user WAN rule after them is dead. Re-running converges: `set; delete; set`
//! re-appends the sections and the reorder moves the same three to the same front.
//! What a WAN DHCP client still gets: replies to its unicast renewals belong to the
//! router's own flow (ct established, accepted before any zone rule), and
//! discovery and rebinding run on a raw socket that netfilter does not filter. WAN
//! IPv6 (router advertisements, neighbour discovery, DHCPv6) is dropped like the
//! rest, as on the Linux target: sovereign routes IPv4 only.

use std::fmt::Write as _;

use sovereign_model::{Deployment, Destination as D, Isolation, Source as S};
use sovereign_wg::RouterSecrets;

use crate::names::{openwrt_ipv4_conf_key, peer_section};
use crate::openwrt_wire::{SERVER_NETWORK, WIRE_SCRIPT, wire_script};
use crate::rule_key::{RuleKey, Verdict};
use crate::uci::{self, Package, Section, Value};
use crate::{RenderError, RenderedFile};

pub const VPN_ZONE: &str = "vpn";
pub const SERVER_ZONE: &str = "ai";

pub fn render(
    d: &Deployment,
    secrets: &RouterSecrets,
) -> Result<(Vec<RenderedFile>, Vec<String>), RenderError> {
    let plan = plan(d, secrets);
    let mut files = vec![RenderedFile {
        path: "sovereign.uci".into(),
        contents: plan.batch(),
        secret: true,
        purpose: "the whole change as one `uci batch < sovereign.uci` (idempotent; holds the keys)"
            .into(),
    }];
    for (package, secret, purpose) in [
        (
            "network",
            true,
            "WireGuard interface, peers and the server's port (review only)",
        ),
        (
            "firewall",
            false,
            "zones vpn and ai, and the rules (review only)",
        ),
        ("dhcp", false, "the server's static lease (review only)"),
    ] {
        let fragment = plan.fragment(package);
        if fragment.sections.is_empty() {
            continue;
        }
        let mut contents = format!(
            "# Rendered by `sovereign router render`: the sections sovereign owns in /etc/config/{package}.\n\
             # For review; apply with sovereign.uci, which also removes sections listed there.\n\n"
        );
        contents += &fragment.to_config_text();
        files.push(RenderedFile {
            path: format!("etc/config/{package}"),
            contents,
            secret,
            purpose: purpose.into(),
        });
    }
    files.push(RenderedFile {
        path: WIRE_SCRIPT.into(),
        contents: wire_script(d),
        secret: false,
        purpose: "moves the server's port out of the LAN bridge (or back), found by name; run before the batch".into(),
    });
    if d.server.isolation == Isolation::DedicatedPort {
        files.push(RenderedFile {
            path: "etc/sysctl.d/90-sovereign.conf".into(),
            contents: sysctl_conf(d),
            secret: false,
            purpose: "proxy ARP on the server port and the LAN bridge (OpenWrt re-applies it when the device appears)".into(),
        });
    }
    Ok((files, checklist(d)))
}

/// sovereign's WAN rules, in the order they go to the front of /etc/config/firewall.
const WAN_RULES_FIRST: [&str; 3] = [
    "sovereign_wan_wireguard",
    "sovereign_wan_input",
    "sovereign_wan_forward",
];

struct Plan {
    /// Lines that touch sections sovereign does not own, before everything else.
    preamble: Vec<String>,
    sections: Vec<(&'static str, Section)>,
    absent: Vec<(&'static str, String, String)>,
}

impl Plan {
    fn batch(&self) -> String {
        let mut out = String::new();
        for line in &self.preamble {
            out += line;
            out.push('\n');
        }
        for (package, name, kind) in &self.absent {
            let _ = writeln!(out, "set {package}.{name}={kind}");
            let _ = writeln!(out, "delete {package}.{name}");
        }
        for (package, section) in &self.sections {
            let name = section
                .name
                .as_deref()
                .expect("sovereign sections are named");
            let _ = writeln!(out, "set {package}.{name}={}", section.kind);
            let _ = writeln!(out, "delete {package}.{name}");
            let _ = writeln!(out, "set {package}.{name}={}", section.kind);
            for (option, value) in &section.options {
                match value {
                    Value::Single(v) => {
                        let _ = writeln!(out, "set {package}.{name}.{option}={}", uci::quote(v));
                    }
                    Value::List(items) => {
                        for v in items {
                            let _ = writeln!(
                                out,
                                "add_list {package}.{name}.{option}={}",
                                uci::quote(v)
                            );
                        }
                    }
                }
            }
        }
        // Ahead of every stock and user rule in fw4's section order (module docs).
        for (position, name) in WAN_RULES_FIRST.iter().enumerate() {
            let _ = writeln!(out, "reorder firewall.{name}={position}");
        }
        for package in ["network", "firewall", "dhcp"] {
            let _ = writeln!(out, "commit {package}");
        }
        out
    }

    fn fragment(&self, package: &str) -> Package {
        Package {
            sections: self
                .sections
                .iter()
                .filter(|(p, _)| *p == package)
                .map(|(_, s)| s.clone())
                .collect(),
        }
    }
}

/// Builds one named section option by option, in order.
struct SectionBuilder(Section);

impl SectionBuilder {
    fn new(name: impl Into<String>, kind: impl Into<String>) -> Self {
        SectionBuilder(Section {
            name: Some(name.into()),
            kind: kind.into(),
            options: Vec::new(),
        })
    }

    fn opt(mut self, name: &str, value: impl ToString) -> Self {
        self.0
            .options
            .push((name.into(), Value::Single(value.to_string())));
        self
    }

    fn list<T: ToString>(mut self, name: &str, values: impl IntoIterator<Item = T>) -> Self {
        let items: Vec<String> = values.into_iter().map(|v| v.to_string()).collect();
        if !items.is_empty() {
            self.0.options.push((name.into(), Value::List(items)));
        }
        self
    }

    fn done(self) -> Section {
        self.0
    }
}

fn plan(d: &Deployment, secrets: &RouterSecrets) -> Plan {
    let dedicated = d.server.isolation == Isolation::DedicatedPort;
    let wg = &d.wireguard;
    let mut sections: Vec<(&'static str, Section)> = Vec::new();
    let mut absent: Vec<(&'static str, String, String)> = Vec::new();
    let peer_kind = format!("wireguard_{}", wg.interface);

    // Inter-zone isolation is defaults.forward plus the absence of forwardings.
    let preamble = vec![
        "set firewall.@defaults[0].input='REJECT'".to_string(),
        "set firewall.@defaults[0].forward='REJECT'".to_string(),
    ];
    // Taking the server's port out of the bridge (or returning it) is not in the
    // batch: sovereign-wire.sh looks the bridge up by name (see openwrt_wire).

    sections.push((
        "network",
        SectionBuilder::new(&wg.interface, "interface")
            .opt("proto", "wireguard")
            .opt("private_key", secrets.private_key.to_base64())
            .opt("listen_port", wg.listen_port)
            .list(
                "addresses",
                [format!("{}/{}", wg.address, wg.subnet.prefix_len())],
            )
            .opt("mtu", wg.mtu)
            .done(),
    ));
    // Sections of names that are no peer any more (renamed, purged): nothing
    // else would ever delete them, and they would keep the old key accepted.
    for name in &secrets.retired_peers {
        let section = peer_section(name);
        if !d.peers.iter().any(|p| peer_section(&p.name) == section) {
            absent.push(("network", section, peer_kind.clone()));
        }
    }
    for peer in &d.peers {
        let section = peer_section(&peer.name);
        if !peer.is_active() {
            absent.push(("network", section, peer_kind.clone()));
            continue;
        }
        let mut s = SectionBuilder::new(section, &peer_kind)
            .opt("description", &peer.name)
            .opt("public_key", &peer.public_key);
        if let Some(psk) = secrets
            .preshared_keys
            .get(&peer.name)
            .filter(|_| peer.preshared_key)
        {
            s = s.opt("preshared_key", psk.to_base64());
        }
        sections.push((
            "network",
            s.list("allowed_ips", [format!("{}/32", peer.address)])
                .done(),
        ));
    }
    if dedicated {
        sections.push((
            "network",
            SectionBuilder::new(SERVER_NETWORK, "interface")
                .opt("proto", "static")
                .opt("device", &d.server.router_port)
                .opt("ipaddr", d.lan.router_address)
                .opt("netmask", "255.255.255.255")
                .done(),
        ));
        sections.push((
            "network",
            SectionBuilder::new("sovereign_ai_host", "route")
                .opt("interface", SERVER_NETWORK)
                .opt("target", d.server.address)
                .opt("netmask", "255.255.255.255")
                .done(),
        ));
    } else {
        absent.push(("network", SERVER_NETWORK.into(), "interface".into()));
        absent.push(("network", "sovereign_ai_host".into(), "route".into()));
    }

    firewall(d, &mut sections, &mut absent);

    match d.server.mac {
        Some(mac) => sections.push((
            "dhcp",
            SectionBuilder::new("sovereign_server", "host")
                .opt("name", "sovereign-ai")
                .opt("mac", mac)
                .opt("ip", d.server.address)
                .done(),
        )),
        None => absent.push(("dhcp", "sovereign_server".into(), "host".into())),
    }
    Plan {
        preamble,
        sections,
        absent,
    }
}

/// A fw4 rule whose `name` is its rule key (fw4 turns it into the nft comment).
struct FwRule {
    id: &'static str,
    key: RuleKey,
    options: Vec<(&'static str, Value)>,
}

fn fw_rule(id: &'static str, key: RuleKey) -> FwRule {
    FwRule {
        id,
        key,
        options: Vec::new(),
    }
}

impl FwRule {
    fn opt(mut self, name: &'static str, value: impl ToString) -> Self {
        self.options.push((name, Value::Single(value.to_string())));
        self
    }

    fn list<T: ToString>(mut self, name: &'static str, values: &[T]) -> Self {
        self.options.push((
            name,
            Value::List(values.iter().map(|v| v.to_string()).collect()),
        ));
        self
    }

    fn section(self) -> Section {
        let target = match self.key.verdict {
            Verdict::Allow => "ACCEPT",
            Verdict::Drop => "DROP",
            Verdict::Reject => "REJECT",
        };
        let mut section = Section {
            name: Some(self.id.to_string()),
            kind: "rule".into(),
            options: vec![("name".into(), Value::Single(self.key.to_string()))],
        };
        section
            .options
            .extend(self.options.into_iter().map(|(k, v)| (k.to_string(), v)));
        section
            .options
            .push(("target".into(), Value::Single(target.into())));
        section
    }
}

fn firewall(
    d: &Deployment,
    sections: &mut Vec<(&'static str, Section)>,
    absent: &mut Vec<(&'static str, String, String)>,
) {
    let dedicated = d.server.isolation == Isolation::DedicatedPort;
    let p = &d.policy;
    let server = d.server.address.to_string();
    let api = d.server.api_port;
    let ssh = d.server.ssh_port;
    let zone = |id: &str, name: &str, network: &str, subnet: String| {
        SectionBuilder::new(id, "zone")
            .opt("name", name)
            .list("network", [network])
            .list("subnet", [subnet])
            .opt("input", "REJECT")
            .opt("output", "ACCEPT")
            .opt("forward", "REJECT")
            .opt("mtu_fix", 1)
            .done()
    };
    sections.push((
        "firewall",
        zone(
            "sovereign_vpn",
            VPN_ZONE,
            &d.wireguard.interface,
            d.wireguard.subnet.to_string(),
        ),
    ));
    // Where the server lives, and how its own packets are told apart.
    let (server_zone, server_src_ip): (&str, Option<&str>) = if dedicated {
        sections.push((
            "firewall",
            zone(
                "sovereign_ai",
                SERVER_ZONE,
                SERVER_NETWORK,
                format!("{server}/32"),
            ),
        ));
        (SERVER_ZONE, None)
    } else {
        absent.push(("firewall", "sovereign_ai".into(), "zone".into()));
        ("lan", Some(server.as_str()))
    };
    let from_server = |rule: FwRule| match server_src_ip {
        Some(ip) => rule.opt("src", "lan").opt("src_ip", ip),
        None => rule.opt("src", server_zone),
    };
    let to_server = |rule: FwRule| rule.opt("dest", server_zone).opt("dest_ip", &server);

    let mut rules: Vec<FwRule> = vec![
        fw_rule(
            "sovereign_wan_wireguard",
            RuleKey::new(&[S::Internet], &[D::RouterWireguard], Verdict::Allow),
        )
        .opt("src", "wan")
        .opt("proto", "udp")
        .opt("dest_port", d.wireguard.listen_port),
        fw_rule(
            "sovereign_wan_input",
            RuleKey::new(
                &[S::Internet],
                &[D::RouterServices, D::RouterDns],
                Verdict::Drop,
            ),
        )
        .opt("src", "wan")
        .opt("proto", "all"),
        fw_rule(
            "sovereign_wan_forward",
            RuleKey::new(
                &[S::Internet],
                &[
                    D::ServerApi,
                    D::ServerSsh,
                    D::ServerOther,
                    D::OtherLan,
                    D::VpnPeer,
                ],
                Verdict::Drop,
            ),
        )
        .opt("src", "wan")
        .opt("dest", "*")
        .opt("proto", "all"),
        fw_rule(
            "sovereign_vpn_input",
            RuleKey::new(
                &[S::VpnPeer],
                &[D::RouterServices, D::RouterDns],
                Verdict::Reject,
            ),
        )
        .opt("src", VPN_ZONE)
        .opt("proto", "all"),
        to_server(
            fw_rule(
                "sovereign_vpn_api",
                RuleKey::new(&[S::VpnPeer], &[D::ServerApi], Verdict::Allow),
            )
            .opt("src", VPN_ZONE),
        )
        .opt("proto", "tcp")
        .opt("dest_port", api),
    ];
    let mut vpn_denied = vec![D::ServerOther, D::OtherLan, D::Internet, D::VpnPeer];
    if p.vpn_ssh {
        rules.push(
            to_server(
                fw_rule(
                    "sovereign_vpn_ssh",
                    RuleKey::new(&[S::VpnPeer], &[D::ServerSsh], Verdict::Allow),
                )
                .opt("src", VPN_ZONE),
            )
            .opt("proto", "tcp")
            .opt("dest_port", ssh),
        );
    } else {
        absent.push(("firewall", "sovereign_vpn_ssh".into(), "rule".into()));
        vpn_denied.insert(0, D::ServerSsh);
    }
    rules.push(
        fw_rule(
            "sovereign_vpn_deny",
            RuleKey::new(&[S::VpnPeer], &vpn_denied, Verdict::Reject),
        )
        .opt("src", VPN_ZONE)
        .opt("dest", "*")
        .opt("proto", "all"),
    );

    rules.push(
        from_server(fw_rule(
            "sovereign_server_dns",
            RuleKey::new(&[S::Server], &[D::RouterDns], Verdict::Allow),
        ))
        .list("proto", &["tcp", "udp"])
        .opt("dest_port", 53),
    );
    rules.push(
        from_server(fw_rule(
            "sovereign_server_dhcp",
            RuleKey::new(&[S::Server], &[D::RouterDns], Verdict::Allow).with_note("dhcp"),
        ))
        .opt("proto", "udp")
        .opt("dest_port", 67),
    );
    rules.push(
        from_server(fw_rule(
            "sovereign_server_input",
            RuleKey::new(&[S::Server], &[D::RouterServices], Verdict::Reject),
        ))
        .opt("proto", "all"),
    );
    let mut server_denied = vec![D::OtherLan, D::VpnPeer];
    if p.server_internet {
        rules.push(
            from_server(fw_rule(
                "sovereign_server_internet",
                RuleKey::new(&[S::Server], &[D::Internet], Verdict::Allow),
            ))
            .opt("dest", "wan")
            .opt("proto", "all"),
        );
    } else {
        absent.push((
            "firewall",
            "sovereign_server_internet".into(),
            "rule".into(),
        ));
        if dedicated {
            server_denied.push(D::Internet);
        }
    }
    if !p.server_internet && !dedicated {
        // The server shares the lan zone, whose stock lan -> wan forwarding sits in
        // forward_lan; early fw4 rendered it before rules. A rule with src '*'
        // lands in the base forward chain, ahead of every zone chain, whatever
        // the order.
        rules.push(
            fw_rule(
                "sovereign_server_airgap",
                RuleKey::new(&[S::Server], &[D::Internet], Verdict::Reject),
            )
            .opt("src", "*")
            .opt("src_ip", &server)
            .opt("dest", "wan")
            .opt("proto", "all"),
        );
        // The server's IPv6 addresses are unknown on the shared segment: no IPv6
        // from the whole segment to the WAN (`device` keeps this in the base chain).
        rules.push(
            fw_rule(
                "sovereign_server_airgap6",
                RuleKey::new(&[S::Server], &[D::Internet], Verdict::Reject).with_note("ipv6"),
            )
            .opt("src", "*")
            .opt("device", &d.lan.interface)
            .opt("dest", "wan")
            .opt("family", "ipv6")
            .opt("proto", "all"),
        );
    } else {
        absent.push(("firewall", "sovereign_server_airgap".into(), "rule".into()));
        absent.push(("firewall", "sovereign_server_airgap6".into(), "rule".into()));
    }
    rules.push(
        from_server(fw_rule(
            "sovereign_server_deny",
            RuleKey::new(&[S::Server], &server_denied, Verdict::Reject),
        ))
        .opt("dest", "*")
        .opt("proto", "all"),
    );

    if dedicated {
        absent.push(("firewall", "sovereign_server_ipv6".into(), "rule".into()));
    } else {
        // On a shared segment the server's IPv6 addresses (SLAAC, privacy) are
        // unknown, so its IPv6 looks like any LAN device's: close IPv6 to the router
        // for the whole segment, as the dedicated port does (no zone takes it).
        rules.push(
            fw_rule(
                "sovereign_server_ipv6",
                RuleKey::new(&[S::Server], &[D::RouterServices], Verdict::Reject).with_note("ipv6"),
            )
            .opt("src", "lan")
            .opt("family", "ipv6")
            .opt("proto", "all"),
        );
    }
    let lan = [S::LanDevice, S::LanAdmin];
    rules.push(
        fw_rule(
            "sovereign_lan_router",
            RuleKey::new(&lan, &[D::RouterServices, D::RouterDns], Verdict::Allow),
        )
        .opt("src", "lan")
        .opt("proto", "all"),
    );
    if p.admin_hosts.is_empty() {
        absent.push(("firewall", "sovereign_lan_admin".into(), "rule".into()));
    } else {
        rules.push(
            to_server(
                fw_rule(
                    "sovereign_lan_admin",
                    RuleKey::new(
                        &[S::LanAdmin],
                        &[D::ServerApi, D::ServerSsh, D::ServerOther],
                        Verdict::Allow,
                    ),
                )
                .opt("src", "lan")
                .list("src_ip", &p.admin_hosts),
            )
            .opt("proto", "all"),
        );
    }
    let mut lan_denied = vec![D::ServerSsh, D::ServerOther];
    if p.lan_api {
        rules.push(
            to_server(
                fw_rule(
                    "sovereign_lan_api",
                    RuleKey::new(&[S::LanDevice], &[D::ServerApi], Verdict::Allow),
                )
                .opt("src", "lan"),
            )
            .opt("proto", "tcp")
            .opt("dest_port", api),
        );
    } else {
        absent.push(("firewall", "sovereign_lan_api".into(), "rule".into()));
        lan_denied.insert(0, D::ServerApi);
    }
    rules.push(
        to_server(
            fw_rule(
                "sovereign_lan_server_deny",
                RuleKey::new(&[S::LanDevice], &lan_denied, Verdict::Reject),
            )
            .opt("src", "lan"),
        )
        .opt("proto", "all"),
    );
    rules.push(
        fw_rule(
            "sovereign_lan_vpn_deny",
            RuleKey::new(&lan, &[D::VpnPeer], Verdict::Reject),
        )
        .opt("src", "lan")
        .opt("dest", VPN_ZONE)
        .opt("proto", "all"),
    );
    rules.push(
        fw_rule(
            "sovereign_lan_internet",
            RuleKey::new(&lan, &[D::Internet], Verdict::Allow),
        )
        .opt("src", "lan")
        .opt("dest", "wan")
        .opt("proto", "all"),
    );
    rules.push(
        fw_rule(
            "sovereign_lan_lan",
            RuleKey::new(&lan, &[D::OtherLan], Verdict::Allow),
        )
        .opt("src", "lan")
        .opt("dest", "lan")
        .opt("proto", "all"),
    );
    sections.extend(rules.into_iter().map(|r| ("firewall", r.section())));
}

fn sysctl_conf(d: &Deployment) -> String {
    let mut out = String::from(
        "# Rendered by `sovereign router render`: proxy ARP for the server's own port.\n\
         # Install as /etc/sysctl.d/90-sovereign.conf. OpenWrt applies it at boot and again\n\
         # from /etc/hotplug.d/net/00-sysctl whenever one of these devices is (re)created.\n",
    );
    let _ = writeln!(
        out,
        "{}=1",
        openwrt_ipv4_conf_key(&d.server.router_port, "proxy_arp")
    );
    let _ = writeln!(
        out,
        "{}=1",
        openwrt_ipv4_conf_key(&d.lan.interface, "proxy_arp")
    );
    out
}

fn checklist(d: &Deployment) -> Vec<String> {
    let mut items = vec![
        "Apply: copy the files to the router, then `sh sovereign-wire.sh && uci batch < sovereign.uci && \
         fw4 check && service network reload && service firewall reload && sh sovereign-wire.sh prove` \
         (the wiring script refuses, changing nothing, when the server's port is not where sovereign expects it)."
            .to_string(),
    ];
    if d.server.isolation == Isolation::DedicatedPort {
        let port = &d.server.router_port;
        items.push(
            "`sovereign router apply` installs etc/sysctl.d/90-sovereign.conf (proxy ARP) and loads it; \
             applying by hand, copy it to /etc/sysctl.d/ and run `sysctl -p /etc/sysctl.d/90-sovereign.conf`."
                .to_string(),
        );
        items.push(format!(
            "Plug the AI server into port {port} and nothing else into it; sovereign-wire.sh takes {port} out of {} \
             (found by name) and `sovereign-wire.sh prove` shows that it left.",
            d.lan.interface
        ));
        items.push(format!(
            "Routers without DSA port names (swconfig) have no {port} device: create a VLAN of its own for the \
             server's switch port and set server.router_port to its device (e.g. eth0.3); sovereign-wire.sh refuses \
             a VLAN that shares a switch port with the LAN."
        ));
        items.push(format!(
            "Give the server the static address {}/{} with gateway and DNS {}: no DHCP range can be served on a /32 port.",
            d.server.address,
            d.lan.subnet.prefix_len(),
            d.lan.router_address
        ));
    }
    if d.server.isolation == Isolation::Shared {
        items.push(
            "Shared isolation: the router rejects IPv6 from the LAN (it cannot tell the server's IPv6 addresses \
             from the other devices'); turn off IPv6 on the LAN so devices do not wait on it: \
             `uci set dhcp.lan.ra=disabled; uci set dhcp.lan.dhcpv6=disabled; uci commit dhcp; service odhcpd reload`."
                .to_string(),
        );
    }
    items.push(format!(
        "Keep {} out of the LAN's DHCP pool (OpenWrt's default pool is .100-.249) so no other device gets it.",
        d.server.address
    ));
    items.push(format!(
        "If the router sits behind another router (double NAT), forward UDP {} on that router to {}.",
        d.wireguard.listen_port,
        d.wan.address.addr()
    ));
    items.push(format!(
        "The batch moves sovereign_wan_wireguard, sovereign_wan_input and sovereign_wan_forward to the top of \
         /etc/config/firewall, so from the WAN only UDP {} gets in: OpenWrt's stock WAN rules (Allow-DHCP-Renew, \
         Allow-Ping, Allow-IGMP, Allow-DHCPv6, Allow-MLD, Allow-ICMPv6-Input, Allow-ICMPv6-Forward, Allow-IPSec-ESP, \
         Allow-ISAKMP) and any WAN rule or port forward of your own stop matching; delete them (Network > Firewall) \
         so the list says what the router does, and mind that `@rule[0]` now names sovereign's rule. The WAN's DHCP \
         lease still renews: replies to the router's own unicast requests are established flows, and discovery runs \
         on a raw socket the firewall does not filter. IPv6 on the WAN stops (router advertisements, neighbour \
         discovery and DHCPv6 replies are dropped like the rest): sovereign routes IPv4 only.",
        d.wireguard.listen_port
    ));
    items.push(
        "If you built the reference design by hand, first delete its own `vpn` zone, its rules and any anonymous \
         wireguard peer sections; sovereign owns only sections named wg0 and sovereign_*."
            .into(),
    );
    items
}
