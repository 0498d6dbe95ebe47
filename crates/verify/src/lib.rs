//! The static verifier: prove that a firewall enforces the deployment's intended
//! reachability matrix, without touching the network.
//!
//! Inputs are `nft -j list ruleset` JSON or an OpenWrt firewall + network UCI pair
//! (compiled to the nftables ruleset fw4 would generate). Both become one rule model,
//! evaluated over packet *classes*: each rule splits a class into the part it matches
//! and the rest, so every verdict covers the whole address and port space exactly.
//! Expressions the model does not understand make exactly the classes that reach them
//! "unknown", naming the expression.
//!
//! Everything here is pure: text in, [`Report`] out.

mod compile;
mod eval;
mod fw4;
mod interval;
mod lint;
mod nft;
mod render;
mod report;
mod space;
mod topology;

pub use compile::Program;
pub use eval::{Fate, RouteTarget, Routes};
pub use interval::IntervalSet;
pub use nft::Ruleset;
pub use render::{Provenance, render_html, render_html_with, render_table};
pub use report::{
    CellResult, CellVerdict, IpFamily, Lint, Report, Severity, Status, Summary, TraceStep, Witness,
    WitnessPacket,
};
pub use space::{Dim, Packet, PacketBox, Universe};
pub use topology::Topology;

use sovereign_model::{Deployment, IntentMatrix};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the ruleset is not valid JSON (line {line}, column {column}): {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the ruleset JSON has an unexpected shape at nftables[{index}]: {message}")]
    Shape { index: usize, message: String },
    #[error("{file} line {line}: {message}")]
    Uci {
        file: String,
        line: usize,
        message: String,
    },
    #[error("cannot render the router configuration: {0}")]
    Render(String),
}

/// Verify an `nft -j list ruleset` document against the deployment's intent.
pub fn verify_nft_json(d: &Deployment, json: &str) -> Result<Report, VerifyError> {
    let ruleset = Ruleset::parse_json(json)?;
    let topology = Topology::from_deployment(d);
    Ok(verify_ruleset(
        "nftables ruleset",
        &ruleset,
        &topology,
        &sovereign_model::intent(d),
    ))
}

/// Verify an OpenWrt `/etc/config/firewall` + `/etc/config/network` pair: compiled to
/// the ruleset fw4 generates, then evaluated like any other.
pub fn verify_uci(
    d: &Deployment,
    firewall_text: &str,
    network_text: &str,
) -> Result<Report, VerifyError> {
    let network = fw4::parse("network", network_text)?;
    let firewall = fw4::parse("firewall", firewall_text)?;
    verify_packages(d, &firewall, &network)
}

/// The fw4 compilation of the two packages, evaluated, with the wiring read from the
/// network package: a server port that is not its own makes isolation unenforceable.
fn verify_packages(
    d: &Deployment,
    firewall: &sovereign_router::uci::Package,
    network: &sovereign_router::uci::Package,
) -> Result<Report, VerifyError> {
    let compiled = fw4::compile_packages_with(firewall, network, Some(d.wan.address));
    let mut report = verify_compiled(d, compiled)?;
    if let Some(reason) = sovereign_router::openwrt_wire::miswiring(d, network) {
        report.server_not_isolated(&reason);
    }
    Ok(report)
}

fn verify_compiled(d: &Deployment, compiled: fw4::Compiled) -> Result<Report, VerifyError> {
    let extra = compiled.lints();
    let ruleset = Ruleset::from_value(compiled.json)?;
    let topology = Topology::from_deployment(d);
    let intent = sovereign_model::intent(d);
    let program = Program::compile(&ruleset, topology.universe());
    Ok(report::analyse(
        "OpenWrt UCI (compiled as fw4 does)",
        &program,
        &topology,
        &intent,
        extra,
    ))
}

/// The ruleset fw4 would generate for a UCI config, as `nft -j` JSON.
pub fn uci_to_nft_json(firewall_text: &str, network_text: &str) -> Result<String, VerifyError> {
    let compiled = fw4::compile(firewall_text, network_text)?;
    Ok(serde_json::to_string_pretty(&compiled.json).expect("JSON values serialise"))
}

/// The general entry point: any ruleset, any topology, any intent (the lab builds its
/// own topology and asks about the same cells it probes).
pub fn verify_ruleset(
    input: &str,
    ruleset: &Ruleset,
    topology: &Topology,
    intent: &IntentMatrix,
) -> Report {
    let program = Program::compile(ruleset, topology.universe());
    report::analyse(input, &program, topology, intent, Vec::new())
}

/// The fate of one concrete packet (the first of a new flow) with its trace: what a
/// live probe should observe.
pub fn evaluate_packet(
    ruleset: &Ruleset,
    topology: &Topology,
    packet: &ProbePacket,
) -> ProbeResult {
    let universe = topology.universe();
    let program = Program::compile(ruleset, universe.clone());
    let p = packet.to_packet(&universe);
    let (after, fate, steps) = program.evaluate_packet(p, &topology.routes(&universe));
    ProbeResult {
        fate: report::fate_name(&fate),
        packet: report::witness_packet(&program, &after),
        trace: report::render_steps(&program, &steps),
    }
}

/// A concrete IPv4 probe: a new flow's first packet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbePacket {
    pub iif: String,
    pub src: std::net::Ipv4Addr,
    pub dst: std::net::Ipv4Addr,
    /// 6 tcp, 17 udp, 1 icmp ...
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
}

impl ProbePacket {
    fn to_packet(&self, u: &Universe) -> Packet {
        let mut p = topology::first_packet(
            u.index(&self.iif).unwrap_or(u.len() as u128 - 1),
            space::NFPROTO_IPV4,
        )
        .witness();
        p.set(Dim::Saddr, topology::v4(self.src));
        p.set(Dim::Daddr, topology::v4(self.dst));
        p.set(Dim::L4proto, self.proto as u128);
        p.set(Dim::Sport, self.sport as u128);
        p.set(Dim::Dport, self.dport as u128);
        if self.proto == 1 {
            p.set(Dim::IcmpType, 8);
        }
        p
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbeResult {
    pub fate: String,
    pub packet: WitnessPacket,
    pub trace: Vec<TraceStep>,
}

/// Verify what sovereign renders for `target`. Linux: the rendered `nftables.json`.
/// OpenWrt: the rendered `sovereign.uci` run, as `uci batch` would, over a fresh
/// OpenWrt's `/etc/config` ([`sovereign_router::openwrt_stock`]), then compiled as
/// fw4 does: the stock rules and the batch's `reorder`s are part of what is checked.
pub fn verify_rendered(
    d: &Deployment,
    target: sovereign_model::RouterTarget,
) -> Result<Report, VerifyError> {
    // The firewall does not depend on key material; fixed fake keys keep this pure.
    let peers: Vec<&str> = d.peers.iter().map(|p| p.name.as_str()).collect();
    let secrets = sovereign_wg::RouterSecrets::for_tests(peers);
    let rendering = sovereign_router::render(d, &secrets, target)
        .map_err(|e| VerifyError::Render(e.to_string()))?;
    let file = |path: &str| {
        rendering
            .file(path)
            .map(|f| f.contents.as_str())
            .ok_or_else(|| VerifyError::Render(format!("the rendering has no {path}")))
    };
    match target {
        sovereign_model::RouterTarget::Linux => {
            let mut report = verify_nft_json(d, file("nftables.json")?)?;
            report.input = "rendered Linux nftables.json".into();
            Ok(report)
        }
        sovereign_model::RouterTarget::Openwrt => {
            let config = openwrt_after_batch(d, file("sovereign.uci")?)?;
            let mut report = verify_openwrt_config(d, &config)?;
            report.input = "rendered sovereign.uci applied to a stock OpenWrt 23.05 config".into();
            Ok(report)
        }
    }
}

/// Verify an OpenWrt config held in memory (its `firewall` and `network` packages),
/// e.g. the result of [`openwrt_after_batch`]. Sections count in package order.
pub fn verify_openwrt_config(
    d: &Deployment,
    config: &sovereign_router::uci::Config,
) -> Result<Report, VerifyError> {
    let package = |name: &str| config.package(name).cloned().unwrap_or_default();
    verify_packages(d, &package("firewall"), &package("network"))
}

/// A stock OpenWrt config after `sh sovereign-wire.sh && uci batch < sovereign.uci`,
/// applied by the router crate's interpreter (strict: a command `uci` would skip
/// with an error fails here, naming its line; the wiring is the script's, as
/// [`sovereign_router::openwrt_wire::wire_lines`] models it).
pub fn openwrt_after_batch(
    d: &Deployment,
    batch: &str,
) -> Result<sovereign_router::uci::Config, VerifyError> {
    let uci_error = |file: &str, e: sovereign_router::uci::UciError| VerifyError::Uci {
        file: file.to_string(),
        line: e.line,
        message: e.message,
    };
    let mut config = sovereign_router::openwrt_stock::config(d)
        .map_err(|(package, e)| uci_error(&format!("stock /etc/config/{package}"), e))?;
    let network = config.package("network").cloned().unwrap_or_default();
    let wiring = sovereign_router::openwrt_wire::wire_lines(d, &network)
        .map_err(|e| VerifyError::Render(format!("sovereign-wire.sh would refuse: {e}")))?;
    let wiring = sovereign_router::uci::parse_batch(&wiring.join("\n"))
        .map_err(|e| uci_error("sovereign-wire.sh", e))?;
    config
        .apply(&wiring)
        .map_err(|e| uci_error("sovereign-wire.sh", e))?;
    let commands =
        sovereign_router::uci::parse_batch(batch).map_err(|e| uci_error("sovereign.uci", e))?;
    config
        .apply(&commands)
        .map_err(|e| uci_error("sovereign.uci", e))?;
    Ok(config)
}

#[cfg(test)]
mod tests;
