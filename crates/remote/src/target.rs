//! What differs between router kinds: the scripts each apply step runs.

use crate::{linux, openwrt};

/// The rendered configuration to push, by router kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterConfig {
    Linux(LinuxConfig),
    Openwrt(OpenwrtConfig),
}

/// A plain Linux router: one nftables table plus a WireGuard interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxConfig {
    /// `nftables.nft`: a batch that replaces `table inet sovereign` atomically
    /// (it declares and deletes the table before adding it again).
    pub nft_ruleset: String,
    /// The WireGuard interface; it must exist (setup.sh, or wireguard-go, creates it).
    pub wg_interface: String,
    /// `<wg>.conf` in `wg setconf` form (holds the private key: staged 0600).
    pub wg_config: String,
}

/// OpenWrt 23.05+: a `uci batch` for network/firewall/dhcp, applied by netifd and fw4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenwrtConfig {
    /// `sovereign.uci`: `uci batch` input (holds keys: staged 0600).
    pub uci_batch: String,
    pub wg_interface: String,
    /// `etc/sysctl.d/90-sovereign.conf` (proxy ARP for dedicated-port isolation), or
    /// `None` when the rendering has none (shared isolation): then apply removes the
    /// router's copy and turns its settings back to the kernel's defaults.
    pub sysctl_conf: Option<String>,
    /// `sovereign-wire.sh`: moves the server's port out of the LAN bridge (or back),
    /// found by name, and proves it after the reload.
    pub wire_script: String,
}

impl RouterConfig {
    pub(crate) fn scripts(&self) -> Box<dyn TargetScripts + '_> {
        match self {
            RouterConfig::Linux(c) => Box::new(linux::Scripts(c)),
            RouterConfig::Openwrt(c) => Box::new(openwrt::Scripts(c)),
        }
    }
}

/// The shell scripts of one router kind. Every script starts with a
/// `# sovereign: <step>` line, so transcripts read well.
pub(crate) trait TargetScripts {
    /// Check tools (print `missing=...` or `problem=...` and exit 0 before locking),
    /// then take the lock (when `lock`) and print `staging=<dir>`.
    fn prepare(&self, lock: bool) -> String;
    fn missing_tools_hint(&self) -> &'static str;
    /// Files to upload into the staging dir (name, contents), including `rollback.sh`.
    fn files(&self, staging: &str) -> Vec<(String, String)>;
    /// Check the staged config with the router's own tools; exit non-zero to reject.
    fn validate(&self, staging: &str) -> String;
    fn snapshot(&self, staging: &str) -> String;
    fn apply(&self, staging: &str) -> String;
    /// Undo whatever validate left behind (before anything went live).
    fn discard(&self, staging: &str) -> String;
    /// Print the live and the would-be config (sections marked `### name`).
    fn preview(&self, staging: &str) -> String;
    /// Turn the preview's output into a unified diff (empty when identical).
    fn diff(&self, preview: &str) -> Result<String, String>;
}

/// Split `### name` marked output into (name, body) pairs.
pub(crate) fn sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("### ") {
            out.push((name.trim().to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

pub(crate) fn section<'a>(sections: &'a [(String, String)], name: &str) -> Option<&'a str> {
    sections
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, body)| body.as_str())
}

/// A unified diff of `old` -> `new`, or "" when they are equal.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}
