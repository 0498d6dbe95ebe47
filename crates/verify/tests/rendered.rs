//! `verify --rendered` for OpenWrt: the rendered `sovereign.uci` runs over a stock
//! OpenWrt 23.05 config (its WAN rules included) and the result, compiled as fw4
//! does, holds for every golden-file configuration. Shared isolation holds except
//! for the L2 cells no router can enforce, which are reported, not hidden.

use sovereign_model::{Deployment, Destination, Isolation, RouterTarget, Source};
use sovereign_verify::*;

use sovereign_testkit::deployments::with_peers;

/// The router's golden-file configurations that must hold outright; shared
/// isolation is checked on its own below, because its L2 cells are unenforceable.
fn variants() -> Vec<(&'static str, Deployment)> {
    sovereign_testkit::deployments::variants()
        .into_iter()
        .filter(|(_, d)| d.server.isolation != Isolation::Shared)
        .collect()
}

fn openwrt(d: &Deployment) -> Report {
    verify_rendered(d, RouterTarget::Openwrt).unwrap()
}

fn rendered_batch(d: &Deployment) -> String {
    let secrets = sovereign_wg::RouterSecrets::for_tests(d.peers.iter().map(|p| p.name.as_str()));
    let rendering = sovereign_router::render(d, &secrets, RouterTarget::Openwrt).unwrap();
    rendering.file("sovereign.uci").unwrap().contents.clone()
}

#[test]
fn every_dedicated_port_variant_holds_on_a_stock_router() {
    for (name, d) in variants() {
        let report = openwrt(&d);
        assert!(report.holds(), "{name}:\n{}", render_table(&report, false));
        assert_eq!(report.summary.unenforceable, 0, "{name}");
        assert!(
            report.cells.iter().any(|c| c.family == IpFamily::Ipv6),
            "{name}: IPv6 cells are checked too"
        );
    }
}

#[test]
fn the_default_config_holds_on_a_stock_router() {
    // `sovereign verify --rendered` with no config file verifies the reference.
    let report = openwrt(&Deployment::reference());
    assert!(report.holds(), "{}", render_table(&report, false));
    assert!(report.input.contains("stock OpenWrt"), "{}", report.input);
}

#[test]
fn shared_isolation_holds_except_the_cells_no_router_can_enforce() {
    for server_internet in [true, false] {
        let mut d = with_peers(1);
        d.server.isolation = Isolation::Shared;
        d.policy.server_internet = server_internet;
        let report = openwrt(&d);
        let table = render_table(&report, false);
        assert_eq!(report.summary.violated, 0, "{table}");
        assert_eq!(report.summary.unknown, 0, "{table}");
        assert!(report.summary.unenforceable > 0, "{table}");
        assert!(
            report
                .cells
                .iter()
                .filter(|c| c.verdict == CellVerdict::Unenforceable)
                .all(|c| matches!(
                    (c.source, c.destination),
                    (Source::Server, Destination::OtherLan)
                        | (Source::LanDevice | Source::LanAdmin, _)
                )),
            "only server <-> LAN cells are unenforceable:\n{table}"
        );
        assert!(
            report
                .lints
                .iter()
                .any(|l| l.severity == Severity::Warning && l.code.contains("l2")),
            "the L2 cells are a warning:\n{table}"
        );
        assert_eq!(report.summary.errors, 0, "{table}");
    }
}

#[test]
fn without_the_reorder_the_stock_wan_rules_open_the_lan() {
    // The verifier models fw4's section order: the same batch minus its `reorder`
    // lines leaves OpenWrt's Allow-IPSec-ESP / Allow-ISAKMP ahead of sovereign's drop.
    let d = with_peers(1);
    let batch: String = rendered_batch(&d)
        .lines()
        .filter(|l| !l.starts_with("reorder "))
        .map(|l| format!("{l}\n"))
        .collect();
    let config = openwrt_after_batch(&d, &batch).unwrap();
    let report = verify_openwrt_config(&d, &config).unwrap();
    assert!(!report.holds());
    let lan = report
        .cell(Source::Internet, Destination::OtherLan, IpFamily::Ipv4)
        .unwrap();
    assert_eq!(lan.status, Status::Mixed);
    let deciders: Vec<String> = lan
        .witnesses
        .iter()
        .flat_map(|w| &w.trace)
        .filter_map(|s| s.comment.clone())
        .collect();
    assert!(
        deciders.iter().any(|c| c.contains("Allow-IPSec-ESP")),
        "{deciders:?}"
    );
    let router = report
        .cell(
            Source::Internet,
            Destination::RouterServices,
            IpFamily::Ipv4,
        )
        .unwrap();
    assert_eq!(router.status, Status::Mixed);
}

#[test]
fn the_stock_wan_rules_are_reported_dead_after_the_batch() {
    let report = openwrt(&with_peers(1));
    for stock in [
        "Allow-DHCP-Renew",
        "Allow-Ping",
        "Allow-IPSec-ESP",
        "Allow-ISAKMP",
    ] {
        assert!(
            report
                .lints
                .iter()
                .any(|l| l.code == "shadowed-rule" && l.message.contains(stock)),
            "{stock} is shadowed by sovereign's WAN rules"
        );
    }
}

#[test]
fn a_second_run_of_the_batch_gives_the_same_verdict() {
    let d = with_peers(2);
    let batch = rendered_batch(&d);
    let once = openwrt_after_batch(&d, &batch).unwrap();
    let mut twice = once.clone();
    twice
        .apply(&sovereign_router::uci::parse_batch(&batch).unwrap())
        .unwrap();
    assert_eq!(once, twice);
    let a = verify_openwrt_config(&d, &once).unwrap();
    let b = verify_openwrt_config(&d, &twice).unwrap();
    assert!(a.holds() && b.holds());
}

#[test]
fn a_bad_batch_names_its_line() {
    let d = with_peers(1);
    let err = openwrt_after_batch(&d, "set firewall.@defaults[0].input='REJECT'\nfrobnicate\n")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("sovereign.uci line 2:") && text.contains("unknown command"),
        "{text}"
    );
    let err = openwrt_after_batch(&d, "set firewall.nothere.proto='udp'\n").unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

/// The rules are right, but the server's port is still bridged to the LAN (the
/// field bug of `del_list @device[0]` on a router whose first device section is
/// not the bridge): every server<->LAN deny is unenforceable and the report fails.
#[test]
fn a_server_port_left_in_the_bridge_never_holds() {
    let d = with_peers(1);
    let mut config = openwrt_after_batch(&d, &rendered_batch(&d)).unwrap();
    assert!(verify_openwrt_config(&d, &config).unwrap().holds());
    let bridged =
        sovereign_router::uci::parse_batch("add_list network.@device[0].ports='lan4'\n").unwrap();
    config.apply(&bridged).unwrap();
    let report = verify_openwrt_config(&d, &config).unwrap();
    let table = render_table(&report, false);
    assert!(!report.holds(), "{table}");
    assert_eq!(report.lints[0].code, "server-port-not-isolated", "{table}");
    assert!(
        report.lints[0]
            .message
            .contains("lan4 is still a port of bridge br-lan")
    );
    for (source, destination) in [
        (Source::LanDevice, Destination::ServerApi),
        (Source::LanDevice, Destination::ServerSsh),
        (Source::Server, Destination::OtherLan),
    ] {
        let cell = report.cell(source, destination, IpFamily::Ipv4).unwrap();
        assert_eq!(
            cell.verdict,
            CellVerdict::Unenforceable,
            "{source:?} -> {destination:?}"
        );
        assert!(cell.reason.contains("not enforceable"), "{}", cell.reason);
    }
    // The allowed cells and the WAN's are untouched.
    let api = report
        .cell(Source::VpnPeer, Destination::ServerApi, IpFamily::Ipv4)
        .unwrap();
    assert_eq!(api.verdict, CellVerdict::Holds);
}

/// The same when the server's interface is not its port.
#[test]
fn a_server_interface_on_another_device_never_holds() {
    let d = with_peers(1);
    let mut config = openwrt_after_batch(&d, &rendered_batch(&d)).unwrap();
    let moved =
        sovereign_router::uci::parse_batch("set network.sovereign_ai.device='lan3'\n").unwrap();
    config.apply(&moved).unwrap();
    let report = verify_openwrt_config(&d, &config).unwrap();
    assert!(!report.holds());
    assert!(
        report.lints[0]
            .message
            .contains("not the server's port lan4"),
        "{}",
        report.lints[0].message
    );
}
