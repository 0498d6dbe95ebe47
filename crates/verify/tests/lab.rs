use sovereign_model::Deployment;
use sovereign_verify::*;

fn lab_deployment() -> Deployment {
    let mut d = Deployment::reference();
    d.wan.interface = "wan".into();
    d.lan.interface = "lan-dev".into();
    d.server.router_port = "lan-ai".into();
    d.policy.admin_hosts = vec!["192.168.250.10".parse().unwrap()];
    d.policy.lan_api = true;
    d.policy.vpn_ssh = true;
    d
}

#[test]
fn lab_ruleset_prints() {
    let d = lab_deployment();
    let json = std::fs::read_to_string("tests/fixtures/lab-ruleset.json").unwrap();
    let mut topo = Topology::from_deployment(&d);
    topo.admin_interface = "lan-adm".into();
    let rs = Ruleset::parse_json(&json).unwrap();
    let report = verify_ruleset("lab", &rs, &topo, &sovereign_model::intent(&d));
    println!("{}", render_table(&report, false));
}

#[test]
fn rendered_prints() {
    for target in [
        sovereign_model::RouterTarget::Linux,
        sovereign_model::RouterTarget::Openwrt,
    ] {
        let d = Deployment::reference();
        let report = verify_rendered(&d, target).unwrap();
        println!("{}", render_table(&report, false));
    }
}
