//! The peer bundle: one JSON file with everything a client machine needs, written
//! by `sovereign peer export` and read by `sovereign client setup`.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use sovereign_model::{Deployment, Peer, is_peer_name};

use crate::client::PRIVATE_KEY_PLACEHOLDER;
use crate::key::Key;

/// The `format` value of the bundles this version writes and reads.
pub const BUNDLE_FORMAT: &str = "sovereign-peer-bundle/1";
const FORMAT_FAMILY: &str = "sovereign-peer-bundle/";

/// Everything a client machine needs to reach the AI server through the tunnel.
/// Unknown fields are ignored, so later writers can add some without a new version.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerBundle {
    /// Always [`BUNDLE_FORMAT`]; readers refuse anything else.
    pub format: String,
    pub peer: BundlePeer,
    pub server: BundleServer,
    pub api: BundleApi,
    /// `ollama.context_length`: what clients should ask for.
    pub context_length: u32,
    pub wireguard: BundleWireGuard,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundlePeer {
    pub name: String,
    /// The peer's VPN address (its /32 inside the tunnel).
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleServer {
    /// The AI server's LAN address, reached through the tunnel.
    pub address: Ipv4Addr,
    pub api_port: u16,
}

/// API base URLs. `anthropic` has no `/v1` (Anthropic SDKs append it); `openai` has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleApi {
    pub openai: String,
    pub anthropic: String,
    pub ollama: String,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleWireGuard {
    /// The wg-quick config, byte for byte what `sovereign peer show --conf` prints.
    pub config: String,
    /// False for peers whose device generated its own key pair: `config` then holds
    /// [`PRIVATE_KEY_PLACEHOLDER`] and the client must put the device's key there.
    pub private_key_included: bool,
    pub endpoint: String,
    pub router_public_key: String,
    pub allowed_ips: Vec<Ipv4Net>,
    pub mtu: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("the bundle is empty; export one with `sovereign peer export NAME --out FILE`")]
    Empty,
    #[error(
        "not a sovereign peer bundle (not JSON: {0}); export one with `sovereign peer export NAME`"
    )]
    NotJson(String),
    #[error(
        "not a sovereign peer bundle: it has no `format` field; export one with `sovereign peer export NAME`"
    )]
    MissingFormat,
    #[error("not a sovereign peer bundle: `format` is `{0}`, expected `{BUNDLE_FORMAT}`")]
    WrongFormat(String),
    #[error(
        "the bundle has format `{found}`, but this sovereign reads only `{BUNDLE_FORMAT}`; \
         export it again with the sovereign version that manages the router"
    )]
    UnsupportedVersion { found: String },
    #[error("the bundle is damaged: {0}; export it again with `sovereign peer export NAME`")]
    Corrupt(String),
}

impl PeerBundle {
    /// Assemble the bundle of `peer` around its already rendered `client_config`.
    pub fn new(
        d: &Deployment,
        peer: &Peer,
        client_config: String,
        private_key_included: bool,
        router_public: &Key,
    ) -> PeerBundle {
        let urls = d.api_urls();
        PeerBundle {
            format: BUNDLE_FORMAT.into(),
            peer: BundlePeer {
                name: peer.name.clone(),
                address: peer.address,
            },
            server: BundleServer {
                address: d.server.address,
                api_port: d.server.api_port,
            },
            api: BundleApi {
                openai: urls.openai,
                anthropic: urls.anthropic,
                ollama: urls.ollama,
            },
            context_length: d.ollama.context_length,
            wireguard: BundleWireGuard {
                config: client_config,
                private_key_included,
                endpoint: d.wan.endpoint.to_string(),
                router_public_key: router_public.to_base64(),
                allowed_ips: d.client_allowed_ips(),
                mtu: d.wireguard.mtu,
            },
        }
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a bundle always serializes");
        text.push('\n');
        text
    }

    /// Read a bundle, refusing anything missing, damaged or of another version.
    pub fn parse(text: &str) -> Result<PeerBundle, BundleError> {
        if text.trim().is_empty() {
            return Err(BundleError::Empty);
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| BundleError::NotJson(e.to_string()))?;
        let format = match value.get("format") {
            None => return Err(BundleError::MissingFormat),
            Some(serde_json::Value::String(format)) => format.clone(),
            Some(other) => return Err(BundleError::WrongFormat(other.to_string())),
        };
        if format != BUNDLE_FORMAT {
            return Err(if format.starts_with(FORMAT_FAMILY) {
                BundleError::UnsupportedVersion { found: format }
            } else {
                BundleError::WrongFormat(format)
            });
        }
        let bundle: PeerBundle =
            serde_json::from_value(value).map_err(|e| BundleError::Corrupt(e.to_string()))?;
        bundle.check()?;
        Ok(bundle)
    }

    /// The device's private key from the config, when the bundle carries one.
    pub fn private_key(&self) -> Option<Key> {
        config_value(&self.wireguard.config, "PrivateKey").and_then(|v| Key::from_base64(v).ok())
    }

    fn check(&self) -> Result<(), BundleError> {
        let corrupt = |what: String| Err(BundleError::Corrupt(what));
        if !is_peer_name(&self.peer.name) {
            return corrupt(format!("`{}` is not a valid peer name", self.peer.name));
        }
        if Key::from_base64(&self.wireguard.router_public_key).is_err() {
            return corrupt("wireguard.router_public_key is not a WireGuard key".into());
        }
        let config = &self.wireguard.config;
        if !config.contains("[Interface]") || !config.contains("[Peer]") {
            return corrupt("wireguard.config lacks its [Interface] or [Peer] section".into());
        }
        let expected_address = format!("{}/32", self.peer.address);
        if config_value(config, "Address") != Some(expected_address.as_str()) {
            return corrupt(format!(
                "wireguard.config does not give the peer its address {expected_address}"
            ));
        }
        if config_value(config, "PublicKey") != Some(self.wireguard.router_public_key.as_str()) {
            return corrupt("wireguard.config and wireguard.router_public_key disagree".into());
        }
        let private = config_value(config, "PrivateKey");
        match (self.wireguard.private_key_included, private) {
            (true, Some(key)) if Key::from_base64(key).is_ok() => {}
            (false, Some(PRIVATE_KEY_PLACEHOLDER)) => {}
            (true, _) => return corrupt("wireguard.config has no valid PrivateKey".into()),
            (false, _) => {
                return corrupt(format!(
                    "private_key_included is false, but the PrivateKey line is not `{PRIVATE_KEY_PLACEHOLDER}`"
                ));
            }
        }
        Ok(())
    }
}

/// The value of the first `Key = value` line of a wg-quick config.
fn config_value<'t>(config: &'t str, key: &str) -> Option<&'t str> {
    config.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The config holds the peer's private key, so Debug leaves it out.
impl fmt::Debug for BundleWireGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleWireGuard")
            .field("config", &"<redacted>")
            .field("private_key_included", &self.private_key_included)
            .field("endpoint", &self.endpoint)
            .field("router_public_key", &self.router_public_key)
            .field("allowed_ips", &self.allowed_ips)
            .field("mtu", &self.mtu)
            .finish()
    }
}

impl fmt::Debug for PeerBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerBundle")
            .field("format", &self.format)
            .field("peer", &self.peer)
            .field("server", &self.server)
            .field("api", &self.api)
            .field("context_length", &self.context_length)
            .field("wireguard", &self.wireguard)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::render_client_config;
    use sovereign_model::PeerStatus;

    fn sample(private: Option<&Key>) -> PeerBundle {
        let d = Deployment::reference();
        let peer = Peer {
            name: "laptop".into(),
            address: "10.10.10.2".parse().unwrap(),
            public_key: Key::from_bytes([0x03; 32]).public_key().to_base64(),
            created: "2026-01-01T00:00:00Z".into(),
            status: PeerStatus::Active,
            preshared_key: true,
            changed: String::new(),
            expires: None,
        };
        let router = Key::from_bytes([0x01; 32]).public_key();
        let psk = Key::from_bytes([0x04; 32]);
        let config = render_client_config(&d, &peer, private, Some(&psk), &router);
        PeerBundle::new(&d, &peer, config, private.is_some(), &router)
    }

    #[test]
    fn reference_bundle_round_trips() {
        let private = Key::from_bytes([0x03; 32]);
        let bundle = sample(Some(&private));
        let text = bundle.to_json();
        // Key material never goes into a snapshot, not even fake keys.
        let redacted = text
            .replace(&private.to_base64(), "<peer-private-key>")
            .replace(&Key::from_bytes([0x04; 32]).to_base64(), "<psk>");
        assert_ne!(redacted, text, "the bundle carries the keys");
        insta::assert_snapshot!(redacted);
        let parsed = PeerBundle::parse(&text).unwrap();
        assert_eq!(parsed, bundle);
        assert_eq!(parsed.private_key(), Some(private));
        assert_eq!(parsed.api.anthropic, "http://192.168.250.20:11434");
        assert_eq!(parsed.api.openai, "http://192.168.250.20:11434/v1");
    }

    #[test]
    fn device_keyed_bundle_round_trips_without_a_private_key() {
        let bundle = sample(None);
        let parsed = PeerBundle::parse(&bundle.to_json()).unwrap();
        assert!(!parsed.wireguard.private_key_included);
        assert_eq!(parsed.private_key(), None);
    }

    #[test]
    fn debug_leaves_the_private_key_out() {
        let private = Key::from_bytes([0x03; 32]);
        let bundle = sample(Some(&private));
        assert!(!format!("{bundle:?}").contains(&private.to_base64()));
    }

    #[test]
    fn rejects_missing_corrupt_and_foreign_bundles() {
        let good = sample(Some(&Key::from_bytes([0x03; 32]))).to_json();
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            ("{not json".into(), "not JSON"),
            ("{}".into(), "no `format`"),
            (
                r#"{"format": 1}"#.into(),
                "expected `sovereign-peer-bundle/1`",
            ),
            (
                good.replace(BUNDLE_FORMAT, "wg-easy/1"),
                "expected `sovereign-peer-bundle/1`",
            ),
            (
                good.replace(BUNDLE_FORMAT, "sovereign-peer-bundle/2"),
                "reads only",
            ),
            (
                good.replace("\"context_length\"", "\"context_len\""),
                "missing field `context_length`",
            ),
            (
                good.replace("10.10.10.2/32", "10.10.10.9/32"),
                "address 10.10.10.2/32",
            ),
            (
                good.replace("\"laptop\"", "\"../x\""),
                "not a valid peer name",
            ),
            (
                good.replace(
                    "\"private_key_included\": true",
                    "\"private_key_included\": false",
                ),
                "PrivateKey line",
            ),
        ];
        for (text, expected) in cases {
            let err = PeerBundle::parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
    }
}
