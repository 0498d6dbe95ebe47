//! WireGuard configuration text (`wg setconf`/`wg showconf` form), reduced to a
//! canonical, secret-free summary so two configs can be diffed line by line.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line} of the WireGuard config: {reason}")]
pub struct WgConfError {
    pub line: usize,
    pub reason: String,
}

/// One line per fact, sorted, with secrets reduced to presence: `interface listen-port
/// 51820`, `peer <key> allowed-ips 10.10.10.2/32`, `peer <key> preshared-key set`.
pub fn summary(text: &str) -> Result<Vec<String>, WgConfError> {
    let mut lines = Vec::new();
    let mut section: Option<String> = None;
    let mut peer_key: Option<String> = None;
    let mut peer_lines: Vec<(String, String)> = Vec::new();
    let mut peers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let flush = |key: &mut Option<String>,
                 pending: &mut Vec<(String, String)>,
                 peers: &mut BTreeMap<String, Vec<String>>,
                 line: usize|
     -> Result<(), WgConfError> {
        if pending.is_empty() && key.is_none() {
            return Ok(());
        }
        let Some(public_key) = key.take() else {
            return Err(WgConfError {
                line,
                reason: "a [Peer] without PublicKey".into(),
            });
        };
        let facts = pending
            .drain(..)
            .map(|(k, v)| format!("peer {public_key} {k} {v}"))
            .collect();
        peers.insert(public_key, facts);
        Ok(())
    };
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            if section.as_deref() == Some("peer") {
                flush(&mut peer_key, &mut peer_lines, &mut peers, line_no)?;
            }
            section = Some(match line.to_ascii_lowercase().as_str() {
                "[interface]" => "interface".to_string(),
                "[peer]" => "peer".to_string(),
                other => {
                    return Err(WgConfError {
                        line: line_no,
                        reason: format!("unknown section {other}"),
                    });
                }
            });
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(WgConfError {
                line: line_no,
                reason: format!("`{line}` is not `Key = Value`"),
            });
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        match (section.as_deref(), key.as_str()) {
            (Some("interface"), "privatekey") => lines.push("interface private-key set".into()),
            (Some("interface"), "listenport") => {
                lines.push(format!("interface listen-port {value}"));
            }
            (Some("interface"), "fwmark") if value != "off" && value != "0" => {
                lines.push(format!("interface fwmark {value}"));
            }
            (Some("interface"), _) => {}
            (Some("peer"), "publickey") => peer_key = Some(value.to_string()),
            (Some("peer"), "presharedkey") => {
                peer_lines.push(("preshared-key".into(), "set".into()));
            }
            (Some("peer"), "allowedips") => {
                let mut ips: Vec<&str> = value.split(',').map(str::trim).collect();
                ips.sort_unstable();
                peer_lines.push(("allowed-ips".into(), ips.join(",")));
            }
            (Some("peer"), "persistentkeepalive") if value != "off" && value != "0" => {
                peer_lines.push(("persistent-keepalive".into(), value.to_string()));
            }
            (Some("peer"), "endpoint") => peer_lines.push(("endpoint".into(), value.to_string())),
            (Some("peer"), _) => {}
            (None, _) => {
                return Err(WgConfError {
                    line: line_no,
                    reason: "a setting before [Interface]".into(),
                });
            }
            _ => {}
        }
    }
    if section.as_deref() == Some("peer") {
        flush(
            &mut peer_key,
            &mut peer_lines,
            &mut peers,
            text.lines().count(),
        )?;
    }
    lines.sort();
    for (key, mut facts) in peers {
        facts.sort();
        lines.push(format!("peer {key}"));
        lines.extend(facts);
    }
    Ok(lines)
}

/// `live` without the endpoints the router learned from roaming peers: `wg showconf`
/// lists the address a peer last sent from, but a config that sets no endpoint for
/// that peer leaves it alone (`wg syncconf` keeps it), so it is state, not drift.
pub fn without_learned_endpoints(live: Vec<String>, configured: &[String]) -> Vec<String> {
    let pinned = |peer: &str| {
        configured
            .iter()
            .any(|line| line.starts_with(&format!("peer {peer} endpoint ")))
    };
    live.into_iter()
        .filter(|line| {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("peer"), Some(peer), Some("endpoint")) => pinned(peer),
                _ => true,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_endpoints_are_not_drift_but_pinned_ones_are_compared() {
        let live = summary(
            "[Interface]\nListenPort = 51820\n[Peer]\nPublicKey = A=\nEndpoint = 203.0.113.20:57203\n\
             [Peer]\nPublicKey = B=\nEndpoint = 198.51.100.7:51820\n",
        )
        .unwrap();
        let rendered =
            summary("[Interface]\nListenPort = 51820\n[Peer]\nPublicKey = A=\n[Peer]\nPublicKey = B=\nEndpoint = 198.51.100.9:51820\n")
                .unwrap();
        let kept = without_learned_endpoints(live, &rendered);
        assert!(!kept.iter().any(|l| l.contains("203.0.113.20")), "{kept:?}");
        assert!(kept.contains(&"peer B= endpoint 198.51.100.7:51820".to_string()));
        assert!(kept.contains(&"peer A=".to_string()));
    }

    #[test]
    fn summaries_ignore_order_and_hide_secrets() {
        let a = "[Interface]\nPrivateKey = c2VjcmV0\nListenPort = 51820\n\n[Peer]\nPublicKey = B=\nAllowedIPs = 10.0.0.3/32, 10.0.0.2/32\nPresharedKey = cHNr\n\n[Peer]\nPublicKey = A=\nAllowedIPs = 10.0.0.9/32\n";
        let b = "[Interface]\nListenPort = 51820\nPrivateKey = b3RoZXI=\n[Peer]\nPublicKey = A=\nAllowedIPs = 10.0.0.9/32\n[Peer]\nPublicKey = B=\nPresharedKey = b3RoZXI=\nAllowedIPs = 10.0.0.2/32,10.0.0.3/32\n";
        assert_eq!(summary(a).unwrap(), summary(b).unwrap());
        let text = summary(a).unwrap().join("\n");
        assert!(!text.contains("c2VjcmV0") && !text.contains("cHNr"));
        assert!(text.contains("peer B= preshared-key set"));
    }

    #[test]
    fn a_peer_without_a_public_key_is_an_error() {
        let error = summary("[Interface]\n[Peer]\nAllowedIPs = 10.0.0.2/32\n").unwrap_err();
        assert!(error.reason.contains("PublicKey"));
    }
}
