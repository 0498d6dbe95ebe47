//! The Linux router target: `nftables.json` and `nftables.nft` (the same table),
//! the WireGuard config in `wg setconf` form, `setup.sh` and `sysctl.conf`.

mod printer;
mod ruleset;

use std::fmt::Write as _;

use sovereign_model::{Deployment, Isolation};
use sovereign_wg::RouterSecrets;

use crate::names::ipv4_conf_key;
use crate::{RenderError, RenderedFile};

pub use ruleset::TABLE;

pub fn render(
    d: &Deployment,
    secrets: &RouterSecrets,
) -> Result<(Vec<RenderedFile>, Vec<String>), RenderError> {
    let document = ruleset::ruleset(d);
    let json =
        serde_json::to_string_pretty(&document).map_err(|e| RenderError::Printer(e.to_string()))?;
    let text = printer::print(&document)?;
    let wg = &d.wireguard.interface;
    let files = vec![
        RenderedFile {
            path: "nftables.json".into(),
            contents: json + "\n",
            secret: false,
            purpose: format!("the firewall, table inet {TABLE}: load atomically with `nft -j -f nftables.json`"),
        },
        RenderedFile {
            path: "nftables.nft".into(),
            contents: header("#", "the same table as nftables.json, for reading or `nft -f`") + &text,
            secret: false,
            purpose: "the same firewall as readable nft text: `nft -f nftables.nft`".into(),
        },
        RenderedFile {
            path: format!("{wg}.conf"),
            contents: wg_setconf(d, secrets),
            secret: true,
            purpose: format!("the router's WireGuard interface in `wg setconf {wg} {wg}.conf` form"),
        },
        RenderedFile {
            path: "setup.sh".into(),
            contents: setup_script(d),
            secret: false,
            purpose: "idempotent setup: firewall, WireGuard link, addresses, routes, sysctls (run as root)".into(),
        },
        RenderedFile {
            path: "sysctl.conf".into(),
            contents: sysctl_conf(d),
            secret: false,
            purpose: "forwarding and proxy ARP across reboots: install as /etc/sysctl.d/90-sovereign.conf".into(),
        },
    ];
    Ok((files, checklist(d)))
}

/// The ruleset as nft text, for callers that want only the firewall.
pub fn nft_text(d: &Deployment) -> Result<String, RenderError> {
    printer::print(&ruleset::ruleset(d))
}

fn header(comment: &str, what: &str) -> String {
    format!(
        "{comment} Rendered by `sovereign router render`: {what}.\n{comment} Edit sovereign.toml and render again instead of editing this file.\n"
    )
}

fn wg_setconf(d: &Deployment, secrets: &RouterSecrets) -> String {
    let mut out = header("#", "WireGuard in `wg setconf` form (no wg-quick keys)");
    let _ = writeln!(out, "[Interface]");
    let _ = writeln!(out, "PrivateKey = {}", secrets.private_key.to_base64());
    let _ = writeln!(out, "ListenPort = {}", d.wireguard.listen_port);
    for peer in d.active_peers() {
        let _ = writeln!(out, "\n# {}", peer.name);
        let _ = writeln!(out, "[Peer]");
        let _ = writeln!(out, "PublicKey = {}", peer.public_key);
        if let Some(psk) = secrets
            .preshared_keys
            .get(&peer.name)
            .filter(|_| peer.preshared_key)
        {
            let _ = writeln!(out, "PresharedKey = {}", psk.to_base64());
        }
        let _ = writeln!(out, "AllowedIPs = {}/32", peer.address);
    }
    out
}

fn setup_script(d: &Deployment) -> String {
    let wg = &d.wireguard;
    let vpn_address = format!("{}/{}", wg.address, wg.subnet.prefix_len());
    let lan_address = format!("{}/{}", d.lan.router_address, d.lan.subnet.prefix_len());
    let mut out = String::from("#!/bin/sh\n");
    out += &header("#", "the Linux router's setup");
    out += "# Idempotent: run it again after every render. Run as root from any directory.\n";
    out += "set -eu\ncd \"$(dirname \"$0\")\"\n\n";
    let _ = writeln!(out, "WAN='{}'", d.wan.interface);
    let _ = writeln!(out, "LAN='{}'", d.lan.interface);
    let _ = writeln!(out, "WG='{}'", wg.interface);
    let dedicated = d.server.isolation == Isolation::DedicatedPort;
    let mut devices = "\"$WAN\" \"$LAN\"".to_string();
    if dedicated {
        let _ = writeln!(out, "SERVER_PORT='{}'", d.server.router_port);
        devices += " \"$SERVER_PORT\"";
    }
    out += "\n";
    let _ = writeln!(out, "for dev in {devices}; do");
    out += "\tip link show \"$dev\" >/dev/null 2>&1 || {\n";
    out += "\t\techo \"setup.sh: interface $dev does not exist; create it first (see the checklist)\" >&2\n";
    out += "\t\texit 1\n\t}\ndone\n\n";
    out += "# Add an address only when it is missing, so addresses managed elsewhere stay untouched.\n";
    out += "add_address() {\n\tip -4 -o address show dev \"$2\" | grep -qF \" inet $1 \" || ip address add \"$1\" dev \"$2\"\n}\n\n";
    out += "# 1. The firewall first, so nothing is ever forwarded unfiltered. One transaction.\n";
    out += "nft -j -f nftables.json\n\n";
    out += "# 2. WireGuard. The link may exist already (a lab creates it with wireguard-go).\n";
    out += "ip link show \"$WG\" >/dev/null 2>&1 || ip link add \"$WG\" type wireguard\n";
    let _ = writeln!(out, "wg setconf \"$WG\" {}.conf", wg.interface);
    let _ = writeln!(out, "ip link set dev \"$WG\" mtu {}", wg.mtu);
    let _ = writeln!(out, "ip address replace {vpn_address} dev \"$WG\"");
    out += "ip link set dev \"$WG\" up\n\n";
    out += "# 3. WAN and LAN addresses from sovereign.toml.\n";
    let _ = writeln!(out, "add_address {} \"$WAN\"", d.wan.address);
    let _ = writeln!(out, "add_address {lan_address} \"$LAN\"");
    out += "ip link set dev \"$WAN\" up\nip link set dev \"$LAN\" up\n\n";
    if dedicated {
        out += "# 4. The server's own port: the router holds its LAN address there as a /32 and\n";
        out += "#    routes the server's /32 to it, so server <-> LAN traffic is routed (and filtered).\n";
        let _ = writeln!(
            out,
            "add_address {}/32 \"$SERVER_PORT\"",
            d.lan.router_address
        );
        out += "ip link set dev \"$SERVER_PORT\" up\n";
        let _ = writeln!(
            out,
            "ip route replace {}/32 dev \"$SERVER_PORT\" src {}\n",
            d.server.address, d.lan.router_address
        );
        out += "# 5. Proxy ARP on both sides: each side resolves the other to the router's MAC.\n";
        let _ = writeln!(
            out,
            "echo 1 > \"/proc/sys/net/ipv4/conf/$SERVER_PORT/proxy_arp\""
        );
        let _ = writeln!(out, "echo 1 > \"/proc/sys/net/ipv4/conf/$LAN/proxy_arp\"\n");
    }
    out += "# Last: forwarding, once the firewall and routes are in place.\n";
    out += "echo 1 > /proc/sys/net/ipv4/ip_forward\n";
    out
}

fn sysctl_conf(d: &Deployment) -> String {
    let mut out = header("#", "sysctls of the Linux router");
    out += "# Install as /etc/sysctl.d/90-sovereign.conf. Lines starting with '-' may fail at\n";
    out += "# boot when the interface does not exist yet; setup.sh sets them again.\n";
    out += "net.ipv4.ip_forward = 1\n";
    if d.server.isolation == Isolation::DedicatedPort {
        let _ = writeln!(
            out,
            "-{} = 1",
            ipv4_conf_key(&d.server.router_port, "proxy_arp")
        );
        let _ = writeln!(out, "-{} = 1", ipv4_conf_key(&d.lan.interface, "proxy_arp"));
    }
    out
}

fn checklist(d: &Deployment) -> Vec<String> {
    let mut items = vec![format!(
        "Interfaces {} (WAN) and {} (LAN) must exist before setup.sh runs; it refuses to start otherwise.",
        d.wan.interface, d.lan.interface
    )];
    if d.server.isolation == Isolation::DedicatedPort {
        items.push(format!(
            "Plug the AI server into {} and nothing else: that port must not be a member of {} or any bridge.",
            d.server.router_port, d.lan.interface
        ));
        items.push(format!(
            "Give the server the static address {}/{} with gateway {}: no DHCP server answers on {}.",
            d.server.address,
            d.lan.subnet.prefix_len(),
            d.lan.router_address,
            d.server.router_port
        ));
    }
    items.push(format!(
        "Keep {} out of the LAN's DHCP pool so no other device is ever given the server's address.",
        d.server.address
    ));
    items.push(format!(
        "If the router sits behind another router (double NAT), forward UDP {} on that router to {}.",
        d.wireguard.listen_port,
        d.wan.address.addr()
    ));
    items.push(
        "At boot, load the firewall before forwarding starts: include nftables.nft from /etc/nftables.conf \
         (nftables.service runs before the network), then run setup.sh from a oneshot unit."
            .into(),
    );
    items.push(
        "The ruleset drops all IPv6 from the WAN except the WireGuard port and forwards no IPv6 at all; \
         the router gets no IPv6 on its WAN."
            .into(),
    );
    if d.server.isolation == Isolation::Shared {
        items.push(format!(
            "Shared isolation: the router rejects IPv6 from {} (it cannot tell the server's IPv6 addresses from \
             the other devices'); send no router advertisements on it.",
            d.lan.interface
        ));
    }
    items
}
