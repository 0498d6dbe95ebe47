//! Evaluation of a compiled ruleset along the netfilter hook path: symbolically over
//! packet classes (exact: every packet of an outcome's class meets the same fate by
//! the same trace), and concretely for one packet (the straightforward reference the
//! property tests compare against, and what a live probe corresponds to).

use std::rc::Rc;

use crate::compile::{CChain, MaskTest, Program, Stmt, Verdict};
use crate::interval::IntervalSet;
use crate::nft::{Hook, TableFamily};
use crate::space::*;

/// Where routing sends a packet after prerouting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteTarget {
    /// To one of the router's own addresses: the input hook.
    Local,
    /// Forwarded out of this interface (an index into the universe).
    Out(u128),
}

/// The routing decision: destination-address regions in priority order (the first
/// region containing the address wins), or one fixed decision (IPv6 cells, whose
/// addressing the model does not describe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routes {
    Table(Vec<(IntervalSet, RouteTarget)>),
    Fixed(RouteTarget),
}

impl Routes {
    fn decide(&self, daddr: u128) -> Option<RouteTarget> {
        match self {
            Routes::Fixed(t) => Some(*t),
            Routes::Table(regions) => regions
                .iter()
                .find(|(set, _)| set.contains(daddr))
                .map(|(_, t)| *t),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Accept,
    Drop,
    Reject,
    Unknown(String),
}

/// One step of a trace: which rule did what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub chain: usize,
    /// `None` for a base chain's policy.
    pub rule: Option<usize>,
    pub action: String,
}

#[derive(Debug)]
struct TraceNode {
    step: Step,
    prev: Trace,
}

/// A persistent list, so splitting a class shares its history instead of copying it.
#[derive(Debug, Clone, Default)]
pub struct Trace(Option<Rc<TraceNode>>);

impl Trace {
    fn push(&self, step: Step) -> Trace {
        Trace(Some(Rc::new(TraceNode {
            step,
            prev: self.clone(),
        })))
    }

    pub fn steps(&self) -> Vec<Step> {
        let mut out = Vec::new();
        let mut cur = &self.0;
        while let Some(node) = cur {
            out.push(node.step.clone());
            cur = &node.prev.0;
        }
        out.reverse();
        out
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub class: PacketBox,
    pub fate: Fate,
    pub trace: Trace,
}

/// What a chain did with (part of) a class.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Flow {
    Accept,
    Drop,
    Reject,
    Return,
    Unknown(String),
}

const MAX_DEPTH: usize = 32;
/// A bitmask test enumerates a class's values; beyond this it says "unknown".
const MAX_ENUMERATION: u128 = 4096;

impl Program {
    /// Every class of `space` with its fate, along prerouting -> routing -> input, or
    /// forward -> postrouting.
    pub fn evaluate(&self, space: PacketBox, routes: &Routes) -> Vec<Outcome> {
        let mut done = Vec::new();
        let start = vec![(space, Trace::default())];
        let after_ingress = self.run_hook(Hook::Ingress, start, &mut done);
        let after_pre = self.run_hook(Hook::Prerouting, after_ingress, &mut done);
        let mut local = Vec::new();
        let mut forwarded = Vec::new();
        for (b, trace) in after_pre {
            for (part, target) in route_split(b, routes) {
                match target {
                    Some(RouteTarget::Local) => local.push((
                        part.with(Dim::Oif, IntervalSet::point(NO_INTERFACE)),
                        trace.clone(),
                    )),
                    Some(RouteTarget::Out(oif)) => forwarded
                        .push((part.with(Dim::Oif, IntervalSet::point(oif)), trace.clone())),
                    None => done.push(Outcome {
                        class: part,
                        fate: Fate::Drop,
                        trace: trace.clone(),
                    }),
                }
            }
        }
        for (b, trace) in self.run_hook(Hook::Input, local, &mut done) {
            done.push(Outcome {
                class: b,
                fate: Fate::Accept,
                trace,
            });
        }
        let after_fwd = self.run_hook(Hook::Forward, forwarded, &mut done);
        let after_post = self.run_hook(Hook::Postrouting, after_fwd, &mut done);
        for (b, trace) in self.run_hook(Hook::Egress, after_post, &mut done) {
            done.push(Outcome {
                class: b,
                fate: Fate::Accept,
                trace,
            });
        }
        done
    }

    /// The same path for one packet, without splitting.
    pub fn evaluate_packet(&self, packet: Packet, routes: &Routes) -> (Packet, Fate, Vec<Step>) {
        let mut trace = Vec::new();
        let mut p = packet;
        for hook in [Hook::Ingress, Hook::Prerouting] {
            if let Some(fate) = self.packet_hook(hook, &mut p, &mut trace) {
                return (p, fate, trace);
            }
        }
        let target = routes.decide(p.get(Dim::Daddr));
        let hooks: &[Hook] = match target {
            None => return (p, Fate::Drop, trace),
            Some(RouteTarget::Local) => {
                p.set(Dim::Oif, NO_INTERFACE);
                &[Hook::Input]
            }
            Some(RouteTarget::Out(oif)) => {
                p.set(Dim::Oif, oif);
                &[Hook::Forward, Hook::Postrouting, Hook::Egress]
            }
        };
        for &hook in hooks {
            if let Some(fate) = self.packet_hook(hook, &mut p, &mut trace) {
                return (p, fate, trace);
            }
        }
        (p, Fate::Accept, trace)
    }

    /// Base chains at a hook, in priority order (file order breaks ties).
    pub fn base_chains(&self, hook: Hook) -> Vec<usize> {
        let mut chains: Vec<usize> = (0..self.chains.len())
            .filter(|&i| self.chains[i].base.as_ref().is_some_and(|b| b.hook == hook))
            .filter(|&i| !matches!(self.chains[i].family, TableFamily::Arp))
            .collect();
        chains.sort_by_key(|&i| self.chains[i].base.as_ref().map_or(0, |b| b.prio));
        chains
    }

    /// The part of the packet space a base chain sees.
    fn scope(&self, ci: usize) -> Cond {
        let chain = &self.chains[ci];
        let base = chain.base.as_ref().expect("base chain");
        let mut cond = match chain.family {
            TableFamily::Ip => Cond::dim(Dim::Family, IntervalSet::point(NFPROTO_IPV4)),
            TableFamily::Ip6 => Cond::dim(Dim::Family, IntervalSet::point(NFPROTO_IPV6)),
            _ => Cond::always(),
        };
        if !base.devices.is_empty() {
            let dim = if base.hook == Hook::Egress {
                Dim::Oif
            } else {
                Dim::Iif
            };
            let devs = base.devices.iter().fold(IntervalSet::empty(), |acc, d| {
                acc.union(&self.universe.matching(d))
            });
            cond = cond.and(&Cond::dim(dim, devs));
        } else if matches!(chain.family, TableFamily::Netdev)
            || matches!(base.hook, Hook::Ingress | Hook::Egress)
        {
            cond = Cond::never();
        }
        // NAT chains see only the first packet of a flow.
        if base.kind == "nat" {
            cond = cond.and(&Cond::dim(Dim::CtState, IntervalSet::point(CT_NEW)));
        }
        cond
    }

    fn run_hook(
        &self,
        hook: Hook,
        items: Vec<(PacketBox, Trace)>,
        done: &mut Vec<Outcome>,
    ) -> Vec<(PacketBox, Trace)> {
        let mut items = items;
        for ci in self.base_chains(hook) {
            let chain = &self.chains[ci];
            if chain.family == TableFamily::Bridge {
                if bridge_chain_filters(chain) {
                    for (b, trace) in items.drain(..) {
                        done.push(Outcome {
                            class: b,
                            fate: Fate::Unknown(format!(
                                "bridge-family chain {} may filter bridged frames (not modelled)",
                                self.chain_label(ci)
                            )),
                            trace,
                        });
                    }
                }
                continue;
            }
            let scope = self.scope(ci);
            let mut next = Vec::new();
            for (b, trace) in items {
                let (seen, unseen) = scope.split(b);
                next.extend(unseen.into_iter().map(|u| (u, trace.clone())));
                for part in seen {
                    let mut flows = Vec::new();
                    self.run_chain(ci, part, trace.clone(), 0, &mut flows);
                    for (x, flow, t) in flows {
                        let flow = if flow == Flow::Return {
                            self.policy(ci)
                        } else {
                            flow
                        };
                        match flow {
                            Flow::Accept => next.push((x, t)),
                            other => done.push(Outcome {
                                class: x,
                                fate: to_fate(other),
                                trace: t,
                            }),
                        }
                    }
                }
            }
            items = next;
        }
        items
    }

    fn policy(&self, ci: usize) -> Flow {
        match &self.chains[ci].base {
            Some(b) if b.policy_drop => Flow::Drop,
            _ => Flow::Accept,
        }
    }

    fn run_chain(
        &self,
        ci: usize,
        b: PacketBox,
        trace: Trace,
        depth: usize,
        out: &mut Vec<(PacketBox, Flow, Trace)>,
    ) {
        let rules = &self.chains[ci].rules;
        let step = |ri: usize, action: String| Step {
            chain: ci,
            rule: Some(ri),
            action,
        };
        let mut work: Vec<(usize, usize, PacketBox, Trace)> = vec![(0, 0, b, trace)];
        while let Some((ri, si, b, tr)) = work.pop() {
            if ri == rules.len() {
                let tr = if self.chains[ci].base.is_some() {
                    tr.push(Step {
                        chain: ci,
                        rule: None,
                        action: format!(
                            "policy {}",
                            if self.policy(ci) == Flow::Drop {
                                "drop"
                            } else {
                                "accept"
                            }
                        ),
                    })
                } else {
                    tr
                };
                out.push((b, Flow::Return, tr));
                continue;
            }
            let rule = &rules[ri];
            let Some(stmt) = rule.stmts.get(si) else {
                work.push((ri + 1, 0, b, tr));
                continue;
            };
            match stmt {
                Stmt::Match {
                    deps,
                    cond,
                    negated,
                } => {
                    // Fast paths: most rules either miss a class or cover it whole.
                    if deps.misses(&b) || (!*negated && cond.misses(&b)) {
                        work.push((ri + 1, 0, b, tr));
                        continue;
                    }
                    if deps.covers(&b) {
                        let (all_in, all_out) = (cond.covers(&b), cond.misses(&b));
                        if all_in || all_out {
                            let hit = all_in != *negated;
                            work.push(if hit {
                                (ri, si + 1, b, tr)
                            } else {
                                (ri + 1, 0, b, tr)
                            });
                            continue;
                        }
                    }
                    let (din, dout) = deps.split(b);
                    work.extend(dout.into_iter().map(|x| (ri + 1, 0, x, tr.clone())));
                    for x in din {
                        let (cin, cout) = cond.split(x);
                        let (hit, miss) = if *negated { (cout, cin) } else { (cin, cout) };
                        work.extend(miss.into_iter().map(|x| (ri + 1, 0, x, tr.clone())));
                        work.extend(hit.into_iter().map(|x| (ri, si + 1, x, tr.clone())));
                    }
                }
                Stmt::Masked {
                    deps,
                    dim,
                    mask,
                    test,
                } => {
                    let (din, dout) = deps.split(b);
                    work.extend(dout.into_iter().map(|x| (ri + 1, 0, x, tr.clone())));
                    for x in din {
                        let values = x.get(*dim);
                        if values.count() > MAX_ENUMERATION {
                            out.push((
                                x,
                                Flow::Unknown(format!(
                                    "bitmask test on {} over too many values",
                                    dim.name()
                                )),
                                tr.push(step(ri, "unknown".into())),
                            ));
                            continue;
                        }
                        let hits = IntervalSet::from_points(
                            values.iter().filter(|v| mask_test(test, v & mask)),
                        );
                        let (cin, cout) = Cond::dim(*dim, hits).split(x);
                        work.extend(cout.into_iter().map(|x| (ri + 1, 0, x, tr.clone())));
                        work.extend(cin.into_iter().map(|x| (ri, si + 1, x, tr.clone())));
                    }
                }
                Stmt::Verdict(v) => self.apply(ci, ri, v, b, tr, depth, out, &mut work),
                Stmt::Vmap { deps, arms } => {
                    let (din, dout) = deps.split(b);
                    work.extend(dout.into_iter().map(|x| (ri + 1, 0, x, tr.clone())));
                    let mut rest = din;
                    for (key, verdict) in arms {
                        let mut next = Vec::new();
                        for x in rest {
                            let (hit, miss) = key.split(x);
                            next.extend(miss);
                            for h in hit {
                                self.apply(ci, ri, verdict, h, tr.clone(), depth, out, &mut work);
                            }
                        }
                        rest = next;
                    }
                    work.extend(rest.into_iter().map(|x| (ri + 1, 0, x, tr.clone())));
                }
                Stmt::Dnat { addr, port } => {
                    let mut x = b;
                    if x.pre_nat.is_none() {
                        x.pre_nat = Some(PreNat {
                            daddr: addr.map(|_| x.get(Dim::Daddr).clone()),
                            dport: port.map(|_| x.get(Dim::Dport).clone()),
                        });
                    }
                    if let Some(a) = addr {
                        x.set(Dim::Daddr, IntervalSet::point(*a));
                    }
                    if let Some((lo, hi)) = port {
                        x.set(Dim::Dport, IntervalSet::range(*lo, *hi));
                    }
                    x.set(Dim::CtDnat, IntervalSet::point(1));
                    out.push((x, Flow::Accept, tr.push(step(ri, "dnat".into()))));
                }
                Stmt::SourceNat(what) => {
                    out.push((b, Flow::Accept, tr.push(step(ri, what.clone()))))
                }
                Stmt::SetField(dim, v) => {
                    let x = b.with(*dim, IntervalSet::point(*v));
                    work.push((
                        ri,
                        si + 1,
                        x,
                        tr.push(step(ri, format!("{} set {v}", dim.name()))),
                    ));
                }
                Stmt::Notrack => {
                    let x = b.with(Dim::CtState, IntervalSet::point(CT_UNTRACKED));
                    work.push((ri, si + 1, x, tr.push(step(ri, "notrack".into()))));
                }
                Stmt::Noop | Stmt::Assume(_) => work.push((ri, si + 1, b, tr)),
                Stmt::Unknown(what) => out.push((
                    b,
                    Flow::Unknown(what.clone()),
                    tr.push(step(ri, "unknown".into())),
                )),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        ci: usize,
        ri: usize,
        verdict: &Verdict,
        b: PacketBox,
        tr: Trace,
        depth: usize,
        out: &mut Vec<(PacketBox, Flow, Trace)>,
        work: &mut Vec<(usize, usize, PacketBox, Trace)>,
    ) {
        let step = |action: String| Step {
            chain: ci,
            rule: Some(ri),
            action,
        };
        match verdict {
            Verdict::Accept => out.push((b, Flow::Accept, tr.push(step("accept".into())))),
            Verdict::Drop => out.push((b, Flow::Drop, tr.push(step("drop".into())))),
            Verdict::Reject => out.push((b, Flow::Reject, tr.push(step("reject".into())))),
            Verdict::Return => out.push((b, Flow::Return, tr.push(step("return".into())))),
            Verdict::Continue => work.push((ri + 1, 0, b, tr)),
            Verdict::Unknown(what) => out.push((
                b,
                Flow::Unknown(what.clone()),
                tr.push(step("unknown".into())),
            )),
            Verdict::Jump(target) | Verdict::Goto(target) => {
                let is_jump = matches!(verdict, Verdict::Jump(_));
                let label = format!(
                    "{} {}",
                    if is_jump { "jump" } else { "goto" },
                    self.chains[*target].name
                );
                if depth >= MAX_DEPTH {
                    out.push((
                        b,
                        Flow::Unknown("jump depth exceeded (a loop?)".into()),
                        tr.push(step(label)),
                    ));
                    return;
                }
                let mut sub = Vec::new();
                self.run_chain(*target, b, tr.push(step(label)), depth + 1, &mut sub);
                for (x, flow, t) in sub {
                    if flow == Flow::Return && is_jump {
                        work.push((ri + 1, 0, x, t));
                    } else {
                        out.push((x, flow, t));
                    }
                }
            }
        }
    }

    fn packet_hook(&self, hook: Hook, p: &mut Packet, trace: &mut Vec<Step>) -> Option<Fate> {
        for ci in self.base_chains(hook) {
            let chain = &self.chains[ci];
            if chain.family == TableFamily::Bridge {
                if bridge_chain_filters(chain) {
                    return Some(Fate::Unknown(format!(
                        "bridge-family chain {} may filter bridged frames (not modelled)",
                        self.chain_label(ci)
                    )));
                }
                continue;
            }
            if !self.scope(ci).contains(p) {
                continue;
            }
            let flow = self.packet_chain(ci, p, trace, 0);
            let flow = if flow == Flow::Return {
                self.policy(ci)
            } else {
                flow
            };
            if flow != Flow::Accept {
                return Some(to_fate(flow));
            }
        }
        None
    }

    fn packet_chain(&self, ci: usize, p: &mut Packet, trace: &mut Vec<Step>, depth: usize) -> Flow {
        let chain = &self.chains[ci];
        let mut ri = 0;
        'rules: while ri < chain.rules.len() {
            let step = |action: &str| Step {
                chain: ci,
                rule: Some(ri),
                action: action.to_string(),
            };
            for stmt in &chain.rules[ri].stmts {
                match stmt {
                    Stmt::Match {
                        deps,
                        cond,
                        negated,
                    } => {
                        if !deps.contains(p) || cond.contains(p) == *negated {
                            ri += 1;
                            continue 'rules;
                        }
                    }
                    Stmt::Masked {
                        deps,
                        dim,
                        mask,
                        test,
                    } => {
                        if !deps.contains(p) || !mask_test(test, p.get(*dim) & mask) {
                            ri += 1;
                            continue 'rules;
                        }
                    }
                    Stmt::Verdict(v) => match self.packet_verdict(ci, ri, v, p, trace, depth) {
                        Some(flow) => return flow,
                        None => {
                            ri += 1;
                            continue 'rules;
                        }
                    },
                    Stmt::Vmap { deps, arms } => {
                        let arm = deps
                            .contains(p)
                            .then(|| arms.iter().find(|(k, _)| k.contains(p)))
                            .flatten();
                        let Some((_, v)) = arm else {
                            ri += 1;
                            continue 'rules;
                        };
                        match self.packet_verdict(ci, ri, v, p, trace, depth) {
                            Some(flow) => return flow,
                            None => {
                                ri += 1;
                                continue 'rules;
                            }
                        }
                    }
                    Stmt::Dnat { addr, port } => {
                        if p.pre_nat.is_none() {
                            p.pre_nat = Some((p.get(Dim::Daddr), p.get(Dim::Dport)));
                        }
                        if let Some(a) = addr {
                            p.set(Dim::Daddr, *a);
                        }
                        // One packet: the first port of a range (what the kernel
                        // tries first when the original is outside it).
                        if let Some((lo, _)) = port {
                            p.set(Dim::Dport, *lo);
                        }
                        p.set(Dim::CtDnat, 1);
                        trace.push(step("dnat"));
                        return Flow::Accept;
                    }
                    Stmt::SourceNat(what) => {
                        trace.push(step(what));
                        return Flow::Accept;
                    }
                    Stmt::SetField(dim, v) => p.set(*dim, *v),
                    Stmt::Notrack => p.set(Dim::CtState, CT_UNTRACKED),
                    Stmt::Noop | Stmt::Assume(_) => {}
                    Stmt::Unknown(what) => {
                        trace.push(step("unknown"));
                        return Flow::Unknown(what.clone());
                    }
                }
            }
            ri += 1;
        }
        if chain.base.is_some() {
            trace.push(Step {
                chain: ci,
                rule: None,
                action: format!(
                    "policy {}",
                    if self.policy(ci) == Flow::Drop {
                        "drop"
                    } else {
                        "accept"
                    }
                ),
            });
        }
        Flow::Return
    }

    /// `None`: continue with the next rule.
    fn packet_verdict(
        &self,
        ci: usize,
        ri: usize,
        v: &Verdict,
        p: &mut Packet,
        trace: &mut Vec<Step>,
        depth: usize,
    ) -> Option<Flow> {
        let step = |action: String| Step {
            chain: ci,
            rule: Some(ri),
            action,
        };
        let flow = match v {
            Verdict::Accept => Flow::Accept,
            Verdict::Drop => Flow::Drop,
            Verdict::Reject => Flow::Reject,
            Verdict::Return => Flow::Return,
            Verdict::Continue => return None,
            Verdict::Unknown(what) => {
                trace.push(step("unknown".into()));
                return Some(Flow::Unknown(what.clone()));
            }
            Verdict::Jump(t) | Verdict::Goto(t) => {
                let is_jump = matches!(v, Verdict::Jump(_));
                trace.push(step(format!(
                    "{} {}",
                    if is_jump { "jump" } else { "goto" },
                    self.chains[*t].name
                )));
                if depth >= MAX_DEPTH {
                    return Some(Flow::Unknown("jump depth exceeded (a loop?)".into()));
                }
                let flow = self.packet_chain(*t, p, trace, depth + 1);
                if flow == Flow::Return && is_jump {
                    return None;
                }
                return Some(flow);
            }
        };
        trace.push(step(match flow {
            Flow::Accept => "accept".into(),
            Flow::Drop => "drop".into(),
            Flow::Reject => "reject".into(),
            _ => "return".into(),
        }));
        Some(flow)
    }
}

fn to_fate(flow: Flow) -> Fate {
    match flow {
        Flow::Accept | Flow::Return => Fate::Accept,
        Flow::Drop => Fate::Drop,
        Flow::Reject => Fate::Reject,
        Flow::Unknown(s) => Fate::Unknown(s),
    }
}

fn mask_test(test: &MaskTest, v: u128) -> bool {
    match test {
        MaskTest::Eq(set) => set.contains(v),
        MaskTest::Ne(set) => !set.contains(v),
    }
}

/// A bridge chain that accepts everything (no rules, policy accept) changes nothing.
fn bridge_chain_filters(chain: &CChain) -> bool {
    let policy_drop = chain.base.as_ref().is_some_and(|b| b.policy_drop);
    policy_drop || !chain.rules.is_empty()
}

fn route_split(b: PacketBox, routes: &Routes) -> Vec<(PacketBox, Option<RouteTarget>)> {
    match routes {
        Routes::Fixed(t) => vec![(b, Some(*t))],
        Routes::Table(regions) => {
            let mut out = Vec::new();
            let mut rest = b.get(Dim::Daddr).clone();
            for (set, target) in regions {
                let part = rest.intersect(set);
                if part.is_empty() {
                    continue;
                }
                rest = rest.subtract(set);
                out.push((b.clone().with(Dim::Daddr, part), Some(*target)));
            }
            if !rest.is_empty() {
                out.push((b.with(Dim::Daddr, rest), None));
            }
            out
        }
    }
}
