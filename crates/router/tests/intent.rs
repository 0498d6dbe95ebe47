//! Every intent cell has a rule keyed to it, in both targets, with the verdict
//! the matrix expects; and the firewall does not grow with the number of peers.

mod common;

use sovereign_model::{Deployment, Expect, RouterTarget, Source, intent};
use sovereign_router::rule_key::{RuleKey, Verdict};
use sovereign_router::uci::{self, Config, parse_batch};
use sovereign_router::{Rendering, render};

fn linux_keys(rendering: &Rendering) -> Vec<RuleKey> {
    let json = &rendering.file("nftables.json").unwrap().contents;
    let doc: serde_json::Value = serde_json::from_str(json).unwrap();
    doc["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["add"]["rule"]["comment"].as_str())
        .filter_map(RuleKey::parse)
        .collect()
}

pub fn base_config() -> Config {
    sovereign_router::openwrt_stock::config(&Deployment::reference()).unwrap()
}

fn openwrt_applied(rendering: &Rendering) -> Config {
    let batch = parse_batch(&rendering.file("sovereign.uci").unwrap().contents).unwrap();
    let mut config = base_config();
    config.apply(&batch).unwrap();
    config
}

fn openwrt_keys(rendering: &Rendering) -> Vec<RuleKey> {
    let config = openwrt_applied(rendering);
    config
        .package("firewall")
        .unwrap()
        .sections_of("rule")
        .filter(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.starts_with("sovereign_"))
        })
        .map(|s| {
            let name = s.get_str("name").unwrap();
            RuleKey::parse(name).unwrap_or_else(|| panic!("sovereign rule without a key: {name}"))
        })
        .collect()
}

fn check_cells(label: &str, d: &Deployment, keys: &[RuleKey]) {
    for cell in intent(d).cells {
        let covering: Vec<&RuleKey> = keys
            .iter()
            .filter(|k| k.covers(cell.source, cell.destination))
            .collect();
        assert!(
            !covering.is_empty(),
            "{label}: no rule for {:?} -> {:?} ({})",
            cell.source,
            cell.destination,
            cell.expect
        );
        for key in covering {
            assert_eq!(
                key.verdict.expect(),
                cell.expect,
                "{label}: `{key}` contradicts {:?} -> {:?}",
                cell.source,
                cell.destination
            );
            if cell.expect == Expect::Deny {
                let wanted = if cell.source == Source::Internet {
                    Verdict::Drop
                } else {
                    Verdict::Reject
                };
                assert_eq!(
                    key.verdict, wanted,
                    "{label}: `{key}`: WAN denies drop, internal denies reject"
                );
            }
        }
    }
}

#[test]
fn every_intent_cell_has_its_rule_in_both_targets() {
    for (name, d) in common::variants() {
        let secrets = common::secrets(&d);
        let linux = render(&d, &secrets, RouterTarget::Linux).unwrap();
        check_cells(&format!("linux/{name}"), &d, &linux_keys(&linux));
        let openwrt = render(&d, &secrets, RouterTarget::Openwrt).unwrap();
        check_cells(&format!("openwrt/{name}"), &d, &openwrt_keys(&openwrt));
    }
}

#[test]
fn a_missing_rule_is_noticed() {
    let d = common::with_peers(1);
    let secrets = common::secrets(&d);
    let linux = render(&d, &secrets, RouterTarget::Linux).unwrap();
    let keys: Vec<RuleKey> = linux_keys(&linux)
        .into_iter()
        .filter(|k| !k.sources.contains(&sovereign_model::Source::VpnPeer))
        .collect();
    let result = std::panic::catch_unwind(|| check_cells("mutilated", &d, &keys));
    assert!(
        result.is_err(),
        "removing the VPN rules must fail the coverage check"
    );
}

#[test]
fn the_firewall_does_not_grow_with_peers() {
    let firewalls: Vec<(String, String)> = [0, 1, 50]
        .into_iter()
        .map(|n| {
            let d = common::with_peers(n);
            let secrets = common::secrets(&d);
            let linux = render(&d, &secrets, RouterTarget::Linux).unwrap();
            let openwrt = render(&d, &secrets, RouterTarget::Openwrt).unwrap();
            (
                linux.file("nftables.json").unwrap().contents.clone(),
                openwrt
                    .file("etc/config/firewall")
                    .unwrap()
                    .contents
                    .clone(),
            )
        })
        .collect();
    assert_eq!(firewalls[0], firewalls[1]);
    assert_eq!(firewalls[1], firewalls[2]);
    let d = common::with_peers(50);
    let wg = render(&d, &common::secrets(&d), RouterTarget::Linux).unwrap();
    assert_eq!(
        wg.file("wg0.conf")
            .unwrap()
            .contents
            .matches("[Peer]")
            .count(),
        50
    );
}

#[test]
fn every_fw4_rule_has_a_target_and_deny_rules_cover_all_protocols() {
    for (name, d) in common::variants() {
        let rendering = render(&d, &common::secrets(&d), RouterTarget::Openwrt).unwrap();
        let config = openwrt_applied(&rendering);
        for rule in config.package("firewall").unwrap().sections_of("rule") {
            let label = rule.get_str("name").unwrap_or("?");
            let target = rule.get_str("target");
            assert!(
                target.is_some(),
                "{name}: rule {label} has no target (fw4 would only count)"
            );
            let is_sovereign = rule
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("sovereign_"));
            if is_sovereign && matches!(target, Some("REJECT" | "DROP")) {
                assert_eq!(
                    rule.get_str("proto"),
                    Some("all"),
                    "{name}: {label} would only match tcp/udp"
                );
            }
        }
        let _ = uci::quote("");
    }
}
