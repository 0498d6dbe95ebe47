use std::path::{Path, PathBuf};

use sovereign_wg::BundleError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot read the bundle {path}: {source}; export one with `sovereign peer export NAME --out FILE`"
    )]
    BundleRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Bundle { path: PathBuf, source: BundleError },
    #[error(
        "the bundle for `{peer}` carries no private key (the device made its own); \
         pass --private-key-file FILE with that device's key"
    )]
    PrivateKeyNeeded { peer: String },
    #[error("the bundle already carries the private key; drop --private-key-file")]
    PrivateKeyTwice,
    #[error("{path}: not a WireGuard private key (expected 44 characters of base64)")]
    BadPrivateKey { path: PathBuf },
    #[error("interface name `{0}` is invalid: use 1-15 characters from a-z A-Z 0-9 _ = + . -")]
    BadInterface(String),
    #[error("unknown tool `{0}`; choose from claude-code, aider, codex, opencode")]
    UnknownTool(String),
    #[error(
        "{file}: the sovereign block is broken ({problem}); fix or remove the `# >>> sovereign >>>` lines by hand, then re-run"
    )]
    BrokenProfileBlock { file: String, problem: String },
    #[error(
        "{path}: cannot parse it as {format} ({reason}); fix the file or leave this tool out of --tools"
    )]
    UnparsableConfig {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    #[error("{path}: {what}; sovereign leaves it alone, so remove or rename it first")]
    Foreign { path: PathBuf, what: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: permission denied; run setup as root for the system WireGuard directory, \
         or pass --wg-dir DIR (then start it with `sudo wg-quick up DIR/IF.conf`)"
    )]
    WgDirNotWritable { path: PathBuf },
    #[error(
        "the manifest {path} is damaged ({reason}); sovereign cannot tell what it set up, so remove it by hand"
    )]
    BadManifest { path: PathBuf, reason: String },
    #[error("{path} was written by a newer sovereign (`{found}`); use that version")]
    ManifestVersion { path: PathBuf, found: String },
    #[error("{0} is locked by another sovereign client command")]
    Locked(PathBuf),
}

impl ClientError {
    /// True for mistakes in what the user gave (bundle, flags, their files): exit 2.
    pub fn is_usage(&self) -> bool {
        !matches!(self, ClientError::Io { .. } | ClientError::Locked(_))
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    }
}
