//! The router side of sovereign, rendered as files: OpenWrt (UCI batch for fw4 and
//! netifd) or a plain Linux router (one nftables table, `wg setconf` config, a setup
//! script and sysctls).
//!
//! [`render`] is a pure function of the deployment and the router's secrets: no
//! I/O, no clock, no randomness. Every rule that decides an intent cell carries a
//! [`rule_key::RuleKey`] as its comment (nftables) or name (fw4), so verifiers can
//! map rules back to the matrix. [`uci`] parses UCI batches and `/etc/config` files
//! and applies batches; [`openwrt_stock`] is the stock OpenWrt config they apply to.

mod linux;
mod names;
mod openwrt;
pub mod openwrt_stock;
pub mod openwrt_wire;
pub mod rule_key;
pub mod uci;

use serde::Serialize;
pub use sovereign_model::RouterTarget;
use sovereign_model::{Deployment, Destination, Isolation, Source};
use sovereign_wg::RouterSecrets;

pub use linux::nft_text;

/// Render the router configuration for `target`.
/// [`render`] at `now`: peers whose expiry has passed are left out (as disabled
/// ones are). The clock is an input, so rendering stays pure and testable.
pub fn render_at(
    d: &Deployment,
    secrets: &RouterSecrets,
    target: RouterTarget,
    now: std::time::SystemTime,
) -> Result<Rendering, RenderError> {
    render(&d.as_of(now), secrets, target)
}

pub fn render(
    d: &Deployment,
    secrets: &RouterSecrets,
    target: RouterTarget,
) -> Result<Rendering, RenderError> {
    names::check(d, target)?;
    check_secrets(d, secrets)?;
    let isolation = isolation_verdict(d);
    let (files, checklist) = match target {
        RouterTarget::Linux => linux::render(d, secrets)?,
        RouterTarget::Openwrt => openwrt::render(d, secrets)?,
    };
    Ok(Rendering {
        target,
        files,
        checklist,
        isolation,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendering {
    pub target: RouterTarget,
    pub files: Vec<RenderedFile>,
    /// What cannot be scripted: steps a person does once, in order.
    pub checklist: Vec<String>,
    pub isolation: IsolationVerdict,
}

impl Rendering {
    pub fn file(&self, path: &str) -> Option<&RenderedFile> {
        self.files.iter().find(|f| f.path == path)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedFile {
    /// Relative to the output directory, `/`-separated.
    pub path: String,
    pub contents: String,
    /// Holds a private or preshared key: write it 0600 inside a 0700 directory.
    pub secret: bool,
    /// One line: what the file is and where it goes.
    pub purpose: String,
}

/// Whether the router can enforce "AI server <-> rest of the LAN" at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IsolationVerdict {
    pub mode: Isolation,
    pub enforceable: bool,
    pub reason: String,
    /// The intent cells no router rule can enforce in this mode.
    pub unenforceable_cells: Vec<CellRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CellRef {
    pub source: Source,
    pub destination: Destination,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error(
        "{field} = `{value}` cannot be used in router configuration: {reason}; use only letters, digits, '_', '-' and '.'"
    )]
    UnsafeName {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error(
        "{field} = `{value}` cannot name an OpenWrt interface: UCI section names allow only letters, digits and '_' (e.g. wg0)"
    )]
    NotUciName { field: &'static str, value: String },
    #[error(
        "peers `{first}` and `{second}` both become the OpenWrt section `{section}`; rename one of them (UCI names turn '-' and '.' into '_')"
    )]
    PeerSectionClash {
        first: String,
        second: String,
        section: String,
    },
    #[error(
        "peer `{peer}` has preshared_key = true but the state directory holds no preshared key for it; run `sovereign peer rotate {peer}` or set preshared_key = false"
    )]
    MissingPresharedKey { peer: String },
    #[error("internal error while printing the nftables ruleset: {0}")]
    Printer(String),
}

fn check_secrets(d: &Deployment, secrets: &RouterSecrets) -> Result<(), RenderError> {
    for peer in d.active_peers() {
        if peer.preshared_key && !secrets.preshared_keys.contains_key(&peer.name) {
            return Err(RenderError::MissingPresharedKey {
                peer: peer.name.clone(),
            });
        }
    }
    Ok(())
}

fn isolation_verdict(d: &Deployment) -> IsolationVerdict {
    let matrix = sovereign_model::intent(d);
    let unenforceable_cells: Vec<CellRef> = matrix
        .unenforceable()
        .map(|c| CellRef {
            source: c.source,
            destination: c.destination,
        })
        .collect();
    let (enforceable, reason) = match d.server.isolation {
        Isolation::DedicatedPort => (
            unenforceable_cells.is_empty(),
            format!(
                "the server has router port {} to itself: the router holds {}/32 on it, routes {}/32 there \
                 and answers ARP on both sides (proxy ARP), so every packet between the server and the \
                 LAN is routed through the firewall while the server keeps its address",
                d.server.router_port, d.lan.router_address, d.server.address
            ),
        ),
        Isolation::Shared => (
            false,
            format!(
                "the server shares {} with the other LAN devices: frames between them are switched, \
                 never routed, so no router rule sees them; \"server -> LAN: deny\" and \"LAN -> server \
                 (except the API)\" cannot be enforced. Use isolation = \"dedicated-port\"",
                d.lan.interface
            ),
        ),
    };
    IsolationVerdict {
        mode: d.server.isolation,
        enforceable,
        reason,
        unenforceable_cells,
    }
}
