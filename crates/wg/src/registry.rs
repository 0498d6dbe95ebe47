//! The peer lifecycle against the real files: the `[[peer]]` entries of the
//! deployment file plus the key files of its state directory, changed together
//! under the state lock.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use sovereign_model::{ConfigErrors, Deployment, EditError, Peer};

use crate::bundle::PeerBundle;
use crate::client::render_client_config;
use crate::key::{Key, KeyError, RouterSecrets};
use crate::ledger::Ledger;
use crate::plan::{self, NewPeer, PeerError};
use crate::store::{KeyStore, StoreError};

/// What `router rekey` did, or would do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouterRekey {
    /// The new public key, once made.
    pub public_key: Option<String>,
    /// A router key (or the record of one) is there, and the router may run it.
    pub replaces_key: bool,
    /// Active and disabled peers whose configs carry the old public key.
    pub peers: Vec<String>,
}

/// The peers of one deployment file and their secrets.
pub struct PeerRegistry {
    config: PathBuf,
    store: KeyStore,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{} does not exist; run `sovereign init` to write one, or pass --config PATH", .0.display())]
    MissingConfig(PathBuf),
    #[error("{}", sovereign_model::read_error_message(path, source))]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(ConfigErrors),
    #[error("cannot edit the deployment file: {0}")]
    Edit(#[from] EditError),
    #[error("bug: the edited deployment file would not validate, so it was left unchanged: {0}")]
    EditBroke(ConfigErrors),
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot generate a key: {0}")]
    Key(#[from] KeyError),
}

impl RegistryError {
    /// Whether the user can fix this in their input or files (exit 2).
    pub fn is_usage(&self) -> bool {
        match self {
            RegistryError::MissingConfig(_) | RegistryError::Config(_) | RegistryError::Peer(_) => {
                true
            }
            RegistryError::ReadConfig { source, .. } => {
                sovereign_model::read_error_is_usage(source)
            }
            RegistryError::Store(error) => error.is_usage(),
            _ => false,
        }
    }
}

/// What `peer add` asks for.
#[derive(Debug, Clone)]
pub struct AddRequest {
    pub name: String,
    /// `None`: the next free address.
    pub address: Option<Ipv4Addr>,
    /// A public key the device generated itself; `None`: sovereign generates the pair.
    pub public_key: Option<String>,
    pub preshared_key: bool,
    /// RFC 3339; the caller owns the clock.
    pub created: String,
    /// RFC 3339 (see [`plan::parse_expiry`]); `None`: never.
    pub expires: Option<String>,
}

/// What `peer revoke` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Revoked {
    Now(Peer),
    Already(Peer),
}

/// Everything needed to render one peer's client config and bundle.
pub struct ClientMaterial {
    pub deployment: Deployment,
    pub peer: Peer,
    /// `None` when the device generated its own pair.
    pub private_key: Option<Key>,
    pub preshared_key: Option<Key>,
    pub router_public_key: Key,
}

impl ClientMaterial {
    /// The wg-quick config (holds the private key, if sovereign has it).
    pub fn client_config(&self) -> String {
        render_client_config(
            &self.deployment,
            &self.peer,
            self.private_key.as_ref(),
            self.preshared_key.as_ref(),
            &self.router_public_key,
        )
    }

    pub fn bundle(&self) -> PeerBundle {
        PeerBundle::new(
            &self.deployment,
            &self.peer,
            self.client_config(),
            self.private_key.is_some(),
            &self.router_public_key,
        )
    }
}

/// One peer's change, decided from the current file.
struct Edit {
    /// The entry after the change (for `Purge`: the one removed).
    peer: Peer,
    op: Op,
    /// For the ledger: whether sovereign generated the private key (`None`: unchanged).
    sovereign_key: Option<bool>,
    private_key: KeyChange,
    preshared_key: KeyChange,
    ensure_router_key: bool,
}

/// How the deployment file and the ledger change.
enum Op {
    Upsert,
    /// The entry and key files of the old name move to `peer.name`.
    Rename {
        old: String,
    },
    /// The entry goes; the ledger frees the name and keeps the address.
    Purge,
}

enum KeyChange {
    Put(Key),
    Remove,
    Keep,
}

impl PeerRegistry {
    /// The peers of `config`, with secrets in its state directory (`<stem>.state`).
    pub fn open(config: &Path) -> Result<PeerRegistry, RegistryError> {
        let store = KeyStore::open(sovereign_model::state_dir_for(config))?;
        Ok(PeerRegistry::with_store(config, store))
    }

    pub fn with_store(config: &Path, store: KeyStore) -> PeerRegistry {
        PeerRegistry {
            config: config.to_path_buf(),
            store,
        }
    }

    pub fn store(&self) -> &KeyStore {
        &self.store
    }

    /// Add a peer: the next free (or the requested) address, a new key pair unless
    /// the device brought its public key, and a PSK unless declined.
    pub fn add(&self, request: &AddRequest) -> Result<Peer, RegistryError> {
        let device_key = match &request.public_key {
            Some(text) => Some(
                Key::from_base64(text)
                    .map_err(|_| PeerError::InvalidPublicKey { text: text.clone() })?,
            ),
            None => None,
        };
        let private_key = match device_key {
            Some(_) => None,
            None => Some(Key::generate_private()?),
        };
        let public_key =
            device_key.unwrap_or_else(|| private_key.as_ref().expect("generated").public_key());
        let psk = if request.preshared_key {
            Some(Key::generate_preshared()?)
        } else {
            None
        };
        let edit = self.change(|d, ledger, _| {
            let peer = plan::plan_add(
                d,
                ledger,
                &NewPeer {
                    name: &request.name,
                    address: request.address,
                    public_key: &public_key,
                    preshared_key: psk.is_some(),
                    created: &request.created,
                    expires: request.expires.as_deref(),
                },
            )?;
            Ok(Some(Edit {
                peer,
                op: Op::Upsert,
                sovereign_key: Some(private_key.is_some()),
                private_key: put_or_remove(&private_key),
                preshared_key: put_or_remove(&psk),
                ensure_router_key: true,
            }))
        })?;
        Ok(edit.expect("add always edits").peer)
    }

    /// New keys for a peer, same address. A PSK is renewed only if the peer has one.
    /// Peers whose device generated the pair must bring the new public key.
    pub fn rotate(
        &self,
        name: &str,
        device_public_key: Option<&str>,
    ) -> Result<Peer, RegistryError> {
        let device_key = match device_public_key {
            Some(text) => Some(
                Key::from_base64(text)
                    .map_err(|_| PeerError::InvalidPublicKey { text: text.into() })?,
            ),
            None => None,
        };
        let private_key = match device_key {
            Some(_) => None,
            None => Some(Key::generate_private()?),
        };
        let public_key =
            device_key.unwrap_or_else(|| private_key.as_ref().expect("generated").public_key());
        let psk = Key::generate_preshared()?;
        let edit = self.change(|d, ledger, store| {
            let peer = plan::plan_rotate(d, name, &public_key)?;
            // The ledger knows who generated the key, so a lost key file is replaced,
            // not mistaken for a device's key; older state directories go by the file.
            let device_keyed = match store.sovereign_keyed(Some(ledger), name) {
                Some(sovereign) => !sovereign,
                None => !store.has_peer_private_key(name)?,
            };
            if private_key.is_some() && device_keyed {
                return Err(PeerError::DeviceKeyed { name: name.into() }.into());
            }
            let preshared_key = if peer.preshared_key {
                KeyChange::Put(psk.clone())
            } else {
                KeyChange::Remove
            };
            Ok(Some(Edit {
                peer,
                op: Op::Upsert,
                sovereign_key: Some(private_key.is_some()),
                private_key: put_or_remove(&private_key),
                preshared_key,
                ensure_router_key: true,
            }))
        })?;
        Ok(edit.expect("rotate always edits").peer)
    }

    /// Disable (`enable: false`) or enable a peer; keys and address are kept.
    /// `None` when it is in that state already. `now`: RFC 3339.
    pub fn set_enabled(
        &self,
        name: &str,
        enable: bool,
        now: &str,
    ) -> Result<Option<Peer>, RegistryError> {
        let edit = self.change(|d, _, _| {
            Ok(plan::plan_enable(d, name, enable, now)?.map(|peer| Edit {
                peer,
                op: Op::Upsert,
                sovereign_key: None,
                private_key: KeyChange::Keep,
                preshared_key: KeyChange::Keep,
                ensure_router_key: false,
            }))
        })?;
        Ok(edit.map(|e| e.peer))
    }

    /// Set (or with `None` clear) a peer's expiry.
    pub fn extend(
        &self,
        name: &str,
        expires: Option<String>,
        now: &str,
    ) -> Result<Peer, RegistryError> {
        let edit = self.change(|d, _, _| {
            Ok(Some(Edit {
                peer: plan::plan_extend(d, name, expires.clone(), now)?,
                op: Op::Upsert,
                sovereign_key: None,
                private_key: KeyChange::Keep,
                preshared_key: KeyChange::Keep,
                ensure_router_key: false,
            }))
        })?;
        Ok(edit.expect("extend always edits").peer)
    }

    /// Give a peer another name; its keys, address and state are kept.
    pub fn rename(&self, old: &str, new: &str, now: &str) -> Result<Peer, RegistryError> {
        let edit = self.change(|d, ledger, store| {
            let peer = plan::plan_rename(d, ledger, old, new, now)?;
            let keep = |key: Option<Key>| match key {
                Some(key) => KeyChange::Put(key),
                None => KeyChange::Remove,
            };
            Ok(Some(Edit {
                peer,
                op: Op::Rename { old: old.into() },
                sovereign_key: None,
                private_key: keep(store.peer_private_key(old)?),
                preshared_key: keep(store.peer_preshared_key(old)?),
                ensure_router_key: false,
            }))
        })?;
        Ok(edit.expect("rename always edits").peer)
    }

    /// Free a revoked peer's name (or one whose block was deleted by hand): the
    /// entry leaves the deployment file, the ledger keeps its address retired and
    /// its public key on record. Returns the peer as it was.
    pub fn purge(&self, name: &str) -> Result<Peer, RegistryError> {
        let edit = self.change(|d, ledger, _| {
            Ok(Some(Edit {
                peer: plan::plan_purge(d, ledger, name)?,
                op: Op::Purge,
                sovereign_key: None,
                private_key: KeyChange::Remove,
                preshared_key: KeyChange::Remove,
                ensure_router_key: false,
            }))
        })?;
        Ok(edit.expect("purge always edits").peer)
    }

    /// Mark a peer revoked (its address stays reserved) and delete its key files.
    pub fn revoke(&self, name: &str, now: &str) -> Result<Revoked, RegistryError> {
        let edit = self.change(|d, _, _| {
            Ok(plan::plan_revoke(d, name, now)?.map(|peer| Edit {
                peer,
                op: Op::Upsert,
                sovereign_key: None,
                private_key: KeyChange::Remove,
                preshared_key: KeyChange::Remove,
                ensure_router_key: false,
            }))
        })?;
        match edit {
            Some(edit) => Ok(Revoked::Now(edit.peer)),
            None => {
                let d = self.read_config()?.1;
                Ok(Revoked::Already(plan::find_peer(&d, name)?.clone()))
            }
        }
    }

    /// An active or disabled peer with its keys, read under the shared lock and
    /// checked for consistency with the deployment file.
    pub fn client_material(&self, name: &str) -> Result<ClientMaterial, RegistryError> {
        let (_, d) = self.read_config()?;
        plan::keyed_peer(&d, name)?;
        // The router's key never changes once made, so it is safe to get it before the shared lock.
        let router_private = self.store.router_private_key_or_generate(&d)?;
        let _shared = self.store.lock_shared()?;
        let (_, deployment) = self.read_config()?;
        let peer = plan::keyed_peer(&deployment, name)?.clone();
        let private_key = self.store.peer_private_key(name)?;
        if private_key.is_none()
            && self
                .store
                .sovereign_keyed(self.store.ledger()?.as_ref(), name)
                == Some(true)
        {
            // Without this, a lost key file would pass for a device-generated pair.
            return Err(StoreError::MissingSecret {
                path: self.store.peer_private_key_path(name),
                hint: format!(
                    "sovereign generated peer `{name}`'s private key and it is gone; restore the file \
                     from a backup (`sovereign restore`), or run `sovereign peer rotate {name}` for \
                     new keys (the device then needs its new config)"
                ),
            }
            .into());
        }
        if let Some(key) = &private_key
            && key.public_key().to_base64() != peer.public_key
        {
            return Err(StoreError::KeyMismatch {
                path: self.store.peer_private_key_path(name),
                peer: name.into(),
            }
            .into());
        }
        let preshared_key = self.store.peer_preshared_key(name)?;
        if peer.preshared_key && preshared_key.is_none() {
            return Err(StoreError::MissingSecret {
                path: self.store.peer_preshared_key_path(name),
                hint: format!("run `sovereign peer rotate {name}` to make new keys"),
            }
            .into());
        }
        // A stray file of a peer marked without PSK is not used.
        let preshared_key = if peer.preshared_key {
            preshared_key
        } else {
            None
        };
        Ok(ClientMaterial {
            deployment,
            peer,
            private_key,
            preshared_key,
            router_public_key: router_private.public_key(),
        })
    }

    /// The deployment and the router's secrets, read together under the shared lock,
    /// so they always agree (no peer added or revoked in between). The router key is
    /// generated on first use.
    pub fn deployment_and_router_secrets(
        &self,
    ) -> Result<(Deployment, RouterSecrets), RegistryError> {
        let (_, unlocked) = self.read_config()?;
        self.store.router_private_key_or_generate(&unlocked)?;
        let _reading = self.store.lock_shared()?;
        let (_, deployment) = self.read_config()?;
        let secrets = self.store.router_secrets(&deployment)?;
        Ok((deployment, secrets))
    }

    /// What replacing the router key would touch, read without changing anything.
    pub fn router_rekey_impact(&self) -> Result<RouterRekey, RegistryError> {
        let (_, d) = self.read_config()?;
        self.rekey_impact(&d)
    }

    /// Replace the router's key pair (or make the first one), whatever state the
    /// old files are in. Every active peer then needs its new config, and the router
    /// the new key (`router apply`).
    pub fn rekey_router(&self) -> Result<RouterRekey, RegistryError> {
        let lock = self.store.lock()?;
        let (_, d) = self.read_config()?;
        let mut impact = self.rekey_impact(&d)?;
        let key = Key::generate_private()?;
        let mut changes = lock.changes();
        changes.put_router_key(&key);
        lock.commit(changes)?;
        impact.public_key = Some(key.public_key().to_base64());
        Ok(impact)
    }

    fn rekey_impact(&self, d: &Deployment) -> Result<RouterRekey, RegistryError> {
        Ok(RouterRekey {
            public_key: None,
            replaces_key: self.store.router_key_present()?,
            peers: d.keyed_peers().map(|p| p.name.clone()).collect(),
        })
    }

    fn read_config(&self) -> Result<(String, Deployment), RegistryError> {
        let text = match std::fs::read_to_string(&self.config) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RegistryError::MissingConfig(self.config.clone()));
            }
            Err(source) => {
                return Err(RegistryError::ReadConfig {
                    path: self.config.clone(),
                    source,
                });
            }
        };
        let deployment =
            sovereign_model::parse(&text, &self.config).map_err(RegistryError::Config)?;
        Ok((text, deployment))
    }

    /// Decide once without the lock, so that bad input changes nothing (not even
    /// by creating the state directory), then decide again under the lock, where the
    /// file cannot change underneath, and commit.
    fn change(
        &self,
        decide: impl Fn(&Deployment, &Ledger, &KeyStore) -> Result<Option<Edit>, RegistryError>,
    ) -> Result<Option<Edit>, RegistryError> {
        let (_, d) = self.read_config()?;
        if decide(&d, &self.store.ledger_for(&d)?, &self.store)?.is_none() {
            return Ok(None);
        }
        let lock = self.store.lock()?;
        let (text, d) = self.read_config()?;
        let mut ledger = self.store.ledger_for(&d)?;
        let Some(edit) = decide(&d, &ledger, &self.store)? else {
            return Ok(None);
        };
        let new_text = match &edit.op {
            Op::Upsert => {
                ledger.record(&edit.peer, edit.sovereign_key);
                sovereign_model::upsert_peer(&text, &edit.peer)?
            }
            Op::Rename { old } => {
                ledger.rename(old, &edit.peer.name);
                ledger.record(&edit.peer, edit.sovereign_key);
                sovereign_model::rename_peer(&text, old, &edit.peer)?
            }
            Op::Purge => {
                ledger.purge(&edit.peer.name);
                sovereign_model::remove_peer(&text, &edit.peer.name)?
            }
        };
        sovereign_model::parse(&new_text, &self.config).map_err(RegistryError::EditBroke)?;
        let mut changes = lock.changes();
        if edit.ensure_router_key {
            lock.router_private_key_or_new(&d, Some(&edit.peer.name), &mut changes)?;
        }
        let name = &edit.peer.name;
        if let Op::Rename { old } = &edit.op {
            changes.remove_peer_private_key(old);
            changes.remove_peer_preshared_key(old);
        }
        match &edit.private_key {
            KeyChange::Put(key) => changes.put_peer_private_key(name, key),
            KeyChange::Remove => changes.remove_peer_private_key(name),
            KeyChange::Keep => {}
        }
        match &edit.preshared_key {
            KeyChange::Put(key) => changes.put_peer_preshared_key(name, key),
            KeyChange::Remove => changes.remove_peer_preshared_key(name),
            KeyChange::Keep => {}
        }
        changes.put_ledger(&ledger);
        // A symlinked sovereign.toml is edited where it points, so the link stays a
        // link (a rename onto the link's path would replace it with a copy).
        let target = match std::fs::symlink_metadata(&self.config) {
            Ok(meta) if meta.file_type().is_symlink() => {
                std::fs::canonicalize(&self.config).unwrap_or_else(|_| self.config.clone())
            }
            _ => self.config.clone(),
        };
        changes.replace_config(&target, new_text);
        lock.commit(changes)?;
        Ok(Some(edit))
    }
}

fn put_or_remove(key: &Option<Key>) -> KeyChange {
    match key {
        Some(key) => KeyChange::Put(key.clone()),
        None => KeyChange::Remove,
    }
}
