//! Reading wg-quick configs: split one into what `wg setconf` accepts and what
//! wg-quick itself would apply with `ip` (addresses, MTU, routes), and pick out the
//! peer's endpoint and key. One reader for the lab (which plays wg-quick in its
//! namespaces) and `sovereign doctor` (which compares the config with the live
//! interface).

use ipnet::Ipv4Net;

/// A wg-quick config taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSetup {
    /// The config without wg-quick-only keys: `wg setconf` input.
    pub setconf: String,
    pub addresses: Vec<Ipv4Net>,
    pub mtu: Option<u16>,
    /// Every peer's AllowedIPs: the routes wg-quick would add.
    pub routes: Vec<Ipv4Net>,
    /// The first peer's `Endpoint` (`host:port`), as written.
    pub endpoint: Option<String>,
    /// The first peer's `PublicKey` (the router's key in a client config).
    pub peer_public_key: Option<String>,
}

/// Keys that only wg-quick understands; `wg setconf` rejects them.
const WG_QUICK_ONLY: [&str; 9] = [
    "address",
    "dns",
    "mtu",
    "table",
    "preup",
    "postup",
    "predown",
    "postdown",
    "saveconfig",
];

pub fn split(text: &str) -> Result<ClientSetup, String> {
    let mut setup = ClientSetup {
        setconf: String::new(),
        addresses: Vec::new(),
        mtu: None,
        routes: Vec::new(),
        endpoint: None,
        peer_public_key: None,
    };
    let mut section = String::new();
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.to_ascii_lowercase();
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            setup.setconf.push_str(line);
            setup.setconf.push('\n');
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        let list = || value.split(',').map(str::trim).filter(|s| !s.is_empty());
        let bad = |what: &str| format!("line {}: `{value}` is not {what}", number + 1);
        if section == "[interface]" && WG_QUICK_ONLY.contains(&key.as_str()) {
            match key.as_str() {
                "address" => {
                    for item in list() {
                        setup.addresses.push(
                            item.parse()
                                .map_err(|_| bad("an IPv4 address with prefix"))?,
                        );
                    }
                }
                "mtu" => setup.mtu = Some(value.parse().map_err(|_| bad("an MTU"))?),
                _ => {}
            }
            continue;
        }
        if section == "[peer]" && key == "endpoint" && setup.endpoint.is_none() {
            setup.endpoint = Some(value.to_string());
        }
        if section == "[peer]" && key == "publickey" && setup.peer_public_key.is_none() {
            setup.peer_public_key = Some(value.to_string());
        }
        if section == "[peer]" && key == "allowedips" {
            for item in list() {
                setup
                    .routes
                    .push(item.parse().map_err(|_| bad("an IPv4 prefix"))?);
            }
        }
        setup.setconf.push_str(line);
        setup.setconf.push('\n');
    }
    Ok(setup)
}

/// The value of the first `key = value` line (keys compare case-insensitively).
pub fn value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().to_string())
    })
}

/// A `wg setconf` config with `ListenPort = port` and no PersistentKeepalive (the
/// lab turns the keepalive on itself, when the tunnel should send).
pub fn with_listen_port(setconf: &str, port: u16) -> String {
    let mut out = String::new();
    for line in setconf.lines() {
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim().to_ascii_lowercase());
        if matches!(key.as_deref(), Some("listenport" | "persistentkeepalive")) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.trim().eq_ignore_ascii_case("[interface]") {
            out.push_str(&format!("ListenPort = {port}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_wg_quick_keys_and_keeps_the_rest() {
        let text = "[Interface]\nPrivateKey = AAAA\nAddress = 10.10.10.2/32\nMTU = 1420\nDNS = 1.1.1.1\n\n\
                    [Peer]\nPublicKey = BBBB\nEndpoint = 192.168.2.90:51820\nAllowedIPs = 192.168.250.0/24, 10.10.10.0/24\n";
        let s = split(text).unwrap();
        assert_eq!(s.addresses, ["10.10.10.2/32".parse::<Ipv4Net>().unwrap()]);
        assert_eq!(s.mtu, Some(1420));
        assert_eq!(s.routes.len(), 2);
        assert_eq!(s.endpoint.as_deref(), Some("192.168.2.90:51820"));
        assert_eq!(s.peer_public_key.as_deref(), Some("BBBB"));
        assert!(
            !s.setconf.contains("Address")
                && !s.setconf.contains("MTU")
                && !s.setconf.contains("DNS")
        );
        assert!(
            s.setconf.contains("PrivateKey = AAAA")
                && s.setconf.contains("AllowedIPs = 192.168.250.0/24")
        );
    }

    #[test]
    fn a_bad_address_names_its_line() {
        let err = split("[Interface]\nAddress = nonsense\n").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
    }

    #[test]
    fn a_round_config_moves_the_port_and_drops_the_keepalive() {
        let base = "[Interface]\nPrivateKey = x\nListenPort = 5\n\n[Peer]\nPublicKey = y\nPersistentKeepalive = 25\n";
        let round = with_listen_port(base, 20001);
        assert_eq!(
            round,
            "[Interface]\nListenPort = 20001\nPrivateKey = x\n\n[Peer]\nPublicKey = y\n"
        );
        assert_eq!(value(base, "persistentkeepalive").as_deref(), Some("25"));
        assert_eq!(value(base, "PublicKey").as_deref(), Some("y"));
        assert_eq!(value(&round, "PersistentKeepalive"), None);
    }
}
