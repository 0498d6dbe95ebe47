//! OpenWrt's stock `/etc/config/firewall` (package firewall4, 23.05+) and a matching
//! `network`, the base that sovereign's rendered sections are added to.

use sovereign_model::Deployment;

pub fn openwrt_firewall() -> &'static str {
    STOCK_FIREWALL
}

pub fn openwrt_network(d: &Deployment) -> String {
    format!(
        "config interface 'loopback'\n\toption device 'lo'\n\toption proto 'static'\n\toption ipaddr '127.0.0.1'\n\toption netmask '255.0.0.0'\n\n\
         config interface 'lan'\n\toption device '{lan}'\n\toption proto 'static'\n\toption ipaddr '{lan_ip}'\n\toption netmask '{mask}'\n\n\
         config interface 'wan'\n\toption device '{wan}'\n\toption proto 'dhcp'\n\n\
         config interface 'wan6'\n\toption device '{wan}'\n\toption proto 'dhcpv6'\n",
        lan = d.lan.interface,
        lan_ip = d.lan.router_address,
        mask = d.lan.subnet.netmask(),
        wan = d.wan.interface,
    )
}

const STOCK_FIREWALL: &str = "\
config defaults
\toption syn_flood\t1
\toption input\t\tREJECT
\toption output\t\tACCEPT
\toption forward\t\tREJECT

config zone
\toption name\t\tlan
\tlist   network\t\t'lan'
\toption input\t\tACCEPT
\toption output\t\tACCEPT
\toption forward\t\tACCEPT

config zone
\toption name\t\twan
\tlist   network\t\t'wan'
\tlist   network\t\t'wan6'
\toption input\t\tREJECT
\toption output\t\tACCEPT
\toption forward\t\tREJECT
\toption masq\t\t1
\toption mtu_fix\t\t1

config forwarding
\toption src\t\tlan
\toption dest\t\twan

config rule
\toption name\t\tAllow-DHCP-Renew
\toption src\t\twan
\toption proto\t\tudp
\toption dest_port\t68
\toption target\t\tACCEPT
\toption family\t\tipv4

config rule
\toption name\t\tAllow-Ping
\toption src\t\twan
\toption proto\t\ticmp
\toption icmp_type\techo-request
\toption family\t\tipv4
\toption target\t\tACCEPT

config rule
\toption name\t\tAllow-IGMP
\toption src\t\twan
\toption proto\t\tigmp
\toption family\t\tipv4
\toption target\t\tACCEPT

config rule
\toption name\t\tAllow-DHCPv6
\toption src\t\twan
\toption proto\t\tudp
\toption dest_port\t546
\toption family\t\tipv6
\toption target\t\tACCEPT

config rule
\toption name\t\tAllow-MLD
\toption src\t\twan
\toption proto\t\ticmp
\toption src_ip\t\tfe80::/10
\tlist icmp_type\t'130/0'
\tlist icmp_type\t'131/0'
\tlist icmp_type\t'132/0'
\tlist icmp_type\t'143/0'
\toption family\t\tipv6
\toption target\t\tACCEPT

config rule
\toption name\t\tAllow-ICMPv6-Input
\toption src\t\twan
\toption proto\ticmp
\tlist icmp_type\techo-request
\tlist icmp_type\techo-reply
\tlist icmp_type\tdestination-unreachable
\tlist icmp_type\tpacket-too-big
\tlist icmp_type\ttime-exceeded
\tlist icmp_type\tbad-header
\tlist icmp_type\tunknown-header-type
\tlist icmp_type\trouter-solicitation
\tlist icmp_type\tneighbour-solicitation
\tlist icmp_type\trouter-advertisement
\tlist icmp_type\tneighbour-advertisement
\toption limit\t\t1000/sec
\toption family\t\tipv6
\toption target\t\tACCEPT

config rule
\toption name\t\tAllow-ICMPv6-Forward
\toption src\t\twan
\toption dest\t\t*
\toption proto\t\ticmp
\tlist icmp_type\techo-request
\tlist icmp_type\techo-reply
\tlist icmp_type\tdestination-unreachable
\tlist icmp_type\tpacket-too-big
\tlist icmp_type\ttime-exceeded
\tlist icmp_type\tbad-header
\tlist icmp_type\tunknown-header-type
\toption limit\t\t1000/sec
\toption family\t\tipv6
\toption target\t\tACCEPT

config rule
\toption name\t\tAllow-IPSec-ESP
\toption src\t\twan
\toption dest\t\tlan
\toption proto\t\tesp
\toption target\t\tACCEPT

config rule
\toption name\t\tAllow-ISAKMP
\toption src\t\twan
\toption dest\t\tlan
\toption dest_port\t500
\toption proto\t\tudp
\toption target\t\tACCEPT
";
