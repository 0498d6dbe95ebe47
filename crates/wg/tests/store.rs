//! The key store and the peer registry against a real temporary directory: file
//! modes, refusal of readable secrets, atomicity under injected failures, locking.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sovereign_model::PeerStatus;
use sovereign_wg::{
    AddRequest, FileKind, KeyStore, OsFs, PeerError, PeerRegistry, RegistryError, Revoked,
    SecretFs, StoreError,
};

const CONFIG: &str =
    "# my deployment\n[wan]\nendpoint = \"vpn.example.com:51820\" # the public name\n";

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    state: PathBuf,
}

fn setup(text: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sovereign.toml");
    std::fs::write(&config, text).unwrap();
    let state = sovereign_model::state_dir_for(&config);
    Setup {
        _dir: dir,
        config,
        state,
    }
}

fn request(name: &str) -> AddRequest {
    AddRequest {
        name: name.into(),
        address: None,
        public_key: None,
        preshared_key: true,
        created: "2026-01-01T00:00:00Z".into(),
        expires: None,
    }
}

/// Every file under the config's directory: relative path -> (mode, bytes).
fn snapshot(setup: &Setup) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let root = setup.config.parent().unwrap();
    sovereign_testkit::tree(root, &[root])
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn secrets_are_0600_files_in_0700_directories_and_comments_survive() {
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    registry.add(&request("laptop")).unwrap();
    assert_eq!(mode(&s.state), 0o700);
    assert_eq!(mode(&s.state.join("peers")), 0o700);
    for file in ["router.key", "lock", "peers/laptop.key", "peers/laptop.psk"] {
        assert_eq!(mode(&s.state.join(file)), 0o600, "{file}");
    }
    let text = std::fs::read_to_string(&s.config).unwrap();
    assert!(text.starts_with("# my deployment\n"));
    assert!(text.contains("# the public name"));
    let d = sovereign_model::load(&s.config).unwrap();
    assert_eq!(d.peers[0].name, "laptop");
    let private = registry
        .store()
        .peer_private_key("laptop")
        .unwrap()
        .unwrap();
    assert_eq!(private.public_key().to_base64(), d.peers[0].public_key);
    // The key files have the layout of `wg genkey > file`.
    let on_disk = std::fs::read_to_string(s.state.join("peers/laptop.key")).unwrap();
    assert_eq!(on_disk, format!("{}\n", private.to_base64()));
}

#[test]
fn a_readable_key_file_is_refused_with_the_fix() {
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    registry.add(&request("laptop")).unwrap();
    let key = s.state.join("peers/laptop.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = match registry.client_material("laptop") {
        Err(e) => e,
        Ok(_) => panic!("a group-readable key was read"),
    };
    assert!(err.is_usage());
    let text = err.to_string();
    assert!(
        text.contains(&format!("chmod 600 {}", key.display())),
        "{text}"
    );
    assert!(text.contains("0640"), "{text}");
}

#[test]
fn a_readable_state_directory_is_refused_with_the_fix() {
    let s = setup(CONFIG);
    PeerRegistry::open(&s.config)
        .unwrap()
        .add(&request("laptop"))
        .unwrap();
    std::fs::set_permissions(&s.state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = KeyStore::open(&s.state).err().expect("refused");
    assert!(matches!(err, StoreError::InsecurePermissions { .. }));
    assert!(
        err.to_string()
            .contains(&format!("chmod 700 {}", s.state.display())),
        "{err}"
    );
}

#[test]
fn bad_input_touches_nothing_not_even_a_missing_state_directory() {
    let s = setup(CONFIG);
    let before = snapshot(&s);
    let registry = PeerRegistry::open(&s.config).unwrap();
    let mut bad = request("../etc");
    assert!(matches!(
        registry.add(&bad),
        Err(RegistryError::Peer(PeerError::InvalidName { .. }))
    ));
    bad = request("laptop");
    bad.public_key = Some("not-a-key".into());
    assert!(matches!(
        registry.add(&bad),
        Err(RegistryError::Peer(PeerError::InvalidPublicKey { .. }))
    ));
    bad.public_key = None;
    bad.address = Some("10.10.11.5".parse().unwrap());
    assert!(matches!(
        registry.add(&bad),
        Err(RegistryError::Peer(PeerError::AddressOutsideSubnet { .. }))
    ));
    assert!(matches!(
        registry.rotate("ghost", None),
        Err(RegistryError::Peer(PeerError::UnknownPeer { .. }))
    ));
    assert_eq!(snapshot(&s), before);
    assert!(!s.state.exists());
}

#[test]
fn revoke_keeps_a_tombstone_deletes_keys_and_drops_the_peer_from_router_secrets() {
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    registry.add(&request("laptop")).unwrap();
    registry.add(&request("phone")).unwrap();
    let d = sovereign_model::load(&s.config).unwrap();
    let secrets = registry.store().router_secrets(&d).unwrap();
    assert_eq!(
        secrets.preshared_keys.keys().collect::<Vec<_>>(),
        ["laptop", "phone"]
    );

    assert!(matches!(
        registry.revoke("phone", "2026-02-01T00:00:00Z").unwrap(),
        Revoked::Now(_)
    ));
    assert!(matches!(
        registry.revoke("phone", "2026-02-01T00:00:00Z").unwrap(),
        Revoked::Already(_)
    ));
    assert!(!s.state.join("peers/phone.key").exists());
    assert!(!s.state.join("peers/phone.psk").exists());
    let d = sovereign_model::load(&s.config).unwrap();
    assert_eq!(d.peer("phone").unwrap().status, PeerStatus::Revoked);
    let secrets = registry.store().router_secrets(&d).unwrap();
    assert_eq!(
        secrets.preshared_keys.keys().collect::<Vec<_>>(),
        ["laptop"]
    );
    assert_eq!(
        d.active_peers()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["laptop"]
    );
    // The tombstone's address stays reserved.
    let next = registry.add(&request("tablet")).unwrap();
    assert_eq!(next.address.to_string(), "10.10.10.4");
}

#[test]
fn rotate_replaces_keys_keeps_the_address_and_the_router_key() {
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    let before = registry.add(&request("laptop")).unwrap();
    let router_before = registry.store().router_private_key().unwrap().unwrap();
    let old_psk = registry
        .store()
        .peer_preshared_key("laptop")
        .unwrap()
        .unwrap();
    let after = registry.rotate("laptop", None).unwrap();
    assert_eq!(after.address, before.address);
    assert_ne!(after.public_key, before.public_key);
    let material = registry.client_material("laptop").unwrap();
    assert_eq!(
        material.private_key.unwrap().public_key().to_base64(),
        after.public_key
    );
    assert_ne!(material.preshared_key.unwrap(), old_psk);
    assert_eq!(
        registry.store().router_private_key().unwrap().unwrap(),
        router_before
    );
}

#[test]
fn device_keyed_peers_store_no_private_key_and_rotate_only_with_a_new_public_key() {
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    let device = sovereign_wg::Key::generate_private().unwrap();
    let mut req = request("desktop");
    req.public_key = Some(device.public_key().to_base64());
    req.preshared_key = false;
    registry.add(&req).unwrap();
    assert!(!s.state.join("peers/desktop.key").exists());
    assert!(!s.state.join("peers/desktop.psk").exists());
    let material = registry.client_material("desktop").unwrap();
    assert!(material.private_key.is_none() && material.preshared_key.is_none());
    assert!(
        material
            .client_config()
            .contains(sovereign_wg::PRIVATE_KEY_PLACEHOLDER)
    );
    assert!(matches!(
        registry.rotate("desktop", None),
        Err(RegistryError::Peer(PeerError::DeviceKeyed { .. }))
    ));
    let new_device = sovereign_wg::Key::generate_private()
        .unwrap()
        .public_key()
        .to_base64();
    assert_eq!(
        registry
            .rotate("desktop", Some(&new_device))
            .unwrap()
            .public_key,
        new_device
    );
}

/// A filesystem whose `fail_at`-th changing operation fails (counting from 0).
struct FailingFs {
    fail_at: usize,
    calls: AtomicUsize,
}

impl FailingFs {
    fn step(&self, what: &str) -> io::Result<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == self.fail_at {
            return Err(io::Error::other(format!("injected failure at {what}")));
        }
        Ok(())
    }
}

impl SecretFs for FailingFs {
    fn kind(&self, path: &Path) -> io::Result<Option<FileKind>> {
        OsFs.kind(path)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        OsFs.read(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        OsFs.list_dir(path)
    }
    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.step("create_dir")?;
        OsFs.create_dir(path, mode)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        OsFs.remove_dir(path)
    }
    fn write_new(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        self.step("write_new")?;
        OsFs.write_new(path, bytes, mode)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step("rename")?;
        OsFs.rename(from, to)
    }
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step("hard_link")?;
        OsFs.hard_link(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.step("remove_file")?;
        OsFs.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.step("sync_dir")?;
        OsFs.sync_dir(dir)
    }
}

/// Run `operation` with a failure injected at every step in turn: each failed run
/// must leave every file exactly as it was; eventually a run succeeds.
fn fails_atomically(
    prepare: impl Fn(&PeerRegistry),
    operation: impl Fn(&PeerRegistry) -> Result<(), RegistryError>,
) {
    let mut failures = 0;
    for fail_at in 0.. {
        let s = setup(CONFIG);
        prepare(&PeerRegistry::open(&s.config).unwrap());
        let before = snapshot(&s);
        let fs = Arc::new(FailingFs {
            fail_at,
            calls: AtomicUsize::new(0),
        });
        let store = KeyStore::with_fs(&s.state, fs).unwrap();
        let registry = PeerRegistry::with_store(&s.config, store);
        match operation(&registry) {
            Ok(()) => {
                assert!(
                    failures >= 5,
                    "only {failures} failure points were exercised"
                );
                return;
            }
            Err(error) => {
                failures += 1;
                assert!(error.to_string().contains("injected failure"), "{error}");
                let mut after = snapshot(&s);
                // The one allowed remnant: a first command's empty lock file. Deleting a lock
                // file that another process may already be waiting on would break mutual exclusion.
                if !before.contains_key(Path::new("sovereign.state")) {
                    let lock = after.remove(Path::new("sovereign.state/lock"));
                    assert!(
                        lock.is_none() || lock == Some((0o600, Vec::new())),
                        "{lock:?}"
                    );
                    let dir = after.remove(Path::new("sovereign.state"));
                    assert!(matches!(dir, None | Some((0o700, _))), "{dir:?}");
                }
                assert_eq!(
                    after, before,
                    "state changed after a failure at step {fail_at}: {error}"
                );
            }
        }
        assert!(fail_at < 100, "never succeeded");
    }
}

#[test]
fn a_failed_add_leaves_everything_as_it_was() {
    fails_atomically(|_| {}, |r| r.add(&request("laptop")).map(drop));
    fails_atomically(
        |r| drop(r.add(&request("laptop")).unwrap()),
        |r| r.add(&request("phone")).map(drop),
    );
}

#[test]
fn a_failed_rotate_leaves_everything_as_it_was() {
    fails_atomically(
        |r| drop(r.add(&request("laptop")).unwrap()),
        |r| r.rotate("laptop", None).map(drop),
    );
}

#[test]
fn a_failed_revoke_leaves_everything_as_it_was() {
    fails_atomically(
        |r| drop(r.add(&request("laptop")).unwrap()),
        |r| r.revoke("laptop", "2026-02-01T00:00:00Z").map(drop),
    );
}

#[test]
fn twenty_threads_adding_at_once_get_twenty_distinct_peers() {
    let s = setup(CONFIG);
    std::thread::scope(|scope| {
        for i in 0..20 {
            let config = s.config.clone();
            scope.spawn(move || {
                // Each thread opens its own registry, as separate processes would.
                PeerRegistry::open(&config)
                    .unwrap()
                    .add(&request(&format!("peer{i}")))
                    .unwrap();
            });
        }
    });
    let d = sovereign_model::load(&s.config).unwrap();
    assert_eq!(d.peers.len(), 20);
    let addresses: std::collections::HashSet<_> = d.peers.iter().map(|p| p.address).collect();
    assert_eq!(addresses.len(), 20);
    let store = KeyStore::open(&s.state).unwrap();
    for peer in &d.peers {
        let key = store.peer_private_key(&peer.name).unwrap().unwrap();
        assert_eq!(
            key.public_key().to_base64(),
            peer.public_key,
            "{}",
            peer.name
        );
    }
}

#[test]
fn a_lock_that_would_wait_on_its_own_thread_is_an_error_not_a_hang() {
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    registry.add(&request("laptop")).unwrap();
    let store = registry.store();
    {
        let _exclusive = store.lock().unwrap();
        assert!(matches!(
            store.lock(),
            Err(StoreError::LockedByThisThread { .. })
        ));
        assert!(matches!(
            store.lock_shared(),
            Err(StoreError::LockedByThisThread { .. })
        ));
        // A command run while the thread holds the lock fails instead of hanging.
        assert!(matches!(
            registry.add(&request("phone")),
            Err(RegistryError::Store(_))
        ));
    }
    // Shared locks nest, and router_secrets may run under one.
    let _shared = store.lock_shared().unwrap().expect("the lock file exists");
    let d = sovereign_model::load(&s.config).unwrap();
    assert_eq!(store.router_secrets(&d).unwrap().preshared_keys.len(), 1);
    assert!(matches!(
        store.lock(),
        Err(StoreError::LockedByThisThread { .. })
    ));
}

#[test]
fn deployment_and_router_secrets_agree_and_leave_revoked_peers_out() {
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    registry.add(&request("laptop")).unwrap();
    registry.add(&request("phone")).unwrap();
    registry.revoke("laptop", "2026-02-01T00:00:00Z").unwrap();
    let (d, secrets) = registry.deployment_and_router_secrets().unwrap();
    assert_eq!(
        d.active_peers()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["phone"]
    );
    assert_eq!(secrets.preshared_keys.keys().collect::<Vec<_>>(), ["phone"]);
    assert_eq!(
        Some(secrets.private_key),
        registry.store().router_private_key().unwrap()
    );
}

#[test]
fn router_secrets_generate_the_router_key_once_on_first_use() {
    let s = setup(CONFIG);
    let store = KeyStore::open(&s.state).unwrap();
    let d = sovereign_model::load(&s.config).unwrap();
    let first = store.router_secrets(&d).unwrap().private_key;
    assert_eq!(mode(&s.state.join("router.key")), 0o600);
    assert_eq!(store.router_secrets(&d).unwrap().private_key, first);
}

fn device_keyed(name: &str) -> AddRequest {
    let device = sovereign_wg::Key::generate_private().unwrap();
    AddRequest {
        public_key: Some(device.public_key().to_base64()),
        preshared_key: false,
        ..request(name)
    }
}

#[test]
fn a_lost_router_key_is_refused_while_peers_carry_its_public_key() {
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    registry.add(&request("laptop")).unwrap();
    registry.add(&device_keyed("phone")).unwrap();
    let store = registry.store();
    let old_public = store.router_private_key().unwrap().unwrap().public_key();
    std::fs::remove_file(s.state.join("router.key")).unwrap();
    let before = snapshot(&s);
    let d = sovereign_model::load(&s.config).unwrap();

    let lost = store.router_secrets(&d).unwrap_err();
    match &lost {
        StoreError::RouterKeyLost {
            path,
            public_key,
            peers,
        } => {
            assert_eq!(path, &s.state.join("router.key"));
            assert_eq!(public_key.as_deref(), Some(old_public.to_base64().as_str()));
            assert_eq!(peers, &["laptop", "phone"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(lost.is_usage());
    assert!(
        lost.to_string().contains("sovereign router rekey --yes"),
        "{lost}"
    );
    // Every path that would have made a key refuses the same way, and writes nothing.
    assert!(matches!(
        registry.client_material("laptop"),
        Err(RegistryError::Store(StoreError::RouterKeyLost { .. }))
    ));
    assert!(matches!(
        registry.add(&request("tablet")),
        Err(RegistryError::Store(StoreError::RouterKeyLost { .. }))
    ));
    assert_eq!(snapshot(&s), before);

    // Without router.pub, the laptop's key files still show a router key existed.
    std::fs::remove_file(s.state.join("router.pub")).unwrap();
    assert!(matches!(
        store.router_secrets(&d),
        Err(StoreError::RouterKeyLost {
            public_key: None,
            ..
        })
    ));
}

#[test]
fn a_router_key_is_made_for_hand_written_peers_and_for_a_peer_rotated_alone() {
    // Peers written by hand (their devices hold the keys, no PSK): no state at all
    // shows a router key was ever issued, so the first one is made.
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    registry.add(&device_keyed("phone")).unwrap();
    std::fs::remove_dir_all(&s.state).unwrap();
    let d = sovereign_model::load(&s.config).unwrap();
    let made = registry.store().router_secrets(&d).unwrap().private_key;
    let recorded = std::fs::read_to_string(s.state.join("router.pub")).unwrap();
    assert_eq!(recorded.trim(), made.public_key().to_base64());

    // Rotating the only peer gives it a new config anyway, so a lost router key
    // may be replaced then.
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    registry.add(&request("laptop")).unwrap();
    std::fs::remove_file(s.state.join("router.key")).unwrap();
    registry.rotate("laptop", None).unwrap();
    assert!(registry.store().router_private_key().unwrap().is_some());
}

#[test]
fn a_router_key_that_does_not_match_router_pub_is_refused() {
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    registry.add(&request("laptop")).unwrap();
    let other = sovereign_wg::Key::generate_private().unwrap();
    let path = s.state.join("router.key");
    std::fs::write(&path, format!("{}\n", other.to_base64())).unwrap();
    let error = registry.store().router_private_key().unwrap_err();
    assert!(
        matches!(&error, StoreError::RouterKeyMismatch { path: p, .. } if *p == path),
        "{error:?}"
    );
    assert!(error.is_usage());
}

#[test]
fn a_state_directory_from_before_router_pub_gets_one_on_the_next_change() {
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    registry.add(&request("laptop")).unwrap();
    let public = registry
        .store()
        .router_private_key()
        .unwrap()
        .unwrap()
        .public_key();
    std::fs::remove_file(s.state.join("router.pub")).unwrap();
    registry.add(&request("phone")).unwrap();
    let recorded = std::fs::read_to_string(s.state.join("router.pub")).unwrap();
    assert_eq!(recorded.trim(), public.to_base64());
    assert_eq!(mode(&s.state.join("router.pub")), 0o600);
}

#[test]
fn rekey_replaces_the_router_key_pair_and_names_the_peers_to_reissue() {
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    registry.add(&request("laptop")).unwrap();
    registry.add(&request("phone")).unwrap();
    registry.revoke("phone", "2026-02-01T00:00:00Z").unwrap();
    let old = registry.store().router_private_key().unwrap().unwrap();
    let config_before = std::fs::read(&s.config).unwrap();

    let impact = registry.router_rekey_impact().unwrap();
    assert!(impact.replaces_key);
    assert_eq!(impact.public_key, None);
    assert_eq!(impact.peers, ["laptop"]);

    let done = registry.rekey_router().unwrap();
    let new = registry.store().router_private_key().unwrap().unwrap();
    assert_ne!(new, old);
    assert_eq!(done.public_key, Some(new.public_key().to_base64()));
    assert_eq!(done.peers, ["laptop"]);
    assert_eq!(mode(&s.state.join("router.key")), 0o600);
    // The deployment file is untouched, and the laptop's new config names the new key.
    assert_eq!(std::fs::read(&s.config).unwrap(), config_before);
    let material = registry.client_material("laptop").unwrap();
    assert_eq!(material.router_public_key, new.public_key());

    // It also recovers a lost key: afterwards everything works again.
    std::fs::remove_file(s.state.join("router.key")).unwrap();
    registry.rekey_router().unwrap();
    let d = sovereign_model::load(&s.config).unwrap();
    assert!(registry.store().router_secrets(&d).is_ok());
}

#[test]
fn a_peer_block_deleted_by_hand_keeps_its_name_and_address() {
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    let laptop = registry.add(&request("laptop")).unwrap();
    assert_eq!(mode(&s.state.join("ledger.json")), 0o600);
    // The user deletes the [[peer]] block, leaving the rest of the file.
    std::fs::write(&s.config, CONFIG).unwrap();
    let err = registry.add(&request("laptop")).unwrap_err();
    assert!(err.is_usage());
    assert!(err.to_string().contains("peer purge laptop"), "{err}");
    let phone = registry.add(&request("phone")).unwrap();
    assert_ne!(phone.address, laptop.address);
    let d = sovereign_model::load(&s.config).unwrap();
    let findings = registry.store().audit(&d).unwrap();
    let text: Vec<_> = findings.iter().map(|f| f.message.as_str()).collect();
    assert!(
        text.iter()
            .any(|m| m.contains("`laptop`") && m.contains("ledger")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|m| m.starts_with("orphaned key file: no active or disabled peer `laptop`")),
        "{text:?}"
    );
}

#[test]
fn a_lost_private_key_is_an_error_not_a_device_key_and_rotate_mends_it() {
    let s = setup(CONFIG);
    let registry = PeerRegistry::open(&s.config).unwrap();
    registry.add(&request("laptop")).unwrap();
    let key = s.state.join("peers/laptop.key");
    std::fs::remove_file(&key).unwrap();
    let err = match registry.client_material("laptop") {
        Err(e) => e,
        Ok(_) => panic!("a lost key passed for a device key"),
    };
    assert!(err.is_usage());
    assert!(err.to_string().contains("peer rotate laptop"), "{err}");
    let d = sovereign_model::load(&s.config).unwrap();
    let findings = registry.store().audit(&d).unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f.path == key.display().to_string()
                && f.message.starts_with("missing key file")),
        "{findings:?}"
    );
    registry.rotate("laptop", None).unwrap();
    assert!(
        registry
            .client_material("laptop")
            .unwrap()
            .private_key
            .is_some()
    );
    // A device-keyed peer still has no key file, and that is fine.
    let mut phone = request("phone");
    phone.public_key = Some(
        sovereign_wg::Key::from_bytes([7; 32])
            .public_key()
            .to_base64(),
    );
    registry.add(&phone).unwrap();
    assert!(
        registry
            .client_material("phone")
            .unwrap()
            .private_key
            .is_none()
    );
    let d = sovereign_model::load(&s.config).unwrap();
    assert_eq!(registry.store().audit(&d).unwrap(), vec![]);
}

#[test]
fn any_readable_file_in_the_state_directory_is_refused_when_the_store_opens() {
    let s = setup(CONFIG);
    PeerRegistry::open(&s.config)
        .unwrap()
        .add(&request("laptop"))
        .unwrap();
    // A key no router command reads (the peer's private key) is refused all the same.
    let key = s.state.join("peers/laptop.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = PeerRegistry::open(&s.config).err().expect("refused");
    assert!(err.is_usage());
    // Files that hold no secret (`server install` keeps its lock there) are not refused.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(s.state.join("server.lock"), "").unwrap();
    std::fs::set_permissions(
        s.state.join("server.lock"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    PeerRegistry::open(&s.config).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = PeerRegistry::open(&s.config).err().expect("refused");
    assert!(
        err.to_string()
            .contains(&format!("chmod 600 {}", key.display())),
        "{err}"
    );
}
