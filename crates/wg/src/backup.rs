//! `sovereign backup` and `sovereign restore`: the deployment file and the whole
//! state directory (keys, ledger) in one tar archive, encrypted with age to a
//! passphrase or to age recipients.
//!
//! ```text
//! age( tar[ MANIFEST.json, sovereign.toml, state/, state/router.key, ..., state/peers/, ... ] )
//! ```
//!
//! Restoring checks everything before it writes anything: the age payload is
//! authenticated (a wrong passphrase, a flipped bit or a cut-off file fail to
//! decrypt), the tar must hold exactly what its manifest lists and nothing outside
//! `sovereign.toml` and `state/`, the deployment file must validate, and router.key
//! must belong to router.pub. Then the new state directory is built beside the old
//! one (0700 directories, 0600 files) and renamed into place.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;

use crate::key::Key;
use crate::ledger::Ledger;
use crate::store::{FileKind, SecretFs};

const MANIFEST: &str = "MANIFEST.json";
const CONFIG: &str = "sovereign.toml";
const STATE: &str = "state";
pub const BACKUP_FORMAT: &str = "sovereign-backup/1";

/// Who can open the archive.
pub enum Protection {
    Passphrase(SecretString),
    Recipients(Vec<age::x25519::Recipient>),
}

/// How to open the archive.
pub enum Unlock {
    Passphrase(SecretString),
    Identities(Vec<Box<dyn age::Identity + Send + Sync>>),
}

impl Protection {
    pub fn passphrase(text: String) -> Protection {
        Protection::Passphrase(SecretString::from(text))
    }

    /// `age1...` public keys, as `age-keygen` prints them.
    pub fn recipients(texts: &[String]) -> Result<Protection, BackupError> {
        texts
            .iter()
            .map(|t| {
                t.trim().parse().map_err(|e: &str| {
                    BackupError::BadKey(format!(
                        "`{t}` is not an age recipient ({e}); pass the `age1...` line `age-keygen` prints"
                    ))
                })
            })
            .collect::<Result<_, _>>()
            .map(Protection::Recipients)
    }
}

impl Unlock {
    pub fn passphrase(text: String) -> Unlock {
        Unlock::Passphrase(SecretString::from(text))
    }

    /// The contents of an age identity file (`AGE-SECRET-KEY-1...` lines).
    pub fn identity_file(bytes: &[u8]) -> Result<Unlock, BackupError> {
        let bad = |e: &dyn std::fmt::Display| {
            BackupError::BadKey(format!(
                "not an age identity file ({e}); pass the file `age-keygen -o FILE` wrote"
            ))
        };
        let identities = age::IdentityFile::from_buffer(bytes)
            .map_err(|e| bad(&e))?
            .into_identities()
            .map_err(|e| bad(&e))?;
        if identities.is_empty() {
            return Err(bad(&"it holds no identity"));
        }
        Ok(Unlock::Identities(identities))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    BadKey(String),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} does not exist: there is nothing to back up (run `sovereign init`, or pass --config PATH)", .0.display())]
    NothingToBackUp(PathBuf),
    #[error("{} is not a {expected}; sovereign backs up only regular files and directories", path.display())]
    WrongKind {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("cannot encrypt: {0}")]
    Encrypt(String),
    #[error(
        "cannot decrypt the backup ({0}): a wrong passphrase or identity, a damaged or cut-off file, \
         or not an age file at all; nothing was changed"
    )]
    Decrypt(String),
    #[error("this is not a sovereign backup ({0}); nothing was changed")]
    Foreign(String),
    #[error("the backup is damaged or was altered ({0}); nothing was changed")]
    Damaged(String),
    #[error(
        "{} already exists; restoring replaces it and the whole state directory: pass --force to go ahead \
         (a backup of the current state first is wise: `sovereign backup --out FILE`)",
        .0.display()
    )]
    Exists(PathBuf),
}

impl BackupError {
    /// Exit 2: the user's input (passphrase, file, flags), not failing I/O.
    pub fn is_usage(&self) -> bool {
        !matches!(self, BackupError::Io { .. } | BackupError::Encrypt(_))
    }
}

/// One archived entry. `path` is `sovereign.toml`, `state` or `state/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub mode: u32,
    /// `None` for a directory.
    pub bytes: Option<Vec<u8>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Manifest {
    format: String,
    entries: Vec<String>,
}

/// What a backup holds, once opened and checked.
#[derive(Debug)]
pub struct Archive {
    pub entries: Vec<Entry>,
}

impl Archive {
    pub fn state_files(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.path.starts_with("state/") && e.bytes.is_some())
            .count()
    }
}

/// Read the deployment file and every file and directory of the state directory.
pub fn collect(fs: &dyn SecretFs, config: &Path, state: &Path) -> Result<Vec<Entry>, BackupError> {
    let mut entries = Vec::new();
    match fs.kind(config).map_err(io("inspect", config))? {
        Some(FileKind::File { mode }) => entries.push(Entry {
            path: CONFIG.into(),
            mode,
            bytes: Some(fs.read(config).map_err(io("read", config))?),
        }),
        None => return Err(BackupError::NothingToBackUp(config.into())),
        Some(_) => {
            return Err(BackupError::WrongKind {
                path: config.into(),
                expected: "regular file",
            });
        }
    }
    if fs.kind(state).map_err(io("inspect", state))?.is_some() {
        collect_dir(fs, state, STATE, &mut entries)?;
    }
    Ok(entries)
}

fn collect_dir(
    fs: &dyn SecretFs,
    dir: &Path,
    name: &str,
    out: &mut Vec<Entry>,
) -> Result<(), BackupError> {
    let Some(FileKind::Dir { mode }) = fs.kind(dir).map_err(io("inspect", dir))? else {
        return Err(BackupError::WrongKind {
            path: dir.into(),
            expected: "directory",
        });
    };
    out.push(Entry {
        path: name.into(),
        mode,
        bytes: None,
    });
    let mut paths = fs.list_dir(dir).map_err(io("list", dir))?;
    paths.sort();
    for path in paths {
        let file_name =
            path.file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| BackupError::WrongKind {
                    path: path.clone(),
                    expected: "file with a UTF-8 name",
                })?;
        let archived = format!("{name}/{file_name}");
        match fs.kind(&path).map_err(io("inspect", &path))? {
            Some(FileKind::File { mode }) => out.push(Entry {
                path: archived,
                mode,
                bytes: Some(fs.read(&path).map_err(io("read", &path))?),
            }),
            Some(FileKind::Dir { .. }) => collect_dir(fs, &path, &archived, out)?,
            Some(FileKind::Other) => {
                return Err(BackupError::WrongKind {
                    path,
                    expected: "regular file or directory",
                });
            }
            None => {}
        }
    }
    Ok(())
}

/// The encrypted archive of `entries`.
pub fn seal(entries: &[Entry], protection: &Protection) -> Result<Vec<u8>, BackupError> {
    let manifest = Manifest {
        format: BACKUP_FORMAT.into(),
        entries: entries.iter().map(|e| e.path.clone()).collect(),
    };
    let mut builder = tar::Builder::new(Vec::new());
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    append(&mut builder, MANIFEST, 0o600, Some(&manifest_bytes))?;
    for entry in entries {
        append(
            &mut builder,
            &entry.path,
            entry.mode,
            entry.bytes.as_deref(),
        )?;
    }
    let tar = builder
        .into_inner()
        .map_err(|e| BackupError::Encrypt(e.to_string()))?;
    let encryptor = match protection {
        Protection::Passphrase(passphrase) => {
            age::Encryptor::with_user_passphrase(passphrase.clone())
        }
        Protection::Recipients(recipients) => {
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| BackupError::Encrypt(e.to_string()))?
        }
    };
    let mut out = Vec::new();
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|e| BackupError::Encrypt(e.to_string()))?;
    writer
        .write_all(&tar)
        .and_then(|()| writer.finish().map(drop))
        .map_err(|e| BackupError::Encrypt(e.to_string()))?;
    Ok(out)
}

fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    mode: u32,
    bytes: Option<&[u8]>,
) -> Result<(), BackupError> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(mode);
    // A fixed time and owner: the archive says what the state is, not who made it when.
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    let result = match bytes {
        Some(bytes) => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(bytes.len() as u64);
            builder.append_data(&mut header, path, bytes)
        }
        None => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder.append_data(&mut header, format!("{path}/"), std::io::empty())
        }
    };
    result.map_err(|e| BackupError::Encrypt(e.to_string()))
}

/// Decrypt and check an archive; nothing is written.
pub fn open(bytes: &[u8], unlock: &Unlock) -> Result<Archive, BackupError> {
    let decrypt = |e: &dyn std::fmt::Display| BackupError::Decrypt(e.to_string());
    let decryptor = age::Decryptor::new(bytes).map_err(|e| decrypt(&e))?;
    let scrypt;
    let identities: Vec<&dyn age::Identity> = match unlock {
        Unlock::Passphrase(passphrase) => {
            scrypt = age::scrypt::Identity::new(passphrase.clone());
            vec![&scrypt]
        }
        Unlock::Identities(ids) => ids
            .iter()
            .map(|i| i.as_ref() as &dyn age::Identity)
            .collect(),
    };
    let mut reader = decryptor
        .decrypt(identities.into_iter())
        .map_err(|e| decrypt(&e))?;
    let mut tar = Vec::new();
    // The STREAM construction authenticates every chunk and the end, so a cut-off
    // or altered payload fails here.
    reader.read_to_end(&mut tar).map_err(|e| decrypt(&e))?;
    let entries = untar(&tar)?;
    check(&entries)?;
    Ok(Archive { entries })
}

fn untar(tar: &[u8]) -> Result<Vec<Entry>, BackupError> {
    let foreign = |e: &dyn std::fmt::Display| BackupError::Foreign(e.to_string());
    let mut archive = tar::Archive::new(tar);
    let mut manifest: Option<Manifest> = None;
    let mut entries = Vec::new();
    for item in archive.entries().map_err(|e| foreign(&e))? {
        let mut item = item.map_err(|e| foreign(&e))?;
        let path = item
            .path()
            .map_err(|e| foreign(&e))?
            .to_str()
            .ok_or_else(|| BackupError::Foreign("a path that is not UTF-8".into()))?
            .trim_end_matches('/')
            .to_string();
        let mode = item.header().mode().map_err(|e| foreign(&e))? & 0o7777;
        let kind = item.header().entry_type();
        let mut bytes = Vec::new();
        item.read_to_end(&mut bytes).map_err(|e| foreign(&e))?;
        if manifest.is_none() {
            if path != MANIFEST {
                return Err(BackupError::Foreign(format!(
                    "it starts with `{path}`, not {MANIFEST}"
                )));
            }
            let parsed: Manifest = serde_json::from_slice(&bytes).map_err(|e| foreign(&e))?;
            if parsed.format != BACKUP_FORMAT {
                return Err(BackupError::Foreign(format!(
                    "format `{}`; this sovereign reads {BACKUP_FORMAT}",
                    parsed.format
                )));
            }
            manifest = Some(parsed);
            continue;
        }
        if !allowed_path(&path) {
            return Err(BackupError::Damaged(format!(
                "the entry `{path}` lies outside sovereign.toml and state/"
            )));
        }
        let bytes = match kind {
            tar::EntryType::Regular => Some(bytes),
            tar::EntryType::Directory => None,
            other => {
                return Err(BackupError::Damaged(format!(
                    "`{path}` is a {other:?}, not a file or directory"
                )));
            }
        };
        entries.push(Entry { path, mode, bytes });
    }
    let Some(manifest) = manifest else {
        return Err(BackupError::Foreign(format!("no {MANIFEST}")));
    };
    let listed: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    if listed
        != manifest
            .entries
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    {
        return Err(BackupError::Damaged(
            "its entries differ from its manifest".into(),
        ));
    }
    Ok(entries)
}

/// Only the deployment file and plain names inside the state directory: no
/// `..`, no absolute paths, nothing a restore could write elsewhere.
fn allowed_path(path: &str) -> bool {
    if path == CONFIG || path == STATE {
        return true;
    }
    let Some(rest) = path.strip_prefix("state/") else {
        return false;
    };
    rest.split('/')
        .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'))
}

fn check(entries: &[Entry]) -> Result<(), BackupError> {
    let file = |path: &str| {
        entries
            .iter()
            .find(|e| e.path == path)
            .and_then(|e| e.bytes.as_deref())
    };
    let config =
        file(CONFIG).ok_or_else(|| BackupError::Damaged(format!("it holds no {CONFIG}")))?;
    let text = std::str::from_utf8(config)
        .map_err(|_| BackupError::Damaged(format!("{CONFIG} is not UTF-8")))?;
    sovereign_model::parse(text, Path::new(CONFIG))
        .map_err(|e| BackupError::Damaged(format!("its {CONFIG} does not validate: {e}")))?;
    let key = |path: &str| -> Result<Option<Key>, BackupError> {
        match file(path) {
            None => Ok(None),
            Some(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|t| Key::from_base64(t).ok())
                .map(Some)
                .ok_or_else(|| BackupError::Damaged(format!("{path} is not a WireGuard key"))),
        }
    };
    if let (Some(private), Some(public)) = (key("state/router.key")?, key("state/router.pub")?)
        && private.public_key() != public
    {
        return Err(BackupError::Damaged(
            "state/router.key does not belong to state/router.pub".into(),
        ));
    }
    if let Some(bytes) = file("state/ledger.json") {
        Ledger::parse(bytes)
            .map_err(|e| BackupError::Damaged(format!("state/ledger.json: {e}")))?;
    }
    Ok(())
}

/// Write an opened archive: `config` and `state` are replaced only with `force`.
/// The new state directory is built under a temporary name beside the old one and
/// renamed into place, so a failure leaves the old state as it was.
pub fn install(
    fs: &dyn SecretFs,
    archive: &Archive,
    config: &Path,
    state: &Path,
    force: bool,
) -> Result<(), BackupError> {
    for path in [config, state] {
        if !force && fs.kind(path).map_err(io("inspect", path))?.is_some() {
            return Err(BackupError::Exists(path.into()));
        }
    }
    let pid = std::process::id();
    let temp_state = sibling(state, &format!("restore-{pid}"));
    let old_state = sibling(state, &format!("old-{pid}"));
    let temp_config = sibling(config, &format!("restore-{pid}"));
    let result = (|| {
        let mut has_state = false;
        for entry in &archive.entries {
            let target = if entry.path == CONFIG {
                temp_config.clone()
            } else {
                has_state = true;
                temp_state.join(
                    entry
                        .path
                        .strip_prefix(STATE)
                        .unwrap()
                        .trim_start_matches('/'),
                )
            };
            match &entry.bytes {
                // Secrets only in 0600 files inside 0700 directories, whatever the archive says.
                None => fs
                    .create_dir(&target, 0o700)
                    .map_err(io("create", &target))?,
                Some(bytes) => {
                    let mode = if entry.path == CONFIG {
                        entry.mode & 0o777
                    } else {
                        0o600
                    };
                    fs.write_new(&target, bytes, mode)
                        .map_err(io("write", &target))?;
                }
            }
        }
        let had_state = fs.kind(state).map_err(io("inspect", state))?.is_some();
        if had_state {
            fs.rename(state, &old_state)
                .map_err(io("move aside", state))?;
        }
        if has_state && let Err(e) = fs.rename(&temp_state, state) {
            if had_state {
                let _ = fs.rename(&old_state, state);
            }
            return Err(io("move into place", state)(e));
        }
        if let Err(e) = fs.rename(&temp_config, config) {
            let _ = remove_tree(fs, state);
            if had_state {
                let _ = fs.rename(&old_state, state);
            }
            return Err(io("move into place", config)(e));
        }
        for dir in [state.parent(), config.parent()].into_iter().flatten() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            let _ = fs.sync_dir(dir);
        }
        if had_state {
            remove_tree(fs, &old_state).map_err(io("remove", &old_state))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = remove_tree(fs, &temp_state);
        let _ = fs.remove_file(&temp_config);
    }
    result
}

fn remove_tree(fs: &dyn SecretFs, path: &Path) -> std::io::Result<()> {
    match fs.kind(path)? {
        None => Ok(()),
        Some(FileKind::Dir { .. }) => {
            for child in fs.list_dir(path)? {
                remove_tree(fs, &child)?;
            }
            fs.remove_dir(path)
        }
        Some(_) => fs.remove_file(path),
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.{suffix}"))
}

fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> BackupError + 'p {
    move |source| BackupError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        let key = Key::from_bytes([9; 32]);
        vec![
            Entry {
                path: CONFIG.into(),
                mode: 0o644,
                bytes: Some(b"[wan]\nendpoint = \"vpn.example.com:51820\"\n".to_vec()),
            },
            Entry {
                path: STATE.into(),
                mode: 0o700,
                bytes: None,
            },
            Entry {
                path: "state/router.key".into(),
                mode: 0o600,
                bytes: Some(format!("{}\n", key.to_base64()).into_bytes()),
            },
            Entry {
                path: "state/router.pub".into(),
                mode: 0o600,
                bytes: Some(format!("{}\n", key.public_key().to_base64()).into_bytes()),
            },
        ]
    }

    fn pass(text: &str) -> SecretString {
        SecretString::from(text.to_string())
    }

    #[test]
    fn round_trips_with_a_recipient_and_refuses_the_wrong_identity() {
        let identity = age::x25519::Identity::generate();
        let sealed = seal(
            &entries(),
            &Protection::Recipients(vec![identity.to_public()]),
        )
        .unwrap();
        let unlock = Unlock::Identities(vec![Box::new(identity)]);
        assert_eq!(open(&sealed, &unlock).unwrap().entries, entries());
        let other = Unlock::Identities(vec![Box::new(age::x25519::Identity::generate())]);
        assert!(matches!(
            open(&sealed, &other),
            Err(BackupError::Decrypt(_))
        ));
        let cut = &sealed[..sealed.len() - 20];
        assert!(matches!(open(cut, &unlock), Err(BackupError::Decrypt(_))));
        assert!(open(b"not age", &unlock).unwrap_err().is_usage());
    }

    #[test]
    fn a_mismatched_router_key_and_paths_outside_the_state_are_refused() {
        let mut bad = entries();
        bad[3].bytes =
            Some(format!("{}\n", Key::from_bytes([8; 32]).public_key().to_base64()).into_bytes());
        let identity = age::x25519::Identity::generate();
        let protection = Protection::Recipients(vec![identity.to_public()]);
        let unlock = Unlock::Identities(vec![Box::new(identity)]);
        let err = open(&seal(&bad, &protection).unwrap(), &unlock).unwrap_err();
        assert!(err.to_string().contains("router.pub"), "{err}");
        for path in [
            "state/../../etc/passwd",
            "/etc/passwd",
            "other",
            "state/",
            "state//x",
        ] {
            assert!(!allowed_path(path), "{path}");
        }
        assert!(allowed_path("state/peers/laptop.key"));
    }

    #[test]
    fn a_passphrase_opens_it_and_a_wrong_one_does_not() {
        let sealed = seal(&entries(), &Protection::Passphrase(pass("correct horse"))).unwrap();
        assert_eq!(
            open(&sealed, &Unlock::Passphrase(pass("correct horse")))
                .unwrap()
                .entries,
            entries()
        );
        let err = open(&sealed, &Unlock::Passphrase(pass("wrong"))).unwrap_err();
        assert!(matches!(err, BackupError::Decrypt(_)), "{err}");
        // An age file that holds something else.
        let foreign = age::encrypt(
            &age::scrypt::Recipient::new(pass("correct horse")),
            b"just some text",
        )
        .unwrap();
        let err = open(&foreign, &Unlock::Passphrase(pass("correct horse"))).unwrap_err();
        assert!(matches!(err, BackupError::Foreign(_)), "{err}");
    }
}
