//! The OpenWrt scripts executed for real: `sh` runs every script `apply` sends, in
//! a temporary root that stands in for the router's /etc and /tmp, with fake `uci`,
//! `fw4`, `ubus`, `ifup`, `nft`, `wg` and a `sysctl` that keeps kernel values in
//! files. The transcripts prove what is sent; this proves what it does to the
//! sysctl file and the kernel values: install, load, roll back, remove, reset.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{FakeRouter, lost, options};
use sovereign_remote::{ApplyError, OpenwrtConfig, RouterConfig, apply};

const LAN4: &str = "net.ipv4.conf.lan4.proxy_arp";
const LAN3: &str = "net.ipv4.conf.lan3.proxy_arp";
const BR_LAN: &str = "net.ipv4.conf.br-lan.proxy_arp";
const DEFAULT: &str = "net.ipv4.conf.default.proxy_arp";

fn sysctl_for(port: &str) -> String {
    format!("# proxy ARP for the server's own port\nnet.ipv4.conf.{port}.proxy_arp=1\n{BR_LAN}=1\n")
}

fn config(sysctl: Option<String>) -> RouterConfig {
    RouterConfig::Openwrt(OpenwrtConfig {
        uci_batch: "set network.wg0=interface\nset firewall.sovereign_vpn=zone\n".into(),
        wg_interface: "wg0".into(),
        sysctl_conf: sysctl,
        // The wiring has tests of its own against the real uci (openwrt_real_uci.rs).
        wire_script: "echo \"wiring: ${1:-stage} (stand-in)\"\n".into(),
    })
}

fn dedicated() -> RouterConfig {
    config(Some(sysctl_for("lan4")))
}

fn shared() -> RouterConfig {
    config(None)
}

/// A stock router: proxy ARP off everywhere, no sovereign sysctl file.
fn stock() -> FakeRouter {
    FakeRouter::new(
        &[],
        &[(LAN4, "0"), (LAN3, "0"), (BR_LAN, "0"), (DEFAULT, "0")],
    )
}

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn apply_installs_the_file_atomically_and_loads_it() {
    let router = stock();
    apply(&router, &dedicated(), &options()).expect("apply");
    assert_eq!(router.installed(), Some(sysctl_for("lan4")));
    let mode = std::fs::metadata(router.sysctl_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "sysctl files are world-readable");
    assert_eq!(
        std::fs::read_dir(router.sysctl_file().parent().unwrap())
            .unwrap()
            .count(),
        1,
        "no temp file is left beside it"
    );
    assert_eq!(
        router.values(),
        values(&[(BR_LAN, "1"), (DEFAULT, "0"), (LAN3, "0"), (LAN4, "1")])
    );
}

#[test]
fn a_rollback_removes_a_file_that_was_absent_and_turns_the_values_back() {
    let router = stock();
    let error = apply(&router, &dedicated(), &lost()).unwrap_err();
    assert!(error.rollback_armed(), "{error}");
    assert_eq!(router.values()[LAN4], "1", "the apply went live");
    router.fire_rollback();
    assert_eq!(router.installed(), None);
    assert_eq!(
        router.values(),
        values(&[(BR_LAN, "0"), (DEFAULT, "0"), (LAN3, "0"), (LAN4, "0")])
    );
}

#[test]
fn a_rollback_restores_the_previous_file_and_its_values() {
    let router = stock();
    apply(&router, &dedicated(), &options()).expect("first apply");
    // The server moves to lan3: lan4 drops out of the file and is reset.
    let moved = config(Some(sysctl_for("lan3")));
    let error = apply(&router, &moved, &lost()).unwrap_err();
    assert!(error.rollback_armed(), "{error}");
    assert_eq!(router.installed(), Some(sysctl_for("lan3")));
    assert_eq!(
        router.values(),
        values(&[(BR_LAN, "1"), (DEFAULT, "0"), (LAN3, "1"), (LAN4, "0")])
    );
    router.fire_rollback();
    assert_eq!(router.installed(), Some(sysctl_for("lan4")));
    assert_eq!(
        router.values(),
        values(&[(BR_LAN, "1"), (DEFAULT, "0"), (LAN3, "0"), (LAN4, "1")])
    );
}

#[test]
fn switching_to_shared_removes_the_file_and_resets_its_keys_to_the_default() {
    let router = stock();
    apply(&router, &dedicated(), &options()).expect("dedicated-port apply");
    let report = apply(&router, &shared(), &options()).expect("shared apply");
    assert!(
        report.steps[5].detail.contains("removed"),
        "{:?}",
        report.steps
    );
    assert_eq!(router.installed(), None);
    assert_eq!(
        router.values(),
        values(&[(BR_LAN, "0"), (DEFAULT, "0"), (LAN3, "0"), (LAN4, "0")])
    );

    // And back: rolling the switch back brings proxy ARP back.
    apply(&router, &dedicated(), &options()).expect("dedicated-port again");
    apply(&router, &shared(), &lost()).unwrap_err();
    router.fire_rollback();
    assert_eq!(router.installed(), Some(sysctl_for("lan4")));
    assert_eq!(router.values()[LAN4], "1");
    assert_eq!(router.values()[BR_LAN], "1");
}

#[test]
fn a_shared_apply_on_a_router_without_the_file_changes_no_value() {
    let router = stock();
    router.set(LAN4, "1"); // set by the admin for reasons of their own
    let report = apply(&router, &shared(), &options()).expect("apply");
    assert!(!report.steps[5].detail.contains("removed"));
    assert_eq!(router.values()[LAN4], "1");
}

#[test]
fn a_failed_fw4_check_touches_neither_the_file_nor_the_values() {
    let router = stock();
    apply(&router, &dedicated(), &options()).expect("first apply");
    std::fs::write(router.root.join("fw4-fails"), "").unwrap();
    let before = router.values();
    let error = apply(&router, &shared(), &options()).unwrap_err();
    assert!(
        matches!(error, ApplyError::ValidationFailed { .. }),
        "{error}"
    );
    assert_eq!(router.installed(), Some(sysctl_for("lan4")));
    assert_eq!(router.values(), before);
    assert!(
        !Path::new(&router.root.join("tmp/sovereign-apply.lock")).exists(),
        "the lock was released"
    );
}
