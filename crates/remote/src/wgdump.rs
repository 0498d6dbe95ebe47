//! `wg show all dump`: WireGuard's script-friendly runtime state.
//!
//! Per wg(8), with `all` every line starts with the interface name; an interface
//! line then has private-key, public-key, listen-port, fwmark, and a peer line has
//! public-key, preshared-key, endpoint, allowed-ips, latest-handshake (unix
//! seconds, 0 = never), transfer-rx, transfer-tx, persistent-keepalive.
//!
//! Secrets never leave the router: [`DUMP_COMMAND`] blanks the private key and
//! reduces each preshared key to "(set)" before printing.

use serde::Serialize;

/// The shell pipeline that prints the dump with secrets removed.
pub const DUMP_COMMAND: &str = "wg show all dump | awk -F'\\t' 'BEGIN { OFS = \"\\t\" } \
NF == 5 { $2 = \"(hidden)\" } NF == 9 && $3 != \"(none)\" { $3 = \"(set)\" } { print }'";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WgInterface {
    pub name: String,
    pub public_key: String,
    pub listen_port: Option<u16>,
    pub peers: Vec<WgPeer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WgPeer {
    pub public_key: String,
    pub has_preshared_key: bool,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    /// Unix seconds of the latest handshake; `None` if there was none.
    pub latest_handshake: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub persistent_keepalive: Option<u16>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line} of `wg show all dump` is not in the documented format: {reason}")]
pub struct DumpError {
    pub line: usize,
    pub reason: String,
}

/// Parse the output of `wg show all dump` (or [`DUMP_COMMAND`]).
pub fn parse_dump(text: &str) -> Result<Vec<WgInterface>, DumpError> {
    let mut interfaces: Vec<WgInterface> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let bad = |reason: &str| DumpError {
            line: line_no,
            reason: reason.to_string(),
        };
        match fields.len() {
            5 => interfaces.push(WgInterface {
                name: fields[0].to_string(),
                public_key: fields[2].to_string(),
                listen_port: fields[3].parse().ok(),
                peers: Vec::new(),
            }),
            9 => {
                let interface = interfaces
                    .iter_mut()
                    .rfind(|i| i.name == fields[0])
                    .ok_or_else(|| bad("a peer line before its interface line"))?;
                let number = |s: &str, what: &str| -> Result<u64, DumpError> {
                    s.parse()
                        .map_err(|_| bad(&format!("{what} `{s}` is not a number")))
                };
                let handshake = number(fields[5], "latest-handshake")?;
                interface.peers.push(WgPeer {
                    public_key: fields[1].to_string(),
                    has_preshared_key: fields[2] != "(none)",
                    endpoint: none_if_unset(fields[3]),
                    allowed_ips: match fields[4] {
                        "(none)" | "" => Vec::new(),
                        list => list.split(',').map(|s| s.trim().to_string()).collect(),
                    },
                    latest_handshake: (handshake != 0).then_some(handshake),
                    rx_bytes: number(fields[6], "transfer-rx")?,
                    tx_bytes: number(fields[7], "transfer-tx")?,
                    persistent_keepalive: fields[8].parse().ok(),
                });
            }
            n => return Err(bad(&format!("{n} tab-separated fields; expected 5 or 9"))),
        }
    }
    Ok(interfaces)
}

fn none_if_unset(value: &str) -> Option<String> {
    (value != "(none)" && !value.is_empty()).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUB_A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const PUB_B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=";

    #[test]
    fn parses_interfaces_and_peers() {
        let dump = format!(
            "wg0\t(hidden)\t{PUB_A}\t51820\toff\n\
             wg0\t{PUB_B}\t(set)\t203.0.113.7:40000\t10.10.10.2/32\t1700000000\t1234\t5678\t25\n\
             wg0\t{PUB_A}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n"
        );
        let parsed = parse_dump(&dump).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].listen_port, Some(51820));
        let [b, a] = &parsed[0].peers[..] else {
            panic!("two peers")
        };
        assert!(b.has_preshared_key);
        assert_eq!(b.endpoint.as_deref(), Some("203.0.113.7:40000"));
        assert_eq!(b.allowed_ips, vec!["10.10.10.2/32"]);
        assert_eq!(
            (b.latest_handshake, b.rx_bytes, b.tx_bytes),
            (Some(1700000000), 1234, 5678)
        );
        assert_eq!(b.persistent_keepalive, Some(25));
        assert!(!a.has_preshared_key);
        assert_eq!((a.endpoint.clone(), a.latest_handshake), (None, None));
        assert!(a.allowed_ips.is_empty());
        assert_eq!(a.persistent_keepalive, None);
    }

    #[test]
    fn rejects_lines_in_another_format() {
        let error = parse_dump("wg0\tx\ty\n").unwrap_err();
        assert_eq!(error.line, 1);
        let error = parse_dump(&format!(
            "wg0\t(hidden)\t{PUB_A}\t51820\toff\nwg0\t{PUB_B}\t(none)\t(none)\t(none)\tsoon\t0\t0\toff\n"
        ))
        .unwrap_err();
        assert!(error.reason.contains("latest-handshake"));
    }
}
