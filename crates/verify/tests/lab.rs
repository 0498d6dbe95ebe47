//! The lab's real `nft -j list ruleset` (nft 1.0.6, with counters) and sovereign's own
//! renderings, end to end.

use sovereign_model::{Deployment, Destination, Source};
use sovereign_verify::*;

fn lab() -> (Deployment, Topology) {
    let mut d = Deployment::reference();
    d.wan.interface = "wan".into();
    d.lan.interface = "lan-dev".into();
    d.server.router_port = "lan-ai".into();
    d.policy.admin_hosts = vec!["192.168.250.10".parse().unwrap()];
    d.policy.lan_api = true;
    d.policy.vpn_ssh = true;
    let mut topology = Topology::from_deployment(&d);
    topology.admin_interface = "lan-adm".into();
    (d, topology)
}

fn lab_report() -> Report {
    let (d, topology) = lab();
    let json = std::fs::read_to_string("tests/fixtures/lab-ruleset.json").unwrap();
    let rs = Ruleset::parse_json(&json).unwrap();
    verify_ruleset("lab", &rs, &topology, &sovereign_model::intent(&d))
}

#[test]
fn lab_ruleset_enforces_the_routed_cells() {
    let r = lab_report();
    let v4 = |s, t| r.cell(s, t, IpFamily::Ipv4).unwrap();
    assert_eq!(
        v4(Source::VpnPeer, Destination::ServerApi).status,
        Status::Allowed
    );
    let trace = &v4(Source::VpnPeer, Destination::ServerApi).paths[0];
    assert_eq!(
        trace.decided_by.as_ref().unwrap().handle,
        Some(18),
        "VPN -> AI server rule"
    );
    assert_eq!(
        v4(Source::VpnPeer, Destination::Internet).status,
        Status::Denied
    );
    assert_eq!(
        v4(Source::Server, Destination::OtherLan).status,
        Status::Denied
    );
    assert_eq!(
        v4(Source::Internet, Destination::RouterWireguard).status,
        Status::Allowed
    );
    assert_eq!(
        v4(Source::LanDevice, Destination::OtherLan).status,
        Status::NotRouted
    );
}

#[test]
fn lab_ruleset_findings_have_witnesses() {
    let r = lab_report();
    // The lab router offers no DNS: the server's DNS cell is violated, by the policy.
    let dns = r
        .cell(Source::Server, Destination::RouterDns, IpFamily::Ipv4)
        .unwrap();
    assert_eq!(dns.verdict, CellVerdict::Violated);
    assert_eq!(dns.witnesses[0].packet.dst, "192.168.250.1");
    assert_eq!(
        dns.witnesses[0].decided_by.as_ref().unwrap().action,
        "policy drop"
    );
    // Its AI isolation matches `ip saddr`, so IPv6 from lan-ai reaches `LAN <-> LAN`.
    let lint = r
        .lints
        .iter()
        .find(|l| l.code == "ipv6-open")
        .expect("ipv6 finding");
    assert_eq!(
        lint.rule.as_ref().unwrap().comment.as_deref(),
        Some("LAN <-> LAN (not AI)")
    );
    assert!(!r.holds());
}

#[test]
fn rendered_linux_ruleset_holds_and_openwrt_findings_carry_traces() {
    let d = Deployment::reference();
    let linux = verify_rendered(&d, sovereign_model::RouterTarget::Linux).unwrap();
    assert!(linux.holds(), "{}", render_table(&linux, false));
    let openwrt = verify_rendered(&d, sovereign_model::RouterTarget::Openwrt).unwrap();
    for c in openwrt
        .cells
        .iter()
        .filter(|c| c.verdict == CellVerdict::Violated)
    {
        assert!(
            !c.witnesses.is_empty() && !c.witnesses[0].trace.is_empty(),
            "{c:?}"
        );
    }
    let html = render_html(&openwrt, &d);
    assert!(
        html.contains("<svg") && html.contains("<style>"),
        "inline picture and CSS"
    );
    assert!(
        !html.contains("<script") && !html.contains("<link"),
        "no external assets"
    );
}
