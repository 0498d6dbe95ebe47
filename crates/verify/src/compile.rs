//! nft JSON statements -> conditions over packet dimensions and actions. Whatever is
//! not understood becomes `Stmt::Unknown` naming the expression, so evaluation can say
//! "unknown" for exactly the packets that reach it, never guess.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::interval::IntervalSet;
use crate::nft::{BaseChain, Ruleset, TableFamily};
use crate::space::*;

/// A ruleset compiled against one interface universe.
#[derive(Debug, Clone)]
pub struct Program {
    pub chains: Vec<CChain>,
    pub universe: Universe,
}

#[derive(Debug, Clone)]
pub struct CChain {
    pub family: TableFamily,
    pub table: String,
    pub name: String,
    pub base: Option<BaseChain>,
    pub rules: Vec<CRule>,
}

#[derive(Debug, Clone)]
pub struct CRule {
    pub handle: Option<u64>,
    pub comment: Option<String>,
    pub stmts: Vec<Stmt>,
    /// A compact nft-like rendering, for traces.
    pub text: String,
}

#[derive(Debug, Clone)]
pub enum Stmt {
    /// Matches when `deps` hold (the protocol headers exist) and `cond` holds, or does
    /// not hold when `negated`.
    Match {
        deps: Cond,
        cond: Cond,
        negated: bool,
    },
    /// A bitwise test evaluated on the concrete values a class has in `dim`
    /// (possible only when that set is small, e.g. a mark).
    Masked {
        deps: Cond,
        dim: Dim,
        mask: u128,
        test: MaskTest,
    },
    Verdict(Verdict),
    Vmap {
        deps: Cond,
        arms: Vec<(Cond, Verdict)>,
    },
    Dnat {
        addr: Option<u128>,
        /// The new destination port, or a range of them (`to ADDR:P1-P2`): the
        /// kernel picks one per connection, so the class may end on any.
        port: Option<(u128, u128)>,
    },
    /// snat / masquerade: recorded, and terminal like accept.
    SourceNat(String),
    SetField(Dim, u128),
    Notrack,
    /// counter, log, flow offload, set updates ...: no effect on this packet's verdict.
    Noop,
    /// A rate limit: assumed not exceeded (the first packet of a flow under normal load).
    Assume(String),
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskTest {
    Eq(IntervalSet),
    Ne(IntervalSet),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Reject,
    Jump(usize),
    Goto(usize),
    Return,
    Continue,
    /// A jump to a chain that does not exist, a queue to userspace ...
    Unknown(String),
}

impl Program {
    pub fn compile(rs: &Ruleset, universe: Universe) -> Program {
        let mut chains: Vec<CChain> = rs
            .chains
            .iter()
            .map(|c| CChain {
                family: c.family,
                table: c.table.clone(),
                name: c.name.clone(),
                base: c.base.clone(),
                rules: Vec::new(),
            })
            .collect();
        for (ci, chain) in rs.chains.iter().enumerate() {
            let ctx = Ctx {
                rs,
                universe: &universe,
                family: chain.family,
                table: &chain.table,
            };
            chains[ci].rules = chain
                .rules
                .iter()
                .map(|r| CRule {
                    handle: r.handle,
                    comment: r.comment.clone(),
                    stmts: r.exprs.iter().map(|e| ctx.stmt(e)).collect(),
                    text: r
                        .exprs
                        .iter()
                        .map(render_stmt)
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" "),
                })
                .collect();
        }
        Program { chains, universe }
    }

    pub fn chain_label(&self, index: usize) -> String {
        let c = &self.chains[index];
        format!("{} {} {}", c.family.as_str(), c.table, c.name)
    }
}

struct Ctx<'a> {
    rs: &'a Ruleset,
    universe: &'a Universe,
    family: TableFamily,
    table: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ipv4,
    Ipv6,
    Port,
    L4proto,
    Nfproto,
    Ethertype,
    Icmp,
    Icmpv6,
    /// `icmp code` / `icmpv6 code`: numbers, or the names nft prints for them.
    IcmpCode,
    Icmpv6Code,
    Number,
    Iface,
    CtState,
    CtStatus,
    TcpFlags,
}

impl Kind {
    fn is_flags(self) -> bool {
        matches!(self, Kind::CtState | Kind::CtStatus | Kind::TcpFlags)
    }
}

/// A packet field: the dimension it reads and the headers it needs.
#[derive(Debug, Clone)]
struct Field {
    dim: Dim,
    kind: Kind,
    deps: Cond,
    bits: u32,
}

impl Ctx<'_> {
    fn stmt(&self, e: &Value) -> Stmt {
        let Some((key, body)) = e.as_object().and_then(|o| o.iter().next()) else {
            return Stmt::Unknown(format!("statement {}", compact(e)));
        };
        match key.as_str() {
            "match" => self.match_stmt(body).unwrap_or_else(Stmt::Unknown),
            "accept" | "drop" | "reject" | "return" | "continue" | "jump" | "goto" | "queue" => {
                Stmt::Verdict(self.verdict(e))
            }
            "vmap" => self.vmap(body).unwrap_or_else(Stmt::Unknown),
            "counter" | "log" | "flow" | "set" | "ct helper" | "ct timeout" | "ct expectation"
            | "secmark" => Stmt::Noop,
            "limit" => Stmt::Assume(format!("rate limit {} assumed not exceeded", compact(body))),
            "notrack" => Stmt::Notrack,
            "dnat" => self.dnat(body).unwrap_or_else(Stmt::Unknown),
            "snat" | "masquerade" => Stmt::SourceNat(format!("{key} {}", render_value(body))),
            "mangle" => self.mangle(body),
            _ => Stmt::Unknown(format!("statement `{key}`: {}", compact(body))),
        }
    }

    fn verdict(&self, e: &Value) -> Verdict {
        let Some((key, body)) = e.as_object().and_then(|o| o.iter().next()) else {
            return Verdict::Unknown(format!("verdict {}", compact(e)));
        };
        let target = |body: &Value| {
            body.get("target")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        match key.as_str() {
            "accept" => Verdict::Accept,
            "drop" => Verdict::Drop,
            "reject" => Verdict::Reject,
            "return" => Verdict::Return,
            "continue" => Verdict::Continue,
            "jump" | "goto" => {
                let Some(name) = target(body) else {
                    return Verdict::Unknown(format!("{key} without target"));
                };
                match self.chain_index(&name) {
                    Some(i) if key == "jump" => Verdict::Jump(i),
                    Some(i) => Verdict::Goto(i),
                    None => Verdict::Unknown(format!("{key} to undeclared chain `{name}`")),
                }
            }
            _ => Verdict::Unknown(format!("verdict `{key}` ({})", compact(body))),
        }
    }

    fn chain_index(&self, name: &str) -> Option<usize> {
        self.rs
            .chains
            .iter()
            .position(|c| c.family == self.family && c.table == self.table && c.name == name)
    }

    fn field(&self, left: &Value) -> Result<Field, String> {
        let unknown = || format!("expression {}", compact(left));
        let obj = left.as_object().ok_or_else(unknown)?;
        let (key, body) = obj.iter().next().ok_or_else(unknown)?;
        let fam = |v: u128| Cond::dim(Dim::Family, IntervalSet::point(v));
        let proto =
            |ps: &[u128]| Cond::dim(Dim::L4proto, IntervalSet::from_points(ps.iter().copied()));
        let f = |dim, kind, deps, bits| {
            Ok(Field {
                dim,
                kind,
                deps,
                bits,
            })
        };
        match key.as_str() {
            "meta" => {
                let k = body
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(unknown)?;
                match k {
                    "iifname" | "iif" => f(Dim::Iif, Kind::Iface, Cond::always(), 16),
                    "oifname" | "oif" => f(Dim::Oif, Kind::Iface, Cond::always(), 16),
                    "l4proto" => f(Dim::L4proto, Kind::L4proto, Cond::always(), 8),
                    "nfproto" => f(Dim::Family, Kind::Nfproto, Cond::always(), 8),
                    "protocol" => f(Dim::Family, Kind::Ethertype, Cond::always(), 8),
                    "mark" => f(Dim::Mark, Kind::Number, Cond::always(), 32),
                    _ => Err(format!("meta {k}")),
                }
            }
            "ct" => {
                if body.get("dir").is_some() {
                    return Err(unknown());
                }
                match body.get("key").and_then(Value::as_str) {
                    Some("state") => f(Dim::CtState, Kind::CtState, Cond::always(), 8),
                    Some("status") => f(Dim::CtDnat, Kind::CtStatus, Cond::always(), 8),
                    Some("mark") => f(Dim::CtMark, Kind::Number, Cond::always(), 32),
                    Some(k) => Err(format!("ct {k}")),
                    None => Err(unknown()),
                }
            }
            "payload" => {
                let (Some(p), Some(field)) = (
                    body.get("protocol").and_then(Value::as_str),
                    body.get("field").and_then(Value::as_str),
                ) else {
                    return Err(format!("raw payload {}", compact(body)));
                };
                let v4 = fam(NFPROTO_IPV4);
                let v6 = fam(NFPROTO_IPV6);
                match (p, field) {
                    ("ip", "saddr") => f(Dim::Saddr, Kind::Ipv4, v4, 32),
                    ("ip", "daddr") => f(Dim::Daddr, Kind::Ipv4, v4, 32),
                    ("ip", "protocol") => f(Dim::L4proto, Kind::L4proto, v4, 8),
                    ("ip6", "saddr") => f(Dim::Saddr, Kind::Ipv6, v6, 128),
                    ("ip6", "daddr") => f(Dim::Daddr, Kind::Ipv6, v6, 128),
                    ("ip6", "nexthdr") => f(Dim::L4proto, Kind::L4proto, v6, 8),
                    ("tcp", "sport") => f(Dim::Sport, Kind::Port, proto(&[PROTO_TCP]), 16),
                    ("tcp", "dport") => f(Dim::Dport, Kind::Port, proto(&[PROTO_TCP]), 16),
                    ("tcp", "flags") => f(Dim::TcpFlags, Kind::TcpFlags, proto(&[PROTO_TCP]), 8),
                    ("udp", "sport") => f(Dim::Sport, Kind::Port, proto(&[PROTO_UDP]), 16),
                    ("udp", "dport") => f(Dim::Dport, Kind::Port, proto(&[PROTO_UDP]), 16),
                    ("udplite", "sport") => f(Dim::Sport, Kind::Port, proto(&[136]), 16),
                    ("udplite", "dport") => f(Dim::Dport, Kind::Port, proto(&[136]), 16),
                    ("sctp", "sport") => f(Dim::Sport, Kind::Port, proto(&[132]), 16),
                    ("sctp", "dport") => f(Dim::Dport, Kind::Port, proto(&[132]), 16),
                    ("dccp", "sport") => f(Dim::Sport, Kind::Port, proto(&[33]), 16),
                    ("dccp", "dport") => f(Dim::Dport, Kind::Port, proto(&[33]), 16),
                    ("th", "sport") => f(
                        Dim::Sport,
                        Kind::Port,
                        proto(&[PROTO_TCP, PROTO_UDP, 33, 132, 136]),
                        16,
                    ),
                    ("th", "dport") => f(
                        Dim::Dport,
                        Kind::Port,
                        proto(&[PROTO_TCP, PROTO_UDP, 33, 132, 136]),
                        16,
                    ),
                    ("icmp", "type") => {
                        f(Dim::IcmpType, Kind::Icmp, v4.and(&proto(&[PROTO_ICMP])), 8)
                    }
                    ("icmp", "code") => f(
                        Dim::IcmpCode,
                        Kind::IcmpCode,
                        v4.and(&proto(&[PROTO_ICMP])),
                        8,
                    ),
                    ("icmpv6", "type") => f(
                        Dim::IcmpType,
                        Kind::Icmpv6,
                        v6.and(&proto(&[PROTO_ICMPV6])),
                        8,
                    ),
                    ("icmpv6", "code") => f(
                        Dim::IcmpCode,
                        Kind::Icmpv6Code,
                        v6.and(&proto(&[PROTO_ICMPV6])),
                        8,
                    ),
                    _ => Err(format!("{p} {field}")),
                }
            }
            _ => Err(unknown()),
        }
    }

    fn match_stmt(&self, body: &Value) -> Result<Stmt, String> {
        let op = body.get("op").and_then(Value::as_str).unwrap_or("==");
        let left = body.get("left").ok_or("match without left side")?;
        let right = body.get("right").ok_or("match without right side")?;
        if let Some(parts) = left.get("concat").and_then(Value::as_array) {
            let fields = parts
                .iter()
                .map(|p| self.field(p))
                .collect::<Result<Vec<_>, _>>()?;
            let deps = fields
                .iter()
                .fold(Cond::always(), |acc, f| acc.and(&f.deps));
            let cond = self.concat_values(&fields, right)?;
            let negated = match op {
                "==" | "in" => false,
                "!=" => true,
                _ => return Err(format!("operator `{op}` on a concatenation")),
            };
            return Ok(Stmt::Match {
                deps,
                cond,
                negated,
            });
        }
        if let Some(and) = left.get("&").and_then(Value::as_array) {
            let [inner, mask] = and.as_slice() else {
                return Err(format!("expression {}", compact(left)));
            };
            let field = self.field(inner)?;
            let mask = self.flag_or_number(field.kind, mask)?;
            let values = self.values(&field, right)?;
            return self.masked(field, mask, op, values);
        }
        let field = self.field(left)?;
        if field.kind.is_flags() {
            return self.flags_match(field, op, right);
        }
        let values = self.values(&field, right)?;
        let (cond, negated) = match op {
            "==" | "in" => (values, false),
            "!=" => (values, true),
            "<" | "<=" | ">" | ">=" => {
                let v = values.first().ok_or("comparison with an empty value")?;
                let max = field_max(&field);
                let set = match op {
                    "<" if v == 0 => IntervalSet::empty(),
                    "<" => IntervalSet::range(0, v - 1),
                    "<=" => IntervalSet::range(0, v),
                    ">" => IntervalSet::range(v.saturating_add(1), max),
                    _ => IntervalSet::range(v, max),
                };
                (set, false)
            }
            _ => return Err(format!("operator `{op}`")),
        };
        Ok(Stmt::Match {
            deps: field.deps.clone(),
            cond: Cond::dim(field.dim, cond),
            negated,
        })
    }

    /// Flag types (ct state, ct status, tcp flags): a bare value or list is a bitmask
    /// ("any of these bits"), a set is membership.
    fn flags_match(&self, field: Field, op: &str, right: &Value) -> Result<Stmt, String> {
        let is_set =
            right.get("set").is_some() || right.as_str().is_some_and(|s| s.starts_with('@'));
        if is_set {
            let values = self.values(&field, right)?;
            let values = self.flag_domain(&field, |v| values.contains(v));
            return Ok(Stmt::Match {
                deps: field.deps.clone(),
                cond: Cond::dim(field.dim, values),
                negated: op == "!=",
            });
        }
        let mask = self.flag_or_number(field.kind, right)?;
        let (set, negated) = match op {
            "in" => (self.flag_domain(&field, |v| v & mask != 0), false),
            "==" => (self.flag_domain(&field, |v| v == mask), false),
            "!=" => (self.flag_domain(&field, |v| v & mask != 0), true),
            _ => return Err(format!("operator `{op}` on {}", field.dim.name())),
        };
        Ok(Stmt::Match {
            deps: field.deps.clone(),
            cond: Cond::dim(field.dim, set),
            negated,
        })
    }

    /// The dimension values whose flag value satisfies `pred`. `ct status` is modelled
    /// through its dnat bit only (the first packet is not yet confirmed or seen-reply).
    fn flag_domain(&self, field: &Field, pred: impl Fn(u128) -> bool) -> IntervalSet {
        match field.kind {
            Kind::CtStatus => {
                IntervalSet::from_points((0..=1).filter(|d| pred(d * CT_STATUS_DNAT)))
            }
            _ => IntervalSet::from_points((0..=field.dim.max()).filter(|v| pred(*v))),
        }
    }

    fn masked(
        &self,
        field: Field,
        mask: u128,
        op: &str,
        values: IntervalSet,
    ) -> Result<Stmt, String> {
        let negated = match op {
            "==" | "in" => false,
            "!=" => true,
            _ => return Err(format!("operator `{op}` after a bitmask")),
        };
        let max = field_max(&field);
        if field.kind.is_flags() || max <= u16::MAX as u128 {
            let set = self.flag_domain(&field, |v| values.contains(v & mask));
            return Ok(Stmt::Match {
                deps: field.deps,
                cond: Cond::dim(field.dim, set),
                negated,
            });
        }
        // A prefix-shaped mask (contiguous high bits) is a range per value.
        let inverse = max & !mask;
        if mask & inverse == 0 && inverse.wrapping_add(1) & inverse == 0 {
            let ranges = values
                .iter()
                .take(4096)
                .filter(|v| v & inverse == 0)
                .map(|v| (v, v | inverse));
            return Ok(Stmt::Match {
                deps: field.deps,
                cond: Cond::dim(field.dim, IntervalSet::from_ranges(ranges)),
                negated,
            });
        }
        let test = if negated {
            MaskTest::Ne(values)
        } else {
            MaskTest::Eq(values)
        };
        Ok(Stmt::Masked {
            deps: field.deps,
            dim: field.dim,
            mask,
            test,
        })
    }

    fn vmap(&self, body: &Value) -> Result<Stmt, String> {
        let key = body.get("key").ok_or("vmap without key")?;
        let data = body.get("data").ok_or("vmap without data")?;
        let fields: Vec<Field> = match key.get("concat").and_then(Value::as_array) {
            Some(parts) => parts
                .iter()
                .map(|p| self.field(p))
                .collect::<Result<_, _>>()?,
            None => vec![self.field(key)?],
        };
        let deps = fields
            .iter()
            .fold(Cond::always(), |acc, f| acc.and(&f.deps));
        let elems: Vec<Value> = match data {
            Value::String(s) if s.starts_with('@') => self.named_set(&s[1..])?.elems.clone(),
            other => other
                .get("set")
                .and_then(Value::as_array)
                .cloned()
                .ok_or_else(|| format!("vmap data {}", compact(other)))?,
        };
        let mut arms = Vec::new();
        for elem in &elems {
            let pair = elem
                .as_array()
                .ok_or_else(|| format!("vmap element {}", compact(elem)))?;
            let [k, v] = pair.as_slice() else {
                return Err(format!("vmap element {}", compact(elem)));
            };
            let cond = if fields.len() == 1 {
                let f = &fields[0];
                let set = if f.kind.is_flags() {
                    let vals = self.values(f, k)?;
                    self.flag_domain(f, |x| vals.contains(x))
                } else {
                    self.values(f, k)?
                };
                Cond::dim(f.dim, set)
            } else {
                self.concat_values(&fields, &Value::Array(vec![k.clone()]))?
            };
            arms.push((cond, self.verdict(v)));
        }
        Ok(Stmt::Vmap { deps, arms })
    }

    fn dnat(&self, body: &Value) -> Result<Stmt, String> {
        let addr = match body.get("addr") {
            None => None,
            Some(Value::String(s)) => {
                Some(parse_addr(s).ok_or_else(|| format!("dnat address `{s}`"))?)
            }
            Some(other) => return Err(format!("dnat to {}", compact(other))),
        };
        let number = |v: &Value| v.as_u64().map(u128::from).ok_or("dnat port");
        let port = match body.get("port") {
            None => None,
            Some(n @ Value::Number(_)) => Some((number(n)?, number(n)?)),
            Some(Value::Object(o)) if o.contains_key("range") => match o["range"].as_array() {
                Some(ends) if ends.len() == 2 => Some((number(&ends[0])?, number(&ends[1])?)),
                _ => return Err(format!("dnat port {}", compact(&body["port"]))),
            },
            Some(other) => return Err(format!("dnat port {}", compact(other))),
        };
        Ok(Stmt::Dnat { addr, port })
    }

    fn mangle(&self, body: &Value) -> Stmt {
        let Some(key) = body.get("key") else {
            return Stmt::Unknown(format!("mangle {}", compact(body)));
        };
        let value = body.get("value").and_then(Value::as_u64);
        match self.field(key) {
            Ok(f) if matches!(f.dim, Dim::Mark | Dim::CtMark) => match value {
                Some(v) => Stmt::SetField(f.dim, v as u128),
                None => Stmt::Unknown(format!("{} set {}", f.dim.name(), compact(&body["value"]))),
            },
            // Rewriting a field the verdict depends on is not modelled.
            Ok(f) => Stmt::Unknown(format!("{} set {}", f.dim.name(), compact(&body["value"]))),
            // A field we do not model (dscp, tcp option maxseg ...) cannot change a verdict
            // we compute: any later match on it is itself unknown.
            Err(_) => Stmt::Noop,
        }
    }

    fn named_set(&self, name: &str) -> Result<&crate::nft::NamedSet, String> {
        self.rs
            .sets
            .iter()
            .find(|s| s.family == self.family && s.table == self.table && s.name == name)
            .ok_or_else(|| format!("reference to undeclared set @{name}"))
    }

    fn values(&self, field: &Field, right: &Value) -> Result<IntervalSet, String> {
        match right {
            Value::String(s) if s.starts_with('@') => {
                let set = self.named_set(&s[1..])?;
                let mut acc = IntervalSet::empty();
                for e in &set.elems {
                    acc = acc.union(&self.values(field, e)?);
                }
                Ok(acc)
            }
            Value::Array(items) => {
                let mut acc = IntervalSet::empty();
                for e in items {
                    acc = acc.union(&self.values(field, e)?);
                }
                Ok(acc)
            }
            Value::Object(o) => {
                if let Some(items) = o.get("set") {
                    return match items {
                        Value::Array(_) => self.values(field, items),
                        single => self.values(field, single),
                    };
                }
                if let Some(elem) = o.get("elem") {
                    return self.values(field, elem.get("val").unwrap_or(elem));
                }
                if let Some(p) = o.get("prefix") {
                    let addr = p.get("addr").ok_or("prefix without addr")?;
                    let len = p
                        .get("len")
                        .and_then(Value::as_u64)
                        .ok_or("prefix without len")? as u32;
                    let base = self.scalar(field, addr)?;
                    if len > field.bits {
                        return Err(format!("prefix length {len} longer than the field"));
                    }
                    let host_bits = field.bits - len;
                    let span = if host_bits >= 128 {
                        u128::MAX
                    } else {
                        (1u128 << host_bits) - 1
                    };
                    let lo = base & !span;
                    return Ok(IntervalSet::range(lo, lo | span));
                }
                if let Some(Value::Array(r)) = o.get("range") {
                    let [a, b] = r.as_slice() else {
                        return Err(format!("range {}", compact(right)));
                    };
                    return Ok(IntervalSet::range(
                        self.scalar(field, a)?,
                        self.scalar(field, b)?,
                    ));
                }
                Err(format!("value {}", compact(right)))
            }
            scalar => {
                if field.kind == Kind::Iface
                    && let Value::String(name) = scalar
                {
                    return Ok(self.universe.matching(name));
                }
                Ok(IntervalSet::point(self.scalar(field, scalar)?))
            }
        }
    }

    fn concat_values(&self, fields: &[Field], right: &Value) -> Result<Cond, String> {
        let elems: Vec<Value> = match right {
            Value::String(s) if s.starts_with('@') => self.named_set(&s[1..])?.elems.clone(),
            Value::Object(o) if o.contains_key("set") => {
                o["set"].as_array().cloned().unwrap_or_default()
            }
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        let mut cond = Cond::never();
        for elem in elems {
            let elem = elem
                .get("elem")
                .and_then(|e| e.get("val"))
                .cloned()
                .unwrap_or(elem);
            let parts = elem
                .get("concat")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("concatenation element {}", compact(&elem)))?;
            if parts.len() != fields.len() {
                return Err(format!(
                    "concatenation element {} has the wrong arity",
                    compact(&elem)
                ));
            }
            let mut conj = Vec::new();
            for (f, v) in fields.iter().zip(parts) {
                let set = if f.kind.is_flags() {
                    let vals = self.values(f, v)?;
                    self.flag_domain(f, |x| vals.contains(x))
                } else {
                    self.values(f, v)?
                };
                conj.push((f.dim, set));
            }
            cond.any_of.push(conj);
        }
        Ok(cond)
    }

    fn flag_or_number(&self, kind: Kind, v: &Value) -> Result<u128, String> {
        match v {
            Value::Array(items) => items
                .iter()
                .try_fold(0u128, |acc, i| Ok(acc | self.flag_or_number(kind, i)?)),
            Value::Number(n) => n
                .as_u64()
                .map(u128::from)
                .ok_or_else(|| format!("number {n}")),
            Value::String(s) => {
                if let Some(v) = parse_addr(s) {
                    return Ok(v);
                }
                named_constant(kind, s).ok_or_else(|| format!("value `{s}`"))
            }
            other => Err(format!("mask {}", compact(other))),
        }
    }

    fn scalar(&self, field: &Field, v: &Value) -> Result<u128, String> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .map(u128::from)
                .ok_or_else(|| format!("number {n}")),
            Value::String(s) => match field.kind {
                Kind::Ipv4 => s
                    .parse::<Ipv4Addr>()
                    .map(|a| u32::from(a) as u128)
                    .map_err(|_| format!("IPv4 address `{s}`")),
                Kind::Ipv6 => s
                    .parse::<Ipv6Addr>()
                    .map(u128::from)
                    .map_err(|_| format!("IPv6 address `{s}`")),
                Kind::Iface => Err(format!("interface `{s}` in a range")),
                kind => named_constant(kind, s)
                    .ok_or_else(|| format!("{} value `{s}`", field.dim.name())),
            },
            other => Err(format!("value {}", compact(other))),
        }
    }
}

/// `ct status` bit for dnat (IPS_DST_NAT).
const CT_STATUS_DNAT: u128 = 0x20;

fn field_max(f: &Field) -> u128 {
    if f.bits >= 128 {
        u128::MAX
    } else {
        (1u128 << f.bits) - 1
    }
}

fn parse_addr(s: &str) -> Option<u128> {
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Some(u32::from(a) as u128);
    }
    s.parse::<Ipv6Addr>().ok().map(u128::from)
}

fn named_constant(kind: Kind, s: &str) -> Option<u128> {
    let v: u128 = match (kind, s) {
        (Kind::Nfproto, "ipv4") | (Kind::Ethertype, "ip") => NFPROTO_IPV4,
        (Kind::Nfproto, "ipv6") | (Kind::Ethertype, "ip6") => NFPROTO_IPV6,
        (Kind::L4proto, _) => match s {
            "icmp" => 1,
            "igmp" => 2,
            "ipip" => 4,
            "tcp" => 6,
            "egp" => 8,
            "udp" => 17,
            "ipv6" => 41,
            "gre" => 47,
            "esp" => 50,
            "ah" => 51,
            "icmpv6" | "ipv6-icmp" => 58,
            "dccp" => 33,
            "sctp" => 132,
            "udplite" => 136,
            _ => return None,
        },
        (Kind::Port, _) => match s {
            "ssh" => 22,
            "domain" => 53,
            "bootps" => 67,
            "bootpc" => 68,
            "http" => 80,
            "ntp" => 123,
            "https" => 443,
            "dhcpv6-client" => 546,
            "dhcpv6-server" => 547,
            _ => return None,
        },
        (Kind::CtState, _) => match s {
            "invalid" => CT_INVALID,
            "established" => CT_ESTABLISHED,
            "related" => CT_RELATED,
            "new" => CT_NEW,
            "untracked" => CT_UNTRACKED,
            _ => return None,
        },
        (Kind::CtStatus, "dnat") => CT_STATUS_DNAT,
        (Kind::TcpFlags, _) => match s {
            "fin" => 0x01,
            "syn" => 0x02,
            "rst" => 0x04,
            "psh" => 0x08,
            "ack" => 0x10,
            "urg" => 0x20,
            "ecn" => 0x40,
            "cwr" => 0x80,
            _ => return None,
        },
        (Kind::Icmp, _) => match s {
            "echo-reply" => 0,
            "destination-unreachable" => 3,
            "source-quench" => 4,
            "redirect" => 5,
            "echo-request" => 8,
            "router-advertisement" => 9,
            "router-solicitation" => 10,
            "time-exceeded" => 11,
            "parameter-problem" => 12,
            "timestamp-request" => 13,
            "timestamp-reply" => 14,
            "info-request" => 15,
            "info-reply" => 16,
            "address-mask-request" => 17,
            "address-mask-reply" => 18,
            _ => return None,
        },
        (Kind::Icmpv6, _) => match s {
            "destination-unreachable" => 1,
            "packet-too-big" => 2,
            "time-exceeded" => 3,
            "parameter-problem" => 4,
            "echo-request" => 128,
            "echo-reply" => 129,
            "mld-listener-query" => 130,
            "mld-listener-report" => 131,
            "mld-listener-done" | "mld-listener-reduction" => 132,
            "nd-router-solicit" => 133,
            "nd-router-advert" => 134,
            "nd-neighbor-solicit" => 135,
            "nd-neighbor-advert" => 136,
            "nd-redirect" => 137,
            "router-renumbering" => 138,
            "ind-neighbor-solicit" => 141,
            "ind-neighbor-advert" => 142,
            "mld2-listener-report" => 143,
            _ => return None,
        },
        // nft's icmp_code_type and icmpv6_code_type names (what `nft -j` prints,
        // e.g. for fw4's Allow-MLD and Allow-ICMPv6 rules).
        (Kind::IcmpCode, _) => match s {
            "net-unreachable" => 0,
            "host-unreachable" => 1,
            "prot-unreachable" => 2,
            "port-unreachable" => 3,
            "frag-needed" => 4,
            "net-prohibited" => 9,
            "host-prohibited" => 10,
            "admin-prohibited" => 13,
            _ => return None,
        },
        (Kind::Icmpv6Code, _) => match s {
            "no-route" => 0,
            "admin-prohibited" => 1,
            "addr-unreachable" => 3,
            "port-unreachable" => 4,
            "policy-fail" => 5,
            "reject-route" => 6,
            _ => return None,
        },
        _ => return None,
    };
    Some(v)
}

pub(crate) fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 160 {
        let cut: String = s.chars().take(157).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// nft-like text for one statement (best effort, for traces only).
fn render_stmt(e: &Value) -> String {
    let Some((key, body)) = e.as_object().and_then(|o| o.iter().next()) else {
        return compact(e);
    };
    match key.as_str() {
        "match" => {
            let op = body.get("op").and_then(Value::as_str).unwrap_or("==");
            let left = render_value(&body["left"]);
            let right = render_value(&body["right"]);
            match op {
                "==" | "in" => format!("{left} {right}"),
                _ => format!("{left} {op} {right}"),
            }
        }
        "counter" | "comment" => String::new(),
        "jump" | "goto" => format!(
            "{key} {}",
            body.get("target").and_then(Value::as_str).unwrap_or("?")
        ),
        "vmap" => format!(
            "{} vmap {}",
            render_value(&body["key"]),
            render_value(&body["data"])
        ),
        _ if body.is_null() => key.clone(),
        _ => format!("{key} {}", render_value(body)),
    }
}

pub(crate) fn render_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => items.iter().map(render_value).collect::<Vec<_>>().join(","),
        Value::Object(o) => {
            if let Some(m) = o.get("meta") {
                return format!("meta {}", render_value(&m["key"]));
            }
            if let Some(p) = o.get("payload") {
                return format!(
                    "{} {}",
                    render_value(&p["protocol"]),
                    render_value(&p["field"])
                );
            }
            if let Some(c) = o.get("ct") {
                return format!("ct {}", render_value(&c["key"]));
            }
            if let Some(p) = o.get("prefix") {
                return format!("{}/{}", render_value(&p["addr"]), render_value(&p["len"]));
            }
            if let Some(Value::Array(r)) = o.get("range")
                && r.len() == 2
            {
                return format!("{}-{}", render_value(&r[0]), render_value(&r[1]));
            }
            if let Some(s) = o.get("set") {
                return format!("{{ {} }}", render_value(s));
            }
            if let Some(Value::Array(c)) = o.get("concat") {
                return c.iter().map(render_value).collect::<Vec<_>>().join(" . ");
            }
            if let Some(Value::Array(a)) = o.get("&")
                && a.len() == 2
            {
                return format!("{} & {}", render_value(&a[0]), render_value(&a[1]));
            }
            compact(v)
        }
    }
}
