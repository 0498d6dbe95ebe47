//! The state directory: the router's private key and each peer's private and
//! preshared keys, in files of mode 0600 inside directories of mode 0700.
//!
//! ```text
//! <stem>.state/            0700
//!   lock                   0600, held (flock) by every command that changes state
//!   router.key             0600, the router's private key, generated on first use
//!   router.pub             0600, its public key: proof that a router key was issued
//!   ledger.json            0600, every name and address ever handed out (see ledger.rs)
//!   peers/                 0700
//!     <name>.key           0600, only when sovereign generated the peer's pair
//!     <name>.psk           0600, the peer's preshared key
//! ```
//!
//! Changes go through [`StateLock::commit`], which changes the deployment file and
//! the key files together: either all of a command's changes land, or none do.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sovereign_model::Deployment;

use crate::key::{Key, KeyError, RouterSecrets};
use crate::ledger::Ledger;

/// The secrets of one deployment, on disk. Reads need no lock; changes need
/// [`KeyStore::lock`].
#[derive(Clone)]
pub struct KeyStore {
    dir: PathBuf,
    fs: Arc<dyn SecretFs>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} is accessible to other users (mode {mode:04o}); secrets must be private: run `chmod {fix:o} {}`",
        path.display(), path.display()
    )]
    InsecurePermissions { path: PathBuf, mode: u32, fix: u32 },
    #[error("{} is not a {expected}; move it out of the way (sovereign only reads regular files and directories it made)", path.display())]
    WrongKind {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{} does not hold a WireGuard key (44 characters of base64); restore it from a backup, or `sovereign peer rotate` the peer", path.display())]
    CorruptKey { path: PathBuf },
    #[error("{} is missing: {hint}", path.display())]
    MissingSecret { path: PathBuf, hint: String },
    #[error(
        "{} does not match the public key of peer `{peer}` in the deployment file; \
         run `sovereign peer rotate {peer}` to give it a fresh, consistent key pair",
        path.display()
    )]
    KeyMismatch { path: PathBuf, peer: String },
    #[error(
        "{} is missing, but peers {} were given configs that carry the router's public key{}: \
         a new router key would cut every one of them off. Restore the file from a backup; or, \
         to replace the router key on purpose, run `sovereign router rekey --yes` and give each \
         peer its new config (`sovereign peer export <name>`)",
        path.display(),
        peers.join(", "),
        public_key.as_ref().map(|k| format!(" ({k})")).unwrap_or_default()
    )]
    RouterKeyLost {
        path: PathBuf,
        /// What router.pub recorded, if it survived.
        public_key: Option<String>,
        peers: Vec<String>,
    },
    #[error(
        "{} does not belong to the public key recorded in {}: one of them was replaced by hand. \
         Restore the matching router.key from a backup; or, to replace the router key on purpose, \
         run `sovereign router rekey --yes`",
        path.display(),
        public_path.display()
    )]
    RouterKeyMismatch { path: PathBuf, public_path: PathBuf },
    #[error(
        "{} is damaged ({message}); restore it from a backup (`sovereign restore`), or move it away \
         and sovereign rebuilds it from the deployment file at the next change",
        path.display()
    )]
    CorruptLedger { path: PathBuf, message: String },
    #[error("cannot generate a key: {0}")]
    Random(#[from] KeyError),
    #[error(
        "bug: this thread already holds the state lock of {} and would wait on itself forever; \
         take the exclusive lock (or generate the router key) before taking the shared one",
        dir.display()
    )]
    LockedByThisThread { dir: PathBuf },
    #[error(
        "gave up after {seconds} s waiting for the state lock {}, held by {holder}; wait for that \
         command to finish (or raise --lock-timeout). If no sovereign command is running, the \
         lock is free again: flock locks end with their process",
        path.display()
    )]
    LockTimeout {
        path: PathBuf,
        holder: String,
        seconds: u64,
    },
    #[error("{error}; undoing the partial change also failed, so fix these by hand: {}", problems.join("; "))]
    RollbackFailed {
        error: Box<StoreError>,
        problems: Vec<String>,
    },
}

impl StoreError {
    /// Problems the user fixes by hand (permissions, damaged or missing files), as
    /// opposed to failing I/O.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StoreError::InsecurePermissions { .. }
                | StoreError::WrongKind { .. }
                | StoreError::CorruptKey { .. }
                | StoreError::MissingSecret { .. }
                | StoreError::KeyMismatch { .. }
                | StoreError::RouterKeyLost { .. }
                | StoreError::RouterKeyMismatch { .. }
                | StoreError::LockTimeout { .. }
                | StoreError::CorruptLedger { .. }
        )
    }
}

/// How long a command waits for another one's state lock before it gives up
/// (`--lock-timeout`; 30 s unless the binary sets it).
static LOCK_TIMEOUT_SECS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(30);

pub fn set_lock_timeout(timeout: std::time::Duration) {
    LOCK_TIMEOUT_SECS.store(timeout.as_secs(), std::sync::atomic::Ordering::Relaxed);
}

/// Take `file`'s flock (`exclusive` or shared), waiting up to the lock timeout.
/// While it waits it says once who holds the lock (the holder's PID and command,
/// which an exclusive holder writes into the lock file).
fn wait_for_lock(file: &File, path: &Path, exclusive: bool) -> Result<(), StoreError> {
    use std::fs::TryLockError;
    let try_lock = || {
        if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        }
    };
    let seconds = LOCK_TIMEOUT_SECS.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let mut told = false;
    loop {
        match try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::Error(e)) => return Err(io_error("lock", path)(e)),
            Err(TryLockError::WouldBlock) => {}
        }
        let holder = std::fs::read_to_string(path)
            .ok()
            .map(|text| text.trim().to_string())
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| "another sovereign command".into());
        if std::time::Instant::now() >= deadline {
            return Err(StoreError::LockTimeout {
                path: path.to_path_buf(),
                holder,
                seconds,
            });
        }
        if !told {
            eprintln!("waiting for the state lock held by {holder} (up to {seconds} s)");
            told = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Who holds an exclusive lock, for the commands that wait on it.
fn write_holder(mut file: &File) {
    use std::io::Write as _;
    let command: Vec<String> = std::env::args().take(3).collect();
    let _ = file.set_len(0);
    let _ = write!(file, "PID {} ({})", std::process::id(), command.join(" "));
}

impl KeyStore {
    /// The store in `dir` on the real filesystem. Nothing is created until a change
    /// is committed; an existing directory that other users can read is refused.
    pub fn open(dir: impl Into<PathBuf>) -> Result<KeyStore, StoreError> {
        KeyStore::with_fs(dir, Arc::new(OsFs))
    }

    /// The store on another filesystem (tests inject failures this way).
    pub fn with_fs(dir: impl Into<PathBuf>, fs: Arc<dyn SecretFs>) -> Result<KeyStore, StoreError> {
        let store = KeyStore {
            dir: dir.into(),
            fs,
        };
        store.check_private_dir(&store.dir)?;
        store.check_private_dir(&store.peers_dir())?;
        store.check_private_files()?;
        Ok(store)
    }

    /// Every secret of the state directory must be private, whether or not this
    /// command reads it: one rule for every command that opens the store, so that a
    /// `chmod 644` is refused by `router render` just as by `peer show --conf`.
    /// Secrets: everything in peers/, and the router's keys and the ledger beside
    /// it (other tools keep non-secret files there too, e.g. `server install`'s
    /// lock and manifest).
    fn check_private_files(&self) -> Result<(), StoreError> {
        let top = self.list(&self.dir)?.into_iter().filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".key") || name.ends_with(".pub") || name == "ledger.json"
        });
        let peers = self.list(&self.peers_dir())?;
        for path in top.chain(peers) {
            if let Some(FileKind::File { mode }) =
                self.fs.kind(&path).map_err(io_error("inspect", &path))?
                && mode & 0o077 != 0
            {
                return Err(StoreError::InsecurePermissions {
                    path,
                    mode,
                    fix: 0o600,
                });
            }
        }
        Ok(())
    }

    /// The entries of `dir`, sorted; none when it does not exist.
    fn list(&self, dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
        match self.fs.list_dir(dir) {
            Ok(mut paths) => {
                paths.sort();
                Ok(paths)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_error("list", dir)(e)),
        }
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.dir.join("ledger.json")
    }

    /// The allocation ledger; `None` for a state directory from before it existed.
    pub fn ledger(&self) -> Result<Option<Ledger>, StoreError> {
        let path = self.ledger_path();
        let Some(bytes) = self.read_private(&path)? else {
            return Ok(None);
        };
        Ledger::parse(&bytes)
            .map(Some)
            .map_err(|e| StoreError::CorruptLedger {
                path,
                message: e.to_string(),
            })
    }

    /// The ledger with every peer of `d` taken in: what allocation consults.
    pub fn ledger_for(&self, d: &Deployment) -> Result<Ledger, StoreError> {
        let mut ledger = self.ledger()?.unwrap_or_default();
        ledger.absorb(d);
        Ok(ledger)
    }

    /// What is wrong in the state directory for deployment `d`, without changing
    /// anything: orphaned and missing key files, keys that do not match, peers the
    /// ledger knows but the deployment file lost. `config validate` prints these.
    pub fn audit(&self, d: &Deployment) -> Result<Vec<StoreFinding>, StoreError> {
        let mut out = Vec::new();
        let ledger = self.ledger()?;
        let display = |p: &Path| p.display().to_string();
        for path in self.list(&self.peers_dir())? {
            let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or("");
            let ext = path.extension().and_then(|e| e.to_str());
            if !matches!(ext, Some("key" | "psk")) {
                continue;
            }
            if d.peer(name).is_none_or(|p| !p.holds_keys()) {
                out.push(StoreFinding {
                    path: display(&path),
                    message: format!(
                        "orphaned key file: no active or disabled peer `{name}` in the deployment file; \
                         put its [[peer]] block back, or delete the file"
                    ),
                });
            }
        }
        for peer in d.keyed_peers() {
            let psk = self.peer_preshared_key_path(&peer.name);
            if peer.preshared_key && self.read_secret(&psk)?.is_none() {
                out.push(StoreFinding {
                    path: display(&psk),
                    message: format!(
                        "missing key file: peer `{}` is marked preshared_key = true; restore the file \
                         from a backup, or run `sovereign peer rotate {}`",
                        peer.name, peer.name
                    ),
                });
            }
            let key_path = self.peer_private_key_path(&peer.name);
            match self.read_secret(&key_path)? {
                Some(key) if key.public_key().to_base64() != peer.public_key => {
                    out.push(StoreFinding {
                        path: display(&key_path),
                        message: format!(
                            "does not match the public key of peer `{}`; run `sovereign peer rotate {}`",
                            peer.name, peer.name
                        ),
                    })
                }
                Some(_) => {}
                None if self.sovereign_keyed(ledger.as_ref(), &peer.name) == Some(true) => {
                    out.push(StoreFinding {
                        path: display(&key_path),
                        message: format!(
                            "missing key file: sovereign generated peer `{}`'s private key; restore \
                             the file from a backup, or run `sovereign peer rotate {}`",
                            peer.name, peer.name
                        ),
                    })
                }
                None => {}
            }
        }
        if let Some(ledger) = &ledger {
            for entry in ledger.missing_from(d) {
                out.push(StoreFinding {
                    path: display(&self.ledger_path()),
                    message: format!(
                        "peer `{}` ({}) is in the ledger but its [[peer]] block is gone from the \
                         deployment file; its name and address stay reserved: put the block back, \
                         or `sovereign peer purge {}` to free the name",
                        entry.name, entry.address, entry.name
                    ),
                });
            }
        }
        Ok(out)
    }

    /// Whether sovereign generated `peer`'s private key, if the ledger knows.
    pub fn sovereign_keyed(&self, ledger: Option<&Ledger>, peer: &str) -> Option<bool> {
        ledger?.entry(peer)?.sovereign_key
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn router_key_path(&self) -> PathBuf {
        self.dir.join("router.key")
    }

    /// The router's public key, written with every new router key. It outlives an
    /// accidental `rm router.key`, so a lost key is noticed instead of replaced.
    pub fn router_public_key_path(&self) -> PathBuf {
        self.dir.join("router.pub")
    }

    pub fn peer_private_key_path(&self, peer: &str) -> PathBuf {
        self.peers_dir().join(format!("{peer}.key"))
    }

    pub fn peer_preshared_key_path(&self, peer: &str) -> PathBuf {
        self.peers_dir().join(format!("{peer}.psk"))
    }

    /// The router's private key, if it was generated already. Refused when it does
    /// not belong to the public key recorded next to it.
    pub fn router_private_key(&self) -> Result<Option<Key>, StoreError> {
        let Some(key) = self.read_secret(&self.router_key_path())? else {
            return Ok(None);
        };
        let public_path = self.router_public_key_path();
        match self.read_secret(&public_path)? {
            Some(recorded) if recorded != key.public_key() => Err(StoreError::RouterKeyMismatch {
                path: self.router_key_path(),
                public_path,
            }),
            _ => Ok(Some(key)),
        }
    }

    /// The router's private key, generated (under the lock) on first use. See
    /// [`KeyStore::check_router_key_may_be_generated`] for when it is refused.
    pub fn router_private_key_or_generate(&self, d: &Deployment) -> Result<Key, StoreError> {
        if let Some(key) = self.router_private_key()? {
            return Ok(key);
        }
        let lock = self.lock()?;
        let mut changes = lock.changes();
        let key = lock.router_private_key_or_new(d, None, &mut changes)?;
        lock.commit(changes)?;
        Ok(key)
    }

    /// Whether router.key or router.pub is there, in whatever state (not read).
    pub fn router_key_present(&self) -> Result<bool, StoreError> {
        for path in [self.router_key_path(), self.router_public_key_path()] {
            if self
                .fs
                .kind(&path)
                .map_err(io_error("inspect", &path))?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A missing router key may be generated only when no peer depends on the old
    /// one: generating it silently would leave every issued config pointing at a
    /// public key the router no longer has. A router key existed if router.pub
    /// survives or any active peer still has key files (`peer add` makes the router
    /// key in the same commit). `except`: the peer being given a fresh config now.
    pub fn check_router_key_may_be_generated(
        &self,
        d: &Deployment,
        except: Option<&str>,
    ) -> Result<(), StoreError> {
        let recorded = self.read_secret(&self.router_public_key_path())?;
        let mut had_key = recorded.is_some();
        let mut peers = Vec::new();
        // Disabled peers hold configs with the router's public key too.
        for peer in d.keyed_peers() {
            had_key = had_key
                || self.has_peer_private_key(&peer.name)?
                || self.peer_preshared_key(&peer.name)?.is_some();
            if Some(peer.name.as_str()) != except {
                peers.push(peer.name.clone());
            }
        }
        if had_key && !peers.is_empty() {
            return Err(StoreError::RouterKeyLost {
                path: self.router_key_path(),
                public_key: recorded.map(|k| k.to_base64()),
                peers,
            });
        }
        Ok(())
    }

    /// A peer's private key; `None` when its device generated the pair.
    pub fn peer_private_key(&self, peer: &str) -> Result<Option<Key>, StoreError> {
        self.read_secret(&self.peer_private_key_path(peer))
    }

    pub fn peer_preshared_key(&self, peer: &str) -> Result<Option<Key>, StoreError> {
        self.read_secret(&self.peer_preshared_key_path(peer))
    }

    /// Whether sovereign holds the peer's private key (without reading it).
    pub fn has_peer_private_key(&self, peer: &str) -> Result<bool, StoreError> {
        let path = self.peer_private_key_path(peer);
        Ok(self
            .fs
            .kind(&path)
            .map_err(io_error("inspect", &path))?
            .is_some())
    }

    /// What the router's config needs beyond the deployment file: its private key
    /// (generated on first use) and the PSK of every active peer that has one.
    /// Revoked peers are left out, so they vanish from the rendered router config.
    ///
    /// Locking is handled here: the key is generated under the exclusive lock, and
    /// the PSKs are read under the shared one (holding a shared lock already is fine).
    /// For a deployment read under the same lock, use
    /// [`crate::PeerRegistry::deployment_and_router_secrets`].
    pub fn router_secrets(&self, d: &Deployment) -> Result<RouterSecrets, StoreError> {
        let private_key = self.router_private_key_or_generate(d)?;
        let _reading = self.lock_shared()?;
        let mut preshared_keys = std::collections::BTreeMap::new();
        for peer in d.active_peers().filter(|p| p.preshared_key) {
            let path = self.peer_preshared_key_path(&peer.name);
            let key = self.read_secret(&path)?.ok_or_else(|| StoreError::MissingSecret {
                path,
                hint: format!(
                    "peer `{}` is marked preshared_key = true; run `sovereign peer rotate {}` to make new keys",
                    peer.name, peer.name
                ),
            })?;
            preshared_keys.insert(peer.name.clone(), key);
        }
        let retired_peers = self
            .ledger()?
            .map(|ledger| ledger.retired_names(d))
            .unwrap_or_default();
        Ok(RouterSecrets {
            private_key,
            preshared_keys,
            retired_peers,
        })
    }

    /// Take the exclusive state lock, creating the directory (0700) on first use.
    /// Blocks while another command holds it.
    pub fn lock(&self) -> Result<StateLock<'_>, StoreError> {
        let path = self.lock_path();
        // flock locks of two descriptors conflict even within one process.
        if held::any(&path) {
            return Err(StoreError::LockedByThisThread {
                dir: self.dir.clone(),
            });
        }
        self.create_private_dir(&self.dir)?;
        let file = open_lock_file(&path, true).map_err(io_error("open the lock file", &path))?;
        wait_for_lock(&file, &path, true)?;
        write_holder(&file);
        Ok(StateLock {
            store: self,
            file,
            _held: held::Held::new(path, true),
        })
    }

    /// A shared lock for readers, so they never see half of a change. `None` when
    /// no command has changed state yet (there is nothing to read consistently).
    pub fn lock_shared(&self) -> Result<Option<SharedLock>, StoreError> {
        let path = self.lock_path();
        let file = match open_lock_file(&path, false) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("open the lock file", &path)(e)),
        };
        if held::exclusive(&path) {
            return Err(StoreError::LockedByThisThread {
                dir: self.dir.clone(),
            });
        }
        wait_for_lock(&file, &path, false)?;
        Ok(Some(SharedLock {
            _file: file,
            _held: held::Held::new(path, false),
        }))
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    fn peers_dir(&self) -> PathBuf {
        self.dir.join("peers")
    }

    fn read_secret(&self, path: &Path) -> Result<Option<Key>, StoreError> {
        let Some(bytes) = self.read_private(path)? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| StoreError::CorruptKey { path: path.into() })?;
        Key::from_base64(text)
            .map(Some)
            .map_err(|_| StoreError::CorruptKey { path: path.into() })
    }

    /// The bytes of a private regular file; `None` when it does not exist.
    fn read_private(&self, path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(kind) = self.fs.kind(path).map_err(io_error("inspect", path))? else {
            return Ok(None);
        };
        let FileKind::File { mode } = kind else {
            return Err(StoreError::WrongKind {
                path: path.into(),
                expected: "regular file",
            });
        };
        if mode & 0o077 != 0 {
            return Err(StoreError::InsecurePermissions {
                path: path.into(),
                mode,
                fix: 0o600,
            });
        }
        let bytes = self.fs.read(path).map_err(io_error("read", path))?;
        Ok(Some(bytes))
    }

    fn check_private_dir(&self, dir: &Path) -> Result<(), StoreError> {
        match self.fs.kind(dir).map_err(io_error("inspect", dir))? {
            None => Ok(()),
            Some(FileKind::Dir { mode }) if mode & 0o077 != 0 => {
                Err(StoreError::InsecurePermissions {
                    path: dir.into(),
                    mode,
                    fix: 0o700,
                })
            }
            Some(FileKind::Dir { .. }) => Ok(()),
            Some(_) => Err(StoreError::WrongKind {
                path: dir.into(),
                expected: "directory",
            }),
        }
    }

    /// Whether the directory had to be created.
    fn create_private_dir(&self, dir: &Path) -> Result<bool, StoreError> {
        match self.fs.create_dir(dir, 0o700) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.check_private_dir(dir).map(|()| false)
            }
            Err(e) => Err(io_error("create", dir)(e)),
        }
    }
}

/// One problem `KeyStore::audit` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreFinding {
    pub path: String,
    pub message: String,
}

/// Held while a command reads, decides and writes; dropping it releases the lock.
pub struct StateLock<'s> {
    store: &'s KeyStore,
    file: File,
    _held: held::Held,
}

impl Drop for StateLock<'_> {
    /// Empty the holder note again (before the flock ends with the file), so a
    /// finished command leaves the lock file exactly as it found it.
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

/// Held by readers; see [`KeyStore::lock_shared`].
pub struct SharedLock {
    _file: File,
    _held: held::Held,
}

/// The state locks this thread holds, so that a lock request that would wait on
/// the thread itself fails loudly instead of hanging.
mod held {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    thread_local! {
        static HELD: RefCell<Vec<(PathBuf, bool)>> = const { RefCell::new(Vec::new()) };
    }

    pub fn any(path: &Path) -> bool {
        HELD.with(|held| held.borrow().iter().any(|(p, _)| p == path))
    }

    pub fn exclusive(path: &Path) -> bool {
        HELD.with(|held| {
            held.borrow()
                .iter()
                .any(|(p, exclusive)| p == path && *exclusive)
        })
    }

    /// Registered while alive.
    pub struct Held {
        path: PathBuf,
        exclusive: bool,
    }

    impl Held {
        pub fn new(path: PathBuf, exclusive: bool) -> Held {
            HELD.with(|held| held.borrow_mut().push((path.clone(), exclusive)));
            Held { path, exclusive }
        }
    }

    impl Drop for Held {
        fn drop(&mut self) {
            HELD.with(|held| {
                let mut held = held.borrow_mut();
                if let Some(i) = held
                    .iter()
                    .position(|(p, e)| *p == self.path && *e == self.exclusive)
                {
                    held.remove(i);
                }
            });
        }
    }
}

/// What one command changes, applied all at once by [`StateLock::commit`].
pub struct Changes {
    store: KeyStore,
    writes: Vec<(PathBuf, Vec<u8>)>,
    removals: Vec<PathBuf>,
    config: Option<(PathBuf, String)>,
}

impl<'s> StateLock<'s> {
    pub fn store(&self) -> &'s KeyStore {
        self.store
    }

    pub fn changes(&self) -> Changes {
        Changes {
            store: self.store.clone(),
            writes: Vec::new(),
            removals: Vec::new(),
            config: None,
        }
    }

    /// The router's key if it exists, else a new one staged in `changes`, if
    /// [`KeyStore::check_router_key_may_be_generated`] allows it. A state directory
    /// from before router.pub existed gets the file now.
    pub fn router_private_key_or_new(
        &self,
        d: &Deployment,
        except: Option<&str>,
        changes: &mut Changes,
    ) -> Result<Key, StoreError> {
        if let Some(key) = self.store.router_private_key()? {
            if self
                .store
                .read_secret(&self.store.router_public_key_path())?
                .is_none()
            {
                changes.put_router_key(&key);
            }
            return Ok(key);
        }
        self.store.check_router_key_may_be_generated(d, except)?;
        let key = Key::generate_private()?;
        changes.put_router_key(&key);
        Ok(key)
    }

    /// Apply `changes`: the deployment file and every key file change, or nothing does.
    ///
    /// New contents are written to temporary files first and every file about to be
    /// replaced or removed gets a hard-linked backup. Then the deployment file is
    /// renamed into place, then the key files. Any failure renames the backups back
    /// and removes what was created, so the state is exactly what it was before.
    pub fn commit(&self, changes: Changes) -> Result<(), StoreError> {
        let mut journal = Journal::new(&*self.store.fs);
        match journal.apply(&changes) {
            Ok(()) => {
                journal.finish();
                // Paths only: the contents are keys.
                for (path, _) in &changes.writes {
                    tracing::info!(path = %path.display(), "wrote");
                }
                for path in &changes.removals {
                    tracing::info!(path = %path.display(), "removed");
                }
                if let Some((path, _)) = &changes.config {
                    tracing::info!(path = %path.display(), "updated the deployment file");
                }
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "undoing a partial change to the state directory");
                let problems = journal.roll_back();
                if problems.is_empty() {
                    Err(error)
                } else {
                    Err(StoreError::RollbackFailed {
                        error: Box::new(error),
                        problems,
                    })
                }
            }
        }
    }
}

impl Changes {
    /// The router's private key and, beside it, its public key.
    pub fn put_router_key(&mut self, key: &Key) {
        let path = self.store.router_key_path();
        self.put(path, key);
        let public_path = self.store.router_public_key_path();
        self.put(public_path, &key.public_key());
    }

    pub fn put_peer_private_key(&mut self, peer: &str, key: &Key) {
        let path = self.store.peer_private_key_path(peer);
        self.put(path, key);
    }

    pub fn put_peer_preshared_key(&mut self, peer: &str, key: &Key) {
        let path = self.store.peer_preshared_key_path(peer);
        self.put(path, key);
    }

    /// Removing a key that does not exist is not an error.
    pub fn remove_peer_private_key(&mut self, peer: &str) {
        self.removals.push(self.store.peer_private_key_path(peer));
    }

    pub fn remove_peer_preshared_key(&mut self, peer: &str) {
        self.removals.push(self.store.peer_preshared_key_path(peer));
    }

    pub fn put_ledger(&mut self, ledger: &Ledger) {
        let path = self.store.ledger_path();
        self.put_bytes(path, ledger.to_bytes());
    }

    /// Replace the deployment file (it must exist; its mode is kept).
    pub fn replace_config(&mut self, path: &Path, text: String) {
        self.config = Some((path.to_path_buf(), text));
    }

    fn put(&mut self, path: PathBuf, key: &Key) {
        // The layout `wg genkey > file` produces, so the files work with `wg set ... private-key FILE`.
        self.put_bytes(path, format!("{}\n", key.to_base64()).into_bytes());
    }

    fn put_bytes(&mut self, path: PathBuf, bytes: Vec<u8>) {
        self.removals.retain(|p| *p != path);
        self.writes.retain(|(p, _)| *p != path);
        self.writes.push((path, bytes));
    }
}

/// Paths only: the contents are secrets.
impl fmt::Debug for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Changes")
            .field(
                "writes",
                &self.writes.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .field("removals", &self.removals)
            .field("config", &self.config.as_ref().map(|(p, _)| p))
            .finish()
    }
}

/// The filesystem operations the store needs; [`OsFs`] is the real one.
pub trait SecretFs: Send + Sync {
    /// What is at `path` (without following symlinks), or `None`.
    fn kind(&self, path: &Path) -> io::Result<Option<FileKind>>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The paths of the entries of a directory (`NotFound` if there is none).
    fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
    /// Create one directory with exactly `mode`; `AlreadyExists` if it exists.
    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Remove an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Create a new file with exactly `mode` (never replacing one), write and sync it.
    fn write_new(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Make renames in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File { mode: u32 },
    Dir { mode: u32 },
    Other,
}

/// The real filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsFs;

impl SecretFs for OsFs {
    fn kind(&self, path: &Path) -> io::Result<Option<FileKind>> {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mode = meta.permissions().mode() & 0o7777;
        Ok(Some(if meta.is_file() {
            FileKind::File { mode }
        } else if meta.is_dir() {
            FileKind::Dir { mode }
        } else {
            FileKind::Other
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::read_dir(path)?
            .map(|entry| entry.map(|e| e.path()))
            .collect()
    }

    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new().mode(mode).create(path)?;
        // The umask may have taken bits away; set exactly what was asked.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn write_new(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        // Created with the final mode, so the content is never readable by others, not even briefly.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

fn open_lock_file(path: &Path, create: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .mode(0o600)
        .open(path)
}

fn io_error<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> StoreError + 'p {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// One step done during a commit, and how to take it back.
enum Undo {
    /// A file this commit created (temporary, backup, or a new target).
    Remove(PathBuf),
    /// A directory this commit created.
    RemoveDir(PathBuf),
    /// `target` was replaced or removed; `backup` holds its old content.
    Restore { backup: PathBuf, target: PathBuf },
}

struct Journal<'f> {
    fs: &'f dyn SecretFs,
    undo: Vec<Undo>,
    backups: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `.NAME.SUFFIX-PID-N` beside `path`: hidden, unique per process and call.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{suffix}-{}-{n}", std::process::id()))
}

impl<'f> Journal<'f> {
    fn new(fs: &'f dyn SecretFs) -> Self {
        Journal {
            fs,
            undo: Vec::new(),
            backups: Vec::new(),
            dirs: Vec::new(),
        }
    }

    fn apply(&mut self, changes: &Changes) -> Result<(), StoreError> {
        let fs = self.fs;
        // 1. Directories and the new contents under temporary names.
        let mut renames = Vec::new();
        for (target, bytes) in &changes.writes {
            let dir = target
                .parent()
                .expect("key paths have a parent")
                .to_path_buf();
            if changes.store.create_private_dir(&dir)? {
                self.undo.push(Undo::RemoveDir(dir.clone()));
            }
            let temp = sibling(target, "tmp");
            fs.write_new(&temp, bytes, 0o600)
                .map_err(io_error("write", &temp))?;
            self.undo.push(Undo::Remove(temp.clone()));
            renames.push((temp, target.clone()));
            self.note_dir(dir);
        }
        let config_rename = match &changes.config {
            Some((path, text)) => {
                let mode = match fs.kind(path).map_err(io_error("inspect", path))? {
                    Some(FileKind::File { mode }) => mode,
                    _ => {
                        return Err(StoreError::WrongKind {
                            path: path.clone(),
                            expected: "regular file",
                        });
                    }
                };
                let temp = sibling(path, "tmp");
                fs.write_new(&temp, text.as_bytes(), mode)
                    .map_err(io_error("write", &temp))?;
                self.undo.push(Undo::Remove(temp.clone()));
                if let Some(dir) = path.parent() {
                    self.note_dir(dir.to_path_buf());
                }
                Some((temp, path.clone()))
            }
            None => None,
        };
        // 2. Backups of everything about to be replaced or removed.
        let mut existing = std::collections::HashMap::new();
        let targets = renames
            .iter()
            .map(|(_, t)| t)
            .chain(config_rename.iter().map(|(_, t)| t))
            .chain(&changes.removals);
        for target in targets {
            if existing.contains_key(target)
                || fs
                    .kind(target)
                    .map_err(io_error("inspect", target))?
                    .is_none()
            {
                continue;
            }
            let backup = sibling(target, "bak");
            fs.hard_link(target, &backup)
                .map_err(io_error("back up", target))?;
            self.undo.push(Undo::Remove(backup.clone()));
            self.backups.push(backup.clone());
            existing.insert(target.clone(), backup);
        }
        // 3. The deployment file first: it names the keys that must exist.
        for (temp, target) in config_rename.iter().chain(&renames) {
            fs.rename(temp, target)
                .map_err(io_error("move into place", target))?;
            self.undo.push(match existing.get(target) {
                Some(backup) => Undo::Restore {
                    backup: backup.clone(),
                    target: target.clone(),
                },
                None => Undo::Remove(target.clone()),
            });
        }
        // 4. Removals last.
        for target in &changes.removals {
            let Some(backup) = existing.get(target) else {
                continue;
            };
            fs.remove_file(target).map_err(io_error("remove", target))?;
            self.undo.push(Undo::Restore {
                backup: backup.clone(),
                target: target.clone(),
            });
            if let Some(dir) = target.parent() {
                self.note_dir(dir.to_path_buf());
            }
        }
        for dir in &self.dirs {
            fs.sync_dir(dir).map_err(io_error("sync", dir))?;
        }
        Ok(())
    }

    fn note_dir(&mut self, dir: PathBuf) {
        // `sovereign.toml` has the parent "" (the current directory).
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        if !self.dirs.contains(&dir) {
            self.dirs.push(dir);
        }
    }

    /// The change is durable; the backups can go. A leftover backup is harmless
    /// (hidden, 0600 like the key it copies), so failures here are not errors.
    fn finish(self) {
        for backup in &self.backups {
            let _ = self.fs.remove_file(backup);
        }
    }

    /// Take every step back, newest first; returns what could not be undone.
    fn roll_back(self) -> Vec<String> {
        let mut problems = Vec::new();
        for step in self.undo.into_iter().rev() {
            let (result, what) = match &step {
                Undo::Remove(path) => (
                    self.fs.remove_file(path),
                    format!("remove {}", path.display()),
                ),
                Undo::RemoveDir(path) => (
                    self.fs.remove_dir(path),
                    format!("remove {}", path.display()),
                ),
                Undo::Restore { backup, target } => (
                    self.fs.rename(backup, target),
                    format!("rename {} to {}", backup.display(), target.display()),
                ),
            };
            match result {
                Ok(()) => {}
                // A restore already consumed this backup, or the step never completed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => problems.push(format!("{what}: {e}")),
            }
        }
        for dir in &self.dirs {
            let _ = self.fs.sync_dir(dir);
        }
        problems
    }
}
