//! The UCI batch against a stock OpenWrt 23.05 config: it applies cleanly, a
//! second run changes nothing, every type and option is one OpenWrt knows, the
//! review fragments match what the batch produces, and switching a policy off
//! or revoking a peer removes its section, and sovereign's WAN rules end up ahead of
//! every stock rule.

mod common;

use sovereign_model::{PeerStatus, RouterTarget};
use sovereign_router::render;
use sovereign_router::uci::Section;
use sovereign_router::uci::{Config, parse_batch, parse_config_file, unknown_entries};

fn base_config() -> Config {
    sovereign_router::openwrt_stock::config(&sovereign_model::Deployment::reference()).unwrap()
}

fn batch_of(d: &sovereign_model::Deployment) -> (String, sovereign_router::Rendering) {
    let rendering = render(d, &common::secrets(d), RouterTarget::Openwrt).unwrap();
    (
        rendering.file("sovereign.uci").unwrap().contents.clone(),
        rendering,
    )
}

#[test]
fn batch_is_idempotent_known_and_matches_the_fragments() {
    for (name, d) in common::variants() {
        let (batch, rendering) = batch_of(&d);
        let commands = parse_batch(&batch).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut once = base_config();
        once.apply(&commands)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut twice = once.clone();
        twice.apply(&commands).unwrap();
        assert_eq!(once, twice, "{name}: a second run changed the config");

        for (package_name, package) in &once.packages {
            let unknown = unknown_entries(package_name, package);
            assert!(unknown.is_empty(), "{name}: {package_name}: {unknown:?}");
        }
        for package_name in ["network", "firewall", "dhcp"] {
            let Some(file) = rendering.file(&format!("etc/config/{package_name}")) else {
                continue;
            };
            let fragment = parse_config_file(&file.contents).unwrap();
            let applied = once.package(package_name).unwrap();
            for section in &fragment.sections {
                let name = section.name.as_deref().unwrap();
                assert_eq!(
                    applied.section(name),
                    Some(section),
                    "{name}: fragment differs from the batch"
                );
            }
        }
    }
}

/// The bridge is sovereign-wire.sh's (it finds the section by name; the real-uci
/// tests in sovereign-remote run it): the batch never addresses a device section.
#[test]
fn the_batch_gives_the_port_to_sovereign_ai_and_leaves_the_bridge_alone() {
    let d = common::with_peers(1);
    let (batch, _) = batch_of(&d);
    assert!(!batch.contains("@device"), "{batch}");
    let mut config = base_config();
    config.apply(&parse_batch(&batch).unwrap()).unwrap();
    let network = config.package("network").unwrap();
    let bridge = network.sections_of("device").next().unwrap();
    assert_eq!(
        bridge.get_all("ports"),
        vec!["lan1", "lan2", "lan3", "lan4"]
    );
    assert_eq!(
        network.section("sovereign_ai").unwrap().get_str("device"),
        Some("lan4")
    );

    let mut shared = d.clone();
    shared.server.isolation = sovereign_model::Isolation::Shared;
    config
        .apply(&parse_batch(&batch_of(&shared).0).unwrap())
        .unwrap();
    let network = config.package("network").unwrap();
    assert!(
        network.section("sovereign_ai").is_none(),
        "switching to shared removes the server interface"
    );
    assert!(
        config
            .package("firewall")
            .unwrap()
            .section("sovereign_ai")
            .is_none()
    );
}

#[test]
fn revoked_peers_and_switched_off_policies_disappear() {
    let mut d = common::with_peers(2);
    d.policy.vpn_ssh = true;
    let mut config = base_config();
    config
        .apply(&parse_batch(&batch_of(&d).0).unwrap())
        .unwrap();
    assert!(
        config
            .package("network")
            .unwrap()
            .section("sovereign_peer_peer_2")
            .is_some()
    );
    assert!(
        config
            .package("firewall")
            .unwrap()
            .section("sovereign_vpn_ssh")
            .is_some()
    );

    d.peers[1].status = PeerStatus::Revoked;
    d.policy.vpn_ssh = false;
    config
        .apply(&parse_batch(&batch_of(&d).0).unwrap())
        .unwrap();
    assert!(
        config
            .package("network")
            .unwrap()
            .section("sovereign_peer_peer_2")
            .is_none()
    );
    assert!(
        config
            .package("network")
            .unwrap()
            .section("sovereign_peer_peer_1")
            .is_some()
    );
    assert!(
        config
            .package("firewall")
            .unwrap()
            .section("sovereign_vpn_ssh")
            .is_none()
    );
}

#[test]
fn the_batch_is_strict_about_missing_sections() {
    let commands = parse_batch("set network.nothere.proto='static'\n").unwrap();
    let err = base_config().apply(&commands).unwrap_err();
    assert_eq!(err.line, 1);
    assert!(err.message.contains("not found"), "{err}");
}

#[test]
fn unknown_options_are_reported() {
    let package = parse_config_file(
        "config rule 'x'\n\toption src 'wan'\n\toption taget 'ACCEPT'\n\nconfig frobnicator\n",
    )
    .unwrap();
    let unknown: Vec<String> = unknown_entries("firewall", &package)
        .iter()
        .map(|u| u.to_string())
        .collect();
    assert_eq!(
        unknown,
        vec![
            "x (rule): unknown option `taget`",
            "@frobnicator[1]: unknown section type `frobnicator`"
        ]
    );
}

fn rule_names(config: &Config) -> Vec<String> {
    config
        .package("firewall")
        .unwrap()
        .sections_of("rule")
        .map(|s: &Section| {
            s.name
                .clone()
                .unwrap_or_else(|| s.get_str("name").unwrap_or("?").to_string())
        })
        .collect()
}

#[test]
fn wan_rules_go_ahead_of_stock_and_user_rules_on_every_run() {
    let d = common::with_peers(1);
    let commands = parse_batch(&batch_of(&d).0).unwrap();
    let mut config = base_config();
    // A user's own WAN rule, added before sovereign ever ran.
    config
        .apply(
            &parse_batch(
                "add firewall rule\nset firewall.@rule[-1].name='Allow-SSH-from-WAN'\n\
                 set firewall.@rule[-1].src='wan'\nset firewall.@rule[-1].dest_port='22'\n\
                 set firewall.@rule[-1].target='ACCEPT'\n",
            )
            .unwrap(),
        )
        .unwrap();
    config.apply(&commands).unwrap();
    let names = rule_names(&config);
    assert_eq!(
        names[..3],
        [
            "sovereign_wan_wireguard",
            "sovereign_wan_input",
            "sovereign_wan_forward"
        ]
    );
    let first_stock = names.iter().position(|n| n == "Allow-DHCP-Renew").unwrap();
    let user = names
        .iter()
        .position(|n| n == "Allow-SSH-from-WAN")
        .unwrap();
    assert!(first_stock > 2 && user > first_stock, "{names:?}");
    let sections = &config.package("firewall").unwrap().sections;
    assert_eq!(
        sections[0].name.as_deref(),
        Some("sovereign_wan_wireguard"),
        "the very top of the file, ahead of defaults and zones too"
    );

    let mut again = config.clone();
    again.apply(&commands).unwrap();
    assert_eq!(rule_names(&again), names, "a second run keeps the order");
    assert_eq!(again, config);
}

/// The selection OpenWrt's /etc/hotplug.d/net/00-sysctl makes from each sysctl file
/// when a device appears: only these lines are applied to the new device.
fn hotplug_selects(sysctl_file: &str, device: &str) -> String {
    let output = std::process::Command::new("sh")
        .args([
            "-c",
            r#"printf '%s' "$FILE" | sed -ne "/^[[:space:]]*net\..*\.$DEVICENAME\./p""#,
        ])
        .env("FILE", sysctl_file)
        .env("DEVICENAME", device)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn openwrt_hotplug_reapplies_proxy_arp_to_a_vlan_port_it_recreates() {
    // Older single-switch routers name the server's port after its VLAN (eth0.3).
    let mut d = sovereign_model::Deployment::reference();
    d.server.router_port = "eth0.3".into();
    let (_, rendering) = batch_of(&d);
    let sysctl = &rendering
        .file("etc/sysctl.d/90-sovereign.conf")
        .unwrap()
        .contents;
    assert_eq!(
        hotplug_selects(sysctl, "eth0.3"),
        "net.ipv4.conf.eth0.3.proxy_arp=1\n"
    );
    assert_eq!(
        hotplug_selects(sysctl, "br-lan"),
        "net.ipv4.conf.br-lan.proxy_arp=1\n"
    );
    // The Linux target's procps sysctl needs the `/` form for the same device.
    let linux = render(&d, &common::secrets(&d), RouterTarget::Linux).unwrap();
    let linux_sysctl = &linux
        .files
        .iter()
        .find(|f| f.path.ends_with(".conf") && f.contents.contains("proxy_arp"))
        .unwrap()
        .contents;
    assert!(
        linux_sysctl.contains("net/ipv4/conf/eth0.3/proxy_arp"),
        "{linux_sysctl}"
    );
}
