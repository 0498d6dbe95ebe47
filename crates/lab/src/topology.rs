//! The lab's topology as plain data: which namespaces exist, how they are wired,
//! which address each node has and what listens where. Pure: no I/O, so the
//! whole wiring is testable without root.

use std::net::{Ipv4Addr, SocketAddrV4};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use sovereign_model::{BindMode, Deployment, Endpoint, Isolation, Peer, PeerStatus, RouterTarget};

use crate::{LabError, LabName};

/// The "internet" segment: TEST-NET-3, never routed on the real internet.
pub const INTERNET_NET: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 0), 24);
/// The internet's router (the ISP side) on the internet segment.
pub const INTERNET_GATEWAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// A host "somewhere on the internet" with a web server, for "X -> internet" cells.
pub const INTERNET_HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The port of every plain lab listener that stands in for a web service.
pub const WEB_PORT: u16 = 80;
/// The port VPN clients listen on, for "X -> VPN peer" cells.
pub const PEER_SERVICE_PORT: u16 = 8080;
/// The router's management service (SSH) and resolver ports.
pub const ROUTER_SERVICE_PORT: u16 = 22;
pub const DNS_PORT: u16 = 53;

/// What a node is in the reference topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The ISP side: routes the LAN and VPN prefixes to the router's WAN address on
    /// purpose, hosts the "internet host" and the VPN clients' underlay.
    Internet,
    Router,
    Server,
    LanDevice,
    /// A second ordinary LAN device: the "other LAN" target of the first one.
    LanDevice2,
    LanAdmin,
    VpnClient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// What answers on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    /// The lab's HTTP responder: names the node and the source address it saw.
    Http,
    /// UDP echo: answers every datagram with the source address it saw.
    Echo,
    /// The Ollama API (the emulator, or a real `ollama serve`).
    Api,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub proto: Proto,
    /// 0.0.0.0 for "every address of the node".
    pub address: SocketAddrV4,
    pub service: Service,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Short key, also the namespace suffix and the name `lab exec` takes.
    pub key: String,
    pub role: Role,
    pub netns: String,
    /// The node's own address: LAN address, WAN-side address or tunnel underlay.
    pub address: Ipv4Addr,
    /// VPN clients only: the tunnel address and the WireGuard interface.
    pub tunnel: Option<Tunnel>,
    pub listeners: Vec<Listener>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunnel {
    pub peer_name: String,
    pub address: Ipv4Addr,
    pub interface: String,
}

/// One command of the wiring, run in a namespace (or on the host for `ip netns add`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Step {
    /// `ip [-n NETNS] ARGS...`
    Ip {
        netns: Option<String>,
        args: Vec<String>,
    },
    /// A per-namespace sysctl. `optional` ones may be absent on other kernels
    /// (e.g. the bridge-netfilter knobs without br_netfilter).
    Sysctl {
        netns: String,
        key: String,
        value: String,
        optional: bool,
    },
}

/// The whole lab: the deployment it runs (the lab's copy) and its nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub name: LabName,
    pub deployment: Deployment,
    /// The ISP router's address on the WAN link (the router's default gateway).
    pub isp_address: Ipv4Addr,
    pub nodes: Vec<Node>,
}

/// The lab's copy of a deployment. It differs from the user's in exactly these
/// ways, each needed to run it on one host:
/// - `router.target = linux`: the lab router is a Linux namespace;
/// - `wireguard.interface`: a host-unique name (the userspace control socket is global);
/// - `wan.endpoint`: the router's WAN address (the real endpoint may be a DNS name);
/// - `wireguard.client_allowed_ips` widened to the LAN, the VPN subnet and the
///   internet host: this simulates peers that widened their AllowedIPs, so "VPN ->
///   other LAN / internet / other peers: deny" is proven by the router's firewall
///   and not by the clients' routing;
/// - `peers`: `peer_keys.len()` ephemeral peers `lab1`, `lab2`, ... with fresh keys,
///   so the lab never needs (or touches) the real peers' secrets.
pub fn lab_deployment(
    user: &Deployment,
    name: &LabName,
    peer_public_keys: &[String],
) -> Result<Deployment, LabError> {
    let mut d = user.clone();
    d.router.target = RouterTarget::Linux;
    d.wireguard.interface = name.router_wireguard();
    d.wan.endpoint = Endpoint {
        host: d.wan.address.addr().to_string(),
        port: d.wireguard.listen_port,
    };
    d.wireguard.client_allowed_ips = vec![
        d.lan.subnet,
        d.wireguard.subnet,
        Ipv4Net::new(INTERNET_HOST, 32).expect("/32 is valid"),
    ];
    let addresses = tunnel_addresses(&d, peer_public_keys.len())?;
    d.peers = peer_public_keys
        .iter()
        .zip(addresses)
        .enumerate()
        .map(|(i, (key, address))| Peer {
            name: format!("lab{}", i + 1),
            address,
            public_key: key.clone(),
            created: String::new(),
            status: PeerStatus::Active,
            preshared_key: true,
            changed: String::new(),
            expires: None,
        })
        .collect();
    Ok(d)
}

/// Nodes and addresses for a lab deployment (the output of [`lab_deployment`]).
pub fn topology(name: &LabName, deployment: &Deployment) -> Result<Topology, LabError> {
    let d = deployment;
    check_addressing(d)?;
    let isp_address = d
        .wan
        .address
        .hosts()
        .find(|a| *a != d.wan.address.addr())
        .ok_or_else(|| {
            LabError::Unsupported(format!(
                "wan.address {} leaves no room for the ISP router",
                d.wan.address
            ))
        })?;
    let any = Ipv4Addr::UNSPECIFIED;
    let listen = |proto, ip, port, service| Listener {
        proto,
        address: SocketAddrV4::new(ip, port),
        service,
    };
    let node = |key: &str, role, address, listeners| Node {
        key: key.to_string(),
        role,
        netns: name.netns(key),
        address,
        tunnel: None,
        listeners,
    };
    let lan_devices = lan_device_addresses(d)?;
    let api_ip = match d.server.bind {
        BindMode::LanIp => d.server.address,
        BindMode::All => any,
    };
    let mut nodes = vec![
        node(
            "net",
            Role::Internet,
            INTERNET_HOST,
            vec![listen(Proto::Tcp, INTERNET_HOST, WEB_PORT, Service::Http)],
        ),
        node(
            "rtr",
            Role::Router,
            d.wan.address.addr(),
            vec![
                listen(Proto::Tcp, any, ROUTER_SERVICE_PORT, Service::Http),
                listen(Proto::Udp, any, DNS_PORT, Service::Echo),
            ],
        ),
        node(
            "srv",
            Role::Server,
            d.server.address,
            vec![
                listen(Proto::Tcp, api_ip, d.server.api_port, Service::Api),
                listen(Proto::Tcp, any, d.server.ssh_port, Service::Http),
                listen(Proto::Tcp, any, server_other_port(d), Service::Http),
            ],
        ),
        node(
            "dev",
            Role::LanDevice,
            lan_devices[0],
            vec![listen(Proto::Tcp, any, WEB_PORT, Service::Http)],
        ),
        node(
            "dev2",
            Role::LanDevice2,
            lan_devices[1],
            vec![listen(Proto::Tcp, any, WEB_PORT, Service::Http)],
        ),
    ];
    if let Some(admin) = d.policy.admin_hosts.first() {
        nodes.push(node(
            "adm",
            Role::LanAdmin,
            *admin,
            vec![listen(Proto::Tcp, any, WEB_PORT, Service::Http)],
        ));
    }
    for (i, peer) in d.active_peers().enumerate() {
        let key = format!("v{}", i + 1);
        let underlay = Ipv4Addr::from(u32::from(INTERNET_HOST) + 10 + i as u32);
        let mut client = node(
            &key,
            Role::VpnClient,
            underlay,
            vec![listen(Proto::Tcp, any, PEER_SERVICE_PORT, Service::Http)],
        );
        client.tunnel = Some(Tunnel {
            peer_name: peer.name.clone(),
            address: peer.address,
            interface: name.client_wireguard(i),
        });
        nodes.push(client);
    }
    Ok(Topology {
        name: name.clone(),
        deployment: d.clone(),
        isp_address,
        nodes,
    })
}

/// A port on the server that nothing is supposed to reach ("server other").
pub fn server_other_port(d: &Deployment) -> u16 {
    [8080, 8081, 9000]
        .into_iter()
        .find(|p| *p != d.server.api_port && *p != d.server.ssh_port)
        .expect("three candidates, two taken at most")
}

impl Topology {
    pub fn node(&self, key: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.key == key)
    }

    pub fn by_role(&self, role: Role) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.role == role)
    }

    pub fn first(&self, role: Role) -> Option<&Node> {
        self.by_role(role).next()
    }

    pub fn router(&self) -> &Node {
        self.first(Role::Router)
            .expect("every topology has a router")
    }

    pub fn clients(&self) -> impl Iterator<Item = &Node> {
        self.by_role(Role::VpnClient)
    }

    pub fn namespaces(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.netns.clone()).collect()
    }

    /// Every host-global WireGuard interface name this lab uses.
    pub fn wireguard_interfaces(&self) -> Vec<String> {
        let mut names = vec![self.deployment.wireguard.interface.clone()];
        names.extend(
            self.clients()
                .filter_map(|c| c.tunnel.as_ref())
                .map(|t| t.interface.clone()),
        );
        names
    }

    /// The router-side veth of a LAN host. Only the router's own device names come
    /// from the deployment; these are the lab's switch ports.
    fn lan_port(&self, node: &Node) -> String {
        format!("lp-{}", node.key)
    }

    /// The namespaces, links, addresses and routes of the lab *around* the router's
    /// rendered configuration: the router's links exist (so its setup script finds
    /// them), but its addresses, routes, firewall and WireGuard come from the render.
    pub fn wiring(&self) -> Vec<Step> {
        let d = &self.deployment;
        let mut steps = Vec::new();
        let host = |args: &[&str]| Step::Ip {
            netns: None,
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        let ip = |netns: &str, args: &[&str]| Step::Ip {
            netns: Some(netns.to_string()),
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        // A veth pair from `netns` (end `name`) into `peer_netns` (end `peer_name`).
        let veth = |netns: &str, name: &str, peer_name: &str, peer_netns: &str| {
            ip(
                netns,
                &[
                    "link", "add", name, "type", "veth", "peer", "name", peer_name, "netns",
                    peer_netns,
                ],
            )
        };
        let sysctl = |netns: &str, key: &str, value: &str, optional| Step::Sysctl {
            netns: netns.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            optional,
        };
        for node in &self.nodes {
            steps.push(host(&["netns", "add", &node.netns]));
        }
        for node in &self.nodes {
            steps.push(ip(&node.netns, &["link", "set", "lo", "up"]));
        }
        let net = self.first(Role::Internet).expect("internet node");
        let rtr = self.router();
        let n = net.netns.as_str();
        let r = rtr.netns.as_str();

        // The internet: a bridge for the internet host and the VPN clients' underlay,
        // and an upstream link to the router's WAN device.
        let gateway = format!("{INTERNET_GATEWAY}/{}", INTERNET_NET.prefix_len());
        let internet_host = format!("{INTERNET_HOST}/{}", INTERNET_NET.prefix_len());
        steps.push(ip(n, &["link", "add", "br0", "type", "bridge"]));
        steps.push(ip(n, &["addr", "add", &gateway, "dev", "br0"]));
        steps.push(ip(n, &["addr", "add", &internet_host, "dev", "br0"]));
        steps.push(ip(n, &["link", "set", "br0", "up"]));
        steps.push(veth(n, "up0", &d.wan.interface, r));
        let isp = format!("{}/{}", self.isp_address, d.wan.address.prefix_len());
        steps.push(ip(n, &["addr", "add", &isp, "dev", "up0"]));
        steps.push(ip(n, &["link", "set", "up0", "up"]));
        // Worst case on purpose: the WAN side can route to the LAN and VPN prefixes,
        // so "internet -> LAN: deny" is proven by the firewall, not by a missing route.
        // Traffic from the internet towards the router leaves from the internet host's
        // address, so every "internet ->" probe is a connection from 203.0.113.10.
        let wan = d.wan.address.addr().to_string();
        let internet_src = INTERNET_HOST.to_string();
        steps.push(ip(
            n,
            &[
                "route",
                "add",
                &format!("{wan}/32"),
                "dev",
                "up0",
                "src",
                &internet_src,
            ],
        ));
        steps.push(ip(
            n,
            &[
                "route",
                "add",
                &d.lan.subnet.to_string(),
                "via",
                &wan,
                "src",
                &internet_src,
            ],
        ));
        steps.push(ip(
            n,
            &[
                "route",
                "add",
                &d.wireguard.subnet.to_string(),
                "via",
                &wan,
                "src",
                &internet_src,
            ],
        ));
        steps.push(sysctl(n, "net.ipv4.ip_forward", "1", false));

        // The router's links, named as the deployment names them.
        steps.push(ip(r, &["link", "add", &d.lan.interface, "type", "bridge"]));
        for node in self
            .nodes
            .iter()
            .filter(|n| n.role != Role::Internet && n.role != Role::Router)
        {
            if node.role == Role::VpnClient {
                let port = format!("p{}", node.key);
                steps.push(veth(n, &port, "eth0", &node.netns));
                steps.push(ip(n, &["link", "set", &port, "master", "br0", "up"]));
                let address = format!("{}/{}", node.address, INTERNET_NET.prefix_len());
                steps.push(ip(&node.netns, &["addr", "add", &address, "dev", "eth0"]));
                steps.push(ip(&node.netns, &["link", "set", "eth0", "up"]));
                steps.push(ip(
                    &node.netns,
                    &[
                        "route",
                        "add",
                        "default",
                        "via",
                        &INTERNET_GATEWAY.to_string(),
                    ],
                ));
                continue;
            }
            let dedicated =
                node.role == Role::Server && d.server.isolation == Isolation::DedicatedPort;
            let port = if dedicated {
                d.server.router_port.clone()
            } else {
                self.lan_port(node)
            };
            steps.push(veth(r, &port, "eth0", &node.netns));
            if !dedicated {
                steps.push(ip(r, &["link", "set", &port, "master", &d.lan.interface]));
            }
            steps.push(ip(r, &["link", "set", &port, "up"]));
            // Configured the way DHCP would: the LAN prefix and the router as gateway.
            let address = format!("{}/{}", node.address, d.lan.subnet.prefix_len());
            steps.push(ip(&node.netns, &["addr", "add", &address, "dev", "eth0"]));
            steps.push(ip(&node.netns, &["link", "set", "eth0", "up"]));
            steps.push(ip(
                &node.netns,
                &[
                    "route",
                    "add",
                    "default",
                    "via",
                    &d.lan.router_address.to_string(),
                ],
            ));
        }
        steps.push(ip(r, &["link", "set", &d.wan.interface, "up"]));
        steps.push(ip(r, &["link", "set", &d.lan.interface, "up"]));
        // Lab-only, per-namespace knobs (the host is never touched):
        // - rejects answer with ICMP, and the default rate limit turns a burst of
        //   probes into timeouts instead of fast "prohibited" answers;
        // - this kernel has br_netfilter built in and on in every new namespace; real
        //   routers (OpenWrt, switch offload) don't filter bridged frames, and the
        //   shared mode must show the leak they have.
        steps.push(sysctl(r, "net.ipv4.icmp_ratelimit", "0", false));
        steps.push(sysctl(r, "net.ipv4.icmp_msgs_per_sec", "100000", false));
        steps.push(sysctl(r, "net.bridge.bridge-nf-call-iptables", "0", true));
        steps.push(sysctl(r, "net.bridge.bridge-nf-call-ip6tables", "0", true));
        steps.push(sysctl(r, "net.bridge.bridge-nf-call-arptables", "0", true));
        // - proxy ARP (the dedicated port's routed /32) answers a broadcast request
        //   only after a random delay of up to `proxy_delay`; the first connection
        //   between the server and a LAN host then takes over a second, which a probe's
        //   1 s timeout reads as a drop. The delay is there to prefer a real host's
        //   answer; the lab has none to prefer.
        if d.server.isolation == Isolation::DedicatedPort {
            for device in [&d.lan.interface, &d.server.router_port] {
                // Slashes: a device name may contain dots (a VLAN such as eth0.10).
                let key = format!("net/ipv4/neigh/{device}/proxy_delay");
                steps.push(sysctl(r, &key, "0", false));
            }
        }
        steps
    }

    /// What the router needs beyond its rendered configuration, because on a real
    /// router it comes from the ISP: the default route to the ISP router.
    pub fn router_environment(&self) -> Vec<Step> {
        vec![Step::Ip {
            netns: Some(self.router().netns.clone()),
            args: [
                "route",
                "replace",
                "default",
                "via",
                &self.isp_address.to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }]
    }
}

fn check_addressing(d: &Deployment) -> Result<(), LabError> {
    for (field, net) in [
        ("lan.subnet", d.lan.subnet),
        ("wireguard.subnet", d.wireguard.subnet),
        ("wan.address", d.wan.address.trunc()),
    ] {
        if net.contains(&INTERNET_NET.network()) || INTERNET_NET.contains(&net.network()) {
            return Err(LabError::Unsupported(format!(
                "{field} {net} overlaps the lab's internet segment {INTERNET_NET}"
            )));
        }
    }
    Ok(())
}

/// Two addresses for ordinary LAN devices, not used by anything in the deployment.
fn lan_device_addresses(d: &Deployment) -> Result<[Ipv4Addr; 2], LabError> {
    let taken = |a: &Ipv4Addr| {
        *a == d.lan.router_address || *a == d.server.address || d.policy.admin_hosts.contains(a)
    };
    let free: Vec<Ipv4Addr> = d.lan.subnet.hosts().filter(|a| !taken(a)).collect();
    // Prefer .30 and up: looks like a DHCP pool and stays clear of static hosts.
    let preferred: Vec<Ipv4Addr> = free
        .iter()
        .copied()
        .filter(|a| u32::from(*a) - u32::from(d.lan.subnet.network()) >= 30)
        .collect();
    let pool = if preferred.len() >= 2 {
        preferred
    } else {
        free
    };
    match pool.as_slice() {
        [a, b, ..] => Ok([*a, *b]),
        _ => Err(LabError::Unsupported(format!(
            "lan.subnet {} has no room for two LAN devices",
            d.lan.subnet
        ))),
    }
}

/// Tunnel addresses for `count` peers: the first free hosts of the VPN subnet.
fn tunnel_addresses(d: &Deployment, count: usize) -> Result<Vec<Ipv4Addr>, LabError> {
    let free: Vec<Ipv4Addr> = d
        .wireguard
        .subnet
        .hosts()
        .filter(|a| *a != d.wireguard.address)
        .take(count)
        .collect();
    if free.len() < count {
        return Err(LabError::Unsupported(format!(
            "wireguard.subnet {} has no room for {count} lab peers",
            d.wireguard.subnet
        )));
    }
    Ok(free)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(d: &Deployment, peers: usize) -> Topology {
        let name = LabName::new("t1").unwrap();
        let keys: Vec<String> = (0..peers).map(|i| format!("{i:0>43}=")).collect();
        let lab = lab_deployment(d, &name, &keys).unwrap();
        topology(&name, &lab).unwrap()
    }

    #[test]
    fn reference_topology_has_every_vantage_point() {
        let t = lab(&Deployment::reference(), 2);
        let keys: Vec<&str> = t.nodes.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(keys, ["net", "rtr", "srv", "dev", "dev2", "v1", "v2"]);
        assert_eq!(t.deployment.wireguard.interface, "t1-wg");
        assert_eq!(t.wireguard_interfaces(), ["t1-wg", "t1-c1", "t1-c2"]);
        let tunnels: Vec<Ipv4Addr> = t
            .clients()
            .map(|c| c.tunnel.as_ref().unwrap().address)
            .collect();
        assert_eq!(
            tunnels,
            [Ipv4Addr::new(10, 10, 10, 2), Ipv4Addr::new(10, 10, 10, 3)]
        );
        assert_eq!(t.isp_address, Ipv4Addr::new(192, 168, 2, 1));
        assert!(t.nodes.iter().all(|n| n.netns.len() <= 15));
    }

    #[test]
    fn admin_host_becomes_a_node_with_its_configured_address() {
        let mut d = Deployment::reference();
        d.policy.admin_hosts = vec![Ipv4Addr::new(192, 168, 250, 30)];
        let t = lab(&d, 1);
        assert_eq!(
            t.first(Role::LanAdmin).unwrap().address,
            Ipv4Addr::new(192, 168, 250, 30)
        );
        assert_ne!(
            t.first(Role::LanDevice).unwrap().address,
            Ipv4Addr::new(192, 168, 250, 30)
        );
    }

    #[test]
    fn dedicated_port_wires_the_server_to_the_router_port_and_shared_to_the_bridge() {
        let dedicated = lab(&Deployment::reference(), 1).wiring();
        let has = |steps: &[Step], words: &[&str]| {
            steps.iter().any(|s| matches!(s, Step::Ip { args, .. } if args.iter().map(String::as_str).eq(words.iter().copied())))
        };
        assert!(has(
            &dedicated,
            &[
                "link", "add", "lan4", "type", "veth", "peer", "name", "eth0", "netns", "t1-srv"
            ]
        ));
        assert!(!has(
            &dedicated,
            &["link", "set", "lp-srv", "master", "br-lan"]
        ));
        let mut d = Deployment::reference();
        d.server.isolation = Isolation::Shared;
        let shared = lab(&d, 1).wiring();
        assert!(has(&shared, &["link", "set", "lp-srv", "master", "br-lan"]));
    }

    #[test]
    fn lab_copy_widens_client_routes_and_replaces_peers() {
        let t = lab(&Deployment::reference(), 2);
        let allowed: Vec<String> = t
            .deployment
            .client_allowed_ips()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            allowed,
            ["192.168.250.0/24", "10.10.10.0/24", "203.0.113.10/32"]
        );
        assert_eq!(t.deployment.peers.len(), 2);
        assert_eq!(t.deployment.wan.endpoint.to_string(), "192.168.2.90:51820");
    }

    #[test]
    fn overlapping_the_internet_segment_is_refused() {
        let mut d = Deployment::reference();
        d.lan.subnet = "203.0.113.0/24".parse().unwrap();
        let name = LabName::new("t1").unwrap();
        assert!(matches!(topology(&name, &d), Err(LabError::Unsupported(_))));
    }
}
