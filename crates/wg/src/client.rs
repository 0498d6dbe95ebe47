//! The wg-quick client config of a peer: what the WireGuard apps import and
//! `wg-quick up` reads.

use std::fmt::Write as _;

use sovereign_model::{Deployment, Peer};

use crate::key::Key;

/// Stands in for the private key of a peer whose device generated its own pair
/// (`peer add --public-key`): sovereign never saw that key.
pub const PRIVATE_KEY_PLACEHOLDER: &str = "<the device's own private key>";

/// The wg-quick config for `peer`. `private_key` is `None` for device-generated keys
/// (the line then holds [`PRIVATE_KEY_PLACEHOLDER`]); `psk` is `None` for peers
/// without a preshared key. No `DNS` line: the tunnel is split and only carries the
/// AI server, so the device keeps its own resolver.
pub fn render_client_config(
    d: &Deployment,
    peer: &Peer,
    private_key: Option<&Key>,
    psk: Option<&Key>,
    router_public: &Key,
) -> String {
    let mut out = String::new();
    let private = private_key.map_or_else(|| PRIVATE_KEY_PLACEHOLDER.to_string(), Key::to_base64);
    let allowed: Vec<String> = d
        .client_allowed_ips()
        .iter()
        .map(ToString::to_string)
        .collect();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "[Interface]");
    let _ = writeln!(out, "PrivateKey = {private}");
    let _ = writeln!(out, "Address = {}/32", peer.address);
    let _ = writeln!(out, "MTU = {}", d.wireguard.mtu);
    let _ = writeln!(out);
    let _ = writeln!(out, "[Peer]");
    let _ = writeln!(out, "PublicKey = {}", router_public.to_base64());
    if let Some(psk) = psk {
        let _ = writeln!(out, "PresharedKey = {}", psk.to_base64());
    }
    let _ = writeln!(out, "Endpoint = {}", d.wan.endpoint);
    let _ = writeln!(out, "AllowedIPs = {}", allowed.join(", "));
    if d.wireguard.persistent_keepalive > 0 {
        let _ = writeln!(
            out,
            "PersistentKeepalive = {}",
            d.wireguard.persistent_keepalive
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_model::PeerStatus;

    fn laptop() -> Peer {
        Peer {
            name: "laptop".into(),
            address: "10.10.10.2".parse().unwrap(),
            public_key: Key::from_bytes([0x03; 32]).public_key().to_base64(),
            created: "2026-01-01T00:00:00Z".into(),
            status: PeerStatus::Active,
            preshared_key: true,
            changed: String::new(),
            expires: None,
        }
    }

    /// Obviously fake keys: every byte the same, so snapshots hold nothing secret.
    fn fake(byte: u8) -> Key {
        Key::from_bytes([byte; 32])
    }

    #[test]
    fn reference_config() {
        let d = Deployment::reference();
        let router = fake(0x01).public_key();
        let (private, psk) = (fake(0x03), fake(0x04));
        let text = render_client_config(&d, &laptop(), Some(&private), Some(&psk), &router);
        assert!(text.contains(&format!("PrivateKey = {}", private.to_base64())));
        assert!(text.contains(&format!("PresharedKey = {}", psk.to_base64())));
        // Key material never goes into a snapshot, not even fake keys.
        let redacted = text
            .replace(&private.to_base64(), "<peer-private-key>")
            .replace(&psk.to_base64(), "<psk>");
        insta::assert_snapshot!(redacted);
    }

    #[test]
    fn device_keyed_peer_without_psk_or_keepalive_and_custom_routes() {
        let mut d = Deployment::reference();
        d.wireguard.persistent_keepalive = 0;
        d.wireguard.mtu = 1380;
        d.wireguard.client_allowed_ips = vec![
            "192.168.250.0/24".parse().unwrap(),
            "10.10.10.0/24".parse().unwrap(),
        ];
        d.wan.endpoint = "[2001:db8::1]:51820".parse().unwrap();
        let router = fake(0x01).public_key();
        let text = render_client_config(&d, &laptop(), None, None, &router);
        insta::assert_snapshot!(text);
        assert!(!text.contains("PresharedKey"));
        assert!(!text.contains("PersistentKeepalive"));
        assert!(!text.contains("DNS"));
    }
}
