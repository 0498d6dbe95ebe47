//! OpenWrt's own tools, built at test time from the unmodified upstream sources in
//! `shared/thirdparty/` into a cache outside the repository.
//!
//! The build runs once per source version (a stamp marks a finished install) under
//! a file lock, so parallel test binaries wait for one build instead of racing.
//! Missing build tools skip the test locally and fail it under `CI=true`; a build
//! that starts and fails is always a failure.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{missing_tools, skip_or_fail};

/// The upstream snapshots this module builds (see shared/thirdparty/README.md).
const LIBUBOX: &str = "libubox-1aa36ee";
const UCI: &str = "uci-66127cd";

/// The real `uci` command (libuci and its CLI, with libubox), or `None` when the
/// test must skip (the reason is printed; under `CI=true` this panics instead).
pub fn uci(test: &str) -> Option<PathBuf> {
    let mut missing = missing_tools(&["cmake", "make", "cc", "tar"]);
    if !Path::new("/usr/include/json-c/json.h").exists() {
        missing.push("json-c headers are not installed (libjson-c-dev)".into());
    }
    let sources = sources_dir();
    if sources.is_none() {
        missing.push(
            "shared/thirdparty/ with the OpenWrt sources was not found (set SOVEREIGN_THIRDPARTY)"
                .into(),
        );
    }
    if !skip_or_fail(test, &missing) {
        return None;
    }
    let prefix = cache_dir().join(format!("{UCI}+{LIBUBOX}"));
    match build_once(&sources.expect("checked above"), &prefix) {
        Ok(()) => Some(prefix.join("bin/uci")),
        Err(error) => panic!("{test}: building OpenWrt's uci failed: {error}"),
    }
}

/// `SOVEREIGN_THIRDPARTY`, or `shared/thirdparty` beside an ancestor of this crate.
fn sources_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SOVEREIGN_THIRDPARTY") {
        return Some(PathBuf::from(dir));
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/thirdparty"))
        .find(|dir| dir.join(format!("{UCI}.tar.gz")).is_file())
}

/// `SOVEREIGN_THIRDPARTY_CACHE`, or `~/.cache/sovereign-thirdparty`.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SOVEREIGN_THIRDPARTY_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/sovereign-thirdparty")
}

fn build_once(sources: &Path, prefix: &Path) -> Result<(), String> {
    let cache = prefix.parent().expect("the prefix is inside the cache");
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let lock = File::create(cache.join(".lock")).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| format!("locking the cache: {e}"))?;
    let stamp = prefix.join(".complete");
    if stamp.exists() {
        return Ok(());
    }
    let work = tempfile_dir(cache)?;
    for name in [LIBUBOX, UCI] {
        run(Command::new("tar")
            .arg("xzf")
            .arg(sources.join(format!("{name}.tar.gz")))
            .arg("-C")
            .arg(&work))?;
    }
    let flags = format!("-I{}/include", prefix.display());
    let link = format!("-L{}/lib", prefix.display());
    for (dir, options) in [
        ("libubox", vec!["-DBUILD_LUA=OFF", "-DBUILD_EXAMPLES=OFF"]),
        ("uci", vec!["-DBUILD_LUA=OFF", "-DBUILD_TESTS=OFF"]),
    ] {
        let source = work.join(dir);
        let build = source.join("build");
        run(Command::new("cmake")
            .arg("-S")
            .arg(&source)
            .arg("-B")
            .arg(&build)
            .args(options)
            .arg(format!("-DCMAKE_INSTALL_PREFIX={}", prefix.display()))
            // The binary finds its libraries without LD_LIBRARY_PATH.
            .arg(format!("-DCMAKE_INSTALL_RPATH={}/lib", prefix.display()))
            .arg(format!("-DCMAKE_C_FLAGS={flags}"))
            .arg(format!("-DCMAKE_EXE_LINKER_FLAGS={link}"))
            .arg(format!("-DCMAKE_SHARED_LINKER_FLAGS={link}")))?;
        run(Command::new("cmake").arg("--build").arg(&build).arg("-j2"))?;
        run(Command::new("cmake").arg("--install").arg(&build))?;
    }
    let _ = std::fs::remove_dir_all(&work);
    std::fs::write(&stamp, "").map_err(|e| e.to_string())
}

fn tempfile_dir(parent: &Path) -> Result<PathBuf, String> {
    let dir = parent.join(format!("build.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let log = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    Err(format!(
        "{command:?} failed ({}):\n{}",
        output.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}
