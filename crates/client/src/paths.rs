//! Where client setup writes. Everything hangs off explicit roots, so tests point
//! them at a temporary directory and the binary fills them from the environment.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::render::Shell;

/// The tunnel's default interface name (`wg-quick@sovereign`).
pub const DEFAULT_INTERFACE: &str = "sovereign";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Linux,
    #[serde(rename = "macos")]
    MacOs,
}

impl Platform {
    pub fn current() -> Platform {
        if cfg!(target_os = "macos") {
            Platform::MacOs
        } else {
            Platform::Linux
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPaths {
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    pub config_home: PathBuf,
    /// `$CODEX_HOME`, else `~/.codex`.
    pub codex_home: PathBuf,
    /// Where the wg-quick config goes: `/etc/wireguard` on Linux, the sovereign
    /// config directory on macOS (the WireGuard app imports it from there).
    pub wg_dir: PathBuf,
}

impl ClientPaths {
    /// Paths from the values of `$HOME`, `$XDG_CONFIG_HOME` and `$CODEX_HOME`.
    pub fn new(
        home: &Path,
        xdg_config_home: Option<&Path>,
        codex_home: Option<&Path>,
        wg_dir: Option<&Path>,
        platform: Platform,
    ) -> ClientPaths {
        // The XDG spec says relative values are invalid and must be ignored.
        let config_home = match xdg_config_home {
            Some(p) if p.is_absolute() => p.to_path_buf(),
            _ => home.join(".config"),
        };
        let codex_home = codex_home.map_or_else(|| home.join(".codex"), Path::to_path_buf);
        let wg_dir = match (wg_dir, platform) {
            (Some(dir), _) => dir.to_path_buf(),
            (None, Platform::Linux) => PathBuf::from("/etc/wireguard"),
            (None, Platform::MacOs) => config_home.join("sovereign"),
        };
        ClientPaths {
            home: home.to_path_buf(),
            config_home,
            codex_home,
            wg_dir,
        }
    }

    pub fn sovereign_dir(&self) -> PathBuf {
        self.config_home.join("sovereign")
    }

    pub fn manifest(&self) -> PathBuf {
        self.sovereign_dir().join("manifest.json")
    }

    pub fn lock_file(&self) -> PathBuf {
        self.sovereign_dir().join(".lock")
    }

    pub fn env_sh(&self) -> PathBuf {
        self.sovereign_dir().join("env")
    }

    pub fn env_fish(&self) -> PathBuf {
        self.sovereign_dir().join("env.fish")
    }

    pub fn wg_config(&self, interface: &str) -> PathBuf {
        self.wg_dir.join(format!("{interface}.conf"))
    }

    pub fn profile(&self, shell: Shell, platform: Platform) -> PathBuf {
        match (shell, platform) {
            // macOS Terminal starts bash as a login shell, which reads ~/.bash_profile.
            (Shell::Bash, Platform::MacOs) => self.home.join(".bash_profile"),
            (Shell::Bash, Platform::Linux) => self.home.join(".bashrc"),
            (Shell::Zsh, _) => self.home.join(".zshrc"),
            (Shell::Fish, _) => self.config_home.join("fish").join("config.fish"),
        }
    }

    pub fn claude_settings(&self) -> PathBuf {
        self.home.join(".claude").join("settings.json")
    }

    pub fn codex_config(&self) -> PathBuf {
        self.codex_home.join("config.toml")
    }

    pub fn codex_profile(&self) -> PathBuf {
        self.codex_home
            .join(format!("{}.config.toml", crate::tools::PROVIDER_ID))
    }

    pub fn opencode_config(&self) -> PathBuf {
        self.config_home.join("opencode").join("opencode.json")
    }
}

/// wg-quick takes the interface name from the file name; Linux caps names at 15 bytes.
pub fn check_interface(name: &str) -> Result<(), ClientError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_=+.-".contains(&b))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(ClientError::BadInterface(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_config_home_wins_unless_relative() {
        let home = Path::new("/home/a");
        let p = ClientPaths::new(home, Some(Path::new("/x/cfg")), None, None, Platform::Linux);
        assert_eq!(p.env_sh(), Path::new("/x/cfg/sovereign/env"));
        assert_eq!(
            p.wg_config("sovereign"),
            Path::new("/etc/wireguard/sovereign.conf")
        );
        let p = ClientPaths::new(home, Some(Path::new("rel")), None, None, Platform::MacOs);
        assert_eq!(
            p.env_fish(),
            Path::new("/home/a/.config/sovereign/env.fish")
        );
        assert_eq!(
            p.wg_config("wg1"),
            Path::new("/home/a/.config/sovereign/wg1.conf")
        );
        assert_eq!(
            p.profile(Shell::Bash, Platform::MacOs),
            Path::new("/home/a/.bash_profile")
        );
    }

    #[test]
    fn interface_names() {
        assert!(check_interface("sovereign").is_ok());
        assert!(check_interface("a-very-long-name").is_err());
        assert!(check_interface("wg/0").is_err());
        assert!(check_interface("").is_err());
    }
}
