//! Random single mutations of an nftables JSON document, for the differential test
//! of the static verifier against the live lab (issue 7): delete a rule, flip a
//! verdict, change a destination port, widen or narrow an address prefix, swap two
//! rules of a chain, flip a base chain's policy, or change an interface match.
//!
//! Deterministic: the randomness is an explicit, seeded [`Rng`], so a failing seed
//! reproduces exactly. Works on both the command form (`{"add": {"rule": ...}}`, what
//! sovereign renders) and the list form (`{"rule": ...}`, what `nft -j list` prints).

use std::net::Ipv4Addr;

use serde::Serialize;
use serde_json::{Value, json};

/// A small, fast, seedable generator (SplitMix64): the same seed, the same mutants,
/// on every machine and every version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        items.get(self.below(items.len()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    DeleteRule,
    FlipVerdict,
    ChangePort,
    ChangePrefix,
    SwapRules,
    ChainPolicy,
    ChangeInterface,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::DeleteRule,
        Kind::FlipVerdict,
        Kind::ChangePort,
        Kind::ChangePrefix,
        Kind::SwapRules,
        Kind::ChainPolicy,
        Kind::ChangeInterface,
    ];
}

/// Values a mutation may substitute: ports and interface names that matter in the
/// topology, so mutants change what probes see more often than random values would.
#[derive(Debug, Clone, Default)]
pub struct Palette {
    pub ports: Vec<u16>,
    pub interfaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mutant {
    pub kind: Kind,
    pub description: String,
    pub document: Value,
}

/// One random mutation of `document` (an `{"nftables": [...]}` document), or `None`
/// when the drawn kind has nothing to mutate. The mutant always differs from the input.
pub fn mutate(document: &Value, rng: &mut Rng, palette: &Palette) -> Option<Mutant> {
    let kind = *rng.pick(&Kind::ALL)?;
    let mut doc = document.clone();
    let description = {
        let commands = doc.get_mut("nftables")?.as_array_mut()?;
        match kind {
            Kind::DeleteRule => delete_rule(commands, rng)?,
            Kind::FlipVerdict => flip_verdict(commands, rng)?,
            Kind::ChangePort => change_port(commands, rng, &palette.ports)?,
            Kind::ChangePrefix => change_prefix(commands, rng)?,
            Kind::SwapRules => swap_rules(commands, rng)?,
            Kind::ChainPolicy => chain_policy(commands, rng)?,
            Kind::ChangeInterface => change_interface(commands, rng, &palette.interfaces)?,
        }
    };
    (doc != *document).then_some(Mutant {
        kind,
        description,
        document: doc,
    })
}

/// The object of a command of this kind: `{"add": {kind: ...}}` or `{kind: ...}`.
fn object<'a>(command: &'a Value, kind: &str) -> Option<&'a Value> {
    command
        .get("add")
        .and_then(|a| a.get(kind))
        .or_else(|| command.get(kind))
}

fn object_mut<'a>(command: &'a mut Value, kind: &str) -> Option<&'a mut Value> {
    if command.get("add").and_then(|a| a.get(kind)).is_some() {
        return command.get_mut("add")?.get_mut(kind);
    }
    command.get_mut(kind)
}

fn rule_indices(commands: &[Value]) -> Vec<usize> {
    (0..commands.len())
        .filter(|&i| object(&commands[i], "rule").is_some())
        .collect()
}

/// "rule 12 in forward (comment)": which rule, for the report.
fn describe_rule(rule: &Value, position: usize) -> String {
    let chain = rule.get("chain").and_then(Value::as_str).unwrap_or("?");
    match rule.get("comment").and_then(Value::as_str) {
        Some(comment) => format!("rule #{position} in {chain} \"{comment}\""),
        None => format!("rule #{position} in {chain}"),
    }
}

fn delete_rule(commands: &mut Vec<Value>, rng: &mut Rng) -> Option<String> {
    let indices = rule_indices(commands);
    let &i = rng.pick(&indices)?;
    let text = describe_rule(object(&commands[i], "rule")?, i);
    commands.remove(i);
    Some(format!("delete {text}"))
}

const VERDICTS: [&str; 3] = ["accept", "drop", "reject"];

fn flip_verdict(commands: &mut [Value], rng: &mut Rng) -> Option<String> {
    // (command, statement) of every verdict statement.
    let sites: Vec<(usize, usize)> = rule_indices(commands)
        .into_iter()
        .flat_map(|i| {
            let exprs = object(&commands[i], "rule")
                .and_then(|r| r.get("expr"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            exprs
                .iter()
                .enumerate()
                .filter(|(_, e)| VERDICTS.iter().any(|v| e.get(v).is_some()))
                .map(|(s, _)| (i, s))
                .collect::<Vec<_>>()
        })
        .collect();
    let &(i, s) = rng.pick(&sites)?;
    let text = describe_rule(object(&commands[i], "rule")?, i);
    let statement = &mut object_mut(&mut commands[i], "rule")?["expr"][s];
    let old = VERDICTS.into_iter().find(|v| statement.get(v).is_some())?;
    let others: Vec<&str> = VERDICTS.into_iter().filter(|v| *v != old).collect();
    let new = *rng.pick(&others)?;
    *statement = match new {
        "accept" => json!({"accept": null}),
        "drop" => json!({"drop": null}),
        // Both reject forms the renderer could write: ICMP admin-prohibited, or the
        // default (port unreachable; a TCP reset for TCP in nft's inet family).
        _ if rng.below(2) == 0 => json!({"reject": {"type": "icmpx", "expr": "admin-prohibited"}}),
        _ => json!({"reject": null}),
    };
    Some(format!("{old} -> {new} in {text}"))
}

/// Match statements `(command, statement)` whose left side satisfies `left`.
fn match_sites(commands: &[Value], left: impl Fn(&Value) -> bool) -> Vec<(usize, usize)> {
    let mut sites = Vec::new();
    for i in rule_indices(commands) {
        let Some(exprs) = object(&commands[i], "rule")
            .and_then(|r| r.get("expr"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for (s, e) in exprs.iter().enumerate() {
            if e.get("match")
                .and_then(|m| m.get("left"))
                .is_some_and(&left)
            {
                sites.push((i, s));
            }
        }
    }
    sites
}

fn payload_field(left: &Value, fields: &[&str]) -> bool {
    left.get("payload")
        .and_then(|p| p.get("field"))
        .and_then(Value::as_str)
        .is_some_and(|f| fields.contains(&f))
}

fn change_port(commands: &mut [Value], rng: &mut Rng, ports: &[u16]) -> Option<String> {
    let sites: Vec<(usize, usize)> = match_sites(commands, |l| payload_field(l, &["dport"]))
        .into_iter()
        .filter(|&(i, s)| {
            object(&commands[i], "rule").is_some_and(|r| r["expr"][s]["match"]["right"].is_u64())
        })
        .collect();
    let &(i, s) = rng.pick(&sites)?;
    let text = describe_rule(object(&commands[i], "rule")?, i);
    let right = &mut object_mut(&mut commands[i], "rule")?["expr"][s]["match"]["right"];
    let old = right.as_u64()?;
    let choices: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|p| u64::from(*p) != old)
        .collect();
    let new = match rng.pick(&choices) {
        Some(p) if rng.below(4) != 0 => *p,
        _ => 1024 + rng.below(60000) as u16,
    };
    *right = json!(new);
    Some(format!("dport {old} -> {new} in {text}"))
}

fn change_prefix(commands: &mut [Value], rng: &mut Rng) -> Option<String> {
    let sites: Vec<(usize, usize)> = match_sites(commands, |l| {
        payload_field(l, &["saddr", "daddr"])
            && l["payload"]["protocol"].as_str().is_some_and(|p| p == "ip")
    })
    .into_iter()
    .filter(|&(i, s)| {
        object(&commands[i], "rule")
            .is_some_and(|r| prefix_of(&r["expr"][s]["match"]["right"]).is_some())
    })
    .collect();
    let &(i, s) = rng.pick(&sites)?;
    let text = describe_rule(object(&commands[i], "rule")?, i);
    let right = &mut object_mut(&mut commands[i], "rule")?["expr"][s]["match"]["right"];
    let (address, len) = prefix_of(right)?;
    let narrow = len < 32 && rng.below(2) == 0;
    let step = 1 + rng.below(if narrow { (32 - len) as usize } else { 16 }) as u8;
    let new_len = if narrow {
        len + step
    } else {
        len.saturating_sub(step).max(8)
    };
    if new_len == len {
        return None;
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(new_len)).unwrap_or(0);
    let network = Ipv4Addr::from(u32::from(address) & mask);
    *right = if new_len == 32 {
        json!(network.to_string())
    } else {
        json!({"prefix": {"addr": network.to_string(), "len": new_len}})
    };
    let verb = if narrow { "narrow" } else { "widen" };
    Some(format!(
        "{verb} {address}/{len} -> {network}/{new_len} in {text}"
    ))
}

/// An address (`/32`) or a prefix on the right side of a match.
fn prefix_of(right: &Value) -> Option<(Ipv4Addr, u8)> {
    if let Some(text) = right.as_str() {
        return Some((text.parse().ok()?, 32));
    }
    let prefix = right.get("prefix")?;
    let address = prefix.get("addr")?.as_str()?.parse().ok()?;
    let len = u8::try_from(prefix.get("len")?.as_u64()?).ok()?;
    (len <= 32).then_some((address, len))
}

fn swap_rules(commands: &mut [Value], rng: &mut Rng) -> Option<String> {
    let chain_of = |i: usize| {
        object(&commands[i], "rule").map(|r| {
            (
                r["family"].to_string(),
                r["table"].to_string(),
                r["chain"].to_string(),
            )
        })
    };
    let indices = rule_indices(commands);
    let pairs: Vec<(usize, usize)> = indices
        .iter()
        .flat_map(|&a| indices.iter().map(move |&b| (a, b)))
        .filter(|&(a, b)| a < b && chain_of(a) == chain_of(b))
        .collect();
    let &(a, b) = rng.pick(&pairs)?;
    let text_a = describe_rule(object(&commands[a], "rule")?, a);
    let text_b = describe_rule(object(&commands[b], "rule")?, b);
    commands.swap(a, b);
    Some(format!("swap {text_a} and {text_b}"))
}

fn chain_policy(commands: &mut [Value], rng: &mut Rng) -> Option<String> {
    let chains: Vec<usize> = (0..commands.len())
        .filter(|&i| object(&commands[i], "chain").is_some_and(|c| c.get("policy").is_some()))
        .collect();
    let &i = rng.pick(&chains)?;
    let chain = object_mut(&mut commands[i], "chain")?;
    let old = chain["policy"].as_str()?.to_string();
    let new = if old == "accept" { "drop" } else { "accept" };
    chain["policy"] = json!(new);
    Some(format!(
        "policy {old} -> {new} of chain {}",
        chain["name"].as_str().unwrap_or("?")
    ))
}

fn change_interface(
    commands: &mut [Value],
    rng: &mut Rng,
    interfaces: &[String],
) -> Option<String> {
    let sites: Vec<(usize, usize)> = match_sites(commands, |l| {
        l.get("meta")
            .and_then(|m| m.get("key"))
            .and_then(Value::as_str)
            .is_some_and(|k| k == "iifname" || k == "oifname")
    })
    .into_iter()
    .filter(|&(i, s)| {
        object(&commands[i], "rule").is_some_and(|r| r["expr"][s]["match"]["right"].is_string())
    })
    .collect();
    let &(i, s) = rng.pick(&sites)?;
    let text = describe_rule(object(&commands[i], "rule")?, i);
    let statement = &mut object_mut(&mut commands[i], "rule")?["expr"][s]["match"];
    let key = statement["left"]["meta"]["key"].as_str()?.to_string();
    let old = statement["right"].as_str()?.to_string();
    let others: Vec<&String> = interfaces.iter().filter(|n| **n != old).collect();
    let new = (*rng.pick(&others)?).clone();
    statement["right"] = json!(new);
    Some(format!("{key} {old} -> {new} in {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        json!({"nftables": [
            {"add": {"table": {"family": "inet", "name": "t"}}},
            {"add": {"chain": {"family": "inet", "table": "t", "name": "forward", "type": "filter",
                               "hook": "forward", "prio": 0, "policy": "drop"}}},
            {"add": {"rule": {"family": "inet", "table": "t", "chain": "forward", "comment": "a",
                "expr": [
                    {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "wg0"}},
                    {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                               "right": "192.168.250.20"}},
                    {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                               "right": 11434}},
                    {"accept": null}]}}},
            {"add": {"rule": {"family": "inet", "table": "t", "chain": "forward", "comment": "b",
                "expr": [
                    {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                               "right": {"prefix": {"addr": "10.10.10.0", "len": 24}}}},
                    {"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]}}},
        ]})
    }

    fn palette() -> Palette {
        Palette {
            ports: vec![22, 80, 11434],
            interfaces: vec!["wan".into(), "wg0".into(), "br-lan".into()],
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_mutants() {
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..50)
                .filter_map(|_| mutate(&document(), &mut rng, &palette()))
                .map(|m| m.description)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn every_kind_applies_and_changes_the_document() {
        let mut seen = std::collections::BTreeSet::new();
        let mut rng = Rng::new(1);
        for _ in 0..500 {
            if let Some(m) = mutate(&document(), &mut rng, &palette()) {
                assert_ne!(m.document, document(), "{}", m.description);
                seen.insert(m.kind);
            }
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), Kind::ALL.to_vec());
    }

    #[test]
    fn prefixes_stay_valid_networks() {
        let mut rng = Rng::new(3);
        for _ in 0..300 {
            let mut commands = document()["nftables"].as_array().unwrap().clone();
            if change_prefix(&mut commands, &mut rng).is_none() {
                continue;
            }
            for command in &commands {
                let Some(rule) = object(command, "rule") else {
                    continue;
                };
                for e in rule["expr"].as_array().unwrap() {
                    if let Some((address, len)) = prefix_of(&e["match"]["right"]) {
                        let host_bits = u32::from(address)
                            & !u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                        assert_eq!(host_bits, 0, "{address}/{len}");
                        assert!((8..=32).contains(&len));
                    }
                }
            }
        }
    }

    #[test]
    fn a_flipped_verdict_is_a_different_verdict() {
        let mut rng = Rng::new(5);
        for _ in 0..50 {
            let mut commands = document()["nftables"].as_array().unwrap().clone();
            let text = flip_verdict(&mut commands, &mut rng).unwrap();
            let (old, new) = text.split_once(" -> ").unwrap();
            assert_ne!(old, new.split(' ').next().unwrap(), "{text}");
        }
    }
}
