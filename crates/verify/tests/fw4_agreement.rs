//! The verdict on a UCI config equals the verdict on the nftables ruleset fw4 generates
//! from it (fixtures/fw4-reference: fw4.nft hand-written from fw4's templates, fw4.json
//! is what nft 1.0.6 lists after loading it).

use sovereign_model::{Deployment, Destination, Source};
use sovereign_verify::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("tests/fixtures/fw4-reference/{name}")).unwrap()
}

#[test]
fn uci_and_fw4_json_agree_cell_by_cell() {
    let d = Deployment::reference();
    let from_uci = verify_uci(&d, &fixture("firewall"), &fixture("network")).unwrap();
    let from_json = verify_nft_json(&d, &fixture("fw4.json")).unwrap();
    assert_eq!(from_uci.cells.len(), from_json.cells.len());
    for (a, b) in from_uci.cells.iter().zip(&from_json.cells) {
        assert_eq!(
            (a.source, a.destination, a.family),
            (b.source, b.destination, b.family)
        );
        assert_eq!(
            a.status, b.status,
            "{:?} -> {:?} ({:?})",
            a.source, a.destination, a.family
        );
        assert_eq!(
            a.verdict, b.verdict,
            "{:?} -> {:?} ({:?})",
            a.source, a.destination, a.family
        );
        let decided = |c: &CellResult| {
            c.paths
                .iter()
                .map(|p| p.decided_by.as_ref().map(|s| s.comment.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            decided(a),
            decided(b),
            "{:?} -> {:?}: same deciding rules",
            a.source,
            a.destination
        );
    }
    assert_eq!(from_uci.summary.holds, from_json.summary.holds);
}

#[test]
fn fw4_reference_config_meets_the_intent_with_fw4_surprises_reported() {
    let d = Deployment::reference();
    let report = verify_uci(&d, &fixture("firewall"), &fixture("network")).unwrap();
    let v4 = |s, t| report.cell(s, t, IpFamily::Ipv4).unwrap();
    assert_eq!(
        v4(Source::VpnPeer, Destination::ServerApi).status,
        Status::Allowed
    );
    assert_eq!(
        v4(Source::VpnPeer, Destination::OtherLan).status,
        Status::Denied,
        "defaults.forward, not the vpn zone's forward"
    );
    let api = v4(Source::VpnPeer, Destination::ServerApi);
    assert_eq!(
        api.paths[0].decided_by.as_ref().unwrap().comment.as_deref(),
        Some("!fw4: accept ai IPv4/IPv6 traffic")
    );
    assert!(
        api.paths[0]
            .trace
            .iter()
            .any(|s| s.comment.as_deref() == Some("!fw4: Allow-VPN-to-Ollama"))
    );
    assert_eq!(
        v4(Source::Server, Destination::RouterDns).status,
        Status::Allowed
    );
    assert_eq!(
        v4(Source::Server, Destination::RouterServices).status,
        Status::Denied
    );
    assert_eq!(
        v4(Source::Internet, Destination::RouterWireguard).status,
        Status::Allowed
    );
    assert!(
        report
            .lints
            .iter()
            .any(|l| l.code == "rule-without-target" && l.message.contains("Count-WAN-SSH"))
    );
    assert!(!report.lints.iter().any(|l| l.code == "api-from-wan"));
    assert!(report.holds(), "{}", render_table(&report, false));
}

#[test]
fn a_port_forward_to_the_api_is_an_error() {
    let d = Deployment::reference();
    let firewall = fixture("firewall")
        + "\nconfig redirect\n\toption name 'Oops'\n\toption src 'wan'\n\toption src_dport '8080'\n\toption dest 'ai'\n\toption dest_ip '192.168.250.20'\n\toption dest_port '11434'\n\toption proto 'tcp'\n";
    let report = verify_uci(&d, &firewall, &fixture("network")).unwrap();
    let lint = report
        .lints
        .iter()
        .find(|l| l.code == "api-from-wan")
        .expect("port forward found");
    let w = lint.witness.as_ref().unwrap();
    assert_eq!(w.packet.dst, "192.168.250.20");
    assert_eq!(
        w.packet.dnat_from.as_deref().map(|s| s.ends_with(":8080")),
        Some(true)
    );
    assert!(!report.holds());
}

#[test]
fn uci_errors_name_the_file_and_line() {
    let d = Deployment::reference();
    let err = verify_uci(&d, "config zone\n\toption name 'vpn\n", &fixture("network")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("firewall line 2:") && text.contains("unterminated"),
        "{text}"
    );
    let err = verify_uci(&d, &fixture("firewall"), "option a b\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("network line 1:") && text.contains("before any `config`"),
        "{text}"
    );
}

#[test]
fn space_separated_values_and_trailing_comments_read_as_fw4_does() {
    let firewall = fixture("firewall")
        + "\nconfig rule # a user's rule\n\toption name 'Open-Web' # web\n\toption src 'wan'\n\toption proto 'tcp'\n\toption dest_port '80 443'\n\toption target 'ACCEPT'\n";
    let json: serde_json::Value =
        serde_json::from_str(&uci_to_nft_json(&firewall, &fixture("network")).unwrap()).unwrap();
    let rule = json["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["rule"]["comment"] == "!fw4: Open-Web")
        .expect("the rule is compiled");
    let ports = rule["rule"]["expr"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["match"]["right"]["set"].as_array())
        .expect("dport set");
    assert_eq!(ports, &vec![serde_json::json!(80), serde_json::json!(443)]);
}
