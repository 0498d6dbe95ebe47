//! Curve25519 keys in WireGuard's base64 form.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// 32 bytes: a private, public or preshared key. `Debug` never shows the bytes,
/// so a key cannot leak into logs by accident; use [`Key::to_base64`] deliberately.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "not a WireGuard key: expected 44 characters of base64 ending in '=' (as printed by `wg genkey`/`wg pubkey`)"
    )]
    Malformed,
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

impl Key {
    /// A new private key, clamped the way `wg genkey` stores it.
    pub fn generate_private() -> Result<Key, KeyError> {
        let mut bytes = random_bytes()?;
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        Ok(Key(bytes))
    }

    /// A new preshared key (`wg genpsk`).
    pub fn generate_preshared() -> Result<Key, KeyError> {
        Ok(Key(random_bytes()?))
    }

    /// The public key of this private key (`wg pubkey`).
    pub fn public_key(&self) -> Key {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        Key(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }

    pub fn from_base64(text: &str) -> Result<Key, KeyError> {
        let text = text.trim();
        if !sovereign_model::is_wireguard_key(text) {
            return Err(KeyError::Malformed);
        }
        let bytes = STANDARD.decode(text).map_err(|_| KeyError::Malformed)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed)?;
        Ok(Key(bytes))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

fn random_bytes() -> Result<[u8; 32], KeyError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(bytes)
}

/// What the router's configuration needs beyond the deployment file: its own
/// private key and the preshared key of each peer that has one (by peer name).
/// Renderers take this as plain data, so they stay pure functions.
#[derive(Clone, Debug)]
pub struct RouterSecrets {
    pub private_key: Key,
    pub preshared_keys: BTreeMap<String, Key>,
    /// Not a secret, but state the deployment file lacks: peer names handed out
    /// before that are no longer peers (renamed, purged, block deleted by hand).
    /// The OpenWrt batch deletes their sections.
    pub retired_peers: Vec<String>,
}

impl RouterSecrets {
    /// Replace every secret in `text` with a readable placeholder, for golden
    /// files and logs: `<router-private-key>`, `<psk:NAME>`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.replace(&self.private_key.to_base64(), "<router-private-key>");
        for (name, key) in &self.preshared_keys {
            out = out.replace(&key.to_base64(), &format!("<psk:{name}>"));
        }
        out
    }

    /// Fixed, obviously fake secrets for tests and golden files: the router key is
    /// all 0x01 bytes, and each peer's PSK is derived from its name.
    pub fn for_tests<'a>(peer_names: impl IntoIterator<Item = &'a str>) -> RouterSecrets {
        let preshared_keys = peer_names
            .into_iter()
            .map(|name| {
                let mut bytes = [0x02u8; 32];
                for (i, b) in name.bytes().enumerate() {
                    bytes[i % 32] ^= b;
                }
                (name.to_string(), Key(bytes))
            })
            .collect();
        RouterSecrets {
            private_key: Key([0x01; 32]),
            preshared_keys,
            retired_peers: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_rejects_garbage() {
        let key = Key::generate_private().unwrap();
        assert_eq!(Key::from_base64(&key.to_base64()).unwrap(), key);
        assert_eq!(Key::from_base64("not a key"), Err(KeyError::Malformed));
    }

    #[test]
    fn known_vector_from_rfc7748() {
        // RFC 7748 §6.1: Alice's private key and public key.
        let hex = |s: &str| -> [u8; 32] {
            let bytes: Vec<u8> = (0..64)
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect();
            bytes.try_into().unwrap()
        };
        let private = Key(hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let public = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(private.public_key().as_bytes(), &public);
    }

    #[test]
    fn debug_never_prints_key_material() {
        let key = Key::generate_private().unwrap();
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }
}
