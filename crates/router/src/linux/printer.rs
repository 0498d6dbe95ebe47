//! Prints the typed ruleset as nft's text syntax, for people to read and for
//! `nft -f`. It understands exactly the subset [`super::ruleset`] builds and
//! refuses anything else, so it can never print something it did not mean; a
//! root test loads both forms into fresh namespaces and compares what nft lists.

use std::fmt::Write as _;

use nftables::expr::{Expression, MetaKey, NamedExpression, Payload, RTKey, SetItem};
use nftables::schema::{Chain, NfCmd, NfListObject, NfObject, Nftables, Rule, Set, SetTypeValue};
use nftables::stmt::{Counter, Operator, RejectType, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook, RejectCode};

use crate::RenderError;

/// The text form of an `add table / delete table / add ...` batch.
pub fn print(document: &Nftables<'_>) -> Result<String, RenderError> {
    let mut table: Option<(NfFamily, String)> = None;
    let mut sets: Vec<&Set> = Vec::new();
    let mut chains: Vec<(&Chain, Vec<&Rule>)> = Vec::new();
    for object in document.objects.iter() {
        let NfObject::CmdObject(command) = object else {
            return Err(unsupported("a list object (expected commands)"));
        };
        match command {
            NfCmd::Add(NfListObject::Table(t)) | NfCmd::Delete(NfListObject::Table(t)) => {
                let this = (t.family, t.name.to_string());
                if table.as_ref().is_some_and(|known| *known != this) {
                    return Err(unsupported("more than one table"));
                }
                table = Some(this);
            }
            NfCmd::Add(NfListObject::Set(s)) => sets.push(s),
            NfCmd::Add(NfListObject::Chain(c)) => chains.push((c, Vec::new())),
            NfCmd::Add(NfListObject::Rule(r)) => {
                let Some((_, rules)) = chains.iter_mut().find(|(c, _)| c.name == r.chain) else {
                    return Err(unsupported(&format!(
                        "a rule before its chain `{}`",
                        r.chain
                    )));
                };
                rules.push(r);
            }
            other => return Err(unsupported(&format!("the command {other:?}"))),
        }
    }
    let Some((family, name)) = table else {
        return Err(unsupported("a document without a table"));
    };
    let family = family_name(family)?;
    let mut out = String::new();
    // Declaring the table first makes the delete succeed on a fresh system, and
    // the whole file is one transaction: the old table is replaced atomically.
    let _ = writeln!(out, "table {family} {name}");
    let _ = writeln!(out, "delete table {family} {name}");
    let _ = writeln!(out, "table {family} {name} {{");
    let mut first = true;
    for set in sets {
        if !first {
            out.push('\n');
        }
        first = false;
        print_set(&mut out, set)?;
    }
    for (chain, rules) in chains {
        if !first {
            out.push('\n');
        }
        first = false;
        print_chain(&mut out, chain, &rules)?;
    }
    out.push_str("}\n");
    Ok(out)
}

fn print_set(out: &mut String, set: &Set) -> Result<(), RenderError> {
    let SetTypeValue::Single(kind) = &set.set_type else {
        return Err(unsupported("a concatenated set type"));
    };
    let kind = serde_json::to_value(kind).map_err(|e| RenderError::Printer(e.to_string()))?;
    let kind = kind.as_str().ok_or_else(|| unsupported("a set type"))?;
    let _ = writeln!(out, "\tset {} {{", set.name);
    let _ = writeln!(out, "\t\ttype {kind}");
    if let Some(elements) = &set.elem {
        let items: Result<Vec<String>, _> = elements
            .iter()
            .map(|e| expression(e, Context::Bare))
            .collect();
        let _ = writeln!(out, "\t\telements = {{ {} }}", items?.join(", "));
    }
    out.push_str("\t}\n");
    Ok(())
}

fn print_chain(out: &mut String, chain: &Chain, rules: &[&Rule]) -> Result<(), RenderError> {
    let _ = writeln!(out, "\tchain {} {{", chain.name);
    if let (Some(kind), Some(hook), Some(prio), Some(policy)) =
        (chain._type, chain.hook, chain.prio, chain.policy)
    {
        let kind = match kind {
            NfChainType::Filter => "filter",
            NfChainType::NAT => "nat",
            NfChainType::Route => "route",
        };
        let hook = match hook {
            NfHook::Prerouting => "prerouting",
            NfHook::Input => "input",
            NfHook::Forward => "forward",
            NfHook::Output => "output",
            NfHook::Postrouting => "postrouting",
            other => return Err(unsupported(&format!("the hook {other:?}"))),
        };
        let policy = match policy {
            NfChainPolicy::Accept => "accept",
            NfChainPolicy::Drop => "drop",
        };
        let _ = writeln!(
            out,
            "\t\ttype {kind} hook {hook} priority {prio}; policy {policy};"
        );
    }
    for rule in rules {
        let statements: Result<Vec<String>, _> = rule.expr.iter().map(statement).collect();
        let mut line = statements?.join(" ");
        if let Some(comment) = &rule.comment {
            if comment.contains('"') || comment.contains('\\') {
                return Err(unsupported("a comment with quotes or backslashes"));
            }
            let _ = write!(line, " comment \"{comment}\"");
        }
        let _ = writeln!(out, "\t\t{line}");
    }
    out.push_str("\t}\n");
    Ok(())
}

/// How a string on the right of a match is written: interface names are quoted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Bare,
    Quoted,
}

fn statement(s: &Statement) -> Result<String, RenderError> {
    Ok(match s {
        Statement::Accept(_) => "accept".into(),
        Statement::Drop(_) => "drop".into(),
        Statement::Counter(Counter::Anonymous(None)) => "counter".into(),
        Statement::Masquerade(None) => "masquerade".into(),
        Statement::Reject(Some(r)) => match (r._type, r.expr) {
            (Some(RejectType::ICMPX), Some(code)) => {
                format!("reject with icmpx {}", reject_code(code))
            }
            (Some(RejectType::TCPReset), None) => "reject with tcp reset".into(),
            _ => return Err(unsupported("this reject form")),
        },
        Statement::Mangle(m) => format!(
            "{} set {}",
            expression(&m.key, Context::Bare)?,
            expression(&m.value, Context::Bare)?
        ),
        Statement::Match(m) => {
            let left = expression(&m.left, Context::Bare)?;
            let context = match &m.left {
                Expression::Named(NamedExpression::Meta(meta))
                    if matches!(
                        meta.key,
                        MetaKey::Iifname | MetaKey::Oifname | MetaKey::Iif | MetaKey::Oif
                    ) =>
                {
                    Context::Quoted
                }
                _ => Context::Bare,
            };
            let flags = is_flag_type(&m.left);
            let (op, right) = match (m.op, &m.right) {
                // nft writes a flag test as `ct state a,b`, which lists as op "in".
                (Operator::IN, Expression::List(items)) if flags => {
                    let items: Result<Vec<String>, _> =
                        items.iter().map(|e| expression(e, Context::Bare)).collect();
                    ("", items?.join(","))
                }
                (Operator::IN, right) if flags => ("", expression(right, Context::Bare)?),
                (Operator::EQ, right) if !flags => ("", expression(right, context)?),
                (Operator::EQ, right) => ("== ", expression(right, context)?),
                (Operator::NEQ, right) => ("!= ", expression(right, context)?),
                (op, _) => return Err(unsupported(&format!("the operator {op:?} here"))),
            };
            format!("{left} {op}{right}")
        }
        other => return Err(unsupported(&format!("the statement {other:?}"))),
    })
}

fn is_flag_type(left: &Expression) -> bool {
    match left {
        Expression::Named(NamedExpression::CT(ct)) => ct.key == "state",
        Expression::Named(NamedExpression::Payload(Payload::PayloadField(p))) => {
            p.protocol == "tcp" && p.field == "flags"
        }
        _ => false,
    }
}

fn expression(e: &Expression, context: Context) -> Result<String, RenderError> {
    Ok(match e {
        Expression::String(s) => match context {
            Context::Quoted => {
                if s.contains('"') {
                    return Err(unsupported("a quoted string containing a quote"));
                }
                format!("\"{s}\"")
            }
            Context::Bare => s.to_string(),
        },
        Expression::Number(n) => n.to_string(),
        Expression::Named(named) => match named {
            NamedExpression::Meta(meta) => match meta.key {
                MetaKey::Iifname => "iifname".into(),
                MetaKey::Oifname => "oifname".into(),
                MetaKey::Iif => "iif".into(),
                MetaKey::Oif => "oif".into(),
                MetaKey::L4proto => "meta l4proto".into(),
                MetaKey::Nfproto => "meta nfproto".into(),
                other => return Err(unsupported(&format!("meta {other:?}"))),
            },
            NamedExpression::Payload(Payload::PayloadField(p)) => {
                format!("{} {}", p.protocol, p.field)
            }
            NamedExpression::CT(ct) if ct.family.is_none() && ct.dir.is_none() => {
                format!("ct {}", ct.key)
            }
            NamedExpression::Prefix(prefix) => {
                format!(
                    "{}/{}",
                    expression(&prefix.addr, Context::Bare)?,
                    prefix.len
                )
            }
            NamedExpression::Set(items) => {
                let items: Result<Vec<String>, _> = items
                    .iter()
                    .map(|item| match item {
                        SetItem::Element(e) => expression(e, context),
                        _ => Err(unsupported("a map element in an anonymous set")),
                    })
                    .collect();
                format!("{{ {} }}", items?.join(", "))
            }
            NamedExpression::TcpOption(option) => match &option.field {
                Some(field) => format!("tcp option {} {field}", option.name),
                None => format!("tcp option {}", option.name),
            },
            NamedExpression::RT(rt) if rt.family.is_none() => match rt.key {
                RTKey::MTU => "rt mtu".into(),
                RTKey::NextHop => "rt nexthop".into(),
                RTKey::ClassId => "rt classid".into(),
            },
            other => return Err(unsupported(&format!("the expression {other:?}"))),
        },
        other => return Err(unsupported(&format!("the expression {other:?}"))),
    })
}

fn reject_code(code: RejectCode) -> &'static str {
    match code {
        RejectCode::AdminProhibited => "admin-prohibited",
        RejectCode::PortUnreach => "port-unreachable",
        RejectCode::NoRoute => "no-route",
        RejectCode::HostUnreach => "host-unreachable",
        RejectCode::NetUnreach => "net-unreachable",
        RejectCode::ProtUnreach => "prot-unreachable",
        RejectCode::NetProhibited => "net-prohibited",
        RejectCode::HostProhibited => "host-prohibited",
        RejectCode::AddrUnreach => "addr-unreachable",
    }
}

fn family_name(family: NfFamily) -> Result<&'static str, RenderError> {
    Ok(match family {
        NfFamily::INet => "inet",
        NfFamily::IP => "ip",
        NfFamily::IP6 => "ip6",
        other => return Err(unsupported(&format!("the family {other:?}"))),
    })
}

fn unsupported(what: &str) -> RenderError {
    RenderError::Printer(format!("the printer does not support {what}"))
}
