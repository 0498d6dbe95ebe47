//! The commented `sovereign.toml` that `sovereign init` writes.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::config::{Deployment, Endpoint, Platform, RouterTarget};

/// The choices `init` asks for; everything else starts at its default.
#[derive(Debug, Clone, PartialEq)]
pub struct InitOptions {
    pub server_ip: Ipv4Addr,
    pub lan: Ipv4Net,
    pub vpn: Ipv4Net,
    pub endpoint: Endpoint,
    pub router: RouterTarget,
    pub platform: Platform,
}

impl Default for InitOptions {
    fn default() -> Self {
        let reference = Deployment::reference();
        Self {
            server_ip: reference.server.address,
            lan: reference.lan.subnet,
            vpn: reference.wireguard.subnet,
            endpoint: reference.wan.endpoint,
            router: reference.router.target,
            platform: reference.server.platform,
        }
    }
}

fn host(net: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + n)
}

/// Render a complete, commented deployment file. The router takes the first host
/// address of the LAN and of the VPN subnet.
pub fn render_template(o: &InitOptions) -> String {
    let router = match o.router {
        RouterTarget::Openwrt => "openwrt",
        RouterTarget::Linux => "linux",
    };
    let platform = match o.platform {
        Platform::Macos => "macos",
        Platform::Linux => "linux",
    };
    let lan = o.lan.trunc();
    let vpn = o.vpn.trunc();
    format!(
        r#"# sovereign.toml: one private AI server, reachable only over WireGuard.
#
# This file is the single source of truth. `sovereign plan` shows what it turns
# into; `sovereign config show` prints every key with its effective value.
# Keys live in the state directory beside this file (sovereign.state/, mode 0700),
# never in here.

[router]
# openwrt (23.05+, fw4) or linux (nftables + WireGuard).
target = "{router}"

[wan]
# The public host:port that peers dial. Use your DNS name or public IP; when the
# router sits behind an ISP router, forward this UDP port to the router's WAN.
endpoint = "{endpoint}"
# The router's WAN device and address.
interface = "wan"
address = "192.168.2.90/24"

[wireguard]
interface = "wg0"
listen_port = 51820
subnet = "{vpn}"
address = "{vpn_router}"
# Set explicitly: a wrong MTU stalls streamed responses in the tunnel.
mtu = 1420
persistent_keepalive = 25
# What clients route into the tunnel; empty means only the AI server's /32.
# client_allowed_ips = ["{lan}"]

[lan]
subnet = "{lan}"
router_address = "{lan_router}"
interface = "br-lan"

[server]
address = "{server_ip}"
api_port = 11434
ssh_port = 22
# macos (LaunchAgent) or linux (systemd).
platform = "{platform}"
# lan-ip binds Ollama to the address above; "all" binds 0.0.0.0 (not advised).
bind = "lan-ip"
# dedicated-port: the server gets its own router port and firewall zone, so its
# isolation from the LAN is enforced. "shared" keeps it on the LAN bridge, where
# the router cannot isolate it (plan will say so).
isolation = "dedicated-port"
router_port = "lan4"
# mac = "3c:22:fb:12:34:56"   # pins the address with a static DHCP lease
# macOS: the default "agent" runs only while you are logged in; "daemon" starts at
# boot with nobody logged in (`sudo sovereign server install --create-account --power`).
# service = "daemon"
# service_account = "_ollama"

[ollama]
# Coding agents need at least 64k tokens of context.
context_length = 65536
keep_alive = "24h"
num_parallel = 1
flash_attention = true
# Models that `sovereign server warm` pulls and keeps loaded.
models = []

[policy]
# Let VPN peers reach the server's SSH port too.
vpn_ssh = false
# LAN hosts with full access to the server.
admin_hosts = []
# Let other LAN devices use the API.
lan_api = false
# false = air-gapped: the server reaches nothing beyond the router's DNS.
server_internet = true

# Peers are added with `sovereign peer add NAME`; they appear below as [[peer]].
"#,
        endpoint = o.endpoint,
        vpn_router = host(vpn, 1),
        lan_router = host(lan, 1),
        server_ip = o.server_ip,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_template_parses_to_the_reference_deployment() {
        let text = render_template(&InitOptions::default());
        let parsed = crate::parse(&text, std::path::Path::new("sovereign.toml")).unwrap();
        assert_eq!(parsed, Deployment::reference());
    }

    #[test]
    fn options_land_in_the_file() {
        let options = InitOptions {
            server_ip: "10.0.5.20".parse().unwrap(),
            lan: "10.0.5.0/24".parse().unwrap(),
            vpn: "10.99.0.0/24".parse().unwrap(),
            endpoint: "vpn.example.org:443".parse().unwrap(),
            router: RouterTarget::Linux,
            platform: Platform::Linux,
        };
        let parsed =
            crate::parse(&render_template(&options), std::path::Path::new("x.toml")).unwrap();
        assert_eq!(parsed.server.address, options.server_ip);
        assert_eq!(
            parsed.lan.router_address,
            "10.0.5.1".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(
            parsed.wireguard.address,
            "10.99.0.1".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(parsed.wan.endpoint.to_string(), "vpn.example.org:443");
        assert_eq!(parsed.router.target, RouterTarget::Linux);
    }
}
