//! `client status`: is the tunnel up, how old is the last handshake, does the server answer.

use serde::Serialize;

use crate::system::{CommandRunner, ServerProbe};

/// A handshake older than this means the tunnel is not passing traffic: WireGuard
/// re-handshakes every two minutes while packets flow (plus slack for a keepalive).
pub const HANDSHAKE_FRESH_SECS: u64 = 180;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TunnelState {
    /// A recent handshake.
    Up,
    /// The interface exists but no recent handshake.
    Stale,
    /// The interface does not exist.
    Down,
    /// `wg` could not tell (not installed, no permission, or the macOS app owns the tunnel).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TunnelStatus {
    pub interface: String,
    pub state: TunnelState,
    /// Seconds since the last handshake; `None` before the first.
    pub last_handshake_age_secs: Option<u64>,
    pub rx_bytes: Option<u64>,
    pub tx_bytes: Option<u64>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerStatus {
    pub url: String,
    pub reachable: bool,
    pub version: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientStatus {
    pub configured: bool,
    pub peer: Option<String>,
    pub tunnel: TunnelStatus,
    pub server: ServerStatus,
}

impl ClientStatus {
    /// Healthy means the server answers; that proves the tunnel too, even when `wg`
    /// cannot see it (the macOS app).
    pub fn healthy(&self) -> bool {
        self.configured && self.server.reachable
    }
}

/// Ask `wg` about `interface` (via `runner`) and the server (via `probe`).
/// `now_unix` is passed in so the evaluation stays a pure function of its inputs.
pub fn status(
    configured: bool,
    peer: Option<String>,
    interface: &str,
    server_url: &str,
    runner: &dyn CommandRunner,
    probe: &dyn ServerProbe,
    now_unix: u64,
) -> ClientStatus {
    let wg = |what: &str| runner.run(&["wg".into(), "show".into(), interface.into(), what.into()]);
    let tunnel = match wg("latest-handshakes") {
        Err(e) => unknown(interface, format!("cannot run wg: {e}")),
        Ok(out) if !out.success => classify_wg_error(interface, &out.stderr),
        Ok(out) => {
            let transfer = wg("transfer").ok().filter(|o| o.success).map(|o| o.stdout);
            evaluate_tunnel(interface, &out.stdout, transfer.as_deref(), now_unix)
        }
    };
    let server = match probe.version(server_url) {
        Ok(version) => ServerStatus {
            url: server_url.into(),
            reachable: true,
            version: Some(version),
            error: None,
        },
        Err(error) => ServerStatus {
            url: server_url.into(),
            reachable: false,
            version: None,
            error: Some(error),
        },
    };
    ClientStatus {
        configured,
        peer,
        tunnel,
        server,
    }
}

/// Judge `wg show IF latest-handshakes` (`<pubkey>\t<unix seconds>` per peer) and
/// `wg show IF transfer` (`<pubkey>\t<rx>\t<tx>`).
pub fn evaluate_tunnel(
    interface: &str,
    handshakes: &str,
    transfer: Option<&str>,
    now_unix: u64,
) -> TunnelStatus {
    let latest = handshakes
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .max()
        .filter(|t| *t > 0);
    let age = latest.map(|t| now_unix.saturating_sub(t));
    let (rx, tx) = transfer
        .map(|text| {
            text.lines().fold((0u64, 0u64), |(rx, tx), line| {
                let mut fields = line
                    .split_whitespace()
                    .skip(1)
                    .map(|f| f.parse::<u64>().unwrap_or(0));
                (
                    rx + fields.next().unwrap_or(0),
                    tx + fields.next().unwrap_or(0),
                )
            })
        })
        .map_or((None, None), |(rx, tx)| (Some(rx), Some(tx)));
    let (state, detail) = match age {
        Some(a) if a <= HANDSHAKE_FRESH_SECS => (TunnelState::Up, None),
        Some(a) => (
            TunnelState::Stale,
            Some(format!(
                "last handshake {a} s ago: is the router reachable?"
            )),
        ),
        None => (
            TunnelState::Stale,
            Some("no handshake yet: check the endpoint and that the router knows this peer".into()),
        ),
    };
    TunnelStatus {
        interface: interface.into(),
        state,
        last_handshake_age_secs: age,
        rx_bytes: rx,
        tx_bytes: tx,
        detail,
    }
}

fn classify_wg_error(interface: &str, stderr: &str) -> TunnelStatus {
    let stderr = stderr.trim();
    if stderr.contains("No such device") || stderr.contains("does not exist") {
        return TunnelStatus {
            interface: interface.into(),
            state: TunnelState::Down,
            last_handshake_age_secs: None,
            rx_bytes: None,
            tx_bytes: None,
            detail: Some(format!("interface {interface} is not up")),
        };
    }
    unknown(interface, format!("wg: {stderr}"))
}

fn unknown(interface: &str, detail: String) -> TunnelStatus {
    TunnelStatus {
        interface: interface.into(),
        state: TunnelState::Unknown,
        last_handshake_age_secs: None,
        rx_bytes: None,
        tx_bytes: None,
        detail: Some(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_stale_and_never() {
        let up = evaluate_tunnel("sovereign", "KEY=\t1000\n", Some("KEY=\t10\t20\n"), 1100);
        assert_eq!(
            (
                up.state,
                up.last_handshake_age_secs,
                up.rx_bytes,
                up.tx_bytes
            ),
            (TunnelState::Up, Some(100), Some(10), Some(20))
        );
        let stale = evaluate_tunnel("sovereign", "KEY=\t1000\n", None, 2000);
        assert_eq!(
            (stale.state, stale.last_handshake_age_secs),
            (TunnelState::Stale, Some(1000))
        );
        let never = evaluate_tunnel("sovereign", "KEY=\t0\n", None, 2000);
        assert_eq!(
            (never.state, never.last_handshake_age_secs),
            (TunnelState::Stale, None)
        );
    }

    #[test]
    fn missing_interface_is_down() {
        let s = classify_wg_error("sovereign", "Unable to access interface: No such device\n");
        assert_eq!(s.state, TunnelState::Down);
        assert_eq!(
            classify_wg_error("x", "Operation not permitted").state,
            TunnelState::Unknown
        );
    }
}
