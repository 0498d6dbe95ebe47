//! The structure of `nft -j list ruleset` (libnftables-json(5)): tables, chains, rules,
//! sets and maps. Rule statements stay as JSON here; `compile` turns the ones it
//! understands into conditions and keeps the rest as named unknowns.

use serde_json::Value;

use crate::VerifyError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFamily {
    Inet,
    Ip,
    Ip6,
    Bridge,
    Netdev,
    Arp,
}

impl TableFamily {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "inet" => Self::Inet,
            "ip" => Self::Ip,
            "ip6" => Self::Ip6,
            "bridge" => Self::Bridge,
            "netdev" => Self::Netdev,
            "arp" => Self::Arp,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inet => "inet",
            Self::Ip => "ip",
            Self::Ip6 => "ip6",
            Self::Bridge => "bridge",
            Self::Netdev => "netdev",
            Self::Arp => "arp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    Ingress,
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
    Egress,
}

impl Hook {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ingress" => Self::Ingress,
            "prerouting" => Self::Prerouting,
            "input" => Self::Input,
            "forward" => Self::Forward,
            "output" => Self::Output,
            "postrouting" => Self::Postrouting,
            "egress" => Self::Egress,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BaseChain {
    pub hook: Hook,
    pub prio: i64,
    /// `filter`, `nat` or `route`.
    pub kind: String,
    pub policy_drop: bool,
    /// netdev (and inet ingress) chains are bound to devices.
    pub devices: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub family: TableFamily,
    pub table: String,
    pub name: String,
    pub base: Option<BaseChain>,
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RawRule {
    pub handle: Option<u64>,
    pub comment: Option<String>,
    pub exprs: Vec<Value>,
}

/// A named set or map: its declared key type, and its elements as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedSet {
    pub family: TableFamily,
    pub table: String,
    pub name: String,
    pub key_type: Value,
    /// `Some` for maps (the data type, e.g. "verdict").
    pub map_type: Option<String>,
    pub elems: Vec<Value>,
}

/// A parsed ruleset: chains in file order (rules appended), named sets and maps.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ruleset {
    pub chains: Vec<Chain>,
    pub sets: Vec<NamedSet>,
}

impl Ruleset {
    /// Parse `nft -j list ruleset` output. Malformed JSON names line and column; a
    /// well-formed document with a wrong shape names the offending object.
    pub fn parse_json(text: &str) -> Result<Self, VerifyError> {
        let doc: Value = serde_json::from_str(text).map_err(|e| VerifyError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        Self::from_value(doc)
    }

    /// Build from a parsed document (consumed, so rule expressions are moved, not copied).
    pub fn from_value(mut doc: Value) -> Result<Self, VerifyError> {
        let items = doc
            .get_mut("nftables")
            .map(Value::take)
            .and_then(|v| match v {
                Value::Array(a) => Some(a),
                _ => None,
            })
            .ok_or_else(|| shape(0, "the document must be an object with an `nftables` array (`nft -j list ruleset`)"))?;
        let mut rs = Ruleset::default();
        let mut pending_rules = Vec::new();
        for (index, mut item) in items.into_iter().enumerate() {
            let Some(obj) = item.as_object_mut() else {
                return Err(shape(index, "every entry of `nftables` must be an object"));
            };
            let Some((kind, body)) = obj.iter_mut().next() else {
                return Err(shape(index, "empty object"));
            };
            // Command form (`nft -j -f`): {"add": {"rule": ...}} and friends.
            let command = match kind.as_str() {
                "add" | "create" | "insert" | "delete" | "destroy" | "flush" | "replace" => {
                    Some(kind.as_str())
                }
                _ => None,
            };
            let (verb, kind, body) = match command {
                Some(verb) => {
                    let Some((k, b)) = body.as_object_mut().and_then(|o| o.iter_mut().next())
                    else {
                        return Err(shape(index, &format!("`{verb}` needs an object")));
                    };
                    (verb, k.as_str(), b)
                }
                None => ("add", kind.as_str(), body),
            };
            match (verb, kind) {
                ("add" | "create", "chain") => {
                    let chain = parse_chain(index, body)?;
                    match rs.chains.iter_mut().find(|c| {
                        c.family == chain.family && c.table == chain.table && c.name == chain.name
                    }) {
                        Some(existing) if chain.base.is_some() => existing.base = chain.base,
                        Some(_) => {}
                        None => rs.chains.push(chain),
                    }
                }
                ("add" | "create" | "insert" | "replace", "rule") => {
                    let rule = parse_rule(index, body)?;
                    let key = (
                        family_of(index, body)?,
                        str_field(index, body, "table")?.to_string(),
                        str_field(index, body, "chain")?.to_string(),
                    );
                    let target = rs
                        .chains
                        .iter_mut()
                        .find(|c| c.family == key.0 && c.table == key.1 && c.name == key.2);
                    match (verb, target) {
                        ("insert", Some(c)) => c.rules.insert(0, rule),
                        ("replace", Some(c)) => match c
                            .rules
                            .iter_mut()
                            .find(|r| r.handle.is_some() && r.handle == rule.handle)
                        {
                            Some(r) => *r = rule,
                            None => {
                                return Err(shape(
                                    index,
                                    "replace names a rule handle that does not exist",
                                ));
                            }
                        },
                        (_, Some(c)) => c.rules.push(rule),
                        (_, None) => pending_rules.push((index, key, rule)),
                    }
                }
                ("add" | "create", "set" | "map") => {
                    rs.sets.push(parse_set(index, kind == "map", body)?)
                }
                ("delete" | "destroy", "table") | ("flush", "table") => {
                    let family = family_of(index, body)?;
                    let name = str_field(index, body, "name")?;
                    if verb == "flush" {
                        rs.chains
                            .iter_mut()
                            .filter(|c| c.family == family && c.table == name)
                            .for_each(|c| c.rules.clear());
                    } else {
                        rs.chains
                            .retain(|c| !(c.family == family && c.table == name));
                        rs.sets.retain(|s| !(s.family == family && s.table == name));
                    }
                }
                ("delete" | "destroy" | "flush", "chain") => {
                    let family = family_of(index, body)?;
                    let table = str_field(index, body, "table")?;
                    let name = str_field(index, body, "name")?;
                    let matches =
                        |c: &Chain| c.family == family && c.table == table && c.name == name;
                    if verb == "flush" {
                        rs.chains
                            .iter_mut()
                            .filter(|c| matches(c))
                            .for_each(|c| c.rules.clear());
                    } else {
                        rs.chains.retain(|c| !matches(c));
                    }
                }
                ("flush", "ruleset") => rs = Ruleset::default(),
                ("delete" | "destroy", "rule") => {
                    let family = family_of(index, body)?;
                    let table = str_field(index, body, "table")?;
                    let chain = str_field(index, body, "chain")?;
                    let handle = body.get("handle").and_then(Value::as_u64);
                    for c in rs
                        .chains
                        .iter_mut()
                        .filter(|c| c.family == family && c.table == table && c.name == chain)
                    {
                        c.rules.retain(|r| r.handle != handle);
                    }
                }
                // metainfo, table, flowtable, counter, quota, ct helper, limit ...: not
                // part of a verdict, or reached only through statements we report.
                _ => {}
            }
        }
        for (index, (family, table, chain), rule) in pending_rules {
            let target = rs
                .chains
                .iter_mut()
                .find(|c| c.family == family && c.table == table && c.name == chain)
                .ok_or_else(|| {
                    shape(
                        index,
                        &format!(
                            "rule refers to chain {} {table} {chain}, which is not declared",
                            family.as_str()
                        ),
                    )
                })?;
            target.rules.push(rule);
        }
        Ok(rs)
    }
}

fn parse_rule(index: usize, body: &mut Value) -> Result<RawRule, VerifyError> {
    let exprs = match body.get_mut("expr").map(Value::take) {
        Some(Value::Array(a)) => a,
        _ => return Err(shape(index, "a rule needs an `expr` array")),
    };
    Ok(RawRule {
        handle: body.get("handle").and_then(Value::as_u64),
        comment: body
            .get("comment")
            .and_then(Value::as_str)
            .map(str::to_string),
        exprs,
    })
}

fn shape(index: usize, message: &str) -> VerifyError {
    VerifyError::Shape {
        index,
        message: message.to_string(),
    }
}

fn str_field<'a>(index: usize, body: &'a Value, field: &str) -> Result<&'a str, VerifyError> {
    body.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| shape(index, &format!("missing string field `{field}`")))
}

fn family_of(index: usize, body: &Value) -> Result<TableFamily, VerifyError> {
    let name = str_field(index, body, "family")?;
    TableFamily::parse(name).ok_or_else(|| shape(index, &format!("unknown table family `{name}`")))
}

fn parse_chain(index: usize, body: &Value) -> Result<Chain, VerifyError> {
    let family = family_of(index, body)?;
    let table = str_field(index, body, "table")?.to_string();
    let name = str_field(index, body, "name")?.to_string();
    let base = match body.get("hook").and_then(Value::as_str) {
        None => None,
        Some(hook_name) => {
            let hook = Hook::parse(hook_name)
                .ok_or_else(|| shape(index, &format!("unknown hook `{hook_name}`")))?;
            let prio = match body.get("prio") {
                Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
                Some(Value::String(s)) => named_priority(s)
                    .ok_or_else(|| shape(index, &format!("unknown priority `{s}`")))?,
                _ => 0,
            };
            let devices = match body.get("dev").or_else(|| body.get("devices")) {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                _ => Vec::new(),
            };
            Some(BaseChain {
                hook,
                prio,
                kind: body
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("filter")
                    .to_string(),
                policy_drop: body.get("policy").and_then(Value::as_str) == Some("drop"),
                devices,
            })
        }
    };
    Ok(Chain {
        family,
        table,
        name,
        base,
        rules: Vec::new(),
    })
}

/// Standard priority names (nft(8) "CHAIN PRIORITIES", inet/ip/ip6 values).
fn named_priority(s: &str) -> Option<i64> {
    let (name, offset) = match s.find(['+', '-']) {
        Some(i) => (s[..i].trim(), s[i..].replace(' ', "").parse::<i64>().ok()?),
        None => (s.trim(), 0),
    };
    let base = match name {
        "raw" => -300,
        "mangle" => -150,
        "dstnat" => -100,
        "filter" => 0,
        "security" => 50,
        "srcnat" => 100,
        _ => return None,
    };
    Some(base + offset)
}

fn parse_set(index: usize, is_map: bool, body: &Value) -> Result<NamedSet, VerifyError> {
    Ok(NamedSet {
        family: family_of(index, body)?,
        table: str_field(index, body, "table")?.to_string(),
        name: str_field(index, body, "name")?.to_string(),
        key_type: body.get("type").cloned().unwrap_or(Value::Null),
        map_type: if is_map {
            Some(
                body.get("map")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
            )
        } else {
            None
        },
        elems: match body.get("elem") {
            Some(Value::Array(a)) => a.clone(),
            Some(other) => vec![other.clone()],
            None => Vec::new(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_names_line_and_column() {
        let err = Ruleset::parse_json("{\"nftables\": [\n  {\"table\": }\n]}").unwrap_err();
        match err {
            VerifyError::Json { line, column, .. } => assert_eq!((line, column), (2, 13)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rules_attach_to_declared_chains_and_unknown_chains_are_errors() {
        let ok = r#"{"nftables":[{"table":{"family":"inet","name":"t"}},
            {"chain":{"family":"inet","table":"t","name":"input","hook":"input","prio":"filter","policy":"drop","type":"filter"}},
            {"rule":{"family":"inet","table":"t","chain":"input","handle":4,"expr":[{"accept":null}]}}]}"#;
        let rs = Ruleset::parse_json(ok).unwrap();
        assert_eq!(rs.chains[0].rules.len(), 1);
        assert!(rs.chains[0].base.as_ref().unwrap().policy_drop);
        let bad = ok.replace("\"chain\":\"input\"", "\"chain\":\"nope\"");
        assert!(matches!(
            Ruleset::parse_json(&bad),
            Err(VerifyError::Shape { .. })
        ));
        assert_eq!(named_priority("dstnat - 5"), Some(-105));
    }
}
