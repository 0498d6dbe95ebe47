//! The allocation ledger: every peer name and address sovereign ever handed out,
//! kept in the state directory (`ledger.json`, 0600) beside the keys.
//!
//! The `[[peer]]` entries of the deployment file are the peers' description, but
//! that file is edited by hand: a deleted block must not free its name or address
//! (a revoked peer's config may still be on a lost device, and an address that
//! comes back would let it reach the server as someone else). So allocation asks
//! the deployment file and this ledger, and every change records into both in one
//! commit. A state directory from before the ledger gets it at its next change.

use std::net::Ipv4Addr;

use sovereign_model::{Deployment, Peer};

/// The file's format version, so a newer sovereign can refuse an older reader's guess.
pub const LEDGER_FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ledger {
    pub format: u32,
    pub entries: Vec<LedgerEntry>,
}

/// One name/address allocation. Never removed: `peer purge` only frees the name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LedgerEntry {
    pub name: String,
    pub address: Ipv4Addr,
    /// The latest public key: public, and what an audit matches a handshake against.
    pub public_key: String,
    /// Whether sovereign generated (and so must hold) the peer's private key.
    /// `None` for entries recorded from a deployment file of an older sovereign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sovereign_key: Option<bool>,
    /// The name was freed by `peer purge`; the address stays retired.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub purged: bool,
    /// Names this peer had before `peer rename`: a router may still hold them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former_names: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("not a sovereign ledger: {0}")]
pub struct LedgerParseError(String);

impl Ledger {
    pub fn parse(bytes: &[u8]) -> Result<Ledger, LedgerParseError> {
        let ledger: Ledger =
            serde_json::from_slice(bytes).map_err(|e| LedgerParseError(e.to_string()))?;
        if ledger.format != LEDGER_FORMAT {
            return Err(LedgerParseError(format!(
                "format {} (this sovereign reads format {LEDGER_FORMAT})",
                ledger.format
            )));
        }
        Ok(ledger)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_string_pretty(self).expect("a ledger serializes");
        text.push('\n');
        text.into_bytes()
    }

    /// The live entry of `name` (purged ones freed theirs).
    pub fn entry(&self, name: &str) -> Option<&LedgerEntry> {
        self.entries.iter().find(|e| e.name == name && !e.purged)
    }

    fn entry_mut(&mut self, name: &str) -> Option<&mut LedgerEntry> {
        self.entries
            .iter_mut()
            .find(|e| e.name == name && !e.purged)
    }

    /// Whether any allocation, purged or not, holds `address`.
    pub fn address_owner(&self, address: Ipv4Addr) -> Option<&LedgerEntry> {
        self.entries.iter().find(|e| e.address == address)
    }

    /// Record `peer` as it is now. `sovereign_key`: `Some` when the caller knows
    /// who generated the private key (add, rotate), `None` to keep what is known.
    pub fn record(&mut self, peer: &Peer, sovereign_key: Option<bool>) {
        match self.entry_mut(&peer.name) {
            Some(entry) => {
                entry.address = peer.address;
                entry.public_key = peer.public_key.clone();
                if sovereign_key.is_some() {
                    entry.sovereign_key = sovereign_key;
                }
            }
            None => self.entries.push(LedgerEntry {
                name: peer.name.clone(),
                address: peer.address,
                public_key: peer.public_key.clone(),
                sovereign_key,
                purged: false,
                former_names: Vec::new(),
            }),
        }
    }

    /// Take in every peer of the deployment file the ledger does not know yet
    /// (a state directory from before the ledger, or a block added by hand).
    pub fn absorb(&mut self, d: &Deployment) {
        for peer in &d.peers {
            if self.entry(&peer.name).is_none() {
                self.record(peer, None);
            }
        }
        self.format = LEDGER_FORMAT;
    }

    /// Free `name`; its address stays retired and its public key stays recorded.
    pub fn purge(&mut self, name: &str) {
        if let Some(entry) = self.entry_mut(name) {
            entry.purged = true;
        }
    }

    /// Give the live entry of `old` the name `new`.
    pub fn rename(&mut self, old: &str, new: &str) {
        if let Some(entry) = self.entry_mut(old) {
            entry
                .former_names
                .push(std::mem::replace(&mut entry.name, new.into()));
        }
    }

    /// Names a router may still know from an earlier apply that are no longer
    /// peers of `d` (renamed, purged, or deleted by hand), sorted: the OpenWrt
    /// batch deletes their sections, which it would otherwise never touch again.
    pub fn retired_names(&self, d: &Deployment) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .iter()
            .flat_map(|e| e.former_names.iter().chain(std::iter::once(&e.name)))
            .filter(|name| d.peer(name).is_none())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Live entries whose `[[peer]]` block is gone from the deployment file.
    pub fn missing_from<'l>(&'l self, d: &Deployment) -> impl Iterator<Item = &'l LedgerEntry> {
        self.entries
            .iter()
            .filter(move |e| !e.purged && d.peer(&e.name).is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, last: u8) -> Peer {
        Peer {
            name: name.into(),
            address: Ipv4Addr::new(10, 10, 10, last),
            public_key: format!("key-{name}"),
            created: String::new(),
            status: Default::default(),
            preshared_key: true,
            changed: String::new(),
            expires: None,
        }
    }

    #[test]
    fn round_trips_and_refuses_other_formats() {
        let mut ledger = Ledger::default();
        let mut d = Deployment::reference();
        d.peers.push(peer("laptop", 2));
        ledger.absorb(&d);
        ledger.record(&peer("phone", 3), Some(false));
        ledger.purge("laptop");
        let parsed = Ledger::parse(&ledger.to_bytes()).unwrap();
        assert_eq!(parsed, ledger);
        assert!(parsed.entry("laptop").is_none());
        assert_eq!(
            parsed
                .address_owner(Ipv4Addr::new(10, 10, 10, 2))
                .unwrap()
                .name,
            "laptop"
        );
        assert!(Ledger::parse(b"{\"format\":2,\"entries\":[]}").is_err());
        assert!(Ledger::parse(b"not json").is_err());
    }

    #[test]
    fn a_deleted_block_stays_in_the_ledger() {
        let mut ledger = Ledger::default();
        let mut d = Deployment::reference();
        d.peers.push(peer("laptop", 2));
        ledger.absorb(&d);
        d.peers.clear();
        ledger.absorb(&d);
        let missing: Vec<_> = ledger.missing_from(&d).map(|e| e.name.as_str()).collect();
        assert_eq!(missing, ["laptop"]);
        assert_eq!(ledger.retired_names(&d), ["laptop"]);
    }

    #[test]
    fn a_renamed_peer_keeps_its_former_name_for_the_router() {
        let mut ledger = Ledger::default();
        let mut d = Deployment::reference();
        d.peers.push(peer("laptop", 2));
        ledger.absorb(&d);
        ledger.rename("laptop", "work");
        d.peers[0].name = "work".into();
        assert_eq!(ledger.entry("work").unwrap().former_names, ["laptop"]);
        assert_eq!(ledger.retired_names(&d), ["laptop"]);
    }
}
