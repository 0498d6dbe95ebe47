//! Benchmark (reports figures, asserts nothing): `cargo bench -p sovereign-verify`.
//!
//! 1. The reference deployment's full matrix: rendered Linux nftables.json, the fw4
//!    reference UCI pair, and the lab ruleset (parse + compile + every cell + lints).
//! 2. A synthetic ruleset with 1,000 peers and 10,000 rules.
//!
//! Peak memory is the process's VmHWM from /proc/self/status.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sovereign_model::{Deployment, Peer, PeerStatus, RouterTarget};
use sovereign_verify::*;

fn time<T>(label: &str, iterations: u32, mut f: impl FnMut() -> T) -> Duration {
    let _ = black_box(f());
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(f());
    }
    let per = start.elapsed() / iterations;
    println!(
        "{label:<58} {:>10.3} ms/run  ({iterations} runs)",
        per.as_secs_f64() * 1e3
    );
    per
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn rule(chain: &str, exprs: Value, comment: String) -> Value {
    json!({"rule": {"family": "inet", "table": "big", "chain": chain, "expr": exprs, "comment": comment}})
}

fn m(left: Value, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn iif(name: &str) -> Value {
    m(json!({"meta": {"key": "iifname"}}), "==", json!(name))
}

fn saddr(a: &str) -> Value {
    m(
        json!({"payload": {"protocol": "ip", "field": "saddr"}}),
        "==",
        json!(a),
    )
}

fn dport(proto: &str, p: Value) -> Value {
    m(
        json!({"payload": {"protocol": proto, "field": "dport"}}),
        "==",
        p,
    )
}

/// 1,000 peers; per peer: one jump in forward, one input rule, eight rules in the
/// peer's own chain = 10,000 rules.
fn synthetic(peers: usize) -> (Deployment, String) {
    let mut d = Deployment::reference();
    d.wireguard.subnet = "10.10.0.0/16".parse().unwrap();
    d.wireguard.address = "10.10.0.1".parse().unwrap();
    let server = d.server.address.to_string();
    let mut items = vec![
        json!({"table": {"family": "inet", "name": "big"}}),
        json!({"chain": {"family": "inet", "table": "big", "name": "input", "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}),
        json!({"chain": {"family": "inet", "table": "big", "name": "forward", "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}),
    ];
    let mut rules = Vec::new();
    let ct = json!({"vmap": {"key": {"ct": {"key": "state"}}, "data": {"set": [["established", {"accept": null}], ["related", {"accept": null}]]}}});
    rules.push(rule("input", json!([ct.clone()]), "ct".into()));
    rules.push(rule("forward", json!([ct]), "ct".into()));
    rules.push(rule(
        "input",
        json!([iif("wan"), dport("udp", json!(51820)), {"accept": null}]),
        "wg".into(),
    ));
    rules.push(rule(
        "input",
        json!([iif("br-lan"), {"accept": null}]),
        "lan input".into(),
    ));
    rules.push(rule("forward", json!([iif("br-lan"), m(json!({"meta": {"key": "oifname"}}), "==", json!("wan")), {"accept": null}]), "lan out".into()));
    rules.push(rule("forward", json!([iif("lan4"), m(json!({"meta": {"key": "oifname"}}), "==", json!("wan")), {"accept": null}]), "server out".into()));
    for i in 0..peers {
        let addr = format!("10.10.{}.{}", (i + 2) / 256, (i + 2) % 256);
        let name = format!("peer-{i}");
        d.peers.push(Peer {
            name: name.clone(),
            address: addr.parse().unwrap(),
            public_key: String::new(),
            created: String::new(),
            status: PeerStatus::Active,
            preshared_key: true,
            changed: String::new(),
            expires: None,
        });
        let chain = format!("peer_{i}");
        items.push(json!({"chain": {"family": "inet", "table": "big", "name": chain}}));
        rules.push(rule(
            "forward",
            json!([iif("wg0"), saddr(&addr), {"jump": {"target": chain}}]),
            format!("{name} dispatch"),
        ));
        rules.push(rule(
            "input",
            json!([iif("wg0"), saddr(&addr), dport("tcp", json!(22)), {"reject": null}]),
            format!("{name} no ssh"),
        ));
        let p = |proto: &str, port: Value, verdict: Value, what: &str| {
            rule(
                &chain,
                json!([
                    m(
                        json!({"payload": {"protocol": "ip", "field": "daddr"}}),
                        "==",
                        json!(server)
                    ),
                    dport(proto, port),
                    verdict
                ]),
                format!("{name} {what}"),
            )
        };
        rules.push(p("tcp", json!(11434), json!({"accept": null}), "api"));
        rules.push(p("tcp", json!(22), json!({"reject": null}), "ssh"));
        rules.push(p(
            "udp",
            json!({"range": [1, 1023]}),
            json!({"drop": null}),
            "udp low",
        ));
        rules.push(p(
            "tcp",
            json!({"set": [80, 443, 8080]}),
            json!({"reject": null}),
            "web",
        ));
        rules.push(p(
            "tcp",
            json!({"range": [5000 + i as u64, 5010 + i as u64]}),
            json!({"drop": null}),
            "range",
        ));
        rules.push(rule(
            &chain,
            json!([dport("udp", json!(53)), {"counter": null}]),
            format!("{name} count dns"),
        ));
        rules.push(rule(
            &chain,
            json!([m(json!({"meta": {"key": "oifname"}}), "==", json!("wan")), {"reject": null}]),
            format!("{name} no internet"),
        ));
        rules.push(rule(
            &chain,
            json!([{"reject": null}]),
            format!("{name} default"),
        ));
    }
    let n_rules = rules.len();
    items.extend(rules);
    println!("synthetic ruleset: {peers} peers, {n_rules} rules");
    (d, json!({ "nftables": items }).to_string())
}

fn main() {
    println!("sovereign-verify benchmark (release build; figures only)\n");
    let d = Deployment::reference();
    let linux = sovereign_verify::verify_rendered(&d, RouterTarget::Linux).unwrap();
    println!(
        "reference matrix: {} cells (IPv4 + IPv6 denies), holds = {}",
        linux.cells.len(),
        linux.holds()
    );
    time(
        "reference, rendered Linux nftables.json (render+verify)",
        200,
        || verify_rendered(&d, RouterTarget::Linux).unwrap(),
    );
    time(
        "reference, rendered OpenWrt UCI (render+fw4+verify)",
        200,
        || verify_rendered(&d, RouterTarget::Openwrt).unwrap(),
    );
    let fw = std::fs::read_to_string("tests/fixtures/fw4-reference/firewall").unwrap();
    let net = std::fs::read_to_string("tests/fixtures/fw4-reference/network").unwrap();
    let fw4_json = std::fs::read_to_string("tests/fixtures/fw4-reference/fw4.json").unwrap();
    time("reference, fw4 UCI fixture (verify_uci)", 200, || {
        verify_uci(&d, &fw, &net).unwrap()
    });
    time(
        "reference, fw4 nft JSON fixture (verify_nft_json)",
        200,
        || verify_nft_json(&d, &fw4_json).unwrap(),
    );
    let lab = std::fs::read_to_string("tests/fixtures/lab-ruleset.json").unwrap();
    time("lab ruleset (verify_nft_json)", 200, || {
        verify_nft_json(&d, &lab).unwrap()
    });

    let before = vm_hwm_kib();
    let (big_d, big_json) = synthetic(1000);
    println!(
        "synthetic JSON size: {:.1} MiB",
        big_json.len() as f64 / (1024.0 * 1024.0)
    );
    let start = Instant::now();
    let report = verify_nft_json(&big_d, &big_json).unwrap();
    let first = start.elapsed();
    let classes: usize = report.cells.iter().map(|c| c.classes).sum();
    println!(
        "synthetic: first run {:.1} ms, {} cells, {} packet classes evaluated, {} lints, holds = {}",
        first.as_secs_f64() * 1e3,
        report.cells.len(),
        classes,
        report.lints.len(),
        report.holds()
    );
    println!(
        "peak RSS (VmHWM) after the first synthetic run: {} KiB",
        vm_hwm_kib().unwrap_or(0)
    );
    time(
        "synthetic 1,000 peers / 10,000 rules (verify_nft_json)",
        3,
        || verify_nft_json(&big_d, &big_json).unwrap(),
    );
    let rs = Ruleset::parse_json(&big_json).unwrap();
    time("synthetic: parse only", 3, || {
        Ruleset::parse_json(&big_json).unwrap()
    });
    let topo = Topology::from_deployment(&big_d);
    time("synthetic: compile only", 3, || {
        Program::compile(&rs, topo.universe())
    });
    println!(
        "peak RSS (VmHWM): before synthetic {} KiB, after {} KiB",
        before.unwrap_or(0),
        vm_hwm_kib().unwrap_or(0)
    );
}
