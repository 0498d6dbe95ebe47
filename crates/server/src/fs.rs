//! The filesystem as the service layer sees it: absolute paths resolved under a root,
//! so tests install into a temporary directory with exactly the code that runs for real.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::Error;

pub trait Filesystem {
    /// `None` when the file does not exist.
    fn read_to_string(&self, path: &Path) -> Result<Option<String>, Error>;
    fn exists(&self, path: &Path) -> bool;
    /// A regular file (or a link to one) with an execute bit.
    fn is_executable(&self, path: &Path) -> bool;
    fn create_dir_all(&self, path: &Path, mode: u32) -> Result<(), Error>;
    /// Writes through a temporary file in the same directory and renames it into place.
    fn write_atomic(&self, path: &Path, contents: &str, mode: u32) -> Result<(), Error>;
    /// Returns whether there was a file to remove.
    fn remove_file(&self, path: &Path) -> Result<bool, Error>;
    /// Removes an empty directory; returns whether it was removed.
    fn remove_empty_dir(&self, path: &Path) -> Result<bool, Error>;
}

/// The real filesystem, seen from `root` (`/` in production).
#[derive(Debug, Clone)]
pub struct RootedFs {
    root: PathBuf,
}

impl RootedFs {
    pub fn real() -> RootedFs {
        RootedFs {
            root: PathBuf::from("/"),
        }
    }

    /// Every absolute path resolves below `root`.
    pub fn under(root: impl Into<PathBuf>) -> RootedFs {
        RootedFs { root: root.into() }
    }

    pub fn resolve(&self, path: &Path) -> PathBuf {
        match path.strip_prefix("/") {
            Ok(relative) => self.root.join(relative),
            Err(_) => self.root.join(path),
        }
    }
}

impl Filesystem for RootedFs {
    fn read_to_string(&self, path: &Path) -> Result<Option<String>, Error> {
        match fs::read_to_string(self.resolve(path)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(io("read", path, source)),
        }
    }

    fn exists(&self, path: &Path) -> bool {
        self.resolve(path).exists()
    }

    fn is_executable(&self, path: &Path) -> bool {
        fs::metadata(self.resolve(path))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }

    fn create_dir_all(&self, path: &Path, mode: u32) -> Result<(), Error> {
        let real = self.resolve(path);
        if real.is_dir() {
            return Ok(());
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(&real)
            .map_err(|source| io("create directory", path, source))
    }

    fn write_atomic(&self, path: &Path, contents: &str, mode: u32) -> Result<(), Error> {
        let real = self.resolve(path);
        let name = real.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let temp = real.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&temp)?;
            file.write_all(contents.as_bytes())?;
            file.sync_all()?;
            // The mode given to open() is filtered by the umask; set it exactly.
            fs::set_permissions(&temp, fs::Permissions::from_mode(mode))?;
            fs::rename(&temp, &real)
        };
        write().map_err(|source| {
            let _ = fs::remove_file(&temp);
            io("write", path, source)
        })
    }

    fn remove_file(&self, path: &Path) -> Result<bool, Error> {
        match fs::remove_file(self.resolve(path)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(io("remove", path, source)),
        }
    }

    fn remove_empty_dir(&self, path: &Path) -> Result<bool, Error> {
        match fs::remove_dir(self.resolve(path)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(false),
            Err(source) => Err(io("remove directory", path, source)),
        }
    }
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_land_under_the_root_with_the_exact_mode() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RootedFs::under(dir.path());
        let path = Path::new("/etc/systemd/system/x.service");
        fs.create_dir_all(path.parent().unwrap(), 0o755).unwrap();
        fs.write_atomic(path, "hello", 0o640).unwrap();
        let real = dir.path().join("etc/systemd/system/x.service");
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "hello");
        assert_eq!(
            std::fs::metadata(&real).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(fs.read_to_string(path).unwrap().as_deref(), Some("hello"));
        assert!(fs.remove_file(path).unwrap());
        assert!(!fs.remove_file(path).unwrap());
        assert_eq!(fs.read_to_string(path).unwrap(), None);
    }
}
