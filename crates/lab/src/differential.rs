//! The static verifier against the live lab, probe by probe (issue 7's differential
//! test): for each probe, the verifier predicts from the ruleset alone what the probe
//! will observe, and the lab checks the prediction on the wire.
//!
//! A probe observes more than the first packet of its flow, so the prediction asks
//! the verifier about every packet the probe depends on, each with the conntrack
//! state the kernel gives it:
//! - the probe's first packet (a new flow), via [`sovereign_verify::evaluate_packet`];
//! - for TCP, the server's reply and the client's next packet, both `established`;
//! - for a VPN client at either end, the first packet of the client's tunnel flow to
//!   the router's WireGuard port (before every round the lab restarts each tunnel on a
//!   fresh UDP port with a new handshake, see [`crate::probe::observe`]), and that
//!   flow's later packets, which are `established` once the router answered the
//!   handshake.
//!
//! Observations are compared in three classes: open (an application-level answer),
//! rejected (an ICMP error or a reset arrived) and dropped (nothing arrived within the
//! timeout). Two predictions are coarser, and say so: the WireGuard probe sees only
//! whether the router answered the client's new handshake (open or closed, never which
//! kind of closed), and a TCP connection whose first packet passes but whose later
//! packets are refused may end either way.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::Serialize;
use sovereign_model::Isolation;
use sovereign_verify::{
    Dim, Fate, IntervalSet, PacketBox, ProbePacket, Program, RouteTarget, Routes, Ruleset,
};

use crate::probe::{Method, Observation, ProbeSpec};
use crate::topology::{Role, Topology};

/// What a probe observed, in the classes the static verifier can predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Open,
    /// An ICMP error or a TCP reset came back.
    Rejected,
    /// Nothing came back within the probe's timeout.
    Dropped,
}

/// What the verifier says a probe will observe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "detail")]
pub enum Prediction {
    Open,
    Rejected,
    Dropped,
    /// Rejected or dropped: the probe cannot tell which (see the module docs).
    Closed,
    /// The verifier does not understand an expression on the probe's path.
    Unknown(String),
}

impl Prediction {
    pub fn label(&self) -> String {
        match self {
            Prediction::Open => "open".into(),
            Prediction::Rejected => "rejected".into(),
            Prediction::Dropped => "dropped".into(),
            Prediction::Closed => "closed".into(),
            Prediction::Unknown(what) => format!("unknown ({what})"),
        }
    }

    /// Whether an observation is what this prediction says. An error observation
    /// (e.g. garbage instead of HTTP) never agrees.
    pub fn agrees_with(&self, observed: &Observation) -> bool {
        matches!(
            (self, classify(observed)),
            (Prediction::Open, Some(Class::Open))
                | (Prediction::Rejected, Some(Class::Rejected))
                | (Prediction::Dropped, Some(Class::Dropped))
                | (Prediction::Closed, Some(Class::Rejected | Class::Dropped))
        )
    }
}

/// The verifier's prediction for one probe, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticVerdict {
    pub prediction: Prediction,
    /// The verifier's fate for the probe's first packet (accept, drop, reject, unknown).
    pub first_packet: String,
    /// The rule that decided the first packet (chain, handle, comment), when one did.
    pub rule: Option<String>,
    /// Why the prediction differs from the first packet's fate, when it does.
    pub because: Option<String>,
}

pub fn classify(observed: &Observation) -> Option<Class> {
    match observed {
        Observation::Open(_) => Some(Class::Open),
        Observation::Refused
        | Observation::Prohibited
        | Observation::NoRoute
        | Observation::HungUp => Some(Class::Rejected),
        Observation::Timeout => Some(Class::Dropped),
        Observation::Error(_) => None,
    }
}

/// The verifier's view of the lab router. The lab wires its nodes the way
/// [`sovereign_verify::Topology::from_deployment`] assumes a real LAN is wired: the
/// internet and the VPN clients' underlay behind the WAN device, every LAN host (both
/// LAN devices, the admin host) on the LAN bridge, the server on its own router port
/// (or the bridge when shared), the tunnel addresses behind the WireGuard device, and
/// the lab's deployment copy already carries the lab's interface names. So nothing
/// needs adjusting; [`attachment`] states the wiring independently and a unit test
/// holds the two together.
pub fn verifier_topology(lab: &Topology) -> sovereign_verify::Topology {
    sovereign_verify::Topology::from_deployment(&lab.deployment)
}

/// The router device a node's own address sits behind, from the lab's wiring.
pub fn attachment(lab: &Topology, role: Role) -> &str {
    let d = &lab.deployment;
    match role {
        Role::Internet | Role::VpnClient => &d.wan.interface,
        Role::Router => "lo",
        Role::Server if d.server.isolation == Isolation::DedicatedPort => &d.server.router_port,
        Role::Server | Role::LanDevice | Role::LanDevice2 | Role::LanAdmin => &d.lan.interface,
    }
}

/// The verifier's prediction for every probe of a round, against `ruleset` (what the
/// router runs). `underlays`: each VPN client's tunnel endpoint during the round;
/// `source_ports`: each probe's UDP source port (0 when unknown). Pure.
pub fn predict(
    ruleset: &Ruleset,
    lab: &Topology,
    specs: &[ProbeSpec],
    underlays: &BTreeMap<String, SocketAddrV4>,
    source_ports: &[u16],
) -> Vec<StaticVerdict> {
    let model = Model::new(ruleset, lab);
    let tunnels: BTreeMap<String, Underlay> = lab
        .clients()
        .map(|c| {
            let endpoint = underlays
                .get(&c.key)
                .copied()
                .unwrap_or(SocketAddrV4::new(c.address, EPHEMERAL_PORT));
            (c.key.clone(), model.underlay(endpoint))
        })
        .collect();
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let sport = source_ports
                .get(i)
                .copied()
                .filter(|p| *p != 0)
                .unwrap_or(EPHEMERAL_PORT);
            model.predict(spec, sport, &tunnels)
        })
        .collect()
}

/// How many probes agree, and the ones that do not, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Agreement {
    pub probes: usize,
    pub agree: usize,
    pub disagreements: Vec<String>,
}

pub fn compare(
    specs: &[ProbeSpec],
    verdicts: &[StaticVerdict],
    observed: &[Observation],
) -> Agreement {
    let mut agreement = Agreement::default();
    for ((spec, verdict), seen) in specs.iter().zip(verdicts).zip(observed) {
        agreement.probes += 1;
        if verdict.prediction.agrees_with(seen) {
            agreement.agree += 1;
            continue;
        }
        agreement.disagreements.push(format!(
            "{} [{}] {}: verifier {} (first packet {}{}{}), live {}",
            spec.source.label(),
            spec.from,
            spec.method.describe(spec.src),
            verdict.prediction.label(),
            verdict.first_packet,
            verdict
                .rule
                .as_ref()
                .map(|r| format!(" by {r}"))
                .unwrap_or_default(),
            verdict
                .because
                .as_ref()
                .map(|b| format!("; {b}"))
                .unwrap_or_default(),
            seen.label()
        ));
    }
    agreement
}

/// No rule the lab renders or mutates matches a TCP source port, which the kernel
/// picks; any ephemeral value stands for it.
const EPHEMERAL_PORT: u16 = 40000;
/// `Dim::CtState`'s documented encoding: 2 = established.
const CT_ESTABLISHED: u128 = 2;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_ACK: u128 = 0x10;
const TCP_SYN_ACK: u128 = 0x12;

/// A VPN client's tunnel flow to the router's WireGuard port, as the verifier sees it.
#[derive(Debug, Clone)]
struct Underlay {
    /// The first packet of the tunnel's (fresh) flow.
    first: (Fate, Option<String>),
    /// Its later packets (established).
    later: Fate,
}

impl Underlay {
    fn carries(&self) -> bool {
        self.first.0 == Fate::Accept && self.later == Fate::Accept
    }
}

struct Model<'a> {
    ruleset: &'a Ruleset,
    lab: &'a Topology,
    topology: sovereign_verify::Topology,
    program: Program,
    routes: Routes,
    universe: sovereign_verify::Universe,
}

impl<'a> Model<'a> {
    fn new(ruleset: &'a Ruleset, lab: &'a Topology) -> Self {
        let topology = verifier_topology(lab);
        let universe = topology.universe();
        Model {
            ruleset,
            lab,
            program: Program::compile(ruleset, universe.clone()),
            routes: topology.routes(&universe),
            universe,
            topology,
        }
    }

    /// The router device the router routes `address` to (`None`: the router itself).
    fn route(&self, address: Ipv4Addr) -> Option<String> {
        let Routes::Table(table) = &self.routes else {
            return None;
        };
        let target = table
            .iter()
            .find(|(set, _)| set.contains(u32::from(address) as u128))
            .map(|(_, t)| *t)?;
        match target {
            RouteTarget::Local => None,
            RouteTarget::Out(index) => Some(self.universe.name(index).to_string()),
        }
    }

    /// The first packet of a new flow, with the rule that decided it.
    fn first(&self, packet: ProbePacket) -> (Fate, Option<String>) {
        let result = sovereign_verify::evaluate_packet(self.ruleset, &self.topology, &packet);
        let fate = match result.fate.as_str() {
            "accept" => Fate::Accept,
            "drop" => Fate::Drop,
            "reject" => Fate::Reject,
            other => Fate::Unknown(other.trim_start_matches("unknown: ").to_string()),
        };
        let rule = result.trace.last().map(ToString::to_string);
        (fate, rule)
    }

    /// A later packet of an existing flow (conntrack state established).
    #[allow(clippy::too_many_arguments)]
    fn later(
        &self,
        iif: &str,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        sport: u16,
        dport: u16,
        tcp_flags: u128,
    ) -> Fate {
        let iif = self
            .universe
            .index(iif)
            .unwrap_or(self.universe.len() as u128 - 1);
        let point = IntervalSet::point;
        let mut packet = PacketBox::universe()
            .with(Dim::Family, point(2))
            .with(Dim::Iif, point(iif))
            .with(Dim::CtState, point(CT_ESTABLISHED))
            .with(Dim::CtDnat, point(0))
            .with(Dim::Mark, point(0))
            .with(Dim::CtMark, point(0))
            .with(Dim::TcpFlags, point(tcp_flags))
            .witness();
        packet.set(Dim::Saddr, u32::from(src) as u128);
        packet.set(Dim::Daddr, u32::from(dst) as u128);
        packet.set(Dim::L4proto, proto as u128);
        packet.set(Dim::Sport, sport as u128);
        packet.set(Dim::Dport, dport as u128);
        let (_, fate, _) = self.program.evaluate_packet(packet, &self.routes);
        fate
    }

    fn underlay(&self, endpoint: SocketAddrV4) -> Underlay {
        let d = &self.lab.deployment;
        let wan = d.wan.interface.as_str();
        let router = d.wan.address.addr();
        let port = d.wireguard.listen_port;
        Underlay {
            first: self.first(ProbePacket {
                iif: wan.to_string(),
                src: *endpoint.ip(),
                dst: router,
                proto: PROTO_UDP,
                sport: endpoint.port(),
                dport: port,
            }),
            later: self.later(
                wan,
                *endpoint.ip(),
                router,
                PROTO_UDP,
                endpoint.port(),
                port,
                0,
            ),
        }
    }

    /// The VPN client whose tunnel address `address` is.
    fn tunnel_client(&self, address: Ipv4Addr) -> Option<&str> {
        self.lab
            .clients()
            .find(|c| c.tunnel.as_ref().is_some_and(|t| t.address == address))
            .map(|c| c.key.as_str())
    }

    fn predict(
        &self,
        spec: &ProbeSpec,
        sport: u16,
        tunnels: &BTreeMap<String, Underlay>,
    ) -> StaticVerdict {
        let verdict =
            |prediction, first: &(Fate, Option<String>), because: Option<String>| StaticVerdict {
                prediction,
                first_packet: fate_label(&first.0),
                rule: first.1.clone(),
                because,
            };
        let (target, proto) = match &spec.method {
            Method::Wireguard { client, .. } => {
                // The handshake is the new flow's first packet; the router's answer
                // leaves through the output hook, which no ruleset here filters.
                let tunnel = &tunnels[client];
                let prediction = match &tunnel.first.0 {
                    Fate::Accept => Prediction::Open,
                    Fate::Unknown(what) => Prediction::Unknown(what.clone()),
                    // The probe sees whether the handshake was answered, nothing finer.
                    Fate::Drop | Fate::Reject => Prediction::Closed,
                };
                return verdict(prediction, &tunnel.first, None);
            }
            Method::Tcp { target, .. } => (*target, PROTO_TCP),
            Method::Udp { target } => (*target, PROTO_UDP),
        };
        let from_role = self
            .lab
            .node(&spec.from)
            .map(|n| n.role)
            .unwrap_or(Role::Internet);
        let iif = match spec.source {
            sovereign_model::Source::VpnPeer => self.lab.deployment.wireguard.interface.clone(),
            _ => attachment(self.lab, from_role).to_string(),
        };
        let dst = *target.ip();
        let blocked_tunnel = |key: &str| -> Option<String> {
            let tunnel = tunnels.get(key)?;
            (!tunnel.carries()).then(|| {
                format!(
                    "{key}'s tunnel flow to the WireGuard port is refused ({})",
                    fate_label(&tunnel.first.0)
                )
            })
        };
        let source_tunnel =
            (spec.source == sovereign_model::Source::VpnPeer).then_some(spec.from.as_str());
        let first = self.first(ProbePacket {
            iif: iif.clone(),
            src: spec.src,
            dst,
            proto,
            sport,
            dport: target.port(),
        });
        // The tunnel must carry the probe before the router's forward rules see it.
        if let Some(why) = source_tunnel.and_then(blocked_tunnel) {
            return verdict(Prediction::Dropped, &first, Some(why));
        }
        let oif = self.route(dst);
        let switched = oif.as_deref() == Some(iif.as_str())
            && iif != self.lab.deployment.wan.interface
            && iif != self.lab.deployment.wireguard.interface;
        if switched {
            // Both ends on one L2 segment: the frames never reach the router's IP
            // layer (the verifier reports such cells as not enforceable).
            return verdict(
                Prediction::Open,
                &first,
                Some(format!("switched on {iif}, never routed")),
            );
        }
        match &first.0 {
            Fate::Accept => {}
            Fate::Reject => return verdict(Prediction::Rejected, &first, None),
            Fate::Drop => return verdict(Prediction::Dropped, &first, None),
            Fate::Unknown(what) => {
                return verdict(Prediction::Unknown(what.clone()), &first, None);
            }
        }
        if let Some(why) = self.tunnel_client(dst).and_then(blocked_tunnel) {
            return verdict(Prediction::Dropped, &first, Some(why));
        }
        // The reply of a forwarded flow crosses the forward hook again. The router's own
        // replies (router services) leave through the output hook, which the rendered
        // ruleset (and every mutant of it) leaves unfiltered.
        if let Some(reply_iif) = &oif {
            let flags = if proto == PROTO_TCP { TCP_SYN_ACK } else { 0 };
            let reply = self.later(reply_iif, dst, spec.src, proto, target.port(), sport, flags);
            if reply != Fate::Accept {
                // A refused reply never reaches the prober: any ICMP goes to the far end.
                return verdict(
                    Prediction::Dropped,
                    &first,
                    Some(format!("the reply is refused ({})", fate_label(&reply))),
                );
            }
        }
        if proto == PROTO_TCP {
            let next = self.later(&iif, spec.src, dst, proto, sport, target.port(), TCP_ACK);
            if next != Fate::Accept {
                return verdict(
                    Prediction::Closed,
                    &first,
                    Some(format!(
                        "the connection opens but its request is refused ({})",
                        fate_label(&next)
                    )),
                );
            }
        }
        verdict(Prediction::Open, &first, None)
    }
}

fn fate_label(fate: &Fate) -> String {
    match fate {
        Fate::Accept => "accept".into(),
        Fate::Drop => "drop".into(),
        Fate::Reject => "reject".into(),
        Fate::Unknown(what) => format!("unknown: {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LabName;
    use crate::topology::{lab_deployment, topology};
    use sovereign_model::Deployment;

    fn lab(d: &Deployment) -> Topology {
        let name = LabName::new("t1").unwrap();
        let keys: Vec<String> = (0..2).map(|i| format!("{i:0>43}=")).collect();
        topology(&name, &lab_deployment(d, &name, &keys).unwrap()).unwrap()
    }

    fn with_admin(isolation: Isolation) -> Deployment {
        let mut d = Deployment::reference();
        d.policy.admin_hosts = vec![Ipv4Addr::new(192, 168, 250, 10)];
        d.server.isolation = isolation;
        d
    }

    #[test]
    fn the_verifier_routes_every_node_to_the_device_the_lab_wires_it_to() {
        for isolation in [Isolation::DedicatedPort, Isolation::Shared] {
            let t = lab(&with_admin(isolation));
            let model_ruleset = Ruleset::parse_json(r#"{"nftables": []}"#).unwrap();
            let model = Model::new(&model_ruleset, &t);
            for node in t.nodes.iter().filter(|n| n.role != Role::Router) {
                assert_eq!(
                    model.route(node.address).as_deref(),
                    Some(attachment(&t, node.role)),
                    "{} ({isolation:?})",
                    node.key
                );
                if let Some(tunnel) = &node.tunnel {
                    assert_eq!(
                        model.route(tunnel.address).as_deref(),
                        Some(t.deployment.wireguard.interface.as_str())
                    );
                }
            }
            assert_eq!(model.route(t.deployment.wan.address.addr()), None);
        }
    }

    fn rendered(t: &Topology) -> Ruleset {
        let names: Vec<&str> = t.deployment.peers.iter().map(|p| p.name.as_str()).collect();
        let secrets = sovereign_wg::RouterSecrets::for_tests(names);
        let config = crate::router::render_router(&t.deployment, &secrets).unwrap();
        let json = &config
            .files
            .iter()
            .find(|(path, _)| path == "nftables.json")
            .unwrap()
            .1;
        Ruleset::parse_json(json).unwrap()
    }

    fn predictions(t: &Topology, ruleset: &Ruleset) -> Vec<(ProbeSpec, StaticVerdict)> {
        let (specs, _) = crate::probe::plan(t);
        let verdicts = predict(ruleset, t, &specs, &BTreeMap::new(), &[]);
        specs.into_iter().zip(verdicts).collect()
    }

    #[test]
    fn on_the_rendered_ruleset_the_verifier_predicts_the_intent() {
        use sovereign_model::Expect;
        for isolation in [Isolation::DedicatedPort, Isolation::Shared] {
            let t = lab(&with_admin(isolation));
            for (spec, verdict) in predictions(&t, &rendered(&t)) {
                let open = verdict.prediction == Prediction::Open;
                let expected_open = spec.expect == Expect::Allow || !spec.enforceable;
                assert_eq!(
                    open,
                    expected_open,
                    "{} [{}] {} ({isolation:?}): {verdict:?}",
                    spec.source.label(),
                    spec.from,
                    spec.method.describe(spec.src)
                );
            }
        }
    }

    #[test]
    fn a_blocked_tunnel_closes_every_probe_through_it() {
        let t = lab(&with_admin(Isolation::DedicatedPort));
        let json = serde_json::to_string(&serde_json::json!({"nftables": [
            {"table": {"family": "inet", "name": "x"}},
            {"chain": {"family": "inet", "table": "x", "name": "input", "type": "filter",
                       "hook": "input", "prio": 0, "policy": "drop"}},
        ]}))
        .unwrap();
        let ruleset = Ruleset::parse_json(&json).unwrap();
        for (spec, verdict) in predictions(&t, &ruleset) {
            if spec.source == sovereign_model::Source::VpnPeer {
                assert_ne!(verdict.prediction, Prediction::Open, "{spec:?}");
            }
            if matches!(spec.method, Method::Wireguard { .. }) {
                assert_eq!(verdict.prediction, Prediction::Closed);
            }
        }
    }

    #[test]
    fn established_packets_use_the_documented_conntrack_encoding() {
        let t = lab(&with_admin(Isolation::DedicatedPort));
        let json = serde_json::to_string(&serde_json::json!({"nftables": [
            {"table": {"family": "inet", "name": "x"}},
            {"chain": {"family": "inet", "table": "x", "name": "forward", "type": "filter",
                       "hook": "forward", "prio": 0, "policy": "drop"}},
            {"rule": {"family": "inet", "table": "x", "chain": "forward", "expr": [
                {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "established"}},
                {"accept": null}]}},
        ]}))
        .unwrap();
        let ruleset = Ruleset::parse_json(&json).unwrap();
        let model = Model::new(&ruleset, &t);
        let server = t.deployment.server.address;
        let dev = t.first(Role::LanDevice).unwrap().address;
        let lan = t.deployment.lan.interface.clone();
        let first = model.first(ProbePacket {
            iif: lan.clone(),
            src: dev,
            dst: server,
            proto: PROTO_TCP,
            sport: 40000,
            dport: 22,
        });
        assert_eq!(first.0, Fate::Drop);
        let later = model.later(&lan, dev, server, PROTO_TCP, 40000, 22, TCP_ACK);
        assert_eq!(later, Fate::Accept);
    }

    #[test]
    fn observations_fall_into_the_predicted_classes() {
        let open = Observation::Open(String::new());
        assert!(Prediction::Open.agrees_with(&open));
        assert!(!Prediction::Closed.agrees_with(&open));
        assert!(Prediction::Rejected.agrees_with(&Observation::Prohibited));
        assert!(Prediction::Rejected.agrees_with(&Observation::Refused));
        assert!(!Prediction::Rejected.agrees_with(&Observation::Timeout));
        assert!(Prediction::Dropped.agrees_with(&Observation::Timeout));
        assert!(Prediction::Closed.agrees_with(&Observation::Timeout));
        assert!(!Prediction::Open.agrees_with(&Observation::Error("x".into())));
        assert!(!Prediction::Unknown("x".into()).agrees_with(&Observation::Timeout));
    }
}
