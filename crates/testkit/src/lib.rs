//! Prerequisites for tests that need root or real tools (`nft`, `wg`, `sshd`, ...).
//!
//! On a developer machine a test whose prerequisites are missing is skipped with a
//! printed reason. Under `CI=true` it fails instead: a skipped check must never
//! count towards a green run.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub mod deployments;
pub mod thirdparty;

/// Whether the test may run. When something is missing, prints why and returns
/// false, or panics under `CI=true`.
pub fn require(test: &str, tools: &[&str], need_root: bool) -> bool {
    let mut missing = missing_tools(tools);
    if need_root && !is_root() {
        missing.push("not running as root".to_string());
    }
    skip_or_fail(test, &missing)
}

/// The common end of every prerequisite check: true when `missing` is empty;
/// otherwise a printed skip, or a panic under `CI=true`.
pub fn skip_or_fail(test: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let reason = missing.join("; ");
    if in_ci() {
        panic!("{test}: CI=true and a prerequisite is missing: {reason}");
    }
    eprintln!("SKIPPED {test}: {reason}");
    false
}

/// `CI=true` (or `1`): missing prerequisites are failures.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The effective user is root (read from /proc, so no libc call is needed).
pub fn is_root() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// One "`tool` is not installed" line per tool that cannot be found.
pub fn missing_tools(tools: &[&str]) -> Vec<String> {
    tools
        .iter()
        .filter(|tool| !tool_exists(tool))
        .map(|tool| format!("`{tool}` is not installed"))
        .collect()
}

/// An absolute path must exist; a bare name is looked up on PATH and in the sbin
/// directories, which a non-login root shell may leave off PATH.
pub fn tool_exists(tool: &str) -> bool {
    if tool.starts_with('/') {
        return Path::new(tool).exists();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(Into::into))
        .any(|dir| dir.join(tool).is_file())
}

/// Every file, directory and symlink below each of `dirs` (those that exist),
/// keyed by its path relative to `root`: (permission bits, contents). Directories
/// have empty contents and symlinks their target, so two snapshots are equal
/// exactly when nothing was added, removed, rewritten or re-moded.
pub fn tree(root: &Path, dirs: &[&Path]) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut pending: Vec<PathBuf> = dirs
        .iter()
        .filter(|d| d.exists())
        .map(|d| d.to_path_buf())
        .collect();
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let contents = if meta.is_dir() {
                pending.push(path.clone());
                Vec::new()
            } else if meta.file_type().is_symlink() {
                std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                std::fs::read(&path).unwrap()
            };
            let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            out.insert(relative, (mode, contents));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_tool_every_machine_has_and_misses_a_made_up_one() {
        assert!(tool_exists("sh"));
        assert!(!tool_exists("sovereign-no-such-tool"));
        assert!(tool_exists("/bin/sh"));
        assert_eq!(missing_tools(&["sh", "sovereign-no-such-tool"]).len(), 1);
    }

    #[test]
    fn tree_sees_a_rewrite_a_chmod_and_a_new_file() {
        let dir = std::env::temp_dir().join(format!("testkit-tree-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a"), "one").unwrap();
        let before = tree(&dir, &[&dir]);
        assert!(before.contains_key(Path::new("sub/a")));
        std::fs::write(dir.join("sub/a"), "two").unwrap();
        assert_ne!(tree(&dir, &[&dir]), before);
        std::fs::write(dir.join("sub/a"), "one").unwrap();
        assert_eq!(tree(&dir, &[&dir]), before);
        std::fs::set_permissions(dir.join("sub/a"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert_ne!(tree(&dir, &[&dir]), before);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nothing_missing_means_run() {
        assert!(skip_or_fail("t", &[]));
    }
}
