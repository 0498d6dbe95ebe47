//! Malformed input never panics: random and mutated nft JSON and UCI go through the
//! parsers and, when they parse, through the whole verifier. Case counts follow
//! PROPTEST_CASES (default 256 per property).

use proptest::prelude::*;
use serde_json::{Value, json};
use sovereign_model::Deployment;
use sovereign_verify::*;

fn lab_json() -> String {
    std::fs::read_to_string("tests/fixtures/lab-ruleset.json").unwrap()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("tests/fixtures/fw4-reference/{name}")).unwrap()
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, char),
    Replace(usize, char),
    Duplicate(usize, usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), proptest::char::any()).prop_map(|(a, c)| Edit::Insert(a, c)),
        (
            any::<usize>(),
            prop_oneof![
                Just('{'),
                Just('}'),
                Just('['),
                Just(']'),
                Just('"'),
                Just(','),
                Just(':'),
                Just('0'),
                Just('-')
            ]
        )
            .prop_map(|(a, c)| Edit::Replace(a, c)),
        (any::<usize>(), 0usize..200).prop_map(|(a, n)| Edit::Duplicate(a, n)),
    ];
    proptest::collection::vec(edit, 1..6)
}

fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let len = chars.len().max(1);
        match *e {
            Edit::Delete(a, n) => {
                let a = a % len;
                let b = (a + n).min(chars.len());
                chars.drain(a.min(chars.len())..b);
            }
            Edit::Insert(a, c) => chars.insert(a % (chars.len() + 1), c),
            Edit::Replace(a, c) => {
                if !chars.is_empty() {
                    chars[a % len] = c;
                }
            }
            Edit::Duplicate(a, n) => {
                let a = a % len;
                let b = (a + n).min(chars.len());
                let slice: Vec<char> = chars[a.min(chars.len())..b].to_vec();
                let at = b.min(chars.len());
                chars.splice(at..at, slice);
            }
        }
    }
    chars.into_iter().collect()
}

/// nft-shaped JSON built from the vocabulary the evaluator knows, and some it does not.
fn nftish() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("match"),
        Just("payload"),
        Just("meta"),
        Just("ct"),
        Just("set"),
        Just("prefix"),
        Just("range"),
        Just("concat"),
        Just("&"),
        Just("vmap"),
        Just("jump"),
        Just("goto"),
        Just("accept"),
        Just("drop"),
        Just("dnat"),
        Just("limit"),
        Just("mangle"),
        Just("elem"),
        Just("key"),
        Just("left"),
        Just("right"),
        Just("op"),
        Just("protocol"),
        Just("field"),
        Just("addr"),
        Just("len"),
        Just("target"),
        Just("data"),
        Just("fib"),
        Just("xt"),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        prop_oneof![
            Just("tcp"),
            Just("ip"),
            Just("saddr"),
            Just("dport"),
            Just("iifname"),
            Just("lan*"),
            Just("@lan_admins"),
            Just("=="),
            Just("!="),
            Just("in"),
            Just("<"),
            Just("10.0.0.0"),
            Just("::1"),
            Just("established"),
            Just("syn"),
            Just("input"),
            Just("nope"),
            Just("@missing"),
            Just(""),
            Just("*")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..3).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

fn lab_deployment() -> Deployment {
    let mut d = Deployment::reference();
    d.wan.interface = "wan".into();
    d.lan.interface = "lan-dev".into();
    d.server.router_port = "lan-ai".into();
    d
}

proptest! {
    #[test]
    fn random_text_is_never_a_panic(text in ".{0,400}") {
        let _ = verify_nft_json(&Deployment::reference(), &text);
        let _ = verify_uci(&Deployment::reference(), &text, &text);
    }

    #[test]
    fn mutated_nft_json_is_never_a_panic(e in edits()) {
        let text = mutate(&lab_json(), &e);
        if let Ok(report) = verify_nft_json(&lab_deployment(), &text) {
            let _ = render_table(&report, true);
        }
    }

    #[test]
    fn random_rule_expressions_are_never_a_panic(exprs in proptest::collection::vec(nftish(), 1..4), chain in prop_oneof![Just("input"), Just("forward")]) {
        let mut doc: Value = serde_json::from_str(&lab_json()).unwrap();
        doc["nftables"].as_array_mut().unwrap().push(json!({"rule": {"family": "inet", "table": "lab", "chain": chain, "handle": 999, "expr": exprs}}));
        let report = verify_nft_json(&lab_deployment(), &doc.to_string());
        prop_assert!(report.is_ok(), "a strange expression is unknown, not a parse failure: {:?}", report.err());
    }

    #[test]
    fn mutated_uci_is_never_a_panic(e in edits(), which in any::<bool>()) {
        let (mut firewall, mut network) = (fixture("firewall"), fixture("network"));
        if which { firewall = mutate(&firewall, &e) } else { network = mutate(&network, &e) }
        if let Ok(report) = verify_uci(&Deployment::reference(), &firewall, &network) {
            let _ = render_html(&report, &Deployment::reference());
        }
    }
}
