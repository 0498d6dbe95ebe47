//! Names of a lab's host-global objects: network namespaces and WireGuard
//! interfaces. Everything else lives inside the lab's own namespaces.

use std::fmt;
use std::path::Path;

use crate::LabError;

/// A lab's name: the prefix of every namespace and WireGuard interface it creates.
/// Short enough that `<name>-<node>` and `<name>-c<N>` fit Linux's 15-character limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LabName(String);

/// The longest lab name: leaves room for `-dev2` / `-c10` within 15 characters.
pub const MAX_LAB_NAME: usize = 10;

impl LabName {
    pub fn new(name: &str) -> Result<LabName, LabError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_LAB_NAME
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !valid {
            return Err(LabError::InvalidName(name.to_string()));
        }
        Ok(LabName(name.to_string()))
    }

    /// The default name for a deployment file: `sv` plus a hash of its absolute
    /// path, so labs of two different files can run side by side while `up`,
    /// `probe` and `down` of one file find the same lab.
    pub fn derived_from(config_path: &Path) -> LabName {
        let absolute =
            std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_path_buf());
        let hash = fnv1a(absolute.to_string_lossy().as_bytes());
        LabName(format!("sv{:04x}", hash & 0xffff))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The network namespace of one node.
    pub fn netns(&self, node: &str) -> String {
        format!("{}-{node}", self.0)
    }

    /// The router's WireGuard interface. The userspace control socket
    /// `/var/run/wireguard/<if>.sock` is shared by every namespace, so this name
    /// must be unique on the host, not just in the router's namespace.
    pub fn router_wireguard(&self) -> String {
        format!("{}-wg", self.0)
    }

    /// The WireGuard interface of VPN client number `index` (0-based).
    pub fn client_wireguard(&self, index: usize) -> String {
        format!("{}-c{}", self.0, index + 1)
    }
}

impl fmt::Display for LabName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for LabName {
    type Error = LabError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        LabName::new(&value)
    }
}

impl From<LabName> for String {
    fn from(value: LabName) -> Self {
        value.0
    }
}

/// FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limit() {
        let name = LabName::new("abcdefghij").unwrap();
        assert!(name.netns("dev2").len() <= 15);
        assert!(name.client_wireguard(9).len() <= 15);
        assert!(name.router_wireguard().len() <= 15);
        assert!(LabName::new("abcdefghijk").is_err());
        assert!(LabName::new("Lab").is_err());
        assert!(LabName::new("1lab").is_err());
        assert!(LabName::new("").is_err());
    }

    #[test]
    fn derived_names_differ_per_file_and_repeat_per_file() {
        let a = LabName::derived_from(Path::new("/etc/a/sovereign.toml"));
        let b = LabName::derived_from(Path::new("/etc/b/sovereign.toml"));
        assert_ne!(a, b);
        assert_eq!(a, LabName::derived_from(Path::new("/etc/a/sovereign.toml")));
        assert!(LabName::new(a.as_str()).is_ok());
    }
}
