//! Rules out of nftables JSON (`nft -j list ...` listings or `nft -j -f` command
//! documents), keyed by their comments.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NftRule {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub comment: Option<String>,
    /// The match/verdict expressions with counter values and handles removed, so two
    /// listings of the same rule compare equal.
    pub expr: Value,
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NftChain {
    pub family: String,
    pub table: String,
    pub name: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NftJsonError {
    #[error("not JSON: {0}")]
    Syntax(String),
    #[error("no top-level `nftables` array")]
    Shape,
}

/// Every rule in the document, in order.
pub fn rules(document: &Value) -> Result<Vec<NftRule>, NftJsonError> {
    Ok(objects(document, "rule")?
        .into_iter()
        .map(|rule| {
            let expr = rule
                .get("expr")
                .cloned()
                .unwrap_or(Value::Array(Vec::new()));
            let (packets, bytes) = counter(&expr);
            NftRule {
                family: text(rule, "family"),
                table: text(rule, "table"),
                chain: text(rule, "chain"),
                comment: rule
                    .get("comment")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                expr: normalized(expr),
                packets,
                bytes,
            }
        })
        .collect())
}

/// Every chain in the document.
pub fn chains(document: &Value) -> Result<Vec<NftChain>, NftJsonError> {
    Ok(objects(document, "chain")?
        .into_iter()
        .map(|chain| NftChain {
            family: text(chain, "family"),
            table: text(chain, "table"),
            name: text(chain, "name"),
        })
        .collect())
}

pub fn parse(text: &str) -> Result<Value, NftJsonError> {
    serde_json::from_str(text).map_err(|e| NftJsonError::Syntax(e.to_string()))
}

/// Whether the rule matches this destination port (as a value, a set, or a range).
pub fn matches_dport(rule: &NftRule, port: u16) -> bool {
    fn in_right(right: &Value, port: u16) -> bool {
        match right {
            Value::Number(n) => n.as_u64() == Some(u64::from(port)),
            Value::Object(map) => {
                if let Some(range) = map.get("range").and_then(Value::as_array)
                    && let [low, high] = &range[..]
                    && let (Some(low), Some(high)) = (low.as_u64(), high.as_u64())
                {
                    return (low..=high).contains(&u64::from(port));
                }
                map.get("set").is_some_and(|set| in_right(set, port))
            }
            Value::Array(items) => items.iter().any(|item| in_right(item, port)),
            _ => false,
        }
    }
    fn walk(value: &Value, port: u16) -> bool {
        match value {
            Value::Object(map) => {
                if let Some(m) = map.get("match") {
                    let left_is_dport = m
                        .get("left")
                        .and_then(|l| l.get("payload"))
                        .and_then(|p| p.get("field"))
                        .and_then(Value::as_str)
                        == Some("dport");
                    if left_is_dport && m.get("right").is_some_and(|r| in_right(r, port)) {
                        return true;
                    }
                }
                map.values().any(|v| walk(v, port))
            }
            Value::Array(items) => items.iter().any(|v| walk(v, port)),
            _ => false,
        }
    }
    walk(&rule.expr, port)
}

fn objects<'a>(
    document: &'a Value,
    kind: &str,
) -> Result<Vec<&'a serde_json::Map<String, Value>>, NftJsonError> {
    let items = document
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or(NftJsonError::Shape)?;
    Ok(items
        .iter()
        .filter_map(|item| {
            // A listing has {"rule": {...}}; a command document {"add": {"rule": {...}}}.
            let item = ["add", "create", "insert"]
                .iter()
                .find_map(|verb| item.get(*verb))
                .unwrap_or(item);
            item.get(kind).and_then(Value::as_object)
        })
        .collect())
}

fn text(object: &serde_json::Map<String, Value>, key: &str) -> String {
    object
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn counter(expr: &Value) -> (Option<u64>, Option<u64>) {
    let found = expr.as_array().into_iter().flatten().find_map(|e| {
        let c = e.get("counter")?;
        Some((
            c.get("packets").and_then(Value::as_u64),
            c.get("bytes").and_then(Value::as_u64),
        ))
    });
    found.unwrap_or((None, None))
}

fn normalized(expr: Value) -> Value {
    match expr {
        Value::Array(items) => Value::Array(items.into_iter().map(normalized).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| k != "handle")
                .map(|(k, v)| {
                    if k == "counter" {
                        (k, Value::Null)
                    } else {
                        (k, normalized(v))
                    }
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_listings_and_command_documents_alike() {
        let listing = json!({"nftables": [
            {"metainfo": {"json_schema_version": 1}},
            {"chain": {"family": "inet", "table": "sovereign", "name": "input", "handle": 1}},
            {"rule": {"family": "inet", "table": "sovereign", "chain": "input", "handle": 7,
                "comment": "sovereign:wg",
                "expr": [
                    {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 51820}},
                    {"counter": {"packets": 3, "bytes": 456}},
                    {"accept": null}]}}
        ]});
        let commands = json!({"nftables": [
            {"add": {"rule": {"family": "inet", "table": "sovereign", "chain": "input",
                "comment": "sovereign:wg",
                "expr": [
                    {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 51820}},
                    {"counter": {"packets": 0, "bytes": 0}},
                    {"accept": null}]}}}
        ]});
        let live = rules(&listing).unwrap();
        let rendered = rules(&commands).unwrap();
        assert_eq!(live[0].expr, rendered[0].expr);
        assert_eq!((live[0].packets, live[0].bytes), (Some(3), Some(456)));
        assert_eq!(live[0].comment.as_deref(), Some("sovereign:wg"));
        assert!(matches_dport(&live[0], 51820));
        assert!(!matches_dport(&live[0], 11434));
        assert_eq!(chains(&listing).unwrap()[0].name, "input");
    }

    #[test]
    fn dport_sets_and_ranges_match() {
        let rule = |right: Value| NftRule {
            family: "inet".into(),
            table: "t".into(),
            chain: "c".into(),
            comment: None,
            expr: json!([{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": right}}]),
            packets: None,
            bytes: None,
        };
        assert!(matches_dport(&rule(json!({"set": [22, 11434]})), 11434));
        assert!(matches_dport(
            &rule(json!({"range": [11000, 12000]})),
            11434
        ));
        assert!(!matches_dport(&rule(json!({"set": [22]})), 11434));
    }

    #[test]
    fn a_document_without_nftables_is_an_error() {
        assert_eq!(rules(&json!({"x": 1})), Err(NftJsonError::Shape));
    }
}
