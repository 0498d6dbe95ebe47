//! The record of what setup created or changed, so uninstall can undo exactly that.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::paths::Platform;
use crate::tools::{JsonEdit, Tool};

pub const MANIFEST_FORMAT: &str = "sovereign-client-manifest/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub peer: String,
    pub interface: String,
    pub platform: Platform,
    /// `http://server:11434`: what `client status` and `client test` talk to.
    pub server_url: String,
    pub wg_config: PathBuf,
    pub tools: Vec<Tool>,
    /// Directories setup created, outermost first.
    pub created_dirs: Vec<PathBuf>,
    pub files: Vec<FileRecord>,
    /// Commands that undo what `--up` started, in the order to run them.
    pub undo_commands: Vec<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: PathBuf,
    /// False when the file existed before sovereign first touched it.
    pub created: bool,
    /// A copy of the original, taken before the first edit.
    pub backup: Option<PathBuf>,
    /// Hash of what setup last wrote: when the file still matches, uninstall can
    /// restore the backup byte for byte; otherwise it edits out only its own part.
    pub written_hash: String,
    pub edit: FileEdit,
}

/// How sovereign's part of a file can be taken out again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FileEdit {
    /// The whole file is sovereign's (env files, tunnel config, Codex profile).
    Owned,
    /// A marked block in a shell profile, with the separator put in front of it.
    ProfileBlock {
        separator: String,
    },
    Json {
        edits: Vec<JsonEdit>,
        created_objects: Vec<Vec<String>>,
    },
    CodexConfig {
        created_parent: bool,
    },
}

impl Manifest {
    pub fn record(&self, path: &Path) -> Option<&FileRecord> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Add or replace the record for `record.path`.
    pub fn upsert(&mut self, record: FileRecord) {
        match self.files.iter_mut().find(|f| f.path == record.path) {
            Some(existing) => *existing = record,
            None => self.files.push(record),
        }
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a manifest always serializes");
        text.push('\n');
        text
    }

    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ClientError> {
        let bad = |reason: String| ClientError::BadManifest {
            path: path.to_path_buf(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(MANIFEST_FORMAT) => {}
            Some(other) if other.starts_with("sovereign-client-manifest/") => {
                return Err(ClientError::ManifestVersion {
                    path: path.to_path_buf(),
                    found: other.to_string(),
                });
            }
            _ => return Err(bad("no `format` of a sovereign client manifest".into())),
        }
        serde_json::from_value(value).map_err(|e| bad(e.to_string()))
    }
}

/// FNV-1a, 64 bit: enough to notice that a file changed since setup wrote it.
pub fn content_hash(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("fnv1a64:{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tells_contents_apart() {
        assert_ne!(content_hash(b"a\n"), content_hash(b"a"));
        assert_eq!(content_hash(b""), "fnv1a64:cbf29ce484222325");
    }

    #[test]
    fn foreign_and_future_manifests_are_refused() {
        let p = Path::new("/m.json");
        assert!(
            Manifest::parse("{}", p)
                .unwrap_err()
                .to_string()
                .contains("damaged")
        );
        let future = r#"{"format": "sovereign-client-manifest/9"}"#;
        assert!(
            Manifest::parse(future, p)
                .unwrap_err()
                .to_string()
                .contains("newer")
        );
    }
}
