//! The record of what `install` created, so `uninstall` removes exactly that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::fs::Filesystem;

pub const MANIFEST_FILE: &str = "server-install.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallManifest {
    pub format: u32,
    pub kind: InstallKind,
    /// The launchd label or systemd unit name.
    pub service: String,
    /// Files install wrote (the plist, the unit or the drop-in).
    pub files: Vec<PathBuf>,
    /// Directories install created; removed on uninstall only when empty.
    #[serde(default)]
    pub directories: Vec<PathBuf>,
    /// Directories install created that hold data (logs), kept on uninstall.
    #[serde(default)]
    pub kept: Vec<PathBuf>,
    /// Drop-in mode: install enabled a unit that was not enabled before.
    #[serde(default)]
    pub enabled_unit: bool,
    /// LaunchDaemon: the service account install created (deleted on uninstall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_account: Option<CreatedAccount>,
    /// LaunchDaemon: the console user's models install moved (moved back on uninstall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_models: Option<MovedModels>,
    /// LaunchDaemon with `--power`: the `pmset` values before install changed them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub previous_power: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatedAccount {
    pub name: String,
    pub uid: u32,
    /// The group of the same name and id, created with the account.
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovedModels {
    pub from: PathBuf,
    pub to: PathBuf,
    /// `uid:gid` of `from` before the move, restored with `chown -R` when moved back.
    pub owner: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstallKind {
    LaunchAgent,
    LaunchDaemon,
    SystemdUnit,
    SystemdDropIn,
}

impl InstallManifest {
    pub const FORMAT: u32 = 1;

    /// A manifest that records only files so far.
    pub fn new(kind: InstallKind, service: &str, files: Vec<PathBuf>) -> InstallManifest {
        InstallManifest {
            format: InstallManifest::FORMAT,
            kind,
            service: service.to_string(),
            files,
            directories: Vec::new(),
            kept: Vec::new(),
            enabled_unit: false,
            created_account: None,
            moved_models: None,
            previous_power: BTreeMap::new(),
        }
    }

    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(MANIFEST_FILE)
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("plain data serializes");
        text.push('\n');
        text
    }

    pub fn load(fs: &dyn Filesystem, state_dir: &Path) -> Result<Option<InstallManifest>, Error> {
        let path = InstallManifest::path(state_dir);
        let Some(text) = fs.read_to_string(&path)? else {
            return Ok(None);
        };
        let manifest: InstallManifest =
            serde_json::from_str(&text).map_err(|e| Error::Manifest {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if manifest.format != InstallManifest::FORMAT {
            return Err(Error::Manifest {
                path,
                reason: format!(
                    "format {} is not {}",
                    manifest.format,
                    InstallManifest::FORMAT
                ),
            });
        }
        Ok(Some(manifest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_written_before_the_daemon_existed_still_reads() {
        let old = r#"{"format": 1, "kind": "launch-agent", "service": "com.sovereign.ollama",
            "files": ["/Users/alice/Library/LaunchAgents/com.sovereign.ollama.plist"],
            "directories": [], "kept": [], "enabled_unit": false}"#;
        let manifest: InstallManifest = serde_json::from_str(old).unwrap();
        assert_eq!(manifest.kind, InstallKind::LaunchAgent);
        assert!(manifest.created_account.is_none() && manifest.previous_power.is_empty());
        // And an agent manifest written now has no daemon keys.
        let json = manifest.to_json();
        assert!(!json.contains("created_account") && !json.contains("previous_power"));
    }
}
