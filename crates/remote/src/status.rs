//! `router status`: per-peer handshakes and traffic, and the counters of the
//! firewall rules that carry the API and WireGuard.

use serde::Serialize;
use sovereign_model::{Deployment, RouterTarget};

use crate::linux::TABLE;
use crate::nftjson;
use crate::target::{section, sections};
use crate::transport::{Transport, TransportError};
use crate::wgdump::{self, DUMP_COMMAND};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    pub router: String,
    /// The router's clock (unix seconds) when the state was read.
    pub router_time: u64,
    pub interface: String,
    /// Whether the WireGuard interface exists.
    pub interface_up: bool,
    pub listen_port: Option<u16>,
    pub peers: Vec<PeerStatus>,
    pub counters: Vec<RuleCounter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// From sovereign.toml by public key; `None` for a peer sovereign does not know.
    pub name: Option<String>,
    pub public_key: String,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    /// Seconds since the latest handshake by the router's clock; `None` if never.
    pub handshake_age_secs: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleRole {
    /// Matches the AI server's API port.
    Api,
    /// Matches the WireGuard listen port.
    Wireguard,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCounter {
    pub role: RuleRole,
    pub chain: String,
    pub comment: String,
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("reading the router's state failed:\n{0}")]
    Remote(String),
    #[error("the router's {what} could not be read: {detail}")]
    Parse { what: &'static str, detail: String },
}

/// The script `status` runs: the router's clock, the secret-free WireGuard dump
/// and the ruleset as JSON.
pub fn status_script() -> String {
    format!(
        "# sovereign: status\n\
         echo '### now'\n\
         date +%s\n\
         echo '### wg'\n\
         {DUMP_COMMAND}\n\
         echo '### ruleset'\n\
         nft -j list ruleset\n"
    )
}

pub fn status(
    transport: &dyn Transport,
    deployment: &Deployment,
) -> Result<StatusReport, StatusError> {
    let output = transport.run(&status_script(), &[])?;
    if !output.success() {
        return Err(StatusError::Remote(format!(
            "{}{}",
            output.stdout, output.stderr
        )));
    }
    let mut report = evaluate(deployment, &output.stdout)?;
    report.router = transport.describe();
    Ok(report)
}

/// The status in the output of [`status_script`] (pure).
pub fn evaluate(deployment: &Deployment, gathered: &str) -> Result<StatusReport, StatusError> {
    let parts = sections(gathered);
    let now: u64 = section(&parts, "now")
        .unwrap_or("")
        .trim()
        .parse()
        .map_err(|_| StatusError::Parse {
            what: "clock",
            detail: "`date +%s` printed no number".into(),
        })?;
    let dump = wgdump::parse_dump(section(&parts, "wg").unwrap_or("")).map_err(|e| {
        StatusError::Parse {
            what: "WireGuard dump",
            detail: e.to_string(),
        }
    })?;
    let name = &deployment.wireguard.interface;
    let interface = dump.into_iter().find(|i| &i.name == name);
    let peers = interface
        .iter()
        .flat_map(|i| i.peers.iter())
        .map(|p| PeerStatus {
            name: deployment
                .peers
                .iter()
                .find(|d| d.public_key == p.public_key)
                .map(|d| d.name.clone()),
            public_key: p.public_key.clone(),
            endpoint: p.endpoint.clone(),
            allowed_ips: p.allowed_ips.clone(),
            handshake_age_secs: p.latest_handshake.map(|t| now.saturating_sub(t)),
            rx_bytes: p.rx_bytes,
            tx_bytes: p.tx_bytes,
        })
        .collect();
    let ruleset = nftjson::parse(section(&parts, "ruleset").unwrap_or("").trim()).map_err(|e| {
        StatusError::Parse {
            what: "nftables ruleset",
            detail: e.to_string(),
        }
    })?;
    let rules = nftjson::rules(&ruleset).map_err(|e| StatusError::Parse {
        what: "nftables ruleset",
        detail: e.to_string(),
    })?;
    let table = match deployment.router.target {
        RouterTarget::Linux => TABLE.to_string(),
        RouterTarget::Openwrt => "inet fw4".to_string(),
    };
    let counters = rules
        .iter()
        .filter(|r| format!("{} {}", r.family, r.table) == table)
        .filter_map(|rule| {
            let role = if nftjson::matches_dport(rule, deployment.server.api_port) {
                RuleRole::Api
            } else if nftjson::matches_dport(rule, deployment.wireguard.listen_port) {
                RuleRole::Wireguard
            } else {
                return None;
            };
            Some(RuleCounter {
                role,
                chain: rule.chain.clone(),
                comment: rule.comment.clone().unwrap_or_default(),
                packets: rule.packets,
                bytes: rule.bytes,
            })
        })
        .collect();
    Ok(StatusReport {
        router: String::new(),
        router_time: now,
        interface: name.clone(),
        interface_up: interface.is_some(),
        listen_port: interface.as_ref().and_then(|i| i.listen_port),
        peers,
        counters,
    })
}
