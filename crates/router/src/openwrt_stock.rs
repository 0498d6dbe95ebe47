//! A fresh OpenWrt 23.05 install (firewall4, DSA ports lan1-lan4 and wan), the base
//! that `sovereign.uci` is applied to. The verifier runs the rendered batch over it
//! with [`crate::uci::Config::apply`], exactly as `uci batch` would on a new router,
//! so what it checks includes OpenWrt's own stock rules and their order.

use sovereign_model::Deployment;

use crate::uci::{Config, UciError, parse_config_file, quote};

/// `/etc/config/firewall` as shipped: defaults, zones lan and wan, the lan -> wan
/// forwarding and the stock WAN rules (Allow-DHCP-Renew ... Allow-ISAKMP).
pub const FIREWALL: &str = include_str!("openwrt_stock/firewall");

/// `/etc/config/dhcp` as shipped.
pub const DHCP: &str = include_str!("openwrt_stock/dhcp");

/// `/etc/config/network` as shipped, with the deployment's LAN and WAN devices and
/// LAN address (the only parts a user sets before sovereign runs). The bridge holds
/// lan1-lan4 and the server's port, so the wiring has a port to take out of it.
pub fn network(d: &Deployment) -> String {
    let mut ports: Vec<String> = (1..=4).map(|i| format!("lan{i}")).collect();
    if !ports.contains(&d.server.router_port) {
        ports.push(d.server.router_port.clone());
    }
    let ports: String = ports
        .iter()
        .map(|p| format!("\tlist ports {}\n", quote(p)))
        .collect();
    format!(
        "config interface 'loopback'\n\toption device 'lo'\n\toption proto 'static'\n\toption ipaddr '127.0.0.1'\n\toption netmask '255.0.0.0'\n\n\
         config globals 'globals'\n\toption ula_prefix 'fd12:3456:789a::/48'\n\n\
         config device\n\toption name {lan}\n\toption type 'bridge'\n{ports}\n\
         config interface 'lan'\n\toption device {lan}\n\toption proto 'static'\n\toption ipaddr {lan_ip}\n\toption netmask {mask}\n\toption ip6assign '60'\n\n\
         config interface 'wan'\n\toption device {wan}\n\toption proto 'dhcp'\n\n\
         config interface 'wan6'\n\toption device {wan}\n\toption proto 'dhcpv6'\n",
        lan = quote(&d.lan.interface),
        lan_ip = quote(&d.lan.router_address.to_string()),
        mask = quote(&d.lan.subnet.netmask().to_string()),
        wan = quote(&d.wan.interface),
    )
}

/// The three packages sovereign's batch touches, parsed. The error names the
/// package; it cannot happen for the shipped text (tested), values are quoted.
pub fn config(d: &Deployment) -> Result<Config, (&'static str, UciError)> {
    let mut config = Config::default();
    for (name, text) in [
        ("firewall", FIREWALL.to_string()),
        ("network", network(d)),
        ("dhcp", DHCP.to_string()),
    ] {
        let package = parse_config_file(&text).map_err(|e| (name, e))?;
        config.packages.insert(name.into(), package);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_config_parses_and_has_the_stock_wan_rules_in_order() {
        let config = config(&Deployment::reference()).unwrap();
        let names: Vec<&str> = config
            .package("firewall")
            .unwrap()
            .sections_of("rule")
            .filter_map(|s| s.get_str("name"))
            .collect();
        assert_eq!(
            names,
            [
                "Allow-DHCP-Renew",
                "Allow-Ping",
                "Allow-IGMP",
                "Allow-DHCPv6",
                "Allow-MLD",
                "Allow-ICMPv6-Input",
                "Allow-ICMPv6-Forward",
                "Allow-IPSec-ESP",
                "Allow-ISAKMP"
            ]
        );
        let network = config.package("network").unwrap();
        let bridge = network.sections_of("device").next().unwrap();
        assert!(bridge.get_all("ports").contains(&"lan4"));
    }
}
