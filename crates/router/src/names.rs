//! Names that end up in shell scripts, sysctl keys, nft strings and UCI section
//! names. The model already checks they are valid Linux interface names; the
//! renderers need a stricter alphabet so nothing has to be escaped.

use std::collections::HashMap;

use sovereign_model::{Deployment, Isolation, RouterTarget};

use crate::RenderError;

pub fn check(d: &Deployment, target: RouterTarget) -> Result<(), RenderError> {
    let mut fields = vec![
        ("wan.interface", &d.wan.interface),
        ("lan.interface", &d.lan.interface),
        ("wireguard.interface", &d.wireguard.interface),
    ];
    if d.server.isolation == Isolation::DedicatedPort {
        fields.push(("server.router_port", &d.server.router_port));
    }
    for (field, value) in fields {
        check_interface(field, value)?;
    }
    if target == RouterTarget::Openwrt {
        if !is_uci_name(&d.wireguard.interface) {
            return Err(RenderError::NotUciName {
                field: "wireguard.interface",
                value: d.wireguard.interface.clone(),
            });
        }
        let mut sections: HashMap<String, &str> = HashMap::new();
        for peer in &d.peers {
            let section = peer_section(&peer.name);
            if let Some(first) = sections.insert(section.clone(), &peer.name) {
                return Err(RenderError::PeerSectionClash {
                    first: first.to_string(),
                    second: peer.name.clone(),
                    section,
                });
            }
        }
    }
    Ok(())
}

/// The UCI section that holds a peer: `sovereign_peer_<name>` with '-' and '.' as '_'.
pub fn peer_section(peer: &str) -> String {
    let tail: String = peer
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("sovereign_peer_{tail}")
}

pub fn is_uci_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_interface(field: &'static str, value: &str) -> Result<(), RenderError> {
    let unsafe_name = |reason| RenderError::UnsafeName {
        field,
        value: value.to_string(),
        reason,
    };
    if value.starts_with('-') || value.starts_with('.') {
        return Err(unsafe_name("it starts with '-' or '.'"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(unsafe_name(
            "it contains a character that shells, sysctl or UCI would interpret",
        ));
    }
    Ok(())
}

/// The sysctl key of a per-interface IPv4 setting, for procps `sysctl` (Linux).
/// Interface names with dots (VLANs such as eth0.10) need the `/` form there, or
/// the dots read as separators.
pub fn ipv4_conf_key(interface: &str, setting: &str) -> String {
    if interface.contains('.') {
        format!("net/ipv4/conf/{interface}/{setting}")
    } else {
        format!("net.ipv4.conf.{interface}.{setting}")
    }
}

/// The same key for OpenWrt: always the dotted form, even for eth0.10. OpenWrt's
/// `/etc/hotplug.d/net/00-sysctl` re-applies only the lines matching
/// `net\..*\.$DEVICENAME\.` when a device appears, so the `/` form would never be
/// applied to a device the network reload creates. Its busybox `sysctl` resolves a
/// dotted device name by trying which of the dots name an existing directory.
pub fn openwrt_ipv4_conf_key(interface: &str, setting: &str) -> String {
    format!("net.ipv4.conf.{interface}.{setting}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_sections_are_uci_names() {
        assert_eq!(peer_section("phone-anna.2"), "sovereign_peer_phone_anna_2");
        assert!(is_uci_name(&peer_section("Laptop_1")));
        assert!(!is_uci_name("wg-0"));
    }

    #[test]
    fn dotted_interfaces_use_the_slash_form() {
        assert_eq!(
            ipv4_conf_key("lan4", "proxy_arp"),
            "net.ipv4.conf.lan4.proxy_arp"
        );
        assert_eq!(
            ipv4_conf_key("eth0.10", "proxy_arp"),
            "net/ipv4/conf/eth0.10/proxy_arp"
        );
    }

    #[test]
    fn shell_metacharacters_are_refused() {
        let mut d = Deployment::reference();
        d.server.router_port = "lan$(x)".into();
        let err = check(&d, RouterTarget::Linux).unwrap_err();
        assert!(err.to_string().contains("server.router_port"), "{err}");
        d.server.router_port = "lan4".into();
        d.wireguard.interface = "wg-0".into();
        assert!(check(&d, RouterTarget::Linux).is_ok());
        assert!(matches!(
            check(&d, RouterTarget::Openwrt),
            Err(RenderError::NotUciName { .. })
        ));
    }
}
