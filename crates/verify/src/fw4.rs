//! OpenWrt firewall + network UCI -> the `table inet fw4` ruleset fw4 generates, as
//! nft JSON, following fw4's templates (ruleset.uc, rule.uc, zone-*.uc) and its chain
//! mapping (`fw4.uc` parse_rule). The verifier then evaluates it like any ruleset, so
//! UCI and `nft -j list ruleset` verdicts agree by construction where fw4 is followed.
//!
//! Modelled: defaults (policies, drop_invalid, synflood_protect), zones (network ->
//! device via the network config, device, subnet, policies, masq, log), forwardings,
//! rules (src/dest zones or `*`, proto incl. the `tcpudp` default, src/dest ip and
//! port, icmp_type, device/direction, limit, targets accept/reject/drop and none),
//! redirects (DNAT). Options that could change a verdict but are not modelled become
//! an `unsupported` statement, so the cells they touch are reported unknown.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::VerifyError;
use crate::report::{Lint, Severity};
use sovereign_router::uci::{Package, Section, Value as UciValue, parse_config_file};

pub struct Compiled {
    pub json: Value,
    notes: Vec<(Severity, String)>,
}

impl Compiled {
    pub fn lints(&self) -> Vec<Lint> {
        self.notes
            .iter()
            .map(|(severity, message)| Lint {
                code: "fw4-compile",
                severity: *severity,
                message: message.clone(),
                rule: None,
                witness: None,
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
struct Zone {
    name: String,
    /// The networks it lists (for the addresses NAT reflection uses).
    networks: Vec<String>,
    devices: Vec<String>,
    subnets4: Vec<Value>,
    subnets6: Vec<Value>,
    input: String,
    output: String,
    forward: String,
    masq: bool,
    log: bool,
    family: u8,
    sflags: BTreeSet<String>,
    dflags: BTreeSet<String>,
}

type RuleOut = (Vec<Value>, Option<String>);

struct Builder {
    chains: Vec<(String, Option<Value>)>,
    rules: BTreeMap<String, Vec<RuleOut>>,
    notes: Vec<(Severity, String)>,
    /// The address netifd would report for a DHCP interface (the WAN's, from the
    /// deployment), which NAT reflection uses; `None`: not known here.
    dhcp_address: Option<ipnet::Ipv4Net>,
}

impl Builder {
    fn chain(&mut self, name: &str, base: Option<Value>) {
        self.chains.push((name.to_string(), base));
    }

    fn rule(&mut self, chain: &str, exprs: Vec<Value>, comment: Option<String>) {
        self.rules
            .entry(chain.to_string())
            .or_default()
            .push((exprs, comment));
    }
}

/// Parse `/etc/config/firewall` and `network` (errors name the file and line) and
/// compile them.
pub fn compile(firewall_text: &str, network_text: &str) -> Result<Compiled, VerifyError> {
    let firewall = parse("firewall", firewall_text)?;
    let network = parse("network", network_text)?;
    Ok(compile_packages(&firewall, &network))
}

/// One `/etc/config` file, its errors naming the file and line.
pub(crate) fn parse(file: &str, text: &str) -> Result<Package, VerifyError> {
    parse_config_file(text).map_err(|e| VerifyError::Uci {
        file: file.to_string(),
        line: e.line,
        message: e.message,
    })
}

/// Compile parsed packages, e.g. a stock config after `uci batch` ran over it. fw4
/// walks each section type in package order, so the order here is the order fw4
/// renders rules in their chains.
pub fn compile_packages(firewall: &Package, network: &Package) -> Compiled {
    compile_packages_with(firewall, network, None)
}

/// [`compile_packages`], knowing the address a DHCP interface (the WAN) has at run
/// time, as netifd would tell fw4.
pub fn compile_packages_with(
    firewall: &Package,
    network: &Package,
    dhcp_address: Option<ipnet::Ipv4Net>,
) -> Compiled {
    let network = &network.sections;
    let mut b = Builder {
        chains: Vec::new(),
        rules: BTreeMap::new(),
        notes: Vec::new(),
        dhcp_address,
    };
    let defaults = firewall.sections.iter().find(|s| s.kind == "defaults");
    let policy = |s: Option<&Section>, key: &str, fallback: &str| -> String {
        s.and_then(|s| s.opt(key))
            .and_then(parse_policy)
            .unwrap_or(fallback)
            .to_string()
    };
    let def_input = policy(defaults, "input", "drop");
    let def_output = policy(defaults, "output", "drop");
    let def_forward = policy(defaults, "forward", "drop");
    let flag = |s: Option<&Section>, key: &str| s.and_then(|s| s.opt(key)).is_some_and(is_true);
    let drop_invalid = flag(defaults, "drop_invalid");
    let synflood = flag(defaults, "synflood_protect") || flag(defaults, "syn_flood");

    let mut zones: Vec<Zone> = Vec::new();
    for s in firewall.sections.iter().filter(|s| s.kind == "zone") {
        if s.opt("enabled").is_some_and(is_false) {
            continue;
        }
        let Some(name) = s.opt("name").map(str::to_string) else {
            b.notes.push((
                Severity::Warning,
                format!(
                    "firewall {}: zone without a name is skipped (as fw4 does)",
                    section_id(firewall, s)
                ),
            ));
            continue;
        };
        if zones.iter().any(|z| z.name == name) {
            // fw4 renders both, and nft refuses the duplicate chains: nothing loads.
            b.notes.push((
                Severity::Error,
                format!("zone name `{name}` is used twice: fw4's output for this config does not load; rename or delete one zone"),
            ));
            continue;
        }
        let mut devices = Vec::new();
        for net in s.values("network") {
            match network_device(network, &net) {
                Some(dev) => devices.push(dev),
                // fw4 maps networks to devices through netifd; an unknown network
                // adds no device match (the zone then matches by subnet, or not at all).
                None => b.notes.push((
                    Severity::Warning,
                    format!("zone {name}: network `{net}` does not exist in the network config, so fw4 matches no device for it"),
                )),
            }
        }
        devices.extend(
            s.values("device")
                .into_iter()
                .map(|d| match d.strip_suffix('+') {
                    Some(p) => format!("{p}*"),
                    None => d,
                }),
        );
        devices.dedup();
        let (mut subnets4, mut subnets6) = (Vec::new(), Vec::new());
        for sn in s.values("subnet") {
            match parse_addr(&sn) {
                Some((4, v)) => subnets4.push(v),
                Some((_, v)) => subnets6.push(v),
                None => b.notes.push((
                    Severity::Warning,
                    format!("zone {name}: subnet `{sn}` not understood, ignored"),
                )),
            }
        }
        // fw4 infers the family from the subnets too: IPv4 subnets only make an
        // IPv4-only zone.
        let family = match (
            s.opt("family").map_or(0, parse_family),
            subnets4.is_empty(),
            subnets6.is_empty(),
        ) {
            (0, false, true) => 4,
            (0, true, false) => 6,
            (f, _, _) => f,
        };
        let masq = s.opt("masq").is_some_and(is_true);
        if masq && !s.opt("masq6").is_some_and(is_true) && family == 6 {
            // fw4's "Prevent NAT leakage" rule then says `meta nfproto ipv4` and
            // matches the zone's IPv6 subnets: nft refuses the whole ruleset.
            b.notes.push((
                Severity::Error,
                format!("zone {name}: masq on a zone whose subnets are all IPv6 makes fw4 render a rule nft refuses (`ip vs. ip6`), so nothing loads; use masq6, or give the zone an IPv4 subnet"),
            ));
        }
        let input = policy(Some(s), "input", &def_input);
        let output = policy(Some(s), "output", &def_output);
        let forward = policy(Some(s), "forward", &def_forward);
        let mut sflags = BTreeSet::from([input.clone()]);
        let dflags = BTreeSet::from([output.clone(), forward.clone()]);
        sflags.insert(input.clone());
        zones.push(Zone {
            name,
            networks: s.values("network"),
            devices,
            subnets4,
            subnets6,
            input,
            output,
            forward,
            masq,
            log: s.opt("log").is_some_and(is_true),
            family,
            sflags,
            dflags,
        });
    }
    fn zone_idx(zones: &[Zone], name: &str) -> Option<usize> {
        zones.iter().position(|z| z.name == name)
    }

    // Rules, then forwardings, then redirects: fw4's order since its test
    // 01_configuration/02_rule_order (early fw4 parsed forwardings first). Within a
    // type, package order, which `uci reorder` changes.
    for (rule_no, s) in firewall
        .sections
        .iter()
        .filter(|s| s.kind == "rule")
        .enumerate()
    {
        let id = s
            .name
            .clone()
            .unwrap_or_else(|| format!("@rule[{rule_no}]"));
        if s.opt("enabled").is_some_and(is_false) {
            continue;
        }
        compile_rule(&mut b, &mut zones, s, &id);
    }
    for s in firewall.sections.iter().filter(|s| s.kind == "forwarding") {
        if s.opt("enabled").is_some_and(is_false) {
            continue;
        }
        let (Some(src), Some(dest)) = (s.opt("src"), s.opt("dest")) else {
            b.notes.push((
                Severity::Warning,
                format!(
                    "firewall {}: forwarding needs src and dest; skipped",
                    section_id(firewall, s)
                ),
            ));
            continue;
        };
        let chain = if src == "*" {
            "forward".to_string()
        } else {
            format!("forward_{src}")
        };
        if src != "*" && zone_idx(&zones, src).is_none()
            || dest != "*" && zone_idx(&zones, dest).is_none()
        {
            b.notes.push((
                Severity::Warning,
                format!(
                    "firewall {}: forwarding refers to an unknown zone; skipped",
                    section_id(firewall, s)
                ),
            ));
            continue;
        }
        let comment = format!(
            "!fw4: {}",
            s.opt("name").map(str::to_string).unwrap_or_else(|| format!(
                "Accept {} to {} forwarding",
                if src == "*" { "any" } else { src },
                if dest == "*" { "any" } else { dest }
            ))
        );
        let verdict = if dest == "*" {
            json!({"accept": null})
        } else {
            let zi = zone_idx(&zones, dest).expect("checked");
            zones[zi].dflags.insert("accept".into());
            json!({"jump": {"target": format!("accept_to_{dest}")}})
        };
        b.rule(
            &chain,
            vec![json!({"counter": {"packets": 0, "bytes": 0}}), verdict],
            Some(comment),
        );
    }
    for (redirect_no, s) in firewall
        .sections
        .iter()
        .filter(|s| s.kind == "redirect")
        .enumerate()
    {
        let id = s
            .opt("name")
            .map(str::to_string)
            .unwrap_or_else(|| format!("@redirect[{redirect_no}]"));
        if s.opt("enabled").is_some_and(is_false) {
            continue;
        }
        compile_redirect(&mut b, &mut zones, network, s, &id);
    }
    for s in firewall.sections.iter().filter(|s| {
        !matches!(
            s.kind.as_str(),
            "defaults" | "zone" | "rule" | "forwarding" | "redirect"
        )
    }) {
        b.notes.push((
            Severity::Info,
            format!("firewall {}: `config {}` sections are not modelled (no effect on filtering verdicts assumed)", section_id(firewall, s), s.kind),
        ));
    }

    // Base chains, in ruleset.uc order.
    let counter = || json!({"counter": {"packets": 0, "bytes": 0}});
    let ct_vmap = json!({"vmap": {"key": {"ct": {"key": "state"}}, "data": {"set": [["established", {"accept": null}], ["related", {"accept": null}]]}}});
    let base = |hook: &str, prio: i64, kind: &str, policy: &str| {
        Some(json!({"type": kind, "hook": hook, "prio": prio, "policy": policy}))
    };
    let chain_policy = |p: &str| if p == "accept" { "accept" } else { "drop" };
    b.chain(
        "input",
        base("input", 0, "filter", chain_policy(&def_input)),
    );
    b.chain(
        "forward",
        base("forward", 0, "filter", chain_policy(&def_forward)),
    );
    b.chain(
        "output",
        base("output", 0, "filter", chain_policy(&def_output)),
    );
    b.chain("prerouting", base("prerouting", 0, "filter", "accept"));
    b.chain("handle_reject", None);
    if synflood {
        b.chain("syn_flood", None);
    }
    let mut head: BTreeMap<&str, Vec<RuleOut>> = BTreeMap::new();
    for (chain, lo) in [("input", "iif"), ("output", "oif")] {
        let verb = if chain == "input" { "from" } else { "towards" };
        head.entry(chain).or_default().push((
            vec![
                m(json!({"meta": {"key": lo}}), "==", json!("lo")),
                json!({"accept": null}),
            ],
            Some(format!("!fw4: Accept traffic {verb} loopback")),
        ));
    }
    for (chain, what) in [
        ("input", "inbound"),
        ("forward", "forwarded"),
        ("output", "outbound"),
    ] {
        let list = head.entry(chain).or_default();
        list.push((
            vec![ct_vmap.clone()],
            Some(format!("!fw4: Handle {what} flows")),
        ));
        if drop_invalid {
            list.push((
                vec![
                    m(json!({"ct": {"key": "state"}}), "in", json!("invalid")),
                    counter(),
                    json!({"drop": null}),
                ],
                Some("!fw4: Drop flows with invalid conntrack state".into()),
            ));
        }
    }
    if synflood {
        head.entry("input").or_default().push((
            vec![
                m(json!({"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["fin", "syn", "rst", "ack"]]}), "==", json!("syn")),
                json!({"jump": {"target": "syn_flood"}}),
            ],
            Some("!fw4: Rate limit TCP syn packets".into()),
        ));
        b.rule(
            "syn_flood",
            vec![
                json!({"limit": {"rate": 25, "burst": 50, "per": "second"}}),
                json!({"return": null}),
            ],
            Some("!fw4: Accept SYN packets below rate-limit".into()),
        );
        b.rule(
            "syn_flood",
            vec![json!({"drop": null})],
            Some("!fw4: Drop excess packets".into()),
        );
    }
    b.rule(
        "handle_reject",
        vec![
            m(json!({"meta": {"key": "l4proto"}}), "==", json!("tcp")),
            json!({"reject": {"type": "tcp reset"}}),
        ],
        Some("!fw4: Reject TCP traffic".into()),
    );
    b.rule(
        "handle_reject",
        vec![json!({"reject": {"type": "icmpx", "expr": "port-unreachable"}})],
        Some("!fw4: Reject any other traffic".into()),
    );

    for (chain, ifkey, addr) in [
        ("input", "iifname", "saddr"),
        ("forward", "iifname", "saddr"),
        ("output", "oifname", "daddr"),
    ] {
        let mut rules = head.remove(chain).unwrap_or_default();
        rules.extend(b.rules.remove(chain).unwrap_or_default());
        for z in &zones {
            let what = match chain {
                "input" => "input",
                "forward" => "forward",
                _ => "output",
            };
            for mut exprs in zone_matches(z, ifkey, addr) {
                exprs.push(json!({"jump": {"target": format!("{chain}_{}", z.name)}}));
                rules.push((
                    exprs,
                    Some(format!("!fw4: Handle {} IPv4/IPv6 {what} traffic", z.name)),
                ));
            }
        }
        let p = match chain {
            "input" => &def_input,
            "forward" => &def_forward,
            _ => &def_output,
        };
        if p == "reject" {
            rules.push((vec![json!({"jump": {"target": "handle_reject"}})], None));
        }
        b.rules.insert(chain.to_string(), rules);
    }

    for z in zones.clone() {
        for (kind, policy) in [
            ("input", &z.input),
            ("output", &z.output),
            ("forward", &z.forward),
        ] {
            let name = format!("{kind}_{}", z.name);
            b.chain(&name, None);
            let dir = if kind == "input" { "from" } else { "to" };
            if kind != "output" && z.dflags.contains("dnat") {
                let what = if kind == "input" {
                    "redirections"
                } else {
                    "forwards"
                };
                b.rule(
                    &name,
                    vec![
                        m(json!({"ct": {"key": "status"}}), "in", json!("dnat")),
                        json!({"accept": null}),
                    ],
                    Some(format!("!fw4: Accept port {what}")),
                );
            }
            b.rule(
                &name,
                vec![json!({"jump": {"target": format!("{policy}_{dir}_{}", z.name)}})],
                None,
            );
        }
        for verdict in ["accept", "reject", "drop"] {
            let action = || {
                if verdict == "reject" {
                    json!({"jump": {"target": "handle_reject"}})
                } else {
                    json!({ verdict: null })
                }
            };
            if z.sflags.contains(verdict) {
                let name = format!("{verdict}_from_{}", z.name);
                b.chain(&name, None);
                for mut exprs in zone_matches(&z, "iifname", "saddr") {
                    exprs.push(counter());
                    exprs.push(action());
                    b.rule(
                        &name,
                        exprs,
                        Some(format!("!fw4: {verdict} {} IPv4/IPv6 traffic", z.name)),
                    );
                }
            }
            if z.dflags.contains(verdict) {
                let name = format!("{verdict}_to_{}", z.name);
                b.chain(&name, None);
                for exprs in zone_matches(&z, "oifname", "daddr") {
                    if verdict == "accept" && z.masq {
                        let mut guard =
                            vec![m(json!({"meta": {"key": "nfproto"}}), "==", json!("ipv4"))];
                        guard.extend(exprs.iter().cloned());
                        guard.extend([
                            m(json!({"ct": {"key": "state"}}), "in", json!("invalid")),
                            counter(),
                            json!({"drop": null}),
                        ]);
                        b.rule(&name, guard, Some("!fw4: Prevent NAT leakage".into()));
                    }
                    let mut exprs = exprs;
                    exprs.push(counter());
                    exprs.push(action());
                    b.rule(
                        &name,
                        exprs,
                        Some(format!("!fw4: {verdict} {} IPv4/IPv6 traffic", z.name)),
                    );
                }
            }
        }
    }

    b.chain("dstnat", base("prerouting", -100, "nat", "accept"));
    b.chain("srcnat", base("postrouting", 100, "nat", "accept"));
    for z in zones.clone() {
        if z.dflags.contains("dnat") {
            for mut exprs in zone_matches(&z, "iifname", "saddr") {
                exprs.push(json!({"jump": {"target": format!("dstnat_{}", z.name)}}));
                b.rule(
                    "dstnat",
                    exprs,
                    Some(format!("!fw4: Handle {} IPv4/IPv6 dstnat traffic", z.name)),
                );
            }
            b.chain(&format!("dstnat_{}", z.name), None);
        }
        if z.masq {
            for mut exprs in zone_matches(&z, "oifname", "daddr") {
                exprs.push(json!({"jump": {"target": format!("srcnat_{}", z.name)}}));
                b.rule(
                    "srcnat",
                    exprs,
                    Some(format!("!fw4: Handle {} IPv4/IPv6 srcnat traffic", z.name)),
                );
            }
            let name = format!("srcnat_{}", z.name);
            b.chain(&name, None);
            b.rule(
                &name,
                vec![
                    m(json!({"meta": {"key": "nfproto"}}), "==", json!("ipv4")),
                    json!({"masquerade": null}),
                ],
                Some(format!("!fw4: Masquerade IPv4 {} traffic", z.name)),
            );
        }
    }

    let mut items = vec![
        json!({"metainfo": {"version": "fw4-compiled", "json_schema_version": 1}}),
        json!({"table": {"family": "inet", "name": "fw4", "handle": 1}}),
    ];
    let mut handle = 1u64;
    let mut rule_items = Vec::new();
    for (name, base) in &b.chains {
        handle += 1;
        let mut chain = json!({"family": "inet", "table": "fw4", "name": name, "handle": handle});
        if let Some(Value::Object(extra)) = base {
            for (k, v) in extra {
                chain[k] = v.clone();
            }
        }
        items.push(json!({ "chain": chain }));
        for (exprs, comment) in b.rules.get(name).cloned().unwrap_or_default() {
            handle += 1;
            let mut rule = json!({"family": "inet", "table": "fw4", "chain": name, "handle": handle, "expr": exprs});
            if let Some(c) = comment {
                rule["comment"] = json!(c);
            }
            rule_items.push(json!({ "rule": rule }));
        }
    }
    for name in b.rules.keys() {
        if !b.chains.iter().any(|(n, _)| n == name) {
            b.notes.push((
                Severity::Warning,
                format!("rules for chain `{name}` refer to an unknown zone; dropped"),
            ));
        }
    }
    items.extend(rule_items);
    Compiled {
        json: json!({ "nftables": items }),
        notes: b.notes,
    }
}

/// Option access with fw4's reading of UCI: an option's value (the last one of a
/// list), and every value of an option or list, each split on whitespace (fw4's
/// `to_array`: lists are often written as one space-separated option).
trait Options {
    fn opt(&self, key: &str) -> Option<&str>;
    fn values(&self, key: &str) -> Vec<String>;
}

impl Options for Section {
    fn opt(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            UciValue::Single(v) => Some(v),
            UciValue::List(items) => items.last().map(String::as_str),
        }
    }

    fn values(&self, key: &str) -> Vec<String> {
        self.get_all(key)
            .into_iter()
            .flat_map(str::split_whitespace)
            .map(str::to_string)
            .collect()
    }
}

/// How fw4 names a section in its warnings: its name, or `@type[index]`.
fn section_id(package: &Package, section: &Section) -> String {
    if let Some(name) = &section.name {
        return name.clone();
    }
    let index = package
        .sections_of(&section.kind)
        .position(|s| std::ptr::eq(s, section))
        .unwrap_or(0);
    format!("@{}[{index}]", section.kind)
}

fn m(left: Value, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn one_or_set(mut values: Vec<Value>) -> Value {
    if values.len() == 1 {
        values.remove(0)
    } else {
        json!({ "set": values })
    }
}

/// The matches that select a zone's traffic (zone.match_rules): its devices, or its
/// subnets per family.
fn zone_matches(z: &Zone, ifkey: &str, addr: &str) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    let dev = (!z.devices.is_empty()).then(|| {
        m(
            json!({"meta": {"key": ifkey}}),
            "==",
            one_or_set(z.devices.iter().map(|d| json!(d)).collect()),
        )
    });
    let fam = |f: &str| m(json!({"meta": {"key": "nfproto"}}), "==", json!(f));
    if z.subnets4.is_empty() && z.subnets6.is_empty() {
        if let Some(dev) = dev {
            let mut exprs = Vec::new();
            match z.family {
                4 => exprs.push(fam("ipv4")),
                6 => exprs.push(fam("ipv6")),
                _ => {}
            }
            exprs.push(dev);
            out.push(exprs);
        }
        return out;
    }
    for (family, proto, subnets) in [(4, "ip", &z.subnets4), (6, "ip6", &z.subnets6)] {
        if subnets.is_empty() || (z.family != 0 && z.family != family) {
            continue;
        }
        let mut exprs: Vec<Value> = dev.iter().cloned().collect();
        exprs.push(m(
            json!({"payload": {"protocol": proto, "field": addr}}),
            "==",
            one_or_set(subnets.clone()),
        ));
        out.push(exprs);
    }
    out
}

fn network_device(network: &[Section], name: &str) -> Option<String> {
    let s = network
        .iter()
        .find(|s| s.kind == "interface" && s.name.as_deref() == Some(name))?;
    let proto = s.opt("proto").unwrap_or("none");
    if matches!(proto, "pppoe" | "pppoa" | "pptp" | "l2tp") {
        return Some(format!(
            "{}-{name}",
            if proto == "pppoa" { "pppoa" } else { "pppoe" }
        ));
    }
    if matches!(
        proto,
        "wireguard"
            | "gre"
            | "gretap"
            | "vti"
            | "6in4"
            | "6to4"
            | "6rd"
            | "dslite"
            | "map"
            | "qmi"
            | "ncm"
            | "3g"
    ) {
        return Some(name.to_string());
    }
    if let Some(dev) = s.opt("device") {
        return Some(dev.to_string());
    }
    if s.opt("type") == Some("bridge") {
        return Some(format!("br-{name}"));
    }
    s.values("ifname").into_iter().next()
}

fn parse_policy(v: &str) -> Option<&'static str> {
    let v = v.to_ascii_lowercase();
    ["accept", "reject", "drop"]
        .into_iter()
        .find(|c| !v.is_empty() && c.starts_with(v.as_str()))
}

fn is_true(v: &str) -> bool {
    matches!(v, "1" | "on" | "true" | "yes")
}

fn is_false(v: &str) -> bool {
    matches!(v, "0" | "off" | "false" | "no")
}

fn parse_family(v: &str) -> u8 {
    if v == "inet" || v.contains('4') {
        4
    } else if v.contains('6') {
        6
    } else {
        0
    }
}

/// A UCI address: host, CIDR, address/mask (contiguous), or range. (family, nft value)
fn parse_addr(s: &str) -> Option<(u8, Value)> {
    use std::net::IpAddr;
    if let Some((a, b)) = s.split_once('/') {
        let addr: IpAddr = a.parse().ok()?;
        let bits = match b.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let mask: IpAddr = b.parse().ok()?;
                let (v, width) = match mask {
                    IpAddr::V4(m) => (u32::from(m) as u128, 32),
                    IpAddr::V6(m) => (u128::from(m), 128),
                };
                let ones = if width == 32 {
                    (v as u32).leading_ones()
                } else {
                    v.leading_ones()
                };
                let rebuilt = if ones == 0 {
                    0
                } else {
                    (u128::MAX << (128 - ones)) >> (128 - width)
                };
                if rebuilt != v {
                    return None;
                }
                ones
            }
        };
        let family = if addr.is_ipv4() { 4 } else { 6 };
        if bits > if family == 4 { 32 } else { 128 } {
            return None;
        }
        return Some((
            family,
            json!({"prefix": {"addr": addr.to_string(), "len": bits}}),
        ));
    }
    if let Some((a, b)) = s.split_once('-') {
        let (a, b): (IpAddr, IpAddr) = (a.parse().ok()?, b.parse().ok()?);
        if a.is_ipv4() != b.is_ipv4() {
            return None;
        }
        return Some((
            if a.is_ipv4() { 4 } else { 6 },
            json!({"range": [a.to_string(), b.to_string()]}),
        ));
    }
    let a: IpAddr = s.parse().ok()?;
    Some((if a.is_ipv4() { 4 } else { 6 }, json!(a.to_string())))
}

fn parse_port(s: &str) -> Option<Value> {
    let (lo, hi) = match s.split_once(['-', ':']) {
        Some((a, b)) => (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?),
        None => {
            let p = s.parse::<u16>().ok()?;
            (p, p)
        }
    };
    if lo > hi {
        return None;
    }
    Some(if lo == hi {
        json!(lo)
    } else {
        json!({"range": [lo, hi]})
    })
}

/// fw4's ICMP type names (fw4.uc `ipv4_icmptypes` / `ipv6_icmptypes`) and the type
/// each selects. fw4 also matches a code range for some names (`no-route` is type
/// 1, code 0); the model keeps only the type, which is exact for the matrix because
/// ICMP is outside it (see the report's assumptions).
const ICMP_TYPES_V4: &[(&str, u8)] = &[
    ("echo-reply", 0),
    ("pong", 0),
    ("destination-unreachable", 3),
    ("network-unreachable", 3),
    ("host-unreachable", 3),
    ("protocol-unreachable", 3),
    ("port-unreachable", 3),
    ("fragmentation-needed", 3),
    ("source-route-failed", 3),
    ("network-unknown", 3),
    ("host-unknown", 3),
    ("network-prohibited", 3),
    ("host-prohibited", 3),
    ("TOS-network-unreachable", 3),
    ("TOS-host-unreachable", 3),
    ("communication-prohibited", 3),
    ("host-precedence-violation", 3),
    ("precedence-cutoff", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("network-redirect", 5),
    ("host-redirect", 5),
    ("TOS-network-redirect", 5),
    ("TOS-host-redirect", 5),
    ("echo-request", 8),
    ("ping", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("ttl-exceeded", 11),
    ("ttl-zero-during-transit", 11),
    ("ttl-zero-during-reassembly", 11),
    ("parameter-problem", 12),
    ("ip-header-bad", 12),
    ("required-option-missing", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
    ("address-mask-request", 17),
    ("address-mask-reply", 18),
];
const ICMP_TYPES_V6: &[(&str, u8)] = &[
    ("destination-unreachable", 1),
    ("no-route", 1),
    ("communication-prohibited", 1),
    ("address-unreachable", 1),
    ("port-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("ttl-exceeded", 3),
    ("ttl-zero-during-transit", 3),
    ("ttl-zero-during-reassembly", 3),
    ("parameter-problem", 4),
    ("bad-header", 4),
    ("unknown-header-type", 4),
    ("unknown-option", 4),
    ("echo-request", 128),
    ("ping", 128),
    ("echo-reply", 129),
    ("pong", 129),
    ("multicast-listener-query", 130),
    ("multicast-listener-report", 131),
    ("multicast-listener-done", 132),
    ("router-solicitation", 133),
    ("router-advertisement", 134),
    ("neighbour-solicitation", 135),
    ("neighbor-solicitation", 135),
    ("neighbour-advertisement", 136),
    ("neighbor-advertisement", 136),
    ("redirect", 137),
    ("router-renumbering", 138),
    ("node-info-query", 139),
    ("node-info-response", 140),
    ("inverse-neighbour-discovery-solicitation-message", 141),
    ("inverse-neighbor-discovery-solicitation-message", 141),
    ("inverse-neighbour-discovery-advertisement-message", 142),
    ("inverse-neighbor-discovery-advertisement-message", 142),
    ("v2-multicast-listener-report", 143),
    ("home-agent-address-discovery-request-message", 144),
    ("home-agent-address-discovery-reply-message", 145),
    ("mobile-prefix-solicitation", 146),
    ("mobile-prefix-advertisement", 147),
    ("certification-path-solicitation-message", 148),
    ("certification-path-advertisement-message", 149),
    ("seamoby-protocol-message", 150),
    ("multicast-router-advertisement", 151),
    ("multicast-router-solicitation", 152),
    ("multicast-router-termination", 153),
    ("fmipv6-message", 154),
    ("rpl-control-message", 155),
    ("ilnpv6-locator-update-message", 156),
    ("duplicate-address-request", 157),
    ("duplicate-address-confirmation", 158),
    ("mpl-control-message", 159),
    ("extended-echo-request", 160),
    ("extended-ping", 160),
    ("extended-echo-reply", 161),
    ("extended-pong", 161),
];

/// The ICMP type of a UCI `icmp_type` value (`8`, `130/0`, a name), or `None` for a
/// name fw4 does not know (fw4 warns and skips it).
fn icmp_type(name: &str, v6: bool) -> Option<u8> {
    if let Ok(n) = name.split('/').next()?.parse::<u8>() {
        return Some(n);
    }
    let table = if v6 { ICMP_TYPES_V6 } else { ICMP_TYPES_V4 };
    table.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// fw4's `infer_family`: `family` (0 = any) narrowed by each restricted family in
/// turn; two different restrictions are a conflict.
fn infer_family(family: u8, restrictions: impl IntoIterator<Item = u8>) -> Result<u8, String> {
    let mut family = family;
    for f in restrictions.into_iter().filter(|f| *f != 0) {
        if family != 0 && family != f {
            return Err(format!(
                "is restricted to IPv{family} but a zone it uses is IPv{f} only"
            ));
        }
        family = f;
    }
    Ok(family)
}

/// Split a list of possibly negated values into (positive, negative).
fn split_neg(values: Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut pos = Vec::new();
    let mut neg = Vec::new();
    for v in values {
        match v.strip_prefix('!') {
            Some(n) if !n.is_empty() => neg.push(n.to_string()),
            Some(_) => {}
            None => pos.push(v),
        }
    }
    (pos, neg)
}

const UNMODELLED_RULE_OPTIONS: [&str; 15] = [
    "ipset",
    "helper",
    "src_mac",
    "mark",
    "dscp",
    "start_date",
    "stop_date",
    "start_time",
    "stop_time",
    "weekdays",
    "monthdays",
    "utc_time",
    "set_helper",
    "set_mark",
    "set_xmark",
];

fn unsupported(option: &str, value: &str) -> Value {
    json!({"unsupported": {"option": option, "value": value}})
}

fn compile_rule(b: &mut Builder, zones: &mut [Zone], s: &Section, id: &str) {
    let name = s.opt("name").unwrap_or(id).to_string();
    let target = s.opt("target").map(|t| t.to_ascii_lowercase());
    let target = match target.as_deref() {
        None => None,
        Some(t) => match [
            "accept", "reject", "drop", "notrack", "helper", "mark", "dscp",
        ]
        .into_iter()
        .find(|c| c.starts_with(t))
        {
            Some(c @ ("accept" | "reject" | "drop")) => Some(c.to_string()),
            Some(other) => {
                b.notes.push((
                    Severity::Info,
                    format!("rule {name}: target `{other}` does not filter; not modelled"),
                ));
                return;
            }
            None => {
                b.notes.push((
                    Severity::Warning,
                    format!("rule {name}: unknown target `{t}`; skipped (fw4 rejects the section)"),
                ));
                return;
            }
        },
    };
    let src = s.opt("src");
    let dest = s.opt("dest");
    for z in [src, dest].into_iter().flatten() {
        if z != "*" && !zones.iter().any(|zone| zone.name == z) {
            b.notes.push((
                Severity::Warning,
                format!("rule {name}: unknown zone `{z}`; skipped (as fw4 does)"),
            ));
            return;
        }
    }
    let zone = |n: &str| zones.iter().position(|z| z.name == n);
    let mut chain = "output".to_string();
    if let Some(src) = src {
        chain = match (src == "*", dest.is_some()) {
            (true, true) => "forward".into(),
            (true, false) => "input".into(),
            (false, true) => format!("forward_{src}"),
            (false, false) => format!("input_{src}"),
        };
    }
    if let (Some(dest), None) = (dest, src) {
        chain = if dest == "*" {
            "output".into()
        } else {
            format!("output_{dest}")
        };
    }
    let verdict: Option<Value> = match &target {
        None => None,
        Some(t) => {
            if let Some(d) = dest.filter(|d| *d != "*") {
                zones[zone(d).expect("checked")].dflags.insert(t.clone());
                Some(json!({"jump": {"target": format!("{t}_to_{d}")}}))
            } else if let Some(zi) = src
                .filter(|z| *z != "*")
                .and_then(zone)
                .filter(|&zi| zones[zi].log && t != "accept")
            {
                zones[zi].sflags.insert(t.clone());
                Some(json!({"jump": {"target": format!("{t}_from_{}", zones[zi].name)}}))
            } else if t == "reject" {
                Some(json!({"jump": {"target": "handle_reject"}}))
            } else {
                Some(json!({ t.as_str(): null }))
            }
        }
    };

    let mut extra: Vec<Value> = Vec::new();
    for opt in UNMODELLED_RULE_OPTIONS {
        if let Some(v) = s.opt(opt) {
            extra.push(unsupported(opt, v));
            b.notes.push((Severity::Warning, format!("rule {name}: option `{opt}` is not modelled; the cells it touches are reported unknown")));
        }
    }
    // fw4 declares `extra` UNSUPPORTED (iptables syntax): it warns and ignores it.
    if s.opt("extra").is_some() {
        b.notes.push((
            Severity::Warning,
            format!("rule {name}: fw4 ignores option `extra` (iptables syntax is not supported), and so does this model"),
        ));
    }
    let limit = s.opt("limit").map(|l| json!({"limit": {"rate": l}}));
    let iface = s.opt("device").map(|d| {
        let key = if s
            .opt("direction")
            .is_some_and(|d| d == "out" || d == "egress")
        {
            "oifname"
        } else {
            "iifname"
        };
        let dev = d
            .strip_suffix('+')
            .map_or(d.to_string(), |p| format!("{p}*"));
        m(json!({"meta": {"key": key}}), "==", json!(dev))
    });

    let mut protos: Vec<String> = Vec::new();
    for p in s.values("proto") {
        match p.to_ascii_lowercase().as_str() {
            "tcpudp" => protos.extend(["tcp".to_string(), "udp".to_string()]),
            "1" | "icmp" => protos.push("icmp".into()),
            "58" | "icmpv6" | "ipv6-icmp" => protos.push("ipv6-icmp".into()),
            "6" => protos.push("tcp".into()),
            "17" => protos.push("udp".into()),
            "all" | "any" | "*" => protos.push("any".into()),
            other => protos.push(other.to_string()),
        }
    }
    if protos.is_empty() {
        protos = vec!["tcp".into(), "udp".into()];
    }
    let (sip_pos, sip_neg) = split_neg(s.values("src_ip"));
    let (dip_pos, dip_neg) = split_neg(s.values("dest_ip"));
    let addrs = |list: &[String], fam: u8, b: &mut Builder| -> Vec<Value> {
        list.iter()
            .filter_map(|a| match parse_addr(a) {
                Some((f, v)) if f == fam => Some(v),
                Some(_) => None,
                None => {
                    b.notes.push((Severity::Warning, format!("rule {name}: address `{a}` not understood (network names are resolved only on the router)")));
                    Some(json!({"unsupported-address": a}))
                }
            })
            .collect()
    };
    let fam_of = |list: &[String]| -> (bool, bool) {
        let fams: Vec<u8> = list
            .iter()
            .filter_map(|a| parse_addr(a).map(|(f, _)| f))
            .collect();
        (fams.contains(&4), fams.contains(&6))
    };
    let all_ips: Vec<String> = sip_pos
        .iter()
        .chain(&sip_neg)
        .chain(&dip_pos)
        .chain(&dip_neg)
        .cloned()
        .collect();
    let (has4, has6) = fam_of(&all_ips);
    let explicit_family = s.opt("family").map(parse_family);
    let icmp_types = s.values("icmp_type");

    for proto in &protos {
        let mut family = explicit_family.unwrap_or(0);
        if proto == "ipv6-icmp" {
            family = 6;
        }
        let ports_apply = proto == "tcp" || proto == "udp";
        let (sp_pos, sp_neg) = if ports_apply {
            split_neg(s.values("src_port"))
        } else {
            (vec![], vec![])
        };
        let (dp_pos, dp_neg) = if ports_apply {
            split_neg(s.values("dest_port"))
        } else {
            (vec![], vec![])
        };
        let itypes = (proto == "icmp" || proto == "ipv6-icmp") && !icmp_types.is_empty();
        // fw4's infer_family: a zone restricted to one family restricts the rule.
        let zone_families: Vec<u8> = [src, dest]
            .into_iter()
            .flatten()
            .filter_map(|n| zones.iter().find(|z| z.name == n))
            .map(|z| z.family)
            .collect();
        match infer_family(family, zone_families) {
            Ok(f) => family = f,
            Err(conflict) => {
                b.notes.push((
                    Severity::Warning,
                    format!("rule {name} ({proto}): {conflict}; skipped (as fw4 does)"),
                ));
                continue;
            }
        }
        if family == 0 && proto != "ipv6-icmp" {
            family = match (has4, has6) {
                (true, false) => 4,
                (false, true) => 6,
                _ => 0,
            };
        }
        let has_addrs_specific = has4 || has6;
        let fams: Vec<u8> = if family == 0 && !has_addrs_specific && !itypes {
            vec![0]
        } else {
            [4u8, 6u8]
                .into_iter()
                .filter(|f| family == 0 || family == *f)
                .filter(|f| !has_addrs_specific || (*f == 4 && has4) || (*f == 6 && has6))
                .filter(|f| {
                    !(proto == "icmp"
                        && itypes
                        && *f == 6
                        && icmp_types.iter().all(|t| icmp_type(t, true).is_none()))
                })
                .collect()
        };
        for fam in fams {
            let mut exprs: Vec<Value> = Vec::new();
            let has_ports =
                !(sp_pos.is_empty() && sp_neg.is_empty() && dp_pos.is_empty() && dp_neg.is_empty());
            let rule_addrs = !(sip_pos.is_empty()
                && sip_neg.is_empty()
                && dip_pos.is_empty()
                && dip_neg.is_empty());
            if fam != 0 && !rule_addrs {
                exprs.push(m(
                    json!({"meta": {"key": "nfproto"}}),
                    "==",
                    json!(if fam == 4 { "ipv4" } else { "ipv6" }),
                ));
            }
            let icmp_here = itypes && (proto == "icmp" || proto == "ipv6-icmp");
            if proto != "any" && !has_ports && !icmp_here {
                let l4 = match (proto.as_str(), fam) {
                    ("icmp", 0) => json!({"set": ["icmp", "ipv6-icmp"]}),
                    ("icmp", 6) | ("ipv6-icmp", _) => json!("ipv6-icmp"),
                    (p, _) => match p.parse::<u8>() {
                        Ok(n) => json!(n),
                        Err(_) => json!(p),
                    },
                };
                exprs.push(m(json!({"meta": {"key": "l4proto"}}), "==", l4));
            }
            if let Some(i) = &iface {
                exprs.push(i.clone());
            }
            let ipproto = if fam == 6 { "ip6" } else { "ip" };
            for (list, field, op) in [
                (&sip_pos, "saddr", "=="),
                (&sip_neg, "saddr", "!="),
                (&dip_pos, "daddr", "=="),
                (&dip_neg, "daddr", "!="),
            ] {
                let vals = addrs(list, if fam == 6 { 6 } else { 4 }, b);
                if !vals.is_empty() {
                    exprs.push(m(
                        json!({"payload": {"protocol": ipproto, "field": field}}),
                        op,
                        one_or_set(vals),
                    ));
                }
            }
            for (list, field, op) in [
                (&sp_pos, "sport", "=="),
                (&sp_neg, "sport", "!="),
                (&dp_pos, "dport", "=="),
                (&dp_neg, "dport", "!="),
            ] {
                let vals: Vec<Value> = list
                    .iter()
                    .map(|p| parse_port(p).unwrap_or_else(|| json!({"unsupported-port": p})))
                    .collect();
                if !vals.is_empty() {
                    exprs.push(m(
                        json!({"payload": {"protocol": proto, "field": field}}),
                        op,
                        one_or_set(vals),
                    ));
                }
            }
            if icmp_here {
                let v6 = fam == 6 || proto == "ipv6-icmp";
                let types: Vec<Value> = icmp_types
                    .iter()
                    .filter_map(|t| icmp_type(t, v6))
                    .map(|t| json!(t))
                    .collect();
                if types.is_empty() {
                    continue;
                }
                let p = if v6 { "icmpv6" } else { "icmp" };
                exprs.push(m(
                    json!({"payload": {"protocol": p, "field": "type"}}),
                    "==",
                    one_or_set(types),
                ));
            }
            exprs.extend(extra.iter().cloned());
            if let Some(l) = &limit {
                exprs.push(l.clone());
            }
            exprs.push(json!({"counter": {"packets": 0, "bytes": 0}}));
            if let Some(v) = &verdict {
                exprs.push(v.clone());
            }
            b.rule(&chain, exprs, Some(format!("!fw4: {name}")));
        }
    }
}

fn compile_redirect(
    b: &mut Builder,
    zones: &mut [Zone],
    network: &[Section],
    s: &Section,
    name: &str,
) {
    let target = s.opt("target").unwrap_or("dnat").to_ascii_lowercase();
    if target != "dnat" {
        b.notes.push((
            Severity::Info,
            format!(
                "redirect {name}: target `{target}` (source NAT) does not filter; not modelled"
            ),
        ));
        return;
    }
    let Some(src) = s.opt("src").filter(|z| *z != "*") else {
        b.notes.push((
            Severity::Warning,
            format!("redirect {name}: DNAT needs a source zone; skipped (as fw4 does)"),
        ));
        return;
    };
    let Some(zi) = zones.iter().position(|z| z.name == src) else {
        b.notes.push((
            Severity::Warning,
            format!("redirect {name}: unknown zone `{src}`; skipped"),
        ));
        return;
    };
    zones[zi].dflags.insert("dnat".into());
    let dest_ip = s.opt("dest_ip").and_then(parse_addr);
    let mut protos: Vec<String> = s.values("proto");
    if protos.is_empty() || protos.iter().any(|p| p == "tcpudp") {
        protos = vec!["tcp".into(), "udp".into()];
    }
    for proto in protos {
        let mut exprs = vec![m(json!({"meta": {"key": "nfproto"}}), "==", json!("ipv4"))];
        if let Some(sip) = s.opt("src_ip").and_then(parse_addr) {
            exprs.push(m(
                json!({"payload": {"protocol": "ip", "field": "saddr"}}),
                "==",
                sip.1,
            ));
        }
        if let Some(dip) = s.opt("src_dip").and_then(parse_addr) {
            exprs.push(m(
                json!({"payload": {"protocol": "ip", "field": "daddr"}}),
                "==",
                dip.1,
            ));
        }
        let sdport = s.opt("src_dport").and_then(parse_port);
        if let Some(p) = &sdport {
            exprs.push(m(
                json!({"payload": {"protocol": proto, "field": "dport"}}),
                "==",
                p.clone(),
            ));
        } else {
            exprs.push(m(json!({"meta": {"key": "l4proto"}}), "==", json!(proto)));
        }
        exprs.push(json!({"counter": {"packets": 0, "bytes": 0}}));
        // A range stays a range, as fw4 renders it (`dnat ip to ADDR:P1-P2`).
        let port = s
            .opt("dest_port")
            .or(s.opt("src_dport"))
            .and_then(parse_port);
        let mut dnat = json!({"family": "ip"});
        match &dest_ip {
            Some((4, Value::String(a))) => dnat["addr"] = json!(a),
            _ => {
                b.notes.push((Severity::Warning, format!("redirect {name}: no IPv4 dest_ip (a redirect to the router itself) is not modelled")));
                exprs.push(unsupported("redirect", name));
            }
        }
        if let Some(p) = port {
            dnat["port"] = p;
        }
        exprs.push(json!({ "dnat": dnat.clone() }));
        b.rule(
            &format!("dstnat_{src}"),
            exprs,
            Some(format!("!fw4: {name}")),
        );
        if let Some((4, _)) = &dest_ip {
            let reflection = Reflection {
                proto: &proto,
                dport: sdport.clone(),
                dnat,
            };
            compile_reflection(b, zones, network, s, name, zi, &reflection);
        }
    }
}

/// One DNAT of a port forward, as its reflection rules repeat it.
struct Reflection<'a> {
    proto: &'a str,
    dport: Option<Value>,
    dnat: Value,
}

/// NAT reflection (fw4 `reflection`, on by default): a host in a reflection zone
/// (`reflection_zone`, by default the forward's `dest` zone) that connects to the
/// router's external address on the forwarded port is DNATed like a host outside.
/// fw4 takes the external address from `src_dip` or from netifd at run time; when
/// the network config does not hold it (a WAN by DHCP), the cells such a packet
/// touches are unknown rather than guessed.
fn compile_reflection(
    b: &mut Builder,
    zones: &mut [Zone],
    network: &[Section],
    s: &Section,
    name: &str,
    src_zi: usize,
    redirect: &Reflection,
) {
    if s.opt("reflection").is_some_and(is_false) || !zones[src_zi].masq {
        return;
    }
    let Some(dest) = s.opt("dest") else {
        b.notes.push((Severity::Warning, format!("redirect {name}: no `dest` zone; fw4 infers it from dest_ip for NAT reflection, which is not modelled")));
        return;
    };
    let Some(dest_zi) = zones.iter().position(|z| z.name == dest) else {
        return;
    };
    for flag in ["accept", "dnat", "snat"] {
        zones[dest_zi].dflags.insert(flag.into());
    }
    let external: Vec<Value> = match s.opt("src_dip").and_then(parse_addr) {
        Some((4, v)) => vec![v],
        _ => zone_networks(&zones[src_zi], network, true, b.dhcp_address),
    };
    let rzones = match s.values("reflection_zone") {
        names if names.is_empty() => vec![dest.to_string()],
        names => names,
    };
    for rzone in rzones {
        let Some(ri) = zones.iter().position(|z| z.name == rzone) else {
            b.notes.push((
                Severity::Warning,
                format!("redirect {name}: unknown reflection zone `{rzone}`; skipped"),
            ));
            continue;
        };
        let mut internal = zones[ri].subnets4.clone();
        internal.extend(zone_networks(&zones[ri], network, false, b.dhcp_address));
        if internal.is_empty() {
            b.notes.push((Severity::Info, format!("redirect {name}: zone {rzone} has no IPv4 range, so fw4 disables its reflection")));
            continue;
        }
        zones[ri].dflags.insert("dnat".into());
        let mut exprs = vec![
            m(json!({"meta": {"key": "nfproto"}}), "==", json!("ipv4")),
            m(
                json!({"payload": {"protocol": "ip", "field": "saddr"}}),
                "==",
                one_or_set(internal),
            ),
        ];
        if external.is_empty() {
            b.notes.push((Severity::Warning, format!("redirect {name}: NAT reflection into zone {rzone} uses the external address netifd reports at run time; the cells it touches are reported unknown (set src_dip, or reflection '0')")));
            exprs.push(unsupported("reflection", name));
        } else {
            exprs.push(m(
                json!({"payload": {"protocol": "ip", "field": "daddr"}}),
                "==",
                one_or_set(external.clone()),
            ));
        }
        match &redirect.dport {
            Some(p) => exprs.push(m(
                json!({"payload": {"protocol": redirect.proto, "field": "dport"}}),
                "==",
                p.clone(),
            )),
            None => exprs.push(m(
                json!({"meta": {"key": "l4proto"}}),
                "==",
                json!(redirect.proto),
            )),
        }
        exprs.push(json!({"counter": {"packets": 0, "bytes": 0}}));
        exprs.push(json!({ "dnat": redirect.dnat.clone() }));
        b.rule(
            &format!("dstnat_{rzone}"),
            exprs,
            Some(format!("!fw4: {name} (reflection)")),
        );
    }
}

/// The IPv4 addresses of a zone's networks, as netifd would report them: static
/// `ipaddr`/`netmask`, or for a DHCP interface the run-time `dhcp` address when it
/// is known; as their subnets, or as host addresses.
fn zone_networks(
    zone: &Zone,
    network: &[Section],
    hosts: bool,
    dhcp: Option<ipnet::Ipv4Net>,
) -> Vec<Value> {
    let static_address = |s: &Section| -> Option<ipnet::Ipv4Net> {
        let addr: std::net::Ipv4Addr = s.opt("ipaddr")?.split('/').next()?.parse().ok()?;
        let len = match s.opt("netmask") {
            Some(mask) => u32::from(mask.parse::<std::net::Ipv4Addr>().ok()?).leading_ones(),
            None => s
                .opt("ipaddr")?
                .split_once('/')
                .and_then(|(_, l)| l.parse().ok())
                .unwrap_or(32),
        };
        ipnet::Ipv4Net::new(addr, len as u8).ok()
    };
    zone.networks
        .iter()
        .filter_map(|net| {
            network
                .iter()
                .find(|s| s.kind == "interface" && s.name.as_deref() == Some(net))
        })
        .filter_map(|s| match s.opt("proto") {
            Some("dhcp") => dhcp,
            _ => static_address(s),
        })
        .map(|net| {
            if hosts {
                json!(net.addr().to_string())
            } else {
                json!({"prefix": {"addr": net.trunc().addr().to_string(), "len": net.prefix_len()}})
            }
        })
        .collect()
}
