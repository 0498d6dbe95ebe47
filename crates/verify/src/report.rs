//! The verdict for every intent cell, with witnesses and traces, plus the lints.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use sovereign_model::{Destination, Expect, IntentMatrix, Source};

use crate::compile::{Program, Stmt, Verdict};
use crate::eval::{Fate, Outcome, Routes, Step};
use crate::interval::IntervalSet;
use crate::nft::{Hook, TableFamily};
use crate::space::*;
use crate::topology::{CellSpace, Topology, first_packet, v4};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was evaluated, e.g. "nft ruleset" or "OpenWrt UCI (compiled by fw4 rules)".
    pub input: String,
    pub topology: Topology,
    pub cells: Vec<CellResult>,
    pub lints: Vec<Lint>,
    /// What the evaluation takes for granted.
    pub assumptions: Vec<String>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub holds: bool,
    pub cells: usize,
    pub holding: usize,
    pub violated: usize,
    pub unknown: usize,
    pub unenforceable: usize,
    pub errors: usize,
    pub warnings: usize,
}

impl Report {
    /// The policy holds: no cell is violated or unknown and no lint is an error.
    /// Unenforceable cells (shared L2) are reported as warnings, not failures.
    pub fn holds(&self) -> bool {
        self.summary.holds
    }

    pub fn cell(
        &self,
        source: Source,
        destination: Destination,
        family: IpFamily,
    ) -> Option<&CellResult> {
        self.cells
            .iter()
            .find(|c| c.source == source && c.destination == destination && c.family == family)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    Ipv4,
    Ipv6,
}

impl std::fmt::Display for IpFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IpFamily::Ipv4 => "IPv4",
            IpFamily::Ipv6 => "IPv6",
        })
    }
}

/// What the firewall does with a cell's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Allowed,
    Denied,
    Mixed,
    Unknown,
    /// Switched between two hosts on one L2 segment: the router never sees it.
    NotRouted,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Allowed => "allowed",
            Status::Denied => "denied",
            Status::Mixed => "mixed",
            Status::Unknown => "unknown",
            Status::NotRouted => "not routed (switched on one L2 segment)",
        })
    }
}

/// How that compares with the intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CellVerdict {
    Holds,
    Violated,
    Unknown,
    /// Intended deny between hosts on one L2 segment: no router rule can enforce it.
    Unenforceable,
}

#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    pub source: Source,
    pub destination: Destination,
    pub family: IpFamily,
    pub expect: Expect,
    pub status: Status,
    pub verdict: CellVerdict,
    pub reason: String,
    pub space: String,
    /// Unknown expressions that decide part of this cell.
    pub unknown: Vec<String>,
    /// Packets contradicting the intent, each with its trace.
    pub witnesses: Vec<Witness>,
    /// Distinct ways the cell's packets are decided (fate + trace), most relevant first.
    pub paths: Vec<Witness>,
    /// How many packet classes the evaluation produced.
    pub classes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Witness {
    pub packet: WitnessPacket,
    pub fate: String,
    /// The rule that decided (the last step of the trace).
    pub decided_by: Option<TraceStep>,
    pub trace: Vec<TraceStep>,
    /// Classes that share this fate and trace.
    pub classes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WitnessPacket {
    pub family: IpFamily,
    pub src: String,
    pub dst: String,
    pub proto: String,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub iif: String,
    pub oif: String,
    /// The destination the sender used, when a dnat rewrote it.
    pub dnat_from: Option<String>,
}

impl std::fmt::Display for WitnessPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let port = |p: Option<u16>| p.map(|p| format!(":{p}")).unwrap_or_default();
        write!(
            f,
            "{} {}{} -> {}{}",
            self.proto,
            self.src,
            port(self.sport),
            self.dst,
            port(self.dport)
        )?;
        write!(f, " (in {}", self.iif)?;
        if !self.oif.is_empty() {
            write!(f, ", out {}", self.oif)?;
        }
        if let Some(from) = &self.dnat_from {
            write!(f, ", dnat from {from}")?;
        }
        f.write_str(")")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceStep {
    pub chain: String,
    pub handle: Option<u64>,
    pub comment: Option<String>,
    pub rule: String,
    pub action: String,
}

impl std::fmt::Display for TraceStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.chain)?;
        if let Some(h) = self.handle {
            write!(f, " handle {h}")?;
        }
        write!(f, ": {}", self.action)?;
        if let Some(c) = &self.comment {
            write!(f, " \"{c}\"")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lint {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub rule: Option<TraceStep>,
    pub witness: Option<Witness>,
}

/// Evaluate every cell of the intent (IPv4, plus IPv6 for intended denies when the
/// ruleset filters IPv6 at all) and run the lints.
pub fn analyse(
    input: &str,
    program: &Program,
    topology: &Topology,
    intent: &IntentMatrix,
    extra_lints: Vec<Lint>,
) -> Report {
    let u = &program.universe;
    let mut cells = Vec::new();
    for cell in &intent.cells {
        let space = topology.cell_space(cell.source, cell.destination, u);
        cells.push(evaluate_cell(program, cell, space, IpFamily::Ipv4));
    }
    let filters_ipv6 = filters_ipv6(program);
    if filters_ipv6 {
        for cell in intent.cells.iter().filter(|c| c.expect == Expect::Deny) {
            let space = topology.cell_space_v6(cell.source, cell.destination, u);
            cells.push(evaluate_cell(program, cell, space, IpFamily::Ipv6));
        }
    }
    let mut lints = extra_lints;
    lints.extend(crate::lint::lints(program, topology, &cells, filters_ipv6));
    lints.sort_by_key(|l| l.severity);
    let summary = summarize(&cells, &lints);
    Report {
        input: input.to_string(),
        topology: topology.clone(),
        cells,
        lints,
        assumptions: assumptions(program),
        summary,
    }
}

fn summarize(cells: &[CellResult], lints: &[Lint]) -> Summary {
    let count = |v: CellVerdict| cells.iter().filter(|c| c.verdict == v).count();
    let severity = |s: Severity| lints.iter().filter(|l| l.severity == s).count();
    let errors = severity(Severity::Error);
    Summary {
        holds: count(CellVerdict::Violated) == 0 && count(CellVerdict::Unknown) == 0 && errors == 0,
        cells: cells.len(),
        holding: count(CellVerdict::Holds),
        violated: count(CellVerdict::Violated),
        unknown: count(CellVerdict::Unknown),
        unenforceable: count(CellVerdict::Unenforceable),
        errors,
        warnings: severity(Severity::Warning),
    }
}

impl Report {
    /// The server's port is not its own (`reason`, from the network config): every
    /// denied cell between the server and the LAN is switched, not routed, so no
    /// rule can hold it, and the report fails with an error lint naming the reason.
    pub fn server_not_isolated(&mut self, reason: &str) {
        let lan_side = |source: Source, destination: Destination| {
            matches!(source, Source::LanDevice | Source::LanAdmin)
                && matches!(
                    destination,
                    Destination::ServerApi | Destination::ServerSsh | Destination::ServerOther
                )
                || source == Source::Server && destination == Destination::OtherLan
        };
        for cell in &mut self.cells {
            if cell.expect == Expect::Deny && lan_side(cell.source, cell.destination) {
                cell.verdict = CellVerdict::Unenforceable;
                cell.reason = format!("not enforceable: {reason}");
            }
        }
        self.lints.insert(
            0,
            Lint {
                code: "server-port-not-isolated",
                severity: Severity::Error,
                message: reason.to_string(),
                rule: None,
                witness: None,
            },
        );
        self.summary = summarize(&self.cells, &self.lints);
    }
}

fn assumptions(program: &Program) -> Vec<String> {
    let mut out = vec![
        "each cell is the first packet of a new flow (ct state new, TCP SYN); replies ride on established state".to_string(),
        "ICMP is outside the matrix (path MTU discovery needs it); every other protocol is in it".to_string(),
        "IPv6 cells use any address, with the interfaces of the IPv4 cell (the model has no IPv6 addressing)".to_string(),
    ];
    let limits = program
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .flat_map(|r| &r.stmts)
        .any(|s| matches!(s, Stmt::Assume(_)));
    if limits {
        out.push("rate limits (limit rate ...) are assumed not exceeded".to_string());
    }
    out
}

/// Whether any inet/ip6 base chain at a filtering hook exists.
pub fn filters_ipv6(program: &Program) -> bool {
    program.chains.iter().any(|c| {
        matches!(c.family, TableFamily::Inet | TableFamily::Ip6)
            && c.base
                .as_ref()
                .is_some_and(|b| matches!(b.hook, Hook::Prerouting | Hook::Input | Hook::Forward))
    })
}

fn evaluate_cell(
    program: &Program,
    cell: &sovereign_model::Cell,
    space: CellSpace,
    family: IpFamily,
) -> CellResult {
    let mut result = CellResult {
        source: cell.source,
        destination: cell.destination,
        family,
        expect: cell.expect,
        status: Status::NotRouted,
        verdict: CellVerdict::Holds,
        reason: cell.reason.clone(),
        space: space.description.clone(),
        unknown: Vec::new(),
        witnesses: Vec::new(),
        paths: Vec::new(),
        classes: 0,
    };
    if space.l2_only {
        result.verdict = match cell.expect {
            Expect::Allow => CellVerdict::Holds,
            Expect::Deny => CellVerdict::Unenforceable,
        };
        result.space = format!(
            "{} - switched on one L2 segment, never routed",
            space.description
        );
        return result;
    }
    let outcomes: Vec<Outcome> = space
        .boxes
        .into_iter()
        .flat_map(|b| program.evaluate(b, &space.routes))
        .collect();
    result.classes = outcomes.len();
    let accepted = outcomes.iter().any(|o| o.fate == Fate::Accept);
    let denied = outcomes
        .iter()
        .any(|o| matches!(o.fate, Fate::Drop | Fate::Reject));
    let mut unknown: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match &o.fate {
            Fate::Unknown(what) => Some(what.clone()),
            _ => None,
        })
        .collect();
    unknown.sort();
    unknown.dedup();
    result.status = match (accepted, denied, unknown.is_empty()) {
        (_, _, false) if !(accepted && denied) => Status::Unknown,
        (true, true, _) => Status::Mixed,
        (true, false, _) => Status::Allowed,
        (false, true, _) => Status::Denied,
        (false, false, _) => Status::Unknown,
    };
    let contrary = |f: &Fate| match cell.expect {
        Expect::Allow => matches!(f, Fate::Drop | Fate::Reject),
        Expect::Deny => *f == Fate::Accept,
    };
    let violated = outcomes.iter().any(|o| contrary(&o.fate));
    result.verdict = if violated {
        CellVerdict::Violated
    } else if !unknown.is_empty() {
        CellVerdict::Unknown
    } else {
        CellVerdict::Holds
    };
    result.unknown = unknown;
    let paths = group_paths(program, &outcomes);
    result.witnesses = paths
        .iter()
        .filter(|(f, _)| contrary(f))
        .map(|(_, w)| w.clone())
        .take(5)
        .collect();
    let mut ordered: Vec<&(Fate, Witness)> = paths.iter().collect();
    ordered.sort_by_key(|(f, w)| {
        (
            !contrary(f),
            !matches!(f, Fate::Unknown(_)),
            std::cmp::Reverse(w.classes),
        )
    });
    result.paths = ordered
        .into_iter()
        .take(8)
        .map(|(_, w)| w.clone())
        .collect();
    result
}

/// Group outcomes by (fate, trace); each group keeps the witness of its first class.
pub fn group_paths(program: &Program, outcomes: &[Outcome]) -> Vec<(Fate, Witness)> {
    let mut groups: BTreeMap<String, (Fate, Witness)> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for o in outcomes {
        let steps = o.trace.steps();
        let key = format!("{:?}|{:?}", o.fate, steps);
        if let Some((_, w)) = groups.get_mut(&key) {
            w.classes += 1;
            continue;
        }
        let trace = render_steps(program, &steps);
        let witness = Witness {
            packet: witness_packet(program, &o.class.witness()),
            fate: fate_name(&o.fate),
            decided_by: deciding_step(program, &steps, &trace),
            trace,
            classes: 1,
        };
        order.push(key.clone());
        groups.insert(key, (o.fate.clone(), witness));
    }
    order
        .into_iter()
        .filter_map(|k| groups.remove(&k))
        .collect()
}

/// The step that decided: the last verdict of a rule, else the last filter-chain
/// policy (a NAT chain's policy accept decides nothing).
fn deciding_step(program: &Program, steps: &[Step], trace: &[TraceStep]) -> Option<TraceStep> {
    let is_nat = |s: &Step| {
        program.chains[s.chain]
            .base
            .as_ref()
            .is_some_and(|b| b.kind == "nat")
    };
    let verdict = |a: &str| matches!(a, "accept" | "drop" | "reject" | "unknown" | "dnat");
    let pick = steps
        .iter()
        .rposition(|s| s.rule.is_some() && verdict(&s.action))
        .or_else(|| steps.iter().rposition(|s| s.rule.is_none() && !is_nat(s)))
        .or(steps.len().checked_sub(1))?;
    trace.get(pick).cloned()
}

pub fn fate_name(f: &Fate) -> String {
    match f {
        Fate::Accept => "accept".into(),
        Fate::Drop => "drop".into(),
        Fate::Reject => "reject".into(),
        Fate::Unknown(what) => format!("unknown: {what}"),
    }
}

pub fn render_steps(program: &Program, steps: &[Step]) -> Vec<TraceStep> {
    steps
        .iter()
        .map(|s| {
            let chain = program.chain_label(s.chain);
            match s.rule {
                Some(ri) => {
                    let rule = &program.chains[s.chain].rules[ri];
                    TraceStep {
                        chain,
                        handle: rule.handle,
                        comment: rule.comment.clone(),
                        rule: rule.text.clone(),
                        action: s.action.clone(),
                    }
                }
                None => TraceStep {
                    chain,
                    handle: None,
                    comment: None,
                    rule: String::new(),
                    action: s.action.clone(),
                },
            }
        })
        .collect()
}

pub fn witness_packet(program: &Program, p: &Packet) -> WitnessPacket {
    let family = if p.is_ipv6() {
        IpFamily::Ipv6
    } else {
        IpFamily::Ipv4
    };
    let addr = |v: u128| match family {
        IpFamily::Ipv4 => Ipv4Addr::from(v as u32).to_string(),
        IpFamily::Ipv6 => Ipv6Addr::from(v).to_string(),
    };
    let l4 = p.get(Dim::L4proto);
    let has_ports = matches!(l4, PROTO_TCP | PROTO_UDP | 33 | 132 | 136);
    let proto = match l4 {
        PROTO_TCP => "tcp".to_string(),
        PROTO_UDP => "udp".to_string(),
        PROTO_ICMP => format!("icmp type {}", p.get(Dim::IcmpType)),
        PROTO_ICMPV6 => format!("icmpv6 type {}", p.get(Dim::IcmpType)),
        other => format!("ip proto {other}"),
    };
    WitnessPacket {
        family,
        src: addr(p.get(Dim::Saddr)),
        dst: addr(p.get(Dim::Daddr)),
        proto,
        sport: has_ports.then_some(p.get(Dim::Sport) as u16),
        dport: has_ports.then_some(p.get(Dim::Dport) as u16),
        iif: program.universe.name(p.get(Dim::Iif)).to_string(),
        oif: program.universe.name(p.get(Dim::Oif)).to_string(),
        dnat_from: p.pre_nat.map(|(a, port)| {
            if has_ports {
                format!("{}:{port}", addr(a))
            } else {
                addr(a)
            }
        }),
    }
}

/// The space a lint explores: new flows from the internet to any of `daddr`.
pub fn wan_space(
    topology: &Topology,
    program: &Program,
    daddr: IntervalSet,
    protos: IntervalSet,
) -> (PacketBox, Routes) {
    let u = &program.universe;
    let b = first_packet(u.index(&topology.wan_interface).unwrap_or(0), NFPROTO_IPV4)
        .with(Dim::Saddr, topology.internet_sources())
        .with(Dim::Daddr, daddr)
        .with(Dim::L4proto, protos);
    (b, topology.routes(u))
}

pub fn all_v4() -> IntervalSet {
    IntervalSet::range(0, u32::MAX as u128)
}

pub fn server_api(topology: &Topology) -> (IntervalSet, IntervalSet) {
    (
        IntervalSet::point(v4(topology.server)),
        IntervalSet::point(topology.api_port as u128),
    )
}

pub fn is_terminal(v: &Verdict) -> bool {
    matches!(
        v,
        Verdict::Accept | Verdict::Drop | Verdict::Reject | Verdict::Return | Verdict::Goto(_)
    )
}
