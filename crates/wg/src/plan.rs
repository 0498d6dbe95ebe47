//! The peer lifecycle as pure decisions over a [`Deployment`]: which address a new
//! peer gets, whether a name or key is acceptable, what a rotation or revocation
//! changes. No I/O, no clock, no randomness: callers pass keys and timestamps in.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use sovereign_model::{Deployment, PEER_NAME_HINT, Peer, PeerStatus, is_peer_name};

use crate::key::Key;
use crate::ledger::Ledger;

/// A request the deployment cannot accept. Every message says what is wrong and how
/// to fix it; callers treat all of these as usage errors (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("`{name}` is not a valid peer name; {PEER_NAME_HINT}")]
    InvalidName { name: String },
    #[error(
        "a peer named `{name}` already exists ({status}); peer names are unique, revoked peers included, \
         so choose another name{}",
        if *.revoked { format!(", or `sovereign peer purge {name}` to free it") } else { ", or `sovereign peer rotate` it for new keys".to_string() }
    )]
    DuplicateName {
        name: String,
        status: &'static str,
        revoked: bool,
    },
    #[error(
        "the name `{name}` belongs to a peer whose [[peer]] block is gone from the deployment file \
         (deleted by hand?); the state directory's ledger keeps its name and address {address} reserved. \
         Put the block back (`sovereign config validate` lists what is missing), or run \
         `sovereign peer purge {name}` to free the name (the address stays retired)"
    )]
    NameInLedger { name: String, address: Ipv4Addr },
    #[error(
        "`{text}` is not a WireGuard public key; pass the 44-character base64 key the device prints \
         with `wg pubkey < private.key` (or omit --public-key to let sovereign generate the pair)"
    )]
    InvalidPublicKey { text: String },
    #[error(
        "that public key already belongs to the active peer `{other}`; each device needs its own key pair \
         (generate one on the device with `wg genkey | tee private.key | wg pubkey`)"
    )]
    DuplicatePublicKey { other: String },
    #[error(
        "{address} is outside the VPN subnet {subnet}; pick an address inside {subnet}, or omit --ip"
    )]
    AddressOutsideSubnet { address: Ipv4Addr, subnet: Ipv4Net },
    #[error(
        "{address} is {what} of {subnet} and cannot be a peer; omit --ip to get the next free address"
    )]
    AddressReserved {
        address: Ipv4Addr,
        subnet: Ipv4Net,
        what: &'static str,
    },
    #[error(
        "{address} is already used by {} peer `{by}`{}; omit --ip to get the next free address",
        if *.revoked { "the revoked" } else { "the" },
        if *.revoked { " (a revoked peer's address is never handed out again)" } else { "" }
    )]
    AddressInUse {
        address: Ipv4Addr,
        by: String,
        revoked: bool,
    },
    #[error(
        "the VPN subnet {subnet} is full: every address is taken by the router or a peer (revoked peers \
         keep theirs); widen wireguard.subnet in the deployment file, e.g. to a /24"
    )]
    SubnetFull { subnet: Ipv4Net },
    #[error("there is no peer named `{name}`; {}", known_peers_hint(.known))]
    UnknownPeer { name: String, known: Vec<String> },
    #[error(
        "peer `{name}` is revoked; add a new peer with another name, or `sovereign peer purge {name}` \
         to free the name"
    )]
    Revoked { name: String },
    #[error(
        "`{text}` is not an expiry: give a date (2027-01-31, meaning the end of that day, UTC), an RFC 3339 \
         time (2027-01-31T18:00:00Z), a duration from now (30d, 12h, 2w), or `never`"
    )]
    InvalidExpiry { text: String },
    #[error("the expiry {at} is not in the future; give a later date or a duration such as 30d")]
    ExpiryInThePast { at: String },
    #[error(
        "peer `{name}` is {status}; only a revoked peer's name can be purged: run \
         `sovereign peer revoke {name}` first (or `peer disable {name}` to cut it off for a while)"
    )]
    NotRevoked { name: String, status: &'static str },
    #[error(
        "peer `{name}` registered a public key its device generated, so sovereign holds no private key to \
         replace; generate a new pair on the device (`wg genkey | tee private.key | wg pubkey`) and pass \
         the public key with --public-key"
    )]
    DeviceKeyed { name: String },
}

fn known_peers_hint(known: &[String]) -> String {
    if known.is_empty() {
        "there are no peers yet; add one with `sovereign peer add NAME`".into()
    } else {
        format!(
            "known peers: {} (see `sovereign peer list`)",
            known.join(", ")
        )
    }
}

/// `--expires TEXT` at `now`, as the RFC 3339 string the deployment stores;
/// `None` for `never`. A bare date means the end of that day (UTC), so "until
/// 2027-01-31" includes the 31st.
pub fn parse_expiry(text: &str, now: std::time::SystemTime) -> Result<Option<String>, PeerError> {
    let invalid = || PeerError::InvalidExpiry { text: text.into() };
    let text = text.trim();
    if text == "never" {
        return Ok(None);
    }
    let at = if let Ok(duration) = humantime::parse_duration(text) {
        now + duration
    } else if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        at
    } else if text.len() == 10 {
        humantime::parse_rfc3339(&format!("{text}T23:59:59Z")).map_err(|_| invalid())?
    } else {
        return Err(invalid());
    };
    let formatted = humantime::format_rfc3339_seconds(at).to_string();
    if at <= now {
        return Err(PeerError::ExpiryInThePast { at: formatted });
    }
    Ok(Some(formatted))
}

/// The entry after `peer extend`: a new expiry (`None`: never), state unchanged.
pub fn plan_extend(
    d: &Deployment,
    name: &str,
    expires: Option<String>,
    now: &str,
) -> Result<Peer, PeerError> {
    let peer = keyed_peer(d, name)?;
    Ok(Peer {
        expires,
        changed: now.into(),
        ..peer.clone()
    })
}

/// What `peer add` was asked for, with the keys already chosen by the caller.
#[derive(Debug, Clone)]
pub struct NewPeer<'a> {
    pub name: &'a str,
    /// `None`: the next free address.
    pub address: Option<Ipv4Addr>,
    pub public_key: &'a Key,
    pub preshared_key: bool,
    /// RFC 3339.
    pub created: &'a str,
    /// RFC 3339; `None`: never.
    pub expires: Option<&'a str>,
}

/// The `[[peer]]` entry a new peer gets, or why it cannot be added. `ledger`: every
/// allocation ever made, so that a block deleted by hand frees nothing.
pub fn plan_add(d: &Deployment, ledger: &Ledger, new: &NewPeer<'_>) -> Result<Peer, PeerError> {
    check_new_name(d, ledger, new.name)?;
    check_public_key_unused(d, new.public_key, None)?;
    let address = match new.address {
        Some(address) => {
            check_address_free(d, ledger, address)?;
            address
        }
        None => next_free_address(d, ledger)?,
    };
    Ok(Peer {
        name: new.name.into(),
        address,
        public_key: new.public_key.to_base64(),
        created: new.created.into(),
        status: PeerStatus::Active,
        preshared_key: new.preshared_key,
        changed: new.created.into(),
        expires: new.expires.map(String::from),
    })
}

/// The entry after a rotation: the same name and address, a new public key.
pub fn plan_rotate(d: &Deployment, name: &str, public_key: &Key) -> Result<Peer, PeerError> {
    let peer = keyed_peer(d, name)?;
    check_public_key_unused(d, public_key, Some(name))?;
    Ok(Peer {
        public_key: public_key.to_base64(),
        ..peer.clone()
    })
}

/// The entry after a revocation: a tombstone that keeps the address reserved.
/// `Ok(None)` when the peer is already revoked (nothing to do). `now`: RFC 3339.
pub fn plan_revoke(d: &Deployment, name: &str, now: &str) -> Result<Option<Peer>, PeerError> {
    let peer = find_peer(d, name)?;
    if peer.status == PeerStatus::Revoked {
        return Ok(None);
    }
    Ok(Some(Peer {
        status: PeerStatus::Revoked,
        changed: now.into(),
        ..peer.clone()
    }))
}

/// The entry after `peer disable` (`enable: false`) or `peer enable`: keys and
/// address unchanged. `Ok(None)` when the peer is in that state already.
pub fn plan_enable(
    d: &Deployment,
    name: &str,
    enable: bool,
    now: &str,
) -> Result<Option<Peer>, PeerError> {
    let peer = keyed_peer(d, name)?;
    let status = if enable {
        PeerStatus::Active
    } else {
        PeerStatus::Disabled
    };
    if peer.status == status {
        return Ok(None);
    }
    Ok(Some(Peer {
        status,
        changed: now.into(),
        ..peer.clone()
    }))
}

/// The entry after `peer rename OLD NEW`: everything kept but the name (and the
/// last change). Same checks on NEW as `peer add`.
pub fn plan_rename(
    d: &Deployment,
    ledger: &Ledger,
    old: &str,
    new: &str,
    now: &str,
) -> Result<Peer, PeerError> {
    let peer = keyed_peer(d, old)?;
    check_new_name(d, ledger, new)?;
    Ok(Peer {
        name: new.into(),
        changed: now.into(),
        ..peer.clone()
    })
}

/// The peer `peer purge NAME` removes: a revoked one, or one the ledger knows
/// whose block was deleted by hand. Its name becomes free; the ledger keeps its
/// address retired and its public key on record.
pub fn plan_purge(d: &Deployment, ledger: &Ledger, name: &str) -> Result<Peer, PeerError> {
    if let Some(peer) = d.peer(name) {
        if peer.status != PeerStatus::Revoked {
            return Err(PeerError::NotRevoked {
                name: name.into(),
                status: peer.status.as_str(),
            });
        }
        return Ok(peer.clone());
    }
    match ledger.entry(name) {
        Some(entry) => Ok(Peer {
            name: entry.name.clone(),
            address: entry.address,
            public_key: entry.public_key.clone(),
            created: String::new(),
            status: PeerStatus::Revoked,
            preshared_key: false,
            changed: String::new(),
            expires: None,
        }),
        None => Err(find_peer(d, name).unwrap_err()),
    }
}

fn check_new_name(d: &Deployment, ledger: &Ledger, name: &str) -> Result<(), PeerError> {
    if !is_peer_name(name) {
        return Err(PeerError::InvalidName { name: name.into() });
    }
    if let Some(existing) = d.peer(name) {
        return Err(PeerError::DuplicateName {
            name: name.into(),
            status: existing.status.as_str(),
            revoked: existing.status == PeerStatus::Revoked,
        });
    }
    if let Some(entry) = ledger.entry(name) {
        return Err(PeerError::NameInLedger {
            name: name.into(),
            address: entry.address,
        });
    }
    Ok(())
}

/// A peer that still holds keys (active or disabled): what `show`, `export`,
/// `rotate`, `disable` and `enable` work on.
pub fn keyed_peer<'d>(d: &'d Deployment, name: &str) -> Result<&'d Peer, PeerError> {
    let peer = find_peer(d, name)?;
    if !peer.holds_keys() {
        return Err(PeerError::Revoked { name: name.into() });
    }
    Ok(peer)
}

/// A peer by name, revoked ones included; an unknown name lists the known ones.
pub fn find_peer<'d>(d: &'d Deployment, name: &str) -> Result<&'d Peer, PeerError> {
    d.peer(name).ok_or_else(|| PeerError::UnknownPeer {
        name: name.into(),
        known: d.peers.iter().map(|p| p.name.clone()).collect(),
    })
}

/// An active peer by name: what `show`, `export` and `rotate` work on.
pub fn active_peer<'d>(d: &'d Deployment, name: &str) -> Result<&'d Peer, PeerError> {
    let peer = find_peer(d, name)?;
    if !peer.is_active() {
        return Err(PeerError::Revoked { name: name.into() });
    }
    Ok(peer)
}

/// The lowest host address of the VPN subnet that is neither the router's nor any
/// peer's, revoked, purged and hand-deleted peers included (their addresses are
/// never reused).
pub fn next_free_address(d: &Deployment, ledger: &Ledger) -> Result<Ipv4Addr, PeerError> {
    let subnet = d.wireguard.subnet;
    hosts(subnet)
        .find(|address| {
            *address != d.wireguard.address
                && !d.peers.iter().any(|p| p.address == *address)
                && ledger.address_owner(*address).is_none()
        })
        .ok_or(PeerError::SubnetFull { subnet })
}

/// Why `address` cannot be given to a new peer, if it cannot.
pub fn check_address_free(
    d: &Deployment,
    ledger: &Ledger,
    address: Ipv4Addr,
) -> Result<(), PeerError> {
    let subnet = d.wireguard.subnet;
    if !subnet.contains(&address) {
        return Err(PeerError::AddressOutsideSubnet { address, subnet });
    }
    let reserved = if subnet.prefix_len() < 31 && address == subnet.network() {
        Some("the network address")
    } else if subnet.prefix_len() < 31 && address == subnet.broadcast() {
        Some("the broadcast address")
    } else if address == d.wireguard.address {
        Some("the router's own address (wireguard.address)")
    } else {
        None
    };
    if let Some(what) = reserved {
        return Err(PeerError::AddressReserved {
            address,
            subnet,
            what,
        });
    }
    if let Some(owner) = d.peers.iter().find(|p| p.address == address) {
        return Err(PeerError::AddressInUse {
            address,
            by: owner.name.clone(),
            revoked: !owner.is_active(),
        });
    }
    if let Some(owner) = ledger.address_owner(address) {
        // Not in the file: revoked and purged, or deleted by hand. Retired either way.
        return Err(PeerError::AddressInUse {
            address,
            by: owner.name.clone(),
            revoked: true,
        });
    }
    Ok(())
}

fn check_public_key_unused(
    d: &Deployment,
    key: &Key,
    except: Option<&str>,
) -> Result<(), PeerError> {
    let text = key.to_base64();
    match d
        .active_peers()
        .find(|p| p.public_key == text && Some(p.name.as_str()) != except)
    {
        Some(other) => Err(PeerError::DuplicatePublicKey {
            other: other.name.clone(),
        }),
        None => Ok(()),
    }
}

/// Host addresses in ascending order (a /31 or /32 has no network/broadcast to skip).
fn hosts(subnet: Ipv4Net) -> impl Iterator<Item = Ipv4Addr> {
    let (first, last) = if subnet.prefix_len() >= 31 {
        (u32::from(subnet.network()), u32::from(subnet.broadcast()))
    } else {
        (
            u32::from(subnet.network()) + 1,
            u32::from(subnet.broadcast()) - 1,
        )
    };
    (first..=last).map(Ipv4Addr::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::from_bytes([byte; 32])
    }

    fn add(d: &mut Deployment, name: &str, address: Option<Ipv4Addr>) -> Result<Peer, PeerError> {
        let public_key = key(d.peers.len() as u8 + 10);
        let peer = plan_add(
            d,
            &Ledger::default(),
            &NewPeer {
                name,
                address,
                public_key: &public_key,
                preshared_key: true,
                created: "2026-01-01T00:00:00Z",
                expires: None,
            },
        )?;
        d.peers.push(peer.clone());
        Ok(peer)
    }

    #[test]
    fn allocates_upwards_skipping_the_router() {
        let mut d = Deployment::reference();
        assert_eq!(
            add(&mut d, "a", None).unwrap().address,
            Ipv4Addr::new(10, 10, 10, 2)
        );
        assert_eq!(
            add(&mut d, "b", None).unwrap().address,
            Ipv4Addr::new(10, 10, 10, 3)
        );
        // Moving the router frees .1 and takes .4.
        d.wireguard.address = Ipv4Addr::new(10, 10, 10, 4);
        assert_eq!(
            add(&mut d, "c", None).unwrap().address,
            Ipv4Addr::new(10, 10, 10, 1)
        );
        assert_eq!(
            add(&mut d, "d", None).unwrap().address,
            Ipv4Addr::new(10, 10, 10, 5)
        );
    }

    #[test]
    fn never_reuses_a_revoked_address() {
        let mut d = Deployment::reference();
        add(&mut d, "a", None).unwrap();
        let revoked = plan_revoke(&d, "a", "").unwrap().unwrap();
        d.peers[0] = revoked;
        assert_eq!(
            add(&mut d, "b", None).unwrap().address,
            Ipv4Addr::new(10, 10, 10, 3)
        );
        let err = add(&mut d, "c", Some(Ipv4Addr::new(10, 10, 10, 2))).unwrap_err();
        assert!(
            matches!(err, PeerError::AddressInUse { revoked: true, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("never handed out again"));
    }

    #[test]
    fn a_block_deleted_by_hand_frees_neither_name_nor_address() {
        let mut d = Deployment::reference();
        add(&mut d, "laptop", None).unwrap();
        let mut ledger = Ledger::default();
        ledger.absorb(&d);
        d.peers.clear();
        let fresh = key(50);
        let new = |name| NewPeer {
            name,
            address: None,
            public_key: &fresh,
            preshared_key: true,
            created: "",
            expires: None,
        };
        let err = plan_add(&d, &ledger, &new("laptop")).unwrap_err();
        assert!(matches!(err, PeerError::NameInLedger { .. }), "{err}");
        assert!(err.to_string().contains("peer purge laptop"), "{err}");
        let phone = plan_add(&d, &ledger, &new("phone")).unwrap();
        assert_eq!(phone.address, Ipv4Addr::new(10, 10, 10, 3));
        let err = check_address_free(&d, &ledger, Ipv4Addr::new(10, 10, 10, 2)).unwrap_err();
        assert!(matches!(err, PeerError::AddressInUse { .. }), "{err}");
        // A purged name is free again; its address is not.
        ledger.purge("laptop");
        let again = plan_add(&d, &ledger, &new("laptop")).unwrap();
        assert_eq!(again.address, Ipv4Addr::new(10, 10, 10, 3));
    }

    #[test]
    fn a_full_subnet_is_an_error_naming_the_fix() {
        let mut d = Deployment::reference();
        d.wireguard.subnet = "10.10.10.0/30".parse().unwrap();
        add(&mut d, "only", None).unwrap();
        let err = add(&mut d, "more", None).unwrap_err();
        assert_eq!(
            err,
            PeerError::SubnetFull {
                subnet: d.wireguard.subnet
            }
        );
        assert!(err.to_string().contains("wireguard.subnet"));
    }

    #[test]
    fn explicit_addresses_are_checked() {
        let mut d = Deployment::reference();
        let cases = [
            (Ipv4Addr::new(10, 10, 11, 2), "outside"),
            (Ipv4Addr::new(10, 10, 10, 0), "network address"),
            (Ipv4Addr::new(10, 10, 10, 255), "broadcast address"),
            (Ipv4Addr::new(10, 10, 10, 1), "router's own address"),
        ];
        for (address, expected) in cases {
            let err = add(&mut d, "x", Some(address)).unwrap_err();
            assert!(err.to_string().contains(expected), "{address}: {err}");
        }
        assert_eq!(
            add(&mut d, "x", Some(Ipv4Addr::new(10, 10, 10, 77)))
                .unwrap()
                .address
                .octets()[3],
            77
        );
        let err = add(&mut d, "y", Some(Ipv4Addr::new(10, 10, 10, 77))).unwrap_err();
        assert!(matches!(
            err,
            PeerError::AddressInUse { revoked: false, .. }
        ));
    }

    #[test]
    fn names_must_be_valid_and_unique_revoked_included() {
        let mut d = Deployment::reference();
        assert!(matches!(
            add(&mut d, "../etc", None),
            Err(PeerError::InvalidName { .. })
        ));
        add(&mut d, "laptop", None).unwrap();
        d.peers[0].status = PeerStatus::Revoked;
        let err = add(&mut d, "laptop", None).unwrap_err();
        assert!(matches!(
            err,
            PeerError::DuplicateName { revoked: true, .. }
        ));
    }

    #[test]
    fn rotate_keeps_the_address_and_rejects_revoked_and_unknown_peers() {
        let mut d = Deployment::reference();
        let before = add(&mut d, "laptop", None).unwrap();
        let after = plan_rotate(&d, "laptop", &key(99)).unwrap();
        assert_eq!(after.address, before.address);
        assert_ne!(after.public_key, before.public_key);
        let err = plan_rotate(&d, "phone", &key(98)).unwrap_err();
        assert!(err.to_string().contains("known peers: laptop"), "{err}");
        d.peers[0].status = PeerStatus::Revoked;
        assert!(matches!(
            plan_rotate(&d, "laptop", &key(97)),
            Err(PeerError::Revoked { .. })
        ));
        assert_eq!(plan_revoke(&d, "laptop", ""), Ok(None));
    }

    #[test]
    fn disable_and_enable_keep_keys_and_address_and_refuse_revoked_peers() {
        let mut d = Deployment::reference();
        let before = add(&mut d, "laptop", None).unwrap();
        let off = plan_enable(&d, "laptop", false, "2026-02-01T00:00:00Z")
            .unwrap()
            .unwrap();
        assert_eq!(off.status, PeerStatus::Disabled);
        assert_eq!(off.changed, "2026-02-01T00:00:00Z");
        assert_eq!(
            (off.address, &off.public_key),
            (before.address, &before.public_key)
        );
        d.peers[0] = off;
        assert_eq!(plan_enable(&d, "laptop", false, ""), Ok(None));
        // A disabled peer's address is as taken as any other.
        assert_ne!(add(&mut d, "phone", None).unwrap().address, before.address);
        let on = plan_enable(&d, "laptop", true, "").unwrap().unwrap();
        assert_eq!(on.status, PeerStatus::Active);
        // A disabled peer can be revoked; a revoked one cannot come back.
        let revoked = plan_revoke(&d, "laptop", "").unwrap().unwrap();
        d.peers[0] = revoked;
        assert!(matches!(
            plan_enable(&d, "laptop", true, ""),
            Err(PeerError::Revoked { .. })
        ));
    }

    #[test]
    fn expiries_parse_from_dates_times_and_durations_and_must_lie_ahead() {
        let now = humantime::parse_rfc3339("2026-06-01T12:00:00Z").unwrap();
        let parse = |t| parse_expiry(t, now);
        assert_eq!(
            parse("2027-01-31").unwrap().unwrap(),
            "2027-01-31T23:59:59Z"
        );
        assert_eq!(parse("30d").unwrap().unwrap(), "2026-07-01T12:00:00Z");
        assert_eq!(
            parse("2026-06-01T18:00:00Z").unwrap().unwrap(),
            "2026-06-01T18:00:00Z"
        );
        assert_eq!(parse("never").unwrap(), None);
        assert!(matches!(
            parse("2026-05-01"),
            Err(PeerError::ExpiryInThePast { .. })
        ));
        assert!(matches!(
            parse("soon"),
            Err(PeerError::InvalidExpiry { .. })
        ));
    }

    #[test]
    fn a_public_key_belongs_to_one_active_peer() {
        let mut d = Deployment::reference();
        add(&mut d, "laptop", None).unwrap();
        let taken = Key::from_base64(&d.peers[0].public_key).unwrap();
        let new = NewPeer {
            name: "phone",
            address: None,
            public_key: &taken,
            preshared_key: true,
            created: "",
            expires: None,
        };
        assert!(matches!(
            plan_add(&d, &Ledger::default(), &new),
            Err(PeerError::DuplicatePublicKey { .. })
        ));
    }

    proptest::proptest! {
        /// Whatever mix of adds and revokes happens, addresses stay unique, inside the
        /// subnet, and never the router's.
        #[test]
        fn allocation_never_collides(ops in proptest::collection::vec(0u8..4, 1..40)) {
            let mut d = Deployment::reference();
            d.wireguard.subnet = "10.10.10.0/27".parse().unwrap();
            for (i, op) in ops.iter().enumerate() {
                if *op == 0 && !d.peers.is_empty() {
                    let name = d.peers[i % d.peers.len()].name.clone();
                    if let Some(tombstone) = plan_revoke(&d, &name, "").unwrap() {
                        let slot = d.peers.iter().position(|p| p.name == name).unwrap();
                        d.peers[slot] = tombstone;
                    }
                    continue;
                }
                let name = format!("p{i}");
                match add(&mut d, &name, None) {
                    Ok(_) | Err(PeerError::SubnetFull { .. }) => {}
                    Err(other) => proptest::prop_assert!(false, "{other}"),
                }
            }
            let mut seen = std::collections::HashSet::new();
            for peer in &d.peers {
                proptest::prop_assert!(d.wireguard.subnet.contains(&peer.address));
                proptest::prop_assert_ne!(peer.address, d.wireguard.address);
                proptest::prop_assert!(seen.insert(peer.address));
            }
        }
    }
}
