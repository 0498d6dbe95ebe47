//! Small filesystem helpers: atomic writes with an explicit mode, directories that
//! remember whether they were created, and the lock.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{ClientError, io_error};

/// Read a file as text; `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>, ClientError> {
    match fs::read(path) {
        Ok(bytes) => {
            String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| ClientError::UnparsableConfig {
                    path: path.to_path_buf(),
                    format: "UTF-8 text",
                    reason: "it is not valid UTF-8".into(),
                })
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// The permission bits of an existing file.
pub fn mode_of(path: &Path) -> Option<u32> {
    fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

/// Write through a temporary file in the same directory and rename it into place,
/// so readers see the old or the new file, never half of one. The temporary file is
/// created with `mode` already set: a secret is never readable by others, not even briefly.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ClientError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!(".{name}.sovereign-tmp"));
    let _ = fs::remove_file(&temp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        // The umask may have narrowed `mode`; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&temp);
        if e.kind() == ErrorKind::PermissionDenied {
            ClientError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        } else {
            io_error(path)(e)
        }
    })
}

/// Create `dir` and its missing parents with `mode`; returns the ones it created,
/// outermost first.
pub fn create_dirs(dir: &Path, mode: u32) -> Result<Vec<PathBuf>, ClientError> {
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(d) = cursor {
        if d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cursor = d.parent();
    }
    missing.reverse();
    for d in &missing {
        match fs::create_dir(d) {
            Ok(()) => {
                fs::set_permissions(d, fs::Permissions::from_mode(mode)).map_err(io_error(d))?
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(d)(e)),
        }
    }
    Ok(missing)
}

/// Remove a file; a file that is already gone is fine.
pub fn remove_file(path: &Path) -> Result<(), ClientError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_error(path)(e)),
        _ => Ok(()),
    }
}

/// An exclusive lock on the sovereign config directory for the life of the value.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(path: &Path) -> Result<DirLock, ClientError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(io_error(path))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(ClientError::Locked(path.to_path_buf())),
            Err(std::fs::TryLockError::Error(e)) => Err(io_error(path)(e)),
        }
    }
}
