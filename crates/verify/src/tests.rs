//! Unit tests per nftables construct, and property tests: the class-based evaluator
//! against the per-packet evaluator, and against brute force over a small universe.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::compile::Program;
use crate::eval::{Fate, RouteTarget, Routes};
use crate::interval::IntervalSet;
use crate::nft::Ruleset;
use crate::space::*;
use crate::topology::first_packet;

/// (hook, priority, policy, type) of a base chain.
type Base<'a> = Option<(&'a str, i64, &'a str, &'a str)>;

/// `chains`: (name, Some((hook, prio, policy, type))) ; `rules`: (chain, exprs).
fn ruleset(chains: &[(&str, Base)], rules: &[(&str, Value)], extra: &[Value]) -> Ruleset {
    let mut items = vec![json!({"table": {"family": "inet", "name": "t"}})];
    for (name, base) in chains {
        let mut c = json!({"family": "inet", "table": "t", "name": name});
        if let Some((hook, prio, policy, kind)) = base {
            c["hook"] = json!(hook);
            c["prio"] = json!(prio);
            c["policy"] = json!(policy);
            c["type"] = json!(kind);
        }
        items.push(json!({ "chain": c }));
    }
    items.extend(extra.iter().cloned());
    for (i, (chain, exprs)) in rules.iter().enumerate() {
        items.push(json!({"rule": {"family": "inet", "table": "t", "chain": chain, "handle": i + 10, "expr": exprs}}));
    }
    Ruleset::from_value(json!({ "nftables": items })).expect("valid test ruleset")
}

fn m(left: Value, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn meta(k: &str) -> Value {
    json!({"meta": {"key": k}})
}

fn payload(p: &str, f: &str) -> Value {
    json!({"payload": {"protocol": p, "field": f}})
}

const IFACES: [&str; 3] = ["wan", "lan-a", "lan-b"];

fn program(rs: &Ruleset) -> Program {
    Program::compile(rs, Universe::new(IFACES.map(String::from)))
}

fn v4(s: &str) -> u128 {
    u32::from(s.parse::<std::net::Ipv4Addr>().unwrap()) as u128
}

/// The fate of one TCP packet to the router.
fn fate(p: &Program, iif: &str, saddr: &str, dport: u128) -> Fate {
    let u = &p.universe;
    let mut pk = first_packet(u.index(iif).unwrap(), NFPROTO_IPV4).witness();
    pk.set(Dim::Saddr, v4(saddr));
    pk.set(Dim::Daddr, v4("10.0.0.1"));
    pk.set(Dim::L4proto, PROTO_TCP);
    pk.set(Dim::Dport, dport);
    let (_, fate, _) = p.evaluate_packet(pk, &Routes::Fixed(RouteTarget::Local));
    // The class evaluator must agree on the same packet.
    let space = first_packet(u.index(iif).unwrap(), NFPROTO_IPV4)
        .with(Dim::Saddr, IntervalSet::point(v4(saddr)))
        .with(Dim::Daddr, IntervalSet::point(v4("10.0.0.1")))
        .with(Dim::L4proto, IntervalSet::point(PROTO_TCP))
        .with(Dim::Dport, IntervalSet::point(dport));
    let outcomes = p.evaluate(space, &Routes::Fixed(RouteTarget::Local));
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].fate, fate);
    fate
}

fn input_drop() -> Vec<(&'static str, Base<'static>)> {
    vec![
        ("input", Some(("input", 0, "drop", "filter"))),
        ("sub", None),
        ("sub2", None),
    ]
}

#[test]
fn policy_applies_when_no_rule_matches() {
    let p = program(&ruleset(&input_drop(), &[], &[]));
    assert_eq!(fate(&p, "wan", "1.2.3.4", 22), Fate::Drop);
    let accept = ruleset(
        &[("input", Some(("input", 0, "accept", "filter")))],
        &[],
        &[],
    );
    assert_eq!(fate(&program(&accept), "wan", "1.2.3.4", 22), Fate::Accept);
}

#[test]
fn prefixes_ranges_sets_and_negation() {
    let rules = [
        (
            "input",
            json!([m(payload("ip", "saddr"), "==", json!({"prefix": {"addr": "192.168.0.0", "len": 16}})), {"accept": null}]),
        ),
        (
            "input",
            json!([m(payload("tcp", "dport"), "==", json!({"range": [1000, 2000]})), {"accept": null}]),
        ),
        (
            "input",
            json!([m(payload("tcp", "dport"), "==", json!({"set": [22, 80]})), m(payload("ip", "saddr"), "!=", json!("5.5.5.5")), {"accept": null}]),
        ),
    ];
    let p = program(&ruleset(&input_drop(), &rules, &[]));
    assert_eq!(fate(&p, "wan", "192.168.7.7", 9), Fate::Accept);
    assert_eq!(fate(&p, "wan", "192.169.0.1", 9), Fate::Drop);
    assert_eq!(fate(&p, "wan", "1.1.1.1", 1500), Fate::Accept);
    assert_eq!(fate(&p, "wan", "1.1.1.1", 2001), Fate::Drop);
    assert_eq!(fate(&p, "wan", "1.1.1.1", 80), Fate::Accept);
    assert_eq!(fate(&p, "wan", "5.5.5.5", 80), Fate::Drop);
}

#[test]
fn jump_returns_goto_does_not() {
    let rules = [
        (
            "input",
            json!([m(meta("iifname"), "==", json!("lan-a")), {"jump": {"target": "sub"}}]),
        ),
        (
            "input",
            json!([m(meta("iifname"), "==", json!("lan-b")), {"goto": {"target": "sub"}}]),
        ),
        ("input", json!([{"accept": null}])),
        (
            "sub",
            json!([m(payload("tcp", "dport"), "==", json!(22)), {"reject": null}]),
        ),
        (
            "sub",
            json!([m(payload("tcp", "dport"), "==", json!(23)), {"return": null}]),
        ),
    ];
    let p = program(&ruleset(&input_drop(), &rules, &[]));
    assert_eq!(fate(&p, "lan-a", "1.1.1.1", 22), Fate::Reject);
    assert_eq!(
        fate(&p, "lan-a", "1.1.1.1", 23),
        Fate::Accept,
        "return resumes after the jump"
    );
    assert_eq!(
        fate(&p, "lan-a", "1.1.1.1", 24),
        Fate::Accept,
        "falling off a jumped-to chain returns"
    );
    assert_eq!(
        fate(&p, "lan-b", "1.1.1.1", 24),
        Fate::Drop,
        "goto never comes back: base policy"
    );
}

#[test]
fn wildcard_interfaces_and_named_sets() {
    let set = json!({"set": {"family": "inet", "table": "t", "name": "admins", "type": "ipv4_addr", "elem": ["10.9.9.9", {"prefix": {"addr": "172.16.0.0", "len": 12}}]}});
    let rules = [(
        "input",
        json!([m(meta("iifname"), "==", json!("lan*")), m(payload("ip", "saddr"), "==", json!("@admins")), {"accept": null}]),
    )];
    let p = program(&ruleset(&input_drop(), &rules, &[set]));
    assert_eq!(fate(&p, "lan-b", "10.9.9.9", 1), Fate::Accept);
    assert_eq!(fate(&p, "lan-a", "172.20.0.1", 1), Fate::Accept);
    assert_eq!(fate(&p, "wan", "10.9.9.9", 1), Fate::Drop);
    assert_eq!(fate(&p, "lan-a", "10.9.9.8", 1), Fate::Drop);
}

#[test]
fn verdict_maps_and_ct_state() {
    let vmap = json!({"vmap": {"key": payload("tcp", "dport"), "data": {"set": [[22, {"drop": null}], [{"range": [80, 90]}, {"accept": null}]]}}});
    let ct = json!({"vmap": {"key": {"ct": {"key": "state"}}, "data": {"set": [["established", {"accept": null}], ["related", {"accept": null}]]}}});
    let rules = [
        ("input", json!([ct])),
        ("input", json!([vmap])),
        (
            "input",
            json!([m(json!({"ct": {"key": "state"}}), "in", json!("new")), {"reject": null}]),
        ),
    ];
    let p = program(&ruleset(&input_drop(), &rules, &[]));
    assert_eq!(fate(&p, "wan", "1.1.1.1", 22), Fate::Drop);
    assert_eq!(fate(&p, "wan", "1.1.1.1", 85), Fate::Accept);
    assert_eq!(
        fate(&p, "wan", "1.1.1.1", 91),
        Fate::Reject,
        "map miss continues; first packet is new"
    );
}

#[test]
fn accept_ends_only_its_base_chain() {
    let chains = [
        ("first", Some(("input", -10, "accept", "filter"))),
        ("second", Some(("input", 10, "drop", "filter"))),
    ];
    let rules = [
        ("first", json!([{"accept": null}])),
        (
            "second",
            json!([m(payload("tcp", "dport"), "==", json!(22)), {"accept": null}]),
        ),
    ];
    let p = program(&ruleset(&chains, &rules, &[]));
    assert_eq!(fate(&p, "wan", "1.1.1.1", 22), Fate::Accept);
    assert_eq!(
        fate(&p, "wan", "1.1.1.1", 23),
        Fate::Drop,
        "a later base chain still drops"
    );
}

#[test]
fn unknown_expressions_make_only_reached_classes_unknown() {
    let rules = [
        (
            "input",
            json!([m(payload("tcp", "dport"), "==", json!(22)), {"accept": null}]),
        ),
        (
            "input",
            json!([m(json!({"fib": {"result": "type", "flags": ["daddr"]}}), "==", json!("local")), {"drop": null}]),
        ),
    ];
    let p = program(&ruleset(&input_drop(), &rules, &[]));
    assert_eq!(fate(&p, "wan", "1.1.1.1", 22), Fate::Accept);
    assert!(matches!(fate(&p, "wan", "1.1.1.1", 23), Fate::Unknown(s) if s.contains("fib")));
}

#[test]
fn dnat_in_prerouting_changes_routing_and_records_the_original() {
    let chains = [
        ("pre", Some(("prerouting", -100, "accept", "nat"))),
        ("fwd", Some(("forward", 0, "drop", "filter"))),
    ];
    let rules = [
        (
            "pre",
            json!([m(payload("tcp", "dport"), "==", json!(8080)), {"dnat": {"addr": "10.1.1.5", "port": 80}}]),
        ),
        (
            "fwd",
            json!([m(json!({"ct": {"key": "status"}}), "in", json!("dnat")), {"accept": null}]),
        ),
    ];
    let p = program(&ruleset(&chains, &rules, &[]));
    let u = &p.universe;
    let routes = Routes::Table(vec![
        (IntervalSet::point(v4("10.0.0.1")), RouteTarget::Local),
        (
            IntervalSet::range(0, u32::MAX as u128),
            RouteTarget::Out(u.index("lan-a").unwrap()),
        ),
    ]);
    let space = first_packet(u.index("wan").unwrap(), NFPROTO_IPV4)
        .with(Dim::Daddr, IntervalSet::point(v4("10.0.0.1")))
        .with(Dim::L4proto, IntervalSet::point(PROTO_TCP))
        .with(Dim::Dport, IntervalSet::from_points([8080, 8081]));
    let outcomes = p.evaluate(space, &routes);
    let forwarded = outcomes
        .iter()
        .find(|o| o.class.get(Dim::Oif).contains(u.index("lan-a").unwrap()))
        .unwrap();
    assert_eq!(forwarded.fate, Fate::Accept);
    assert_eq!(
        forwarded.class.get(Dim::Daddr),
        &IntervalSet::point(v4("10.1.1.5"))
    );
    assert_eq!(
        forwarded.class.witness().pre_nat,
        Some((v4("10.0.0.1"), 8080))
    );
    let local = outcomes
        .iter()
        .find(|o| o.class.get(Dim::Dport).contains(8081))
        .unwrap();
    assert_eq!(
        local.fate,
        Fate::Accept,
        "8081 is not rewritten and goes to input (no input chain)"
    );
}

#[test]
fn tcp_flags_bitmask_and_rate_limits() {
    let chains = [
        ("input", Some(("input", 0, "accept", "filter"))),
        ("syn_flood", None),
    ];
    let rules = [
        (
            "input",
            json!([m(json!({"&": [payload("tcp", "flags"), ["fin", "syn", "rst", "ack"]]}), "==", json!("syn")), {"jump": {"target": "syn_flood"}}]),
        ),
        (
            "syn_flood",
            json!([{"limit": {"rate": 25, "per": "second"}}, {"return": null}]),
        ),
        ("syn_flood", json!([{"drop": null}])),
    ];
    let p = program(&ruleset(&chains, &rules, &[]));
    assert_eq!(
        fate(&p, "wan", "1.1.1.1", 22),
        Fate::Accept,
        "a SYN under the rate limit returns"
    );
}

// ---------------------------------------------------------------------------
// Property tests.

const BASE: u128 = 0x0a00_0000; // 10.0.0.0
const ADDRS: u128 = 16;
const PORTS: u128 = 16;

fn small_addr() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0..ADDRS).prop_map(|a| json!(std::net::Ipv4Addr::from((BASE + a) as u32).to_string())),
        (0..ADDRS, 28u32..=32).prop_map(|(a, len)| json!({"prefix": {"addr": std::net::Ipv4Addr::from((BASE + a) as u32).to_string(), "len": len}})),
        (0..ADDRS, 0..ADDRS).prop_map(|(a, b)| {
            let (lo, hi) = (a.min(b), a.max(b));
            json!({"range": [std::net::Ipv4Addr::from((BASE + lo) as u32).to_string(), std::net::Ipv4Addr::from((BASE + hi) as u32).to_string()]})
        }),
    ]
}

fn small_port() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0..PORTS).prop_map(|p| json!(p)),
        (0..PORTS, 0..PORTS).prop_map(|(a, b)| json!({"range": [a.min(b), a.max(b)]})),
    ]
}

fn one_or_set(items: Vec<Value>) -> Value {
    if items.len() == 1 {
        items[0].clone()
    } else {
        json!({"set": items})
    }
}

fn match_stmt() -> impl Strategy<Value = Value> {
    let op = prop_oneof![Just("=="), Just("!=")];
    prop_oneof![
        (op.clone(), proptest::collection::vec(small_addr(), 1..3)).prop_map(|(op, a)| m(
            payload("ip", "saddr"),
            op,
            one_or_set(a)
        )),
        (
            op.clone(),
            proptest::collection::vec(small_port(), 1..3),
            prop_oneof![Just("tcp"), Just("udp"), Just("th")]
        )
            .prop_map(|(op, ps, proto)| m(payload(proto, "dport"), op, one_or_set(ps))),
        (op.clone(), prop_oneof![Just("tcp"), Just("udp")]).prop_map(|(op, p)| m(
            meta("l4proto"),
            op,
            json!(p)
        )),
        (
            op.clone(),
            prop_oneof![Just("wan"), Just("lan*"), Just("lan-a"), Just("nope")]
        )
            .prop_map(|(op, i)| m(meta("iifname"), op, json!(i))),
        prop_oneof![
            Just(json!("new")),
            Just(json!(["established", "related"])),
            Just(json!("invalid"))
        ]
        .prop_map(|s| m(json!({"ct": {"key": "state"}}), "in", s)),
        (0u64..3).prop_map(|v| m(meta("mark"), "==", json!(v))),
        (0u128..4, any::<bool>()).prop_map(|(bits, neg)| {
            let mask = std::net::Ipv4Addr::from(u32::MAX << bits).to_string();
            let value = std::net::Ipv4Addr::from((BASE as u32) & (u32::MAX << bits)).to_string();
            m(
                json!({"&": [payload("ip", "saddr"), mask]}),
                if neg { "!=" } else { "==" },
                json!(value),
            )
        }),
    ]
}

fn final_stmt(chain: usize, chains: usize) -> impl Strategy<Value = Vec<Value>> {
    let later: Vec<String> = (chain + 1..chains).map(|c| format!("c{c}")).collect();
    let jump = if later.is_empty() {
        Just(vec![json!({"accept": null})]).boxed()
    } else {
        (proptest::sample::select(later), any::<bool>())
            .prop_map(|(t, goto)| {
                vec![json!({ (if goto { "goto" } else { "jump" }): {"target": t} })]
            })
            .boxed()
    };
    prop_oneof![
        Just(vec![json!({"accept": null})]),
        Just(vec![json!({"drop": null})]),
        Just(vec![json!({"reject": {"type": "tcp reset"}})]),
        Just(vec![json!({"return": null})]),
        Just(vec![json!({"continue": null})]),
        Just(vec![json!({"counter": null})]),
        (0u64..3).prop_map(|v| vec![json!({"mangle": {"key": meta("mark"), "value": v}})]),
        jump,
        (0..PORTS).prop_map(|p| vec![json!({"vmap": {"key": payload("tcp", "dport"), "data": {"set": [[p, {"drop": null}], [{"range": [0, 3]}, {"accept": null}]]}}})]),
    ]
}

fn random_ruleset() -> impl Strategy<Value = Ruleset> {
    const CHAINS: usize = 4;
    let policies = proptest::collection::vec(prop_oneof![Just("accept"), Just("drop")], 2);
    let rules = (0..CHAINS)
        .map(|c| {
            proptest::collection::vec(
                (
                    proptest::collection::vec(match_stmt(), 0..3),
                    final_stmt(c, CHAINS),
                ),
                0..5,
            )
            .prop_map(move |rs| (c, rs))
        })
        .collect::<Vec<_>>();
    (policies, rules).prop_map(|(policies, per_chain)| {
        // c0 and c1 are base chains at the tested hook, c1 after c0; c2, c3 regular.
        let names: Vec<String> = (0..CHAINS).map(|c| format!("c{c}")).collect();
        let chains: Vec<(&str, Base)> = vec![
            (&names[0], Some(("input", -5, policies[0], "filter"))),
            (&names[1], Some(("input", 5, policies[1], "filter"))),
            (&names[2], None),
            (&names[3], None),
        ];
        let mut rules = Vec::new();
        for (c, rs) in per_chain {
            for (mut matches, fin) in rs {
                matches.extend(fin);
                rules.push((names[c].as_str(), Value::Array(matches)));
            }
        }
        ruleset(&chains, &rules, &[])
    })
}

fn universe_box(p: &Program) -> PacketBox {
    let ifaces = IntervalSet::from_points(IFACES.iter().map(|i| p.universe.index(i).unwrap()));
    first_packet(0, NFPROTO_IPV4)
        .with(Dim::Iif, ifaces)
        .with(Dim::Saddr, IntervalSet::range(BASE, BASE + ADDRS - 1))
        .with(Dim::Daddr, IntervalSet::point(BASE + 100))
        .with(
            Dim::L4proto,
            IntervalSet::from_points([PROTO_TCP, PROTO_UDP]),
        )
        .with(Dim::Dport, IntervalSet::range(0, PORTS - 1))
        .with(Dim::Sport, IntervalSet::point(40000))
        .with(
            Dim::CtState,
            IntervalSet::from_points([CT_NEW, CT_ESTABLISHED]),
        )
}

/// Whether a class holds the (original) packet: `meta mark set` rewrites the mark of
/// a class, and marks start as one value, so the mark dimension is not compared.
fn holds(class: &PacketBox, p: &Packet) -> bool {
    Dim::ALL
        .iter()
        .filter(|d| **d != Dim::Mark)
        .all(|&d| class.get(d).contains(p.get(d)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random packets: the class containing the packet has the packet's fate.
    #[test]
    fn classes_agree_with_single_packets(rs in random_ruleset(), picks in proptest::collection::vec((0..ADDRS, 0..PORTS, 0usize..2, 0usize..3, 0usize..2), 1..24)) {
        let p = program(&rs);
        let routes = Routes::Fixed(RouteTarget::Local);
        let outcomes = p.evaluate(universe_box(&p), &routes);
        for (a, port, proto, iif, ct) in picks {
            let mut pk = universe_box(&p).witness();
            pk.set(Dim::Saddr, BASE + a);
            pk.set(Dim::Dport, port);
            pk.set(Dim::L4proto, [PROTO_TCP, PROTO_UDP][proto]);
            pk.set(Dim::Iif, p.universe.index(IFACES[iif]).unwrap());
            pk.set(Dim::CtState, [CT_NEW, CT_ESTABLISHED][ct]);
            let (_, fate, _) = p.evaluate_packet(pk, &routes);
            let holders: Vec<_> = outcomes.iter().filter(|o| holds(&o.class, &pk)).collect();
            prop_assert_eq!(holders.len(), 1, "classes must partition the space");
            prop_assert_eq!(&holders[0].fate, &fate);
        }
    }

    /// Exhaustively over a small universe: every packet's fate equals its class's, and
    /// the classes cover the universe exactly once.
    #[test]
    fn classes_agree_with_brute_force(rs in random_ruleset()) {
        let p = program(&rs);
        let routes = Routes::Fixed(RouteTarget::Local);
        let space = universe_box(&p).with(Dim::Saddr, IntervalSet::range(BASE, BASE + 7)).with(Dim::Dport, IntervalSet::range(0, 7));
        let outcomes = p.evaluate(space.clone(), &routes);
        let total: u128 = outcomes.iter().map(|o| Dim::ALL.iter().map(|d| o.class.get(*d).count()).product::<u128>()).sum();
        let size: u128 = Dim::ALL.iter().map(|d| space.get(*d).count()).product();
        prop_assert_eq!(total, size);
        for saddr in space.get(Dim::Saddr).iter() {
            for dport in space.get(Dim::Dport).iter() {
                for proto in [PROTO_TCP, PROTO_UDP] {
                    for iif in space.get(Dim::Iif).iter() {
                        for ct in [CT_NEW, CT_ESTABLISHED] {
                            let mut pk = space.witness();
                            pk.set(Dim::Saddr, saddr);
                            pk.set(Dim::Dport, dport);
                            pk.set(Dim::L4proto, proto);
                            pk.set(Dim::Iif, iif);
                            pk.set(Dim::CtState, ct);
                            let (_, fate, _) = p.evaluate_packet(pk, &routes);
                            let class = outcomes.iter().find(|o| holds(&o.class, &pk));
                            prop_assert!(class.is_some());
                            prop_assert_eq!(&class.unwrap().fate, &fate);
                        }
                    }
                }
            }
        }
    }
}
