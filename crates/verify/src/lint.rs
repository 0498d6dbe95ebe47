//! Lints: findings that are not one intent cell but matter for the perimeter.

use crate::compile::{Program, Stmt, Verdict};
use crate::eval::Fate;
use crate::interval::IntervalSet;
use crate::nft::TableFamily;
use crate::report::*;
use crate::space::*;
use crate::topology::Topology;

pub fn lints(
    program: &Program,
    topology: &Topology,
    cells: &[CellResult],
    filters_ipv6: bool,
) -> Vec<Lint> {
    let mut out = Vec::new();
    l2_isolation(cells, &mut out);
    api_from_wan(program, topology, &mut out);
    wan_input(program, topology, &mut out);
    ipv6_open(cells, &mut out);
    if !filters_ipv6 {
        out.push(Lint {
            code: "no-ipv6-filtering",
            severity: Severity::Info,
            message: "the ruleset has no inet or ip6 filter chains: IPv6 is unfiltered, so make sure the router does not \
                      route IPv6 (no IPv6 addresses or forwarding)"
                .into(),
            rule: None,
            witness: None,
        });
    }
    counter_only(program, &mut out);
    shadowed(program, &mut out);
    out
}

fn l2_isolation(cells: &[CellResult], out: &mut Vec<Lint>) {
    for c in cells
        .iter()
        .filter(|c| c.verdict == CellVerdict::Unenforceable)
    {
        out.push(Lint {
            code: "l2-isolation",
            severity: Severity::Warning,
            message: format!(
                "{} -> {} should be denied, but both sit on one L2 segment: frames are switched, never routed, so no \
                 router rule can enforce it. Give the server a dedicated router port (server.isolation = \
                 \"dedicated-port\").",
                c.source.label(),
                c.destination.label()
            ),
            rule: None,
            witness: None,
        });
    }
}

/// Any new flow from the WAN that ends at the server's API port, port forwards included.
fn api_from_wan(program: &Program, topology: &Topology, out: &mut Vec<Lint>) {
    let (b, routes) = wan_space(topology, program, all_v4(), IntervalSet::point(PROTO_TCP));
    let (server, api) = server_api(topology);
    let target = Cond::dim(Dim::Daddr, server).and(&Cond::dim(Dim::Dport, api));
    let outcomes = program.evaluate(b, &routes);
    let reaching: Vec<_> = outcomes
        .into_iter()
        .filter(|o| o.fate == Fate::Accept)
        .flat_map(|o| {
            let (hit, _) = target.split(o.class.clone());
            hit.into_iter().map(move |class| crate::eval::Outcome {
                class,
                fate: o.fate.clone(),
                trace: o.trace.clone(),
            })
        })
        .collect();
    for (_, w) in group_paths(program, &reaching).into_iter().take(3) {
        out.push(Lint {
            code: "api-from-wan",
            severity: Severity::Error,
            message: format!(
                "the AI server's API (tcp {}) is reachable from the internet: {}",
                topology.api_port, w.packet
            ),
            rule: w.decided_by.clone(),
            witness: Some(w),
        });
    }
}

/// Router input from the WAN accepted beyond the WireGuard port.
fn wan_input(program: &Program, topology: &Topology, out: &mut Vec<Lint>) {
    let (b, routes) = wan_space(
        topology,
        program,
        topology.router_addresses(),
        Dim::L4proto.full(),
    );
    let wireguard = Cond::dim(Dim::L4proto, IntervalSet::point(PROTO_UDP)).and(&Cond::dim(
        Dim::Dport,
        IntervalSet::point(topology.wireguard_port as u128),
    ));
    let accepted: Vec<_> = program
        .evaluate(b, &routes)
        .into_iter()
        .filter(|o| o.fate == Fate::Accept)
        .flat_map(|o| {
            let (_, rest) = wireguard.split(o.class.clone());
            rest.into_iter().map(move |class| crate::eval::Outcome {
                class,
                fate: o.fate.clone(),
                trace: o.trace.clone(),
            })
        })
        .collect();
    for (_, w) in group_paths(program, &accepted).into_iter().take(6) {
        out.push(Lint {
            code: "wan-input",
            severity: Severity::Warning,
            message: format!(
                "the router accepts more than WireGuard from the WAN: {}",
                w.packet
            ),
            rule: w.decided_by.clone(),
            witness: Some(w),
        });
    }
}

fn ipv6_open(cells: &[CellResult], out: &mut Vec<Lint>) {
    for c6 in cells
        .iter()
        .filter(|c| c.family == IpFamily::Ipv6 && c.verdict == CellVerdict::Violated)
    {
        let v4_closed = cells.iter().any(|c| {
            c.family == IpFamily::Ipv4
                && c.source == c6.source
                && c.destination == c6.destination
                && c.status == Status::Denied
        });
        if !v4_closed {
            continue;
        }
        let w = c6.witnesses.first().cloned();
        out.push(Lint {
            code: "ipv6-open",
            severity: Severity::Error,
            message: format!(
                "IPv6 opens {} -> {}, which IPv4 closes",
                c6.source.label(),
                c6.destination.label()
            ),
            rule: w.as_ref().and_then(|w| w.decided_by.clone()),
            witness: w,
        });
    }
}

/// fw4 renders a rule without `target` as a bare counter: it never decides anything,
/// which is rarely what its author meant. fw4's `mangle_*` chains hold rules that
/// rewrite instead of deciding (zone MTU fixing, `set_mark`, `set_dscp`): a rule
/// there has a target even when the model sees no verdict.
fn counter_only(program: &Program, out: &mut Vec<Lint>) {
    for (ci, chain) in program.chains.iter().enumerate() {
        if chain.name.starts_with("mangle_") {
            continue;
        }
        for (ri, rule) in chain.rules.iter().enumerate() {
            let from_fw4 = rule
                .comment
                .as_deref()
                .is_some_and(|c| c.starts_with("!fw4: "));
            let decides = rule.stmts.iter().any(|s| {
                !matches!(
                    s,
                    Stmt::Match { .. } | Stmt::Masked { .. } | Stmt::Noop | Stmt::Assume(_)
                )
            });
            if !from_fw4 || decides {
                continue;
            }
            let step = render_steps(
                program,
                &[crate::eval::Step {
                    chain: ci,
                    rule: Some(ri),
                    action: "counter".into(),
                }],
            );
            out.push(Lint {
                code: "rule-without-target",
                severity: Severity::Warning,
                message: format!(
                    "rule {} has no target: fw4 renders it as a counter that never accepts or rejects anything",
                    rule.comment.as_deref().unwrap_or("?").trim_start_matches("!fw4: ")
                ),
                rule: step.into_iter().next(),
                witness: None,
            });
        }
    }
}

/// A rule's match space, when the rule is only matches (and no-ops) up to its verdict.
struct RuleSpace {
    boxes: Vec<PacketBox>,
    terminal: bool,
    hull: [(u128, u128); 3],
}

const HULL_DIMS: [Dim; 3] = [Dim::Saddr, Dim::Daddr, Dim::Dport];

fn rule_space(stmts: &[Stmt], universe: &PacketBox) -> Option<RuleSpace> {
    let mut boxes = vec![universe.clone()];
    let mut terminal = false;
    let mut assumed = false;
    for s in stmts {
        match s {
            Stmt::Match {
                deps,
                cond,
                negated,
            } => {
                let mut next = Vec::new();
                for b in boxes {
                    for d in deps.split(b).0 {
                        let (cin, cout) = cond.split(d);
                        next.extend(if *negated { cout } else { cin });
                    }
                }
                boxes = next;
            }
            Stmt::Noop => {}
            // A rate limit may not match: such a rule covers nothing for sure.
            Stmt::Assume(_) => assumed = true,
            Stmt::Verdict(v) => {
                terminal = !assumed && is_terminal(v) && !matches!(v, Verdict::Unknown(_));
                break;
            }
            _ => return None,
        }
    }
    let hull = HULL_DIMS.map(|d| {
        boxes.iter().fold((u128::MAX, 0u128), |(lo, hi), b| {
            let set = b.get(d);
            let first = set.first().unwrap_or(u128::MAX);
            let last = set.ranges().last().map_or(0, |r| r.1);
            (lo.min(first), hi.max(last))
        })
    });
    Some(RuleSpace {
        boxes,
        terminal,
        hull,
    })
}

fn hulls_overlap(a: &RuleSpace, b: &RuleSpace) -> bool {
    a.hull
        .iter()
        .zip(&b.hull)
        .all(|(x, y)| x.0 <= y.1 && y.0 <= x.1)
}

/// Rules that no packet can reach: earlier terminal rules of the same chain cover
/// their whole match space, in every family the rule applies to.
fn shadowed(program: &Program, out: &mut Vec<Lint>) {
    for (ci, chain) in program.chains.iter().enumerate() {
        let families: &[u128] = match chain.family {
            TableFamily::Ip => &[NFPROTO_IPV4],
            TableFamily::Ip6 => &[NFPROTO_IPV6],
            TableFamily::Inet | TableFamily::Netdev | TableFamily::Bridge => {
                &[NFPROTO_IPV4, NFPROTO_IPV6]
            }
            TableFamily::Arp => &[],
        };
        let per_family: Vec<Vec<Option<RuleSpace>>> = families
            .iter()
            .map(|&family| {
                let universe = family_universe(program, family);
                chain
                    .rules
                    .iter()
                    .map(|r| rule_space(&r.stmts, &universe))
                    .collect()
            })
            .collect();
        for ri in 0..chain.rules.len() {
            let mut covered_somewhere = false;
            let mut by = Vec::new();
            let mut shadowed = true;
            for spaces in &per_family {
                let Some(space) = &spaces[ri] else {
                    shadowed = false;
                    break;
                };
                if space.boxes.is_empty() {
                    continue;
                }
                match covering_rules(space, &spaces[..ri]) {
                    Some(rules) => {
                        covered_somewhere = true;
                        by.extend(rules);
                    }
                    None => {
                        shadowed = false;
                        break;
                    }
                }
            }
            if !shadowed || !covered_somewhere {
                continue;
            }
            by.sort_unstable();
            by.dedup();
            let rule = &chain.rules[ri];
            let label = |i: usize| {
                let r = &chain.rules[i];
                match (r.handle, &r.comment) {
                    (Some(h), Some(c)) => format!("handle {h} \"{c}\""),
                    (Some(h), None) => format!("handle {h}"),
                    (None, Some(c)) => format!("\"{c}\""),
                    (None, None) => format!("rule #{}", i + 1),
                }
            };
            let covering: Vec<String> = by.iter().take(3).map(|&i| label(i)).collect();
            let step = render_steps(
                program,
                &[crate::eval::Step {
                    chain: ci,
                    rule: Some(ri),
                    action: "unreachable".into(),
                }],
            );
            out.push(Lint {
                code: "shadowed-rule",
                severity: Severity::Warning,
                message: format!(
                    "{} {}: no packet reaches it; earlier rules cover its whole match ({}){}",
                    program.chain_label(ci),
                    label(ri),
                    covering.join(", "),
                    if rule.text.is_empty() {
                        String::new()
                    } else {
                        format!(" - rule: {}", rule.text)
                    }
                ),
                rule: step.into_iter().next(),
                witness: None,
            });
        }
    }
}

fn family_universe(program: &Program, family: u128) -> PacketBox {
    let iface = IntervalSet::range(0, program.universe.len() as u128 - 1);
    let mut universe = PacketBox::universe()
        .with(Dim::Family, IntervalSet::point(family))
        .with(Dim::Iif, iface.clone())
        .with(Dim::Oif, iface);
    if family == NFPROTO_IPV4 {
        let v4 = IntervalSet::range(0, u32::MAX as u128);
        universe = universe.with(Dim::Saddr, v4.clone()).with(Dim::Daddr, v4);
    }
    universe
}

/// The earlier terminal rules that together cover `space`, or `None` if some packet
/// of it gets past them all.
fn covering_rules(space: &RuleSpace, earlier: &[Option<RuleSpace>]) -> Option<Vec<usize>> {
    let mut remaining = space.boxes.clone();
    let mut by = Vec::new();
    for (ei, e) in earlier.iter().enumerate() {
        let Some(e) = e else { continue };
        if !e.terminal || !hulls_overlap(space, e) {
            continue;
        }
        let mut touched = false;
        for eb in &e.boxes {
            let cond = Cond {
                any_of: vec![Dim::ALL.iter().map(|d| (*d, eb.get(*d).clone())).collect()],
            };
            let mut kept = Vec::new();
            for p in remaining {
                let (hit, miss) = cond.split(p);
                touched |= !hit.is_empty();
                kept.extend(miss);
            }
            remaining = kept;
        }
        if touched {
            by.push(ei);
        }
        if remaining.is_empty() {
            return Some(by);
        }
    }
    None
}
