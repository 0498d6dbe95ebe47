//! What OpenWrt (23.05+: netifd, fw4, dnsmasq) understands, per package: section
//! types and their options. Sources: research/anchors.md §B (fw4.uc parsers,
//! netifd wireguard.sh/uc and LuCI's wireguard.js, dnsmasq.init `dhcp_host_add`)
//! and netifd's device/interface/route attribute tables.

use super::Package;

/// An entry the allow-list does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub section: String,
    pub kind: String,
    /// `None`: the section type itself is unknown.
    pub option: Option<String>,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.option {
            Some(option) => write!(
                f,
                "{} ({}): unknown option `{option}`",
                self.section, self.kind
            ),
            None => write!(f, "{}: unknown section type `{}`", self.section, self.kind),
        }
    }
}

/// Section types or options of `package` (`network`, `firewall`, `dhcp`) that
/// OpenWrt would ignore or reject. Types listed without options are known but
/// not checked option by option.
pub fn unknown_entries(package_name: &str, package: &Package) -> Vec<Unknown> {
    let mut out = Vec::new();
    for (i, section) in package.sections.iter().enumerate() {
        let label = section
            .name
            .clone()
            .unwrap_or_else(|| format!("@{}[{i}]", section.kind));
        let Some(allowed) = options_of(package_name, &section.kind) else {
            out.push(Unknown {
                section: label,
                kind: section.kind.clone(),
                option: None,
            });
            continue;
        };
        let Some(allowed) = allowed else { continue };
        for (option, _) in &section.options {
            if !allowed.contains(&option.as_str()) {
                out.push(Unknown {
                    section: label.clone(),
                    kind: section.kind.clone(),
                    option: Some(option.clone()),
                });
            }
        }
    }
    out
}

/// `None`: unknown type. `Some(None)`: known, options unchecked.
fn options_of(package: &str, kind: &str) -> Option<Option<&'static [&'static str]>> {
    let known = |options: &'static [&'static str]| Some(Some(options));
    match (package, kind) {
        ("network", "interface") => known(INTERFACE),
        ("network", "device") => known(DEVICE),
        ("network", "route") => known(ROUTE),
        ("network", kind) if kind.starts_with("wireguard_") => known(WIREGUARD_PEER),
        (
            "network",
            "globals" | "route6" | "rule" | "rule6" | "switch" | "switch_vlan" | "switch_port"
            | "bridge-vlan",
        ) => Some(None),
        ("firewall", "defaults") => known(FW_DEFAULTS),
        ("firewall", "zone") => known(FW_ZONE),
        ("firewall", "forwarding") => known(FW_FORWARDING),
        ("firewall", "rule") => known(FW_RULE),
        ("firewall", "redirect" | "include" | "ipset" | "nat") => Some(None),
        ("dhcp", "host") => known(DHCP_HOST),
        (
            "dhcp",
            "dnsmasq" | "dhcp" | "odhcpd" | "boot" | "domain" | "cname" | "mac" | "tag" | "srvhost"
            | "mxhost" | "relay" | "ipset",
        ) => Some(None),
        _ => None,
    }
}

const INTERFACE: &[&str] = &[
    // common (netifd interface attributes)
    "proto",
    "device",
    "ifname",
    "auto",
    "disabled",
    "force_link",
    "mtu",
    "metric",
    "peerdns",
    "dns",
    "dns_search",
    "dns_metric",
    "defaultroute",
    "delegate",
    "ip4table",
    "ip6table",
    "ipv6",
    "macaddr",
    "type",
    // proto static
    "ipaddr",
    "netmask",
    "gateway",
    "broadcast",
    "ip6addr",
    "ip6gw",
    "ip6prefix",
    "ip6assign",
    "ip6hint",
    "ip6ifaceid",
    "ip6class",
    // proto wireguard
    "private_key",
    "listen_port",
    "addresses",
    "fwmark",
    "nohostroute",
    "tunlink",
];

const DEVICE: &[&str] = &[
    "name",
    "type",
    "ports",
    "mtu",
    "mtu6",
    "macaddr",
    "txqueuelen",
    "enabled",
    "ipv6",
    "promisc",
    "rpfilter",
    "acceptlocal",
    "igmpversion",
    "mldversion",
    "neighreachabletime",
    "neighgcstaletime",
    "rps",
    "xps",
    "dadtransmits",
    "multicast_to_unicast",
    "multicast_router",
    "multicast_fast_leave",
    "multicast",
    "learning",
    "unicast_flood",
    "sendredirects",
    "neighlocktime",
    "isolate",
    "drop_v4_unicast_in_l2_multicast",
    "drop_v6_unicast_in_l2_multicast",
    "drop_gratuitous_arp",
    "drop_unsolicited_na",
    "arp_accept",
    "stp",
    "forward_delay",
    "priority",
    "ageing_time",
    "hello_time",
    "max_age",
    "igmp_snooping",
    "bridge_empty",
    "vlan_filtering",
    "ifname",
    "vid",
    "mode",
    "flags",
];

const ROUTE: &[&str] = &[
    "interface",
    "target",
    "netmask",
    "gateway",
    "metric",
    "mtu",
    "table",
    "source",
    "onlink",
    "type",
    "proto",
    "disabled",
];

const WIREGUARD_PEER: &[&str] = &[
    "public_key",
    "preshared_key",
    "allowed_ips",
    "route_allowed_ips",
    "endpoint_host",
    "endpoint_port",
    "persistent_keepalive",
    "disabled",
    "description",
    "private_key",
];

const FW_DEFAULTS: &[&str] = &[
    "input",
    "output",
    "forward",
    "drop_invalid",
    "tcp_reject_code",
    "any_reject_code",
    "syn_flood",
    "synflood_protect",
    "synflood_rate",
    "synflood_burst",
    "tcp_syncookies",
    "tcp_ecn",
    "tcp_window_scaling",
    "accept_redirects",
    "accept_source_route",
    "auto_helper",
    "flow_offloading",
    "flow_offloading_hw",
    "auto_includes",
];

const FW_ZONE: &[&str] = &[
    "enabled",
    "name",
    "family",
    "network",
    "device",
    "subnet",
    "input",
    "output",
    "forward",
    "masq",
    "masq_allow_invalid",
    "masq_src",
    "masq_dest",
    "masq6",
    "mtu_fix",
    "log",
    "log_limit",
    "auto_helper",
    "helper",
    "counter",
];

const FW_FORWARDING: &[&str] = &["enabled", "name", "family", "src", "dest"];

const FW_RULE: &[&str] = &[
    "enabled",
    "name",
    "family",
    "src",
    "dest",
    "device",
    "direction",
    "ipset",
    "helper",
    "set_helper",
    "proto",
    "src_ip",
    "src_mac",
    "src_port",
    "dest_ip",
    "dest_port",
    "icmp_type",
    "limit",
    "limit_burst",
    "utc_time",
    "start_date",
    "stop_date",
    "start_time",
    "stop_time",
    "weekdays",
    "mark",
    "set_mark",
    "set_xmark",
    "dscp",
    "set_dscp",
    "counter",
    "log",
    "log_limit",
    "target",
];

const DHCP_HOST: &[&str] = &[
    "name",
    "mac",
    "ip",
    "hostid",
    "duid",
    "leasetime",
    "dns",
    "tag",
    "match_tag",
    "broadcast",
    "networkid",
    "force",
    "enable",
];
