//! The intended reachability matrix (DESIGN.md §2). `plan`, `verify` and `lab probe`
//! all compare what they find against this one table.

use std::fmt;

use serde::Serialize;

use crate::config::{Deployment, Isolation};

/// Where a connection starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Any host on the WAN side of the router.
    Internet,
    /// A WireGuard peer, through the tunnel.
    VpnPeer,
    /// The AI server itself.
    Server,
    /// A LAN device that is not an admin host.
    LanDevice,
    /// A LAN host listed in `policy.admin_hosts`.
    LanAdmin,
}

/// Where a connection goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Destination {
    /// The router's WireGuard UDP port.
    RouterWireguard,
    /// The router's management services (SSH, web UI).
    RouterServices,
    /// The router's DNS resolver (and DHCP).
    RouterDns,
    ServerApi,
    ServerSsh,
    /// Any other port on the AI server.
    ServerOther,
    /// A LAN device other than the AI server.
    OtherLan,
    Internet,
    VpnPeer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Allow,
    Deny,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub source: Source,
    pub destination: Destination,
    pub expect: Expect,
    /// False when the router cannot see this traffic at all (two hosts on one L2
    /// segment), so no firewall rule can enforce the cell.
    pub enforceable: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntentMatrix {
    pub sources: Vec<Source>,
    pub destinations: Vec<Destination>,
    /// Only the cells that apply; e.g. the server -> its own API is not a cell.
    pub cells: Vec<Cell>,
}

impl IntentMatrix {
    pub fn get(&self, source: Source, destination: Destination) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.source == source && c.destination == destination)
    }

    pub fn unenforceable(&self) -> impl Iterator<Item = &Cell> {
        self.cells.iter().filter(|c| !c.enforceable)
    }
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::Internet,
        Source::VpnPeer,
        Source::Server,
        Source::LanDevice,
        Source::LanAdmin,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Source::Internet => "internet (WAN)",
            Source::VpnPeer => "VPN peer",
            Source::Server => "AI server",
            Source::LanDevice => "other LAN device",
            Source::LanAdmin => "LAN admin host",
        }
    }

    fn on_lan(self) -> bool {
        matches!(self, Source::LanDevice | Source::LanAdmin)
    }
}

impl Destination {
    pub const ALL: [Destination; 9] = [
        Destination::RouterWireguard,
        Destination::RouterServices,
        Destination::RouterDns,
        Destination::ServerApi,
        Destination::ServerSsh,
        Destination::ServerOther,
        Destination::OtherLan,
        Destination::Internet,
        Destination::VpnPeer,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Destination::RouterWireguard => "router WG UDP",
            Destination::RouterServices => "router services",
            Destination::RouterDns => "router DNS",
            Destination::ServerApi => "server API",
            Destination::ServerSsh => "server SSH",
            Destination::ServerOther => "server other",
            Destination::OtherLan => "other LAN",
            Destination::Internet => "internet",
            Destination::VpnPeer => "VPN peer",
        }
    }

    fn on_server(self) -> bool {
        matches!(
            self,
            Destination::ServerApi | Destination::ServerSsh | Destination::ServerOther
        )
    }
}

/// The intended matrix for a deployment.
pub fn intent(d: &Deployment) -> IntentMatrix {
    let sources: Vec<Source> = Source::ALL
        .into_iter()
        .filter(|s| *s != Source::LanAdmin || !d.policy.admin_hosts.is_empty())
        .collect();
    let mut cells = Vec::new();
    for &source in &sources {
        for destination in Destination::ALL {
            if let Some((expect, reason)) = decide(d, source, destination) {
                let enforceable = enforceable(d, source, destination);
                cells.push(Cell {
                    source,
                    destination,
                    expect,
                    enforceable,
                    reason: reason.to_string(),
                });
            }
        }
    }
    IntentMatrix {
        sources,
        destinations: Destination::ALL.to_vec(),
        cells,
    }
}

fn decide(
    d: &Deployment,
    source: Source,
    destination: Destination,
) -> Option<(Expect, &'static str)> {
    use Destination as D;
    use Expect::{Allow, Deny};
    use Source as S;
    let p = &d.policy;
    let when = |cond: bool, yes: &'static str, no: &'static str| {
        if cond { (Allow, yes) } else { (Deny, no) }
    };
    Some(match (source, destination) {
        (S::Internet, D::RouterWireguard) => (
            Allow,
            "the WireGuard port is the only thing open to the internet",
        ),
        (S::Internet, D::Internet) => return None,
        (S::Internet, _) => (
            Deny,
            "the WAN reaches nothing but the WireGuard port (dropped, not rejected)",
        ),

        (S::VpnPeer, D::RouterWireguard) => return None,
        (S::VpnPeer, D::ServerApi) => (Allow, "the one thing peers are for"),
        (S::VpnPeer, D::ServerSsh) => {
            when(p.vpn_ssh, "policy.vpn_ssh = true", "policy.vpn_ssh = false")
        }
        (S::VpnPeer, D::Internet) => (Deny, "the tunnel is not an exit to the internet"),
        (S::VpnPeer, D::VpnPeer) => (Deny, "peers never reach each other"),
        (S::VpnPeer, _) => (Deny, "peers reach only the server's API"),

        (S::Server, D::RouterWireguard | D::ServerApi | D::ServerSsh | D::ServerOther) => {
            return None;
        }
        (S::Server, D::RouterDns) => (Allow, "the server needs DNS (and DHCP) from the router"),
        (S::Server, D::Internet) => when(
            p.server_internet,
            "model pulls and updates (policy.server_internet = true)",
            "air-gapped (policy.server_internet = false)",
        ),
        (S::Server, _) => (
            Deny,
            "a compromised server must not reach the LAN, the router or the peers",
        ),

        (S::LanDevice | S::LanAdmin, D::RouterWireguard) => return None,
        (S::LanDevice | S::LanAdmin, D::VpnPeer) => {
            (Deny, "nothing on the LAN opens connections to peers")
        }
        (S::LanAdmin, _) => (Allow, "listed in policy.admin_hosts"),
        (S::LanDevice, D::ServerApi) => when(
            p.lan_api,
            "policy.lan_api = true",
            "policy.lan_api = false: only admin hosts and peers use the API",
        ),
        (S::LanDevice, D::ServerSsh | D::ServerOther) => {
            (Deny, "only admin hosts manage the server")
        }
        (S::LanDevice, _) => (Allow, "ordinary LAN access is untouched"),
    })
}

fn enforceable(d: &Deployment, source: Source, destination: Destination) -> bool {
    if d.server.isolation != Isolation::Shared {
        return true;
    }
    // On a shared bridge, server <-> LAN frames are switched, never routed.
    let server_to_lan = source == Source::Server && destination == Destination::OtherLan;
    let lan_to_server = source.on_lan() && destination.on_server();
    !(server_to_lan || lan_to_server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_matrix_matches_design_table() {
        let d = Deployment::reference();
        let m = intent(&d);
        let expect = |s, t| m.get(s, t).map(|c| c.expect);
        assert_eq!(
            expect(Source::Internet, Destination::RouterWireguard),
            Some(Expect::Allow)
        );
        assert_eq!(
            expect(Source::Internet, Destination::ServerApi),
            Some(Expect::Deny)
        );
        assert_eq!(
            expect(Source::VpnPeer, Destination::ServerApi),
            Some(Expect::Allow)
        );
        assert_eq!(
            expect(Source::VpnPeer, Destination::ServerSsh),
            Some(Expect::Deny)
        );
        assert_eq!(
            expect(Source::VpnPeer, Destination::Internet),
            Some(Expect::Deny)
        );
        assert_eq!(
            expect(Source::Server, Destination::Internet),
            Some(Expect::Allow)
        );
        assert_eq!(
            expect(Source::Server, Destination::RouterDns),
            Some(Expect::Allow)
        );
        assert_eq!(
            expect(Source::Server, Destination::OtherLan),
            Some(Expect::Deny)
        );
        assert_eq!(
            expect(Source::LanDevice, Destination::ServerApi),
            Some(Expect::Deny)
        );
        assert_eq!(
            expect(Source::LanDevice, Destination::Internet),
            Some(Expect::Allow)
        );
        assert!(
            !m.sources.contains(&Source::LanAdmin),
            "no admin hosts configured"
        );
        assert_eq!(m.unenforceable().count(), 0);
    }

    #[test]
    fn policy_switches_flip_their_cells() {
        let mut d = Deployment::reference();
        d.policy.vpn_ssh = true;
        d.policy.lan_api = true;
        d.policy.server_internet = false;
        d.policy.admin_hosts = vec!["192.168.250.10".parse().unwrap()];
        let m = intent(&d);
        let expect = |s, t| m.get(s, t).map(|c| c.expect);
        assert_eq!(
            expect(Source::VpnPeer, Destination::ServerSsh),
            Some(Expect::Allow)
        );
        assert_eq!(
            expect(Source::LanDevice, Destination::ServerApi),
            Some(Expect::Allow)
        );
        assert_eq!(
            expect(Source::Server, Destination::Internet),
            Some(Expect::Deny)
        );
        assert_eq!(
            expect(Source::LanAdmin, Destination::ServerOther),
            Some(Expect::Allow)
        );
        assert_eq!(
            expect(Source::LanAdmin, Destination::VpnPeer),
            Some(Expect::Deny)
        );
    }

    #[test]
    fn shared_isolation_marks_l2_cells_unenforceable() {
        let mut d = Deployment::reference();
        d.server.isolation = Isolation::Shared;
        let m = intent(&d);
        let cells: Vec<_> = m
            .unenforceable()
            .map(|c| (c.source, c.destination))
            .collect();
        assert!(cells.contains(&(Source::Server, Destination::OtherLan)));
        assert!(cells.contains(&(Source::LanDevice, Destination::ServerSsh)));
        assert!(!cells.contains(&(Source::VpnPeer, Destination::ServerApi)));
    }
}
