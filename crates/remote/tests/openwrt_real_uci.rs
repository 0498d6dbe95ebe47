//! The OpenWrt apply, rollback and wiring scripts against OpenWrt's real `uci`
//! (built from shared/thirdparty by the testkit), on hand-written stock configs:
//! a DSA router, one whose first device section is not the bridge, a swconfig
//! router (with and without a VLAN of its own for the server), and a LAN that is
//! not 192.168.x. netifd is a stand-in that enslaves the ports the committed
//! config lists to the bridge (in the fake /sys/class/net); `fw4 check` is a
//! stand-in that records what it saw.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{FakeRouter, lost, options};
use sovereign_model::{Deployment, Isolation, RouterTarget};
use sovereign_remote::{ApplyError, ApplyOptions, OpenwrtConfig, RouterConfig, apply};
use sovereign_router::openwrt_wire::WIRE_SCRIPT;
use sovereign_wg::RouterSecrets;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openwrt");

/// Every device the fixtures know, and which ones start as br-lan ports.
const DEVICES: &[&str] = &["lan1", "lan2", "lan3", "lan4", "eth0.1", "eth0.3", "wan"];

/// netifd's part of `ubus call network reload`: enslave exactly the ports that the
/// committed config lists for br-lan (unless the test made netifd "stuck").
const NETIFD: &str = "#!/bin/sh\n\
    [ \"$1 $2 $3\" = 'call network reload' ] || exit 0\n\
    [ -f \"$FAKE_ROOT/netifd-stuck\" ] && exit 0\n\
    br=$(uci -q -X show network | sed -n \"s/^network\\.\\([^.]*\\)\\.name='br-lan'$/\\1/p\")\n\
    ports=\" $(uci -q get network.$br.ports) \"\n\
    for d in \"$FAKE_ROOT\"/sys/class/net/*; do\n\
    \tcase $ports in *\" ${d##*/} \"*) ln -sfn ../br-lan \"$d/master\";; *) rm -f \"$d/master\";; esac\n\
    done\n";

/// `fw4 check` records the uncommitted changes it was run on, and fails on demand.
const FW4: &str = "#!/bin/sh\n\
    if [ \"$1\" = check ]; then\n\
    \tuci changes > \"$FAKE_ROOT/fw4-saw\"\n\
    \t[ -f \"$FAKE_ROOT/fw4-fails\" ] && { echo 'Error: rule'; exit 1; }\n\
    \techo 'Ruleset passes nftables check.'\n\
    fi\n\
    exit 0\n";

struct Router {
    fake: FakeRouter,
}

impl Router {
    /// A router with `fixture`'s network config, stock firewall and dhcp, and the
    /// real uci; None when the test must skip.
    fn new(test: &str, fixture: &str) -> Option<Self> {
        let uci = sovereign_testkit::thirdparty::uci(test)?;
        let wrapper = format!(
            "#!/bin/sh\nexec {} -c \"$FAKE_ROOT/etc/config\" -t \"$FAKE_ROOT/tmp/.uci\" \"$@\"\n",
            uci.display()
        );
        let tools = [
            ("uci", wrapper),
            ("ubus", NETIFD.to_string()),
            ("fw4", FW4.to_string()),
        ];
        let fake = FakeRouter::new(&tools, &[]);
        let config = fake.root.join("etc/config");
        std::fs::copy(
            Path::new(FIXTURES).join(fixture).join("network"),
            config.join("network"),
        )
        .unwrap();
        std::fs::write(
            config.join("firewall"),
            sovereign_router::openwrt_stock::FIREWALL,
        )
        .unwrap();
        std::fs::write(config.join("dhcp"), sovereign_router::openwrt_stock::DHCP).unwrap();
        let router = Router { fake };
        for device in DEVICES {
            std::fs::create_dir_all(router.net(device)).unwrap();
        }
        let out = router.fake.sh("ubus call network reload", &[]);
        assert!(out.success(), "{out:?}");
        Some(router)
    }

    fn net(&self, device: &str) -> PathBuf {
        self.fake.root.join("sys/class/net").join(device)
    }

    /// The kernel's view: is `device` a port of br-lan?
    fn bridged(&self, device: &str) -> bool {
        self.net(device).join("master").exists() || self.net(device).join("master").is_symlink()
    }

    /// Every file below /etc/config (mode and text), plus the uncommitted uci
    /// changes (a revert leaves empty delta files, which change nothing).
    fn files(&self) -> BTreeMap<String, String> {
        let root = &self.fake.root;
        let mut files: BTreeMap<String, String> =
            sovereign_testkit::tree(root, &[&root.join("etc/config")])
                .into_iter()
                .map(|(path, (mode, bytes))| {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    (path.display().to_string(), format!("{mode:o}\n{text}"))
                })
                .collect();
        files.insert("uci changes".into(), self.uci("changes"));
        files
    }

    fn uci(&self, args: &str) -> String {
        let out = self.fake.sh(&format!("uci -q {args}"), &[]);
        out.stdout.trim().to_string()
    }

    fn touch(&self, name: &str) {
        std::fs::write(self.fake.root.join(name), "").unwrap();
    }
}

fn dedicated(port: &str) -> Deployment {
    let mut d = sovereign_testkit::deployments::with_peers(1);
    d.server.router_port = port.into();
    d
}

fn shared() -> Deployment {
    let mut d = dedicated("lan4");
    d.server.isolation = Isolation::Shared;
    d
}

fn config_of(d: &Deployment) -> RouterConfig {
    let secrets = RouterSecrets::for_tests(d.peers.iter().map(|p| p.name.as_str()));
    let rendering = sovereign_router::render(d, &secrets, RouterTarget::Openwrt).unwrap();
    let file = |path: &str| rendering.file(path).map(|f| f.contents.clone());
    RouterConfig::Openwrt(OpenwrtConfig {
        uci_batch: file("sovereign.uci").unwrap(),
        wg_interface: d.wireguard.interface.clone(),
        sysctl_conf: file("etc/sysctl.d/90-sovereign.conf"),
        wire_script: file(WIRE_SCRIPT).unwrap(),
    })
}

fn assert_wired(router: &Router, port: &str) {
    let ports = router.uci("get network.@device[-1].ports");
    assert!(
        !ports.split(' ').any(|p| p == port),
        "{port} still listed: {ports}"
    );
    assert_eq!(router.uci("get network.sovereign_ai.device"), port);
    assert!(
        !router.bridged(port),
        "{port} is still a br-lan member in the kernel"
    );
}

#[test]
fn the_server_port_leaves_the_bridge_on_every_dsa_stock_config() {
    for fixture in ["dsa", "wan_device_first", "lan_10"] {
        let Some(router) = Router::new("openwrt_real_uci", fixture) else {
            return;
        };
        let mut d = dedicated("lan4");
        if fixture == "lan_10" {
            d.lan.subnet = "10.0.0.0/24".parse().unwrap();
            d.lan.router_address = "10.0.0.1".parse().unwrap();
            d.server.address = "10.0.0.20".parse().unwrap();
        }
        assert!(router.bridged("lan4"));
        let report = apply(&router.fake, &config_of(&d), &options())
            .unwrap_or_else(|e| panic!("{fixture}: {e}"));
        assert_wired(&router, "lan4");
        for port in ["lan1", "lan2", "lan3"] {
            assert!(router.bridged(port), "{fixture}: {port} left the bridge");
        }
        let applied = &report.steps[5].detail;
        assert!(applied.contains("applied"), "{fixture}: {applied}");
        if fixture == "wan_device_first" {
            assert_eq!(router.uci("get network.@device[0].name"), "wan");
            assert_eq!(
                router.uci("get network.@device[0].macaddr"),
                "02:11:22:33:44:55"
            );
        }
        // A second apply converges: nothing left to move, and it still proves.
        apply(&router.fake, &config_of(&d), &options())
            .unwrap_or_else(|e| panic!("{fixture}, again: {e}"));
        assert_wired(&router, "lan4");
    }
}

#[test]
fn the_check_runs_on_the_staged_change_and_a_failed_check_changes_nothing() {
    let Some(router) = Router::new("openwrt_real_uci", "dsa") else {
        return;
    };
    let before = router.files();
    router.touch("fw4-fails");
    let error = apply(&router.fake, &config_of(&dedicated("lan4")), &options()).unwrap_err();
    assert!(
        matches!(error, ApplyError::ValidationFailed { .. }),
        "{error}"
    );
    let saw = std::fs::read_to_string(router.fake.root.join("fw4-saw")).unwrap();
    assert!(saw.contains("network.sovereign_ai"), "fw4 check saw: {saw}");
    assert!(
        saw.contains(".ports-='lan4'"),
        "the bridge change was staged: {saw}"
    );
    assert_eq!(
        router.files(),
        before,
        "a failed check left a change behind"
    );
    assert!(router.bridged("lan4"));
}

#[test]
fn the_rollback_restores_the_old_files_byte_for_byte() {
    let Some(router) = Router::new("openwrt_real_uci", "wan_device_first") else {
        return;
    };
    let before = router.files();
    let error = apply(&router.fake, &config_of(&dedicated("lan4")), &lost()).unwrap_err();
    assert!(error.rollback_armed(), "{error}");
    assert_wired(&router, "lan4");
    assert_ne!(router.files(), before, "the apply went live");
    router.fake.fire_rollback();
    assert_eq!(router.files(), before);
    assert!(router.bridged("lan4"), "netifd re-enslaved the port");
}

#[test]
fn a_port_that_stays_in_the_bridge_rolls_back_at_once() {
    let Some(router) = Router::new("openwrt_real_uci", "dsa") else {
        return;
    };
    let before = router.files();
    router.touch("netifd-stuck");
    let error = apply(&router.fake, &config_of(&dedicated("lan4")), &options()).unwrap_err();
    let ApplyError::RolledBack { restored, output } = &error else {
        panic!("{error}");
    };
    assert!(restored, "{output}");
    assert!(output.contains("still a member of br-lan"), "{output}");
    assert_eq!(router.files(), before);
    assert!(!router.fake.root.join("tmp/sovereign-apply.lock").exists());
}

#[test]
fn switching_to_shared_returns_the_port_to_the_bridge() {
    let Some(router) = Router::new("openwrt_real_uci", "wan_device_first") else {
        return;
    };
    apply(&router.fake, &config_of(&dedicated("lan4")), &options()).expect("dedicated");
    assert_wired(&router, "lan4");
    let report = apply(&router.fake, &config_of(&shared()), &options()).expect("shared");
    assert_eq!(router.uci("get network.sovereign_ai"), "");
    assert_eq!(
        router.uci("get network.@device[1].ports"),
        "lan1 lan2 lan3 lan4"
    );
    assert!(router.bridged("lan4"));
    assert!(
        report.steps[3].detail.contains("Ruleset passes"),
        "{:?}",
        report.steps
    );
}

#[test]
fn a_swconfig_router_is_refused_unless_the_server_has_a_vlan_of_its_own() {
    let Some(router) = Router::new("openwrt_real_uci", "swconfig") else {
        return;
    };
    let before = router.files();
    let error = apply(&router.fake, &config_of(&dedicated("lan4")), &options()).unwrap_err();
    assert!(
        matches!(error, ApplyError::ValidationFailed { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("swconfig"), "{error}");
    assert_eq!(router.files(), before);
    // A VLAN that still shares switch port 4 with the LAN is refused too.
    let error = apply(&router.fake, &config_of(&dedicated("eth0.3")), &options()).unwrap_err();
    assert!(error.to_string().contains("VLAN"), "{error}");
    assert_eq!(router.files(), before);

    let Some(router) = Router::new("openwrt_real_uci", "swconfig_vlan") else {
        return;
    };
    apply(&router.fake, &config_of(&dedicated("eth0.3")), &options()).expect("own VLAN");
    assert_eq!(router.uci("get network.sovereign_ai.device"), "eth0.3");
    assert_eq!(router.uci("get network.@device[0].ports"), "eth0.1");
}

#[test]
fn a_dry_run_shows_the_bridge_change_and_refuses_what_apply_refuses() {
    let Some(router) = Router::new("openwrt_real_uci", "wan_device_first") else {
        return;
    };
    let before = router.files();
    let dry = ApplyOptions {
        dry_run: true,
        ..options()
    };
    let report = apply(&router.fake, &config_of(&dedicated("lan4")), &dry).expect("dry run");
    let diff = report.diff.unwrap();
    assert!(diff.contains("-\tlist ports 'lan4'"), "{diff}");
    assert_eq!(router.files(), before);

    let Some(router) = Router::new("openwrt_real_uci", "swconfig") else {
        return;
    };
    let error = apply(&router.fake, &config_of(&dedicated("lan4")), &dry).unwrap_err();
    assert!(error.to_string().contains("swconfig"), "{error}");
}

/// The README's by-hand path: the wiring script, then the batch. On a router it
/// cannot wire, it stops before the batch runs and changes nothing.
#[test]
fn by_hand_the_wiring_script_moves_the_port_or_stops_before_any_change() {
    for (fixture, wired) in [("wan_device_first", true), ("swconfig", false)] {
        let Some(router) = Router::new("openwrt_real_uci", fixture) else {
            return;
        };
        let RouterConfig::Openwrt(config) = config_of(&dedicated("lan4")) else {
            unreachable!()
        };
        let dir = router.fake.root.join("tmp/by-hand");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(WIRE_SCRIPT), &config.wire_script).unwrap();
        std::fs::write(dir.join("sovereign.uci"), &config.uci_batch).unwrap();
        let before = router.files();
        let d = dir.display();
        let out = router.fake.sh(
            &format!("cd {d} && sh {WIRE_SCRIPT} && uci batch < sovereign.uci"),
            &[],
        );
        if wired {
            assert!(out.success(), "{out:?}");
            let ports = router.uci("get network.@device[1].ports");
            assert_eq!(ports, "lan1 lan2 lan3", "committed by the batch");
        } else {
            assert_eq!(out.status, 2, "{out:?}");
            assert!(out.stderr.contains("nothing was changed"), "{out:?}");
            assert_eq!(router.files(), before);
        }
    }
}

/// The verifier's model of the wiring (`openwrt_wire::wire_lines`, what `verify
/// --rendered` applies) against the real script and the real uci: the same ports
/// leave the bridge on every fixture, and both refuse the same routers.
#[test]
fn the_wiring_model_agrees_with_the_real_script() {
    let cases = [
        ("dsa", "lan4"),
        ("wan_device_first", "lan4"),
        ("lan_10", "lan2"),
        ("swconfig", "lan4"),
        ("swconfig_vlan", "eth0.3"),
    ];
    for (fixture, port) in cases {
        let Some(router) = Router::new("openwrt_real_uci", fixture) else {
            return;
        };
        let d = dedicated(port);
        let RouterConfig::Openwrt(config) = config_of(&d) else {
            unreachable!()
        };
        let dir = router.fake.root.join("tmp/wire");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(WIRE_SCRIPT), &config.wire_script).unwrap();
        let script = format!("sh {}/{WIRE_SCRIPT} && uci commit network", dir.display());
        let real = router.fake.sh(&script, &[]);

        let text =
            std::fs::read_to_string(Path::new(FIXTURES).join(fixture).join("network")).unwrap();
        let mut model = sovereign_router::uci::Config::default();
        model.packages.insert(
            "network".into(),
            sovereign_router::uci::parse_config_file(&text).unwrap(),
        );
        let network = model.package("network").unwrap().clone();
        match sovereign_router::openwrt_wire::wire_lines(&d, &network) {
            Ok(lines) => {
                assert!(
                    real.success(),
                    "{fixture}: the model wires, the script refused: {real:?}"
                );
                let batch = sovereign_router::uci::parse_batch(&lines.join("\n")).unwrap();
                model.apply(&batch).unwrap();
                let bridge = model
                    .package("network")
                    .unwrap()
                    .sections_of("device")
                    .find(|s| s.get_str("name") == Some("br-lan"))
                    .unwrap()
                    .get_all("ports")
                    .join(" ");
                let bridge_index = network
                    .sections_of("device")
                    .position(|s| s.get_str("name") == Some("br-lan"))
                    .unwrap();
                assert_eq!(
                    router.uci(&format!("get network.@device[{bridge_index}].ports")),
                    bridge,
                    "{fixture}"
                );
            }
            Err(reason) => {
                // The model knows no swconfig VLANs: it may refuse what the script
                // accepts there, never the other way round.
                if real.success() {
                    assert_eq!(fixture, "swconfig_vlan", "{fixture}: {reason}");
                } else {
                    assert_eq!(real.status, 2, "{fixture}: {real:?}");
                }
            }
        }
    }
}

/// `router audit` reads the wiring from the router: config and kernel. A port put
/// back into the bridge by hand is drift, even though every rule is still right.
#[test]
fn audit_reports_a_server_port_that_went_back_into_the_bridge() {
    let Some(router) = Router::new("openwrt_real_uci", "wan_device_first") else {
        return;
    };
    let d = dedicated("lan4");
    let config = config_of(&d);
    apply(&router.fake, &config, &options()).expect("apply");
    let wiring = |router: &Router| {
        let report = sovereign_remote::audit(&router.fake, &d, &config, None).expect("audit");
        report
            .drift
            .into_iter()
            .filter(|drift| drift.kind == sovereign_remote::DriftKind::Wiring)
            .collect::<Vec<_>>()
    };
    assert_eq!(wiring(&router), [], "freshly applied");
    let out = router.fake.sh(
        "uci add_list network.@device[1].ports=lan4 && uci commit network && ubus call network reload",
        &[],
    );
    assert!(out.success(), "{out:?}");
    let drift = wiring(&router);
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(
        drift[0].detail.contains("lan4 is still listed"),
        "{}",
        drift[0].detail
    );
}

/// A router whose LAN is not the one sovereign.toml describes (a stock OpenWrt's
/// 192.168.1.0/24, here 10.0.0.0/24) is refused before any change, naming both.
#[test]
fn a_router_on_another_lan_is_refused() {
    let Some(router) = Router::new("openwrt_real_uci", "lan_10") else {
        return;
    };
    let before = router.files();
    let error = apply(&router.fake, &config_of(&dedicated("lan4")), &options()).unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, ApplyError::ValidationFailed { .. }),
        "{text}"
    );
    assert!(text.contains("LAN address is 10.0.0.1/24"), "{text}");
    assert!(text.contains("192.168.250.1/24"), "{text}");
    assert_eq!(router.files(), before);
}
