//! Deployments the generators and the verifier are all checked against, so the
//! router's golden files and the verifier's verdicts cover the same configurations.

use sovereign_model::{Deployment, Isolation, MacAddr, Peer, PeerStatus};
use sovereign_wg::Key;

/// The reference deployment with `n` active peers named peer-1, peer-2, ...
pub fn with_peers(n: usize) -> Deployment {
    let mut d = Deployment::reference();
    d.peers = (1..=n).map(peer).collect();
    d
}

pub fn peer(i: usize) -> Peer {
    let mut bytes = [0x40u8; 32];
    // Byte 0 and 31 are clamped by X25519; vary the middle.
    bytes[5] = i as u8;
    bytes[6] = (i >> 8) as u8;
    Peer {
        name: format!("peer-{i}"),
        address: std::net::Ipv4Addr::new(10, 10, 10, 1 + i as u8),
        public_key: Key::from_bytes(bytes).public_key().to_base64(),
        created: String::new(),
        status: PeerStatus::Active,
        preshared_key: true,
        changed: String::new(),
        expires: None,
    }
}

/// The clock the golden files are rendered at (2026-06-01T00:00:00Z).
pub fn now() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_780_272_000)
}

/// The configurations every golden file and property is checked against.
pub fn variants() -> Vec<(&'static str, Deployment)> {
    let mut out = vec![("default", with_peers(1))];
    let mut d = with_peers(1);
    d.policy.vpn_ssh = true;
    out.push(("vpn_ssh", d));
    let mut d = with_peers(1);
    d.policy.server_internet = false;
    out.push(("air_gapped", d));
    let mut d = with_peers(1);
    d.policy.admin_hosts = vec![
        "192.168.250.10".parse().unwrap(),
        "192.168.250.11".parse().unwrap(),
    ];
    out.push(("admin_hosts", d));
    let mut d = with_peers(1);
    d.server.isolation = Isolation::Shared;
    out.push(("shared", d.clone()));
    d.policy.server_internet = false;
    out.push(("shared_air_gapped", d));
    let mut d = with_peers(1);
    d.policy.lan_api = true;
    out.push(("lan_api", d));
    let mut d = with_peers(2);
    d.peers[1].status = PeerStatus::Revoked;
    d.server.mac = Some(MacAddr([0x3c, 0x22, 0xfb, 0x12, 0x34, 0x56]));
    out.push(("revoked_peer_and_mac", d));
    // peer-2 of three is disabled: its section and AllowedIPs leave the router's
    // config exactly as a revoked peer's do, while peer-1 and peer-3 stay.
    let mut d = with_peers(3);
    d.peers[1].status = PeerStatus::Disabled;
    out.push(("disabled_peer", d));
    // Rendered at NOW: peer-2's expiry has passed, peer-3's has not.
    let mut d = with_peers(3);
    d.peers[1].expires = Some("2026-05-31T23:59:59Z".into());
    d.peers[2].expires = Some("2027-01-31T23:59:59Z".into());
    out.push(("expired_peer", d));
    out.push(("peers_0", with_peers(0)));
    out.push(("peers_50", with_peers(50)));
    out
}
