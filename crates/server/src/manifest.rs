//! The record of what `install` created, so `uninstall` removes exactly that.

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstallKind {
    LaunchAgent,
    SystemdUnit,
    SystemdDropIn,
}

impl InstallManifest {
    pub const FORMAT: u32 = 1;

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
