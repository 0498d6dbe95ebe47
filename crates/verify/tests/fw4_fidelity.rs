//! Where the fw4 model once disagreed with real fw4 (issue 13's list), each pinned
//! by a small config: ICMPv6 names, `extra`, duplicate zones, IPv4-only zones,
//! zones on networks that do not exist, and fw4's MTU-fixing mangle rules.

use serde_json::{Value, json};
use sovereign_model::Deployment;
use sovereign_verify::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("tests/fixtures/fw4-reference/{name}")).unwrap()
}

/// The compiled rules whose comment is `!fw4: NAME`.
fn rules_named(firewall: &str, network: &str, name: &str) -> Vec<Value> {
    let json: Value = serde_json::from_str(&uci_to_nft_json(firewall, network).unwrap()).unwrap();
    json["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item.get("rule"))
        .filter(|rule| rule["comment"] == format!("!fw4: {name}"))
        .cloned()
        .collect()
}

fn with_section(section: &str) -> String {
    format!("{}\n{section}", fixture("firewall"))
}

#[test]
fn every_fw4_icmpv6_name_selects_its_type() {
    let firewall = with_section(
        "config rule\n\toption name 'Headers'\n\toption src 'wan'\n\toption proto 'icmp'\n\
         \toption family 'ipv6'\n\tlist icmp_type 'bad-header'\n\tlist icmp_type 'unknown-header-type'\n\
         \tlist icmp_type 'no-route'\n\toption target 'ACCEPT'\n",
    );
    let rules = rules_named(&firewall, &fixture("network"), "Headers");
    assert_eq!(rules.len(), 1, "{rules:?}");
    let text = rules[0].to_string();
    assert!(text.contains(r#""field":"type""#), "{text}");
    assert!(text.contains(r#"{"set":[4,4,1]}"#), "{text}");
}

#[test]
fn extra_is_ignored_with_a_warning_as_fw4_does() {
    let firewall = fixture("firewall").replace(
        "\toption name 'Allow-VPN-to-Ollama'\n",
        "\toption name 'Allow-VPN-to-Ollama'\n\toption extra '-m comment --comment x'\n",
    );
    let report = verify_uci(&Deployment::reference(), &firewall, &fixture("network")).unwrap();
    assert_eq!(
        report.summary.unknown,
        0,
        "{}",
        render_table(&report, false)
    );
    assert!(report.holds());
    assert!(
        report
            .lints
            .iter()
            .any(|l| l.message.contains("fw4 ignores option `extra`")),
        "{:?}",
        report.lints
    );
}

#[test]
fn a_duplicate_zone_name_is_an_error() {
    let firewall = with_section(
        "config zone\n\toption name 'lan'\n\tlist network 'lan'\n\toption input 'ACCEPT'\n",
    );
    let report = verify_uci(&Deployment::reference(), &firewall, &fixture("network")).unwrap();
    assert!(!report.holds());
    let lint = report
        .lints
        .iter()
        .find(|l| l.severity == Severity::Error)
        .unwrap();
    assert!(
        lint.message.contains("zone name `lan` is used twice"),
        "{}",
        lint.message
    );
}

#[test]
fn a_zone_with_only_ipv4_subnets_is_ipv4_only_and_so_are_its_rules() {
    let firewall = with_section(
        "config zone\n\toption name 'v4only'\n\tlist subnet '192.168.77.0/24'\n\toption input 'ACCEPT'\n\n\
         config rule\n\toption name 'From-v4only'\n\toption src 'v4only'\n\toption proto 'all'\n\
         \toption target 'DROP'\n",
    );
    let rules = rules_named(&firewall, &fixture("network"), "From-v4only");
    assert_eq!(rules.len(), 1, "{rules:?}");
    let text = rules[0].to_string();
    assert!(
        text.contains(r#""right":"ipv4""#),
        "the rule is IPv4 only: {text}"
    );
}

#[test]
fn a_network_that_does_not_exist_adds_no_device_match() {
    let firewall = with_section(
        "config zone\n\toption name 'ghost'\n\tlist network 'nosuch'\n\tlist subnet '192.168.77.0/24'\n",
    );
    let json = uci_to_nft_json(&firewall, &fixture("network")).unwrap();
    assert!(
        !json.contains("\"nosuch\""),
        "no device is named after the network"
    );
    let report = verify_uci(&Deployment::reference(), &firewall, &fixture("network")).unwrap();
    assert!(
        report
            .lints
            .iter()
            .any(|l| l.message.contains("network `nosuch` does not exist"))
    );
}

/// fw4's `mtu_fix` rule rewrites the MSS and has no verdict: it is not a rule
/// without a target.
#[test]
fn mtu_fixing_is_not_a_rule_without_target() {
    let chain = |name: &str, hook: &str, prio: i64| json!({"chain": {"family": "inet", "table": "fw4", "name": name, "type": "filter", "hook": hook, "prio": prio, "policy": "accept"}});
    let mtu_rule = json!({"rule": {"family": "inet", "table": "fw4", "chain": "mangle_forward", "expr": [
        {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "wan"}},
        {"match": {"op": "in", "left": {"payload": {"protocol": "tcp", "field": "flags"}}, "right": "syn"}},
        {"mangle": {"key": {"tcp option": {"name": "maxseg", "field": "size"}}, "value": {"rt": {"key": "mtu"}}}}
    ], "comment": "!fw4: Zone wan IPv4/IPv6 egress MTU fixing"}});
    let counter_rule = json!({"rule": {"family": "inet", "table": "fw4", "chain": "forward", "expr": [
        {"counter": {"packets": 0, "bytes": 0}}
    ], "comment": "!fw4: Count-Only"}});
    let ruleset = json!({"nftables": [
        {"table": {"family": "inet", "name": "fw4"}},
        chain("forward", "forward", 0),
        chain("mangle_forward", "forward", -150),
        mtu_rule,
        counter_rule,
    ]});
    let report = verify_nft_json(&Deployment::reference(), &ruleset.to_string()).unwrap();
    let flagged: Vec<&str> = report
        .lints
        .iter()
        .filter(|l| l.code == "rule-without-target")
        .map(|l| l.message.as_str())
        .collect();
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert!(
        flagged[0].contains("Count-Only"),
        "the positive control still fires"
    );
}

/// fw4's stock Allow-MLD / Allow-ICMPv6 rules, as `nft -j` prints them, name ICMPv6
/// codes (`no-route`). Reading them keeps the TCP and UDP cells that pass those
/// rules decided.
#[test]
fn named_icmp_codes_in_nft_json_are_read() {
    let chain = |name: &str, hook: &str| json!({"chain": {"family": "inet", "table": "fw4", "name": name, "type": "filter", "hook": hook, "prio": 0, "policy": "drop"}});
    let wan = json!({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "wan"}});
    let mld = json!({"rule": {"family": "inet", "table": "fw4", "chain": "input", "expr": [
        wan.clone(),
        {"match": {"op": "==", "left": {"concat": [
            {"payload": {"protocol": "icmpv6", "field": "type"}},
            {"payload": {"protocol": "icmpv6", "field": "code"}}]},
            "right": {"set": [{"concat": ["mld-listener-query", "no-route"]}, {"concat": ["mld-listener-report", "no-route"]}]}}},
        {"accept": null}
    ], "comment": "!fw4: Allow-MLD"}});
    let reject = json!({"rule": {"family": "inet", "table": "fw4", "chain": "input", "expr": [
        wan,
        {"match": {"op": "==", "left": {"payload": {"protocol": "icmp", "field": "code"}}, "right": "admin-prohibited"}},
        {"accept": null}
    ], "comment": "!fw4: icmp code"}});
    let wireguard = json!({"rule": {"family": "inet", "table": "fw4", "chain": "input", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 51820}},
        {"accept": null}
    ], "comment": "!fw4: Allow-WireGuard"}});
    let ruleset = json!({"nftables": [
        {"table": {"family": "inet", "name": "fw4"}},
        chain("input", "input"),
        chain("forward", "forward"),
        mld, reject, wireguard,
    ]});
    let report = verify_nft_json(&Deployment::reference(), &ruleset.to_string()).unwrap();
    let unknown: Vec<String> = report
        .cells
        .iter()
        .filter(|c| c.verdict == CellVerdict::Unknown)
        .map(|c| format!("{:?} -> {:?}: {:?}", c.source, c.destination, c.unknown))
        .collect();
    assert!(unknown.is_empty(), "{unknown:#?}");
    let wg = report
        .cell(
            sovereign_model::Source::Internet,
            sovereign_model::Destination::RouterWireguard,
            IpFamily::Ipv4,
        )
        .unwrap();
    assert_eq!(wg.status, Status::Allowed);
}

/// A port forward from the WAN to the server, with fw4's default NAT reflection
/// into the LAN: a LAN device that connects to the router's WAN address on the
/// forwarded port is DNATed to the server. The external address is `src_dip`, or
/// the WAN's (by DHCP: the deployment's wan.address, as netifd would report it;
/// with no deployment the cells are unknown); `reflection '0'`: no trace of it.
#[test]
fn nat_reflection_of_a_port_forward_reaches_the_server_from_the_lan() {
    let d = Deployment::reference();
    let redirect = |extra: &str| {
        with_section(&format!(
            "config redirect\n\toption name 'Forward-API'\n\toption src 'wan'\n\toption dest 'ai'\n\
             \toption proto 'tcp'\n\toption src_dport '11434'\n\toption dest_ip '192.168.250.20'\n\
             \toption dest_port '11434'\n\tlist reflection_zone 'lan'\n{extra}"
        ))
    };
    let lan_to_router = |firewall: &str| {
        let report = verify_uci(&d, firewall, &fixture("network")).unwrap();
        report
            .cell(
                sovereign_model::Source::LanDevice,
                sovereign_model::Destination::RouterServices,
                IpFamily::Ipv4,
            )
            .unwrap()
            .clone()
    };
    let reflected = |cell: &CellResult| {
        cell.paths.iter().any(|p| {
            p.packet.dnat_from.is_some()
                && p.trace
                    .iter()
                    .any(|s| s.comment.as_deref() == Some("!fw4: Forward-API (reflection)"))
        })
    };
    let off = lan_to_router(&redirect("\toption reflection '0'\n"));
    assert!(!reflected(&off), "{:?}", off.paths);
    assert_ne!(off.verdict, CellVerdict::Unknown);
    // A WAN by DHCP: the deployment's wan.address stands for what netifd reports.
    let dhcp = lan_to_router(&redirect(""));
    assert!(reflected(&dhcp), "{:#?}", dhcp.paths);
    // Without a deployment the address is unknown, and so is what it decides.
    let json = uci_to_nft_json(&redirect(""), &fixture("network")).unwrap();
    assert!(json.contains("\"option\": \"reflection\""), "{json}");
    let wan = d.wan.address.addr();
    let known = lan_to_router(&redirect(&format!("\toption src_dip '{wan}'\n")));
    assert!(reflected(&known), "{:#?}", known.paths);
    let to_server = known
        .paths
        .iter()
        .find(|p| p.packet.dnat_from.is_some())
        .unwrap();
    assert_eq!(to_server.packet.dst, "192.168.250.20");
}
