//! From the deployment model to packets: which interface each party sits behind, which
//! addresses it has, where routing sends a destination, and the packet space of every
//! intent cell.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;
use sovereign_model::{Deployment, Destination, Isolation, Source};

use crate::eval::{RouteTarget, Routes};
use crate::interval::IntervalSet;
use crate::space::*;

/// The router's view of the deployment. Built from the model; fields are public so a
/// caller with a different wiring (the lab gives every LAN host its own router port)
/// can adjust it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    pub wan_interface: String,
    pub wireguard_interface: String,
    pub lan_interface: String,
    /// The router port of the AI server (the LAN interface in shared mode).
    pub server_interface: String,
    /// Where admin hosts connect (the LAN interface unless told otherwise).
    pub admin_interface: String,
    pub wan_net: Ipv4Net,
    pub wan_address: Ipv4Addr,
    pub vpn_net: Ipv4Net,
    pub vpn_address: Ipv4Addr,
    pub lan_net: Ipv4Net,
    pub lan_address: Ipv4Addr,
    pub server: Ipv4Addr,
    pub admin_hosts: Vec<Ipv4Addr>,
    pub wireguard_port: u16,
    pub api_port: u16,
    pub ssh_port: u16,
    /// Host routes checked before the subnet routes (address/prefix, interface).
    pub host_routes: Vec<(Ipv4Net, String)>,
}

/// The packets of one intent cell.
#[derive(Debug, Clone)]
pub struct CellSpace {
    pub boxes: Vec<PacketBox>,
    pub routes: Routes,
    /// Source and destination share an L2 segment: the router never sees these packets.
    pub l2_only: bool,
    pub description: String,
}

impl Topology {
    pub fn from_deployment(d: &Deployment) -> Self {
        let server_interface = match d.server.isolation {
            Isolation::DedicatedPort => d.server.router_port.clone(),
            Isolation::Shared => d.lan.interface.clone(),
        };
        Topology {
            wan_interface: d.wan.interface.clone(),
            wireguard_interface: d.wireguard.interface.clone(),
            lan_interface: d.lan.interface.clone(),
            server_interface,
            admin_interface: d.lan.interface.clone(),
            wan_net: d.wan.address.trunc(),
            wan_address: d.wan.address.addr(),
            vpn_net: d.wireguard.subnet.trunc(),
            vpn_address: d.wireguard.address,
            lan_net: d.lan.subnet.trunc(),
            lan_address: d.lan.router_address,
            server: d.server.address,
            admin_hosts: d.policy.admin_hosts.clone(),
            wireguard_port: d.wireguard.listen_port,
            api_port: d.server.api_port,
            ssh_port: d.server.ssh_port,
            host_routes: Vec::new(),
        }
    }

    pub fn interfaces(&self) -> Vec<String> {
        let mut names = vec![
            self.wan_interface.clone(),
            self.wireguard_interface.clone(),
            self.lan_interface.clone(),
            self.server_interface.clone(),
            self.admin_interface.clone(),
        ];
        names.extend(self.host_routes.iter().map(|(_, i)| i.clone()));
        names.dedup();
        names
    }

    pub fn universe(&self) -> Universe {
        Universe::new(self.interfaces())
    }

    pub fn router_addresses(&self) -> IntervalSet {
        IntervalSet::from_points([self.wan_address, self.vpn_address, self.lan_address].map(v4))
    }

    /// IPv4 routing: the router's addresses are local; host routes, the server's /32,
    /// then the connected subnets; everything else leaves through the WAN.
    pub fn routes(&self, u: &Universe) -> Routes {
        let out = |name: &str| RouteTarget::Out(u.index(name).unwrap_or(u.len() as u128 - 1));
        let mut table = vec![(self.router_addresses(), RouteTarget::Local)];
        for (net, iface) in &self.host_routes {
            table.push((net_set(*net), out(iface)));
        }
        table.push((
            IntervalSet::point(v4(self.server)),
            out(&self.server_interface),
        ));
        table.push((net_set(self.lan_net), out(&self.lan_interface)));
        table.push((net_set(self.vpn_net), out(&self.wireguard_interface)));
        table.push((net_set(self.wan_net), out(&self.wan_interface)));
        table.push((
            IntervalSet::range(0, u32::MAX as u128),
            out(&self.wan_interface),
        ));
        Routes::Table(table)
    }

    fn special_v4() -> IntervalSet {
        ["0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/3"]
            .iter()
            .map(|n| net_set(n.parse().expect("static")))
            .fold(IntervalSet::empty(), |a, b| a.union(&b))
    }

    /// Internet hosts as senders: everything outside our subnets (the WAN segment's
    /// other hosts included: they are untrusted too).
    pub fn internet_sources(&self) -> IntervalSet {
        IntervalSet::range(0, u32::MAX as u128)
            .subtract(&net_set(self.lan_net))
            .subtract(&net_set(self.vpn_net))
            .subtract(&self.router_addresses())
            .subtract(&Self::special_v4())
    }

    /// Internet hosts as destinations: everything outside the LAN, VPN and WAN subnets.
    pub fn internet_destinations(&self) -> IntervalSet {
        self.internet_sources().subtract(&net_set(self.wan_net))
    }

    fn lan_devices(&self) -> IntervalSet {
        let mut set = net_set(self.lan_net)
            .subtract(&IntervalSet::point(v4(self.lan_address)))
            .subtract(&IntervalSet::point(v4(self.server)));
        for a in &self.admin_hosts {
            set = set.subtract(&IntervalSet::point(v4(*a)));
        }
        set
    }

    fn source(&self, s: Source) -> (&str, IntervalSet) {
        match s {
            Source::Internet => (&self.wan_interface, self.internet_sources()),
            Source::VpnPeer => (
                &self.wireguard_interface,
                net_set(self.vpn_net).subtract(&IntervalSet::point(v4(self.vpn_address))),
            ),
            Source::Server => (&self.server_interface, IntervalSet::point(v4(self.server))),
            Source::LanDevice => (&self.lan_interface, self.lan_devices()),
            Source::LanAdmin => (
                &self.admin_interface,
                IntervalSet::from_points(self.admin_hosts.iter().map(|a| v4(*a))),
            ),
        }
    }

    /// The interface a destination lies behind (`None`: the router itself).
    fn destination_interface(&self, d: Destination) -> Option<&str> {
        match d {
            Destination::RouterWireguard | Destination::RouterServices | Destination::RouterDns => {
                None
            }
            Destination::ServerApi | Destination::ServerSsh | Destination::ServerOther => {
                Some(&self.server_interface)
            }
            Destination::OtherLan => Some(&self.lan_interface),
            Destination::Internet => Some(&self.wan_interface),
            Destination::VpnPeer => Some(&self.wireguard_interface),
        }
    }

    /// Destination addresses and the (protocol, destination port) pairs of a cell.
    fn destination(
        &self,
        s: Source,
        d: Destination,
    ) -> (IntervalSet, Vec<(IntervalSet, IntervalSet)>) {
        let tcp = IntervalSet::point(PROTO_TCP);
        let udp = IntervalSet::point(PROTO_UDP);
        let ports = Dim::Dport.full();
        let pts = |ps: &[u16]| IntervalSet::from_points(ps.iter().map(|p| *p as u128));
        let all_but = |ps: &[u16]| ports.subtract(&pts(ps));
        let icmp = IntervalSet::from_points([PROTO_ICMP, PROTO_ICMPV6]);
        let other_protos = Dim::L4proto
            .full()
            .subtract(&icmp)
            .subtract(&IntervalSet::from_points([PROTO_TCP, PROTO_UDP]));
        let everything = vec![(Dim::L4proto.full().subtract(&icmp), ports.clone())];
        let near_router = match s {
            Source::Internet => self.wan_address,
            Source::VpnPeer => self.vpn_address,
            Source::Server | Source::LanDevice | Source::LanAdmin => self.lan_address,
        };
        let server = IntervalSet::point(v4(self.server));
        match d {
            Destination::RouterWireguard => (
                IntervalSet::point(v4(self.wan_address)),
                vec![(udp, pts(&[self.wireguard_port]))],
            ),
            Destination::RouterServices => (
                self.router_addresses(),
                vec![
                    (tcp, all_but(&[53])),
                    (udp, all_but(&[53, 67, self.wireguard_port])),
                    (other_protos, ports.clone()),
                ],
            ),
            Destination::RouterDns => (
                IntervalSet::point(v4(near_router)),
                vec![(tcp, pts(&[53])), (udp, pts(&[53, 67]))],
            ),
            Destination::ServerApi => (server, vec![(tcp, pts(&[self.api_port]))]),
            Destination::ServerSsh => (server, vec![(tcp, pts(&[self.ssh_port]))]),
            Destination::ServerOther => (
                server,
                vec![
                    (tcp, all_but(&[self.api_port, self.ssh_port])),
                    (udp, ports.clone()),
                    (other_protos, ports.clone()),
                ],
            ),
            Destination::OtherLan => (
                net_set(self.lan_net)
                    .subtract(&IntervalSet::point(v4(self.lan_address)))
                    .subtract(&IntervalSet::point(v4(self.server))),
                everything,
            ),
            Destination::Internet => (self.internet_destinations(), everything),
            Destination::VpnPeer => (
                net_set(self.vpn_net).subtract(&IntervalSet::point(v4(self.vpn_address))),
                everything,
            ),
        }
    }

    /// The IPv4 packet space of a cell: first packets of new flows.
    pub fn cell_space(&self, s: Source, d: Destination, u: &Universe) -> CellSpace {
        let (iif, saddr) = self.source(s);
        let (daddr, services) = self.destination(s, d);
        let l2_only = self.destination_interface(d) == Some(iif)
            && s != Source::Internet
            && s != Source::VpnPeer;
        let base = first_packet(u.index(iif).unwrap_or(0), NFPROTO_IPV4)
            .with(Dim::Saddr, saddr)
            .with(Dim::Daddr, daddr);
        let boxes = services
            .into_iter()
            .map(|(proto, dport)| {
                base.clone()
                    .with(Dim::L4proto, proto)
                    .with(Dim::Dport, dport)
            })
            .collect();
        CellSpace {
            boxes,
            routes: self.routes(u),
            l2_only,
            description: format!("{} -> {} (IPv4, in via {iif})", s.label(), d.label()),
        }
    }

    /// The IPv6 space of a cell: the model has no IPv6 addressing, so any address, with
    /// the interfaces (and hence the zones) of the IPv4 cell.
    pub fn cell_space_v6(&self, s: Source, d: Destination, u: &Universe) -> CellSpace {
        let v4 = self.cell_space(s, d, u);
        let (iif, _) = self.source(s);
        let target = match self.destination_interface(d) {
            None => RouteTarget::Local,
            Some(name) => RouteTarget::Out(u.index(name).unwrap_or(0)),
        };
        let boxes = v4
            .boxes
            .into_iter()
            .map(|b| {
                b.with(Dim::Family, IntervalSet::point(NFPROTO_IPV6))
                    .with(Dim::Saddr, Dim::Saddr.full())
                    .with(Dim::Daddr, Dim::Daddr.full())
            })
            .collect();
        CellSpace {
            boxes,
            routes: Routes::Fixed(target),
            l2_only: v4.l2_only,
            description: format!(
                "{} -> {} (IPv6, any address, in via {iif})",
                s.label(),
                d.label()
            ),
        }
    }
}

/// The first packet of a new flow arriving on `iif`; everything else free.
pub fn first_packet(iif: u128, family: u128) -> PacketBox {
    PacketBox::universe()
        .with(Dim::Family, IntervalSet::point(family))
        .with(Dim::Iif, IntervalSet::point(iif))
        .with(Dim::Oif, IntervalSet::point(NO_INTERFACE))
        .with(Dim::CtState, IntervalSet::point(CT_NEW))
        .with(Dim::CtDnat, IntervalSet::point(0))
        .with(Dim::Mark, IntervalSet::point(0))
        .with(Dim::CtMark, IntervalSet::point(0))
        .with(Dim::TcpFlags, IntervalSet::point(TCP_SYN))
}

pub fn v4(a: Ipv4Addr) -> u128 {
    u32::from(a) as u128
}

pub fn net_set(n: Ipv4Net) -> IntervalSet {
    IntervalSet::range(v4(n.network()), v4(n.broadcast()))
}
