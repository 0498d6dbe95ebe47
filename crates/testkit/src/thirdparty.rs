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
const UCODE: &str = "ucode-81205a2";

/// The firewall4 snapshots: what OpenWrt 24.10 and 23.05 ship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fw4Era {
    V24_10,
    V23_05,
}

impl Fw4Era {
    pub const ALL: [Fw4Era; 2] = [Fw4Era::V24_10, Fw4Era::V23_05];

    fn snapshot(self) -> &'static str {
        match self {
            Fw4Era::V24_10 => "firewall4-b6e5157",
            Fw4Era::V23_05 => "firewall4-598d9fb",
        }
    }

    /// How many test files firewall4's own `run_tests.sh` runs in this snapshot.
    pub fn upstream_tests(self) -> usize {
        match self {
            Fw4Era::V24_10 => 31,
            Fw4Era::V23_05 => 30,
        }
    }
}

/// A built ucode and an unpacked firewall4 tree: what `fw4 print` needs.
#[derive(Debug, Clone)]
pub struct Fw4 {
    pub era: Fw4Era,
    /// The `ucode` interpreter (with only the modules fw4 needs).
    pub ucode: PathBuf,
    /// The firewall4 source tree: `root/usr/share/...`, `tests/lib/mocklib`,
    /// `tests/mocks`, `run_tests.sh`.
    pub tree: PathBuf,
}

/// The real `uci` command (libuci and its CLI, with libubox), or `None` when the
/// test must skip (the reason is printed; under `CI=true` this panics instead).
pub fn uci(test: &str) -> Option<PathBuf> {
    let sources = prerequisites(test, &["cmake", "make", "cc", "tar"], true)?;
    let prefix = cache_dir().join(format!("{UCI}+{LIBUBOX}"));
    let build = |work: &Path| {
        for name in [LIBUBOX, UCI] {
            untar(&sources, name, work)?;
        }
        cmake(
            &work.join("libubox"),
            &prefix,
            &["-DBUILD_LUA=OFF", "-DBUILD_EXAMPLES=OFF"],
        )?;
        cmake(
            &work.join("uci"),
            &prefix,
            &["-DBUILD_LUA=OFF", "-DBUILD_TESTS=OFF"],
        )
    };
    match build_once(&prefix, build) {
        Ok(()) => Some(prefix.join("bin/uci")),
        Err(error) => panic!("{test}: building OpenWrt's uci failed: {error}"),
    }
}

/// The ucode interpreter, built with the `fs` module (all fw4 needs; the mock
/// library stands in for uci and ubus), or `None` when the test must skip.
pub fn ucode(test: &str) -> Option<PathBuf> {
    let sources = prerequisites(test, &["cmake", "make", "cc", "tar"], true)?;
    let prefix = cache_dir().join(UCODE);
    let build = |work: &Path| {
        untar(&sources, UCODE, work)?;
        cmake(
            &work.join("ucode"),
            &prefix,
            &[
                "-DUBUS_SUPPORT=OFF",
                "-DUCI_SUPPORT=OFF",
                "-DULOOP_SUPPORT=OFF",
                "-DRTNL_SUPPORT=OFF",
                "-DNL80211_SUPPORT=OFF",
                "-DZLIB_SUPPORT=OFF",
                "-DDIGEST_SUPPORT=OFF",
                "-DSOCKET_SUPPORT=OFF",
                "-DRESOLV_SUPPORT=OFF",
                "-DDEBUG_SUPPORT=OFF",
                "-DLOG_SUPPORT=OFF",
            ],
        )
    };
    match build_once(&prefix, build) {
        Ok(()) => Some(prefix.join("bin/ucode")),
        Err(error) => panic!("{test}: building ucode failed: {error}"),
    }
}

/// ucode and the firewall4 tree of `era` (unpacked once into the cache; fw4 is
/// ucode source and needs no build), or `None` when the test must skip.
pub fn firewall4(test: &str, era: Fw4Era) -> Option<Fw4> {
    let ucode = ucode(test)?;
    let sources = prerequisites(test, &["tar"], false)?;
    let prefix = cache_dir().join(era.snapshot());
    let unpack = |work: &Path| {
        untar(&sources, era.snapshot(), work)?;
        let tree = prefix.join("firewall4");
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
        std::fs::rename(work.join("firewall4"), &tree)
            .map_err(|e| format!("moving firewall4 into {}: {e}", tree.display()))
    };
    match build_once(&prefix, unpack) {
        Ok(()) => Some(Fw4 {
            era,
            ucode,
            tree: prefix.join("firewall4"),
        }),
        Err(error) => panic!("{test}: unpacking {} failed: {error}", era.snapshot()),
    }
}

/// The sources directory, or `None` after a skip (a panic under `CI=true`) when a
/// tool, the json-c headers (`json_c`) or the sources are missing.
fn prerequisites(test: &str, tools: &[&str], json_c: bool) -> Option<PathBuf> {
    let mut missing = missing_tools(tools);
    if json_c && !Path::new("/usr/include/json-c/json.h").exists() {
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
    sources
}

/// `SOVEREIGN_THIRDPARTY`, or `shared/thirdparty` beside an ancestor of this crate.
fn sources_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SOVEREIGN_THIRDPARTY") {
        return Some(PathBuf::from(dir));
    }
    // Beside the checkout (../shared/thirdparty), or where this workplace keeps it.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/thirdparty"))
        .chain([PathBuf::from("/work/shared/thirdparty")])
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

/// Run `build` (given a scratch directory) once for `prefix`: under the cache lock,
/// skipped when the stamp says a previous run finished.
fn build_once(
    prefix: &Path,
    build: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), String> {
    let cache = prefix.parent().expect("the prefix is inside the cache");
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let lock = File::create(cache.join(".lock")).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| format!("locking the cache: {e}"))?;
    let stamp = prefix.join(".complete");
    if stamp.exists() {
        return Ok(());
    }
    let work = tempfile_dir(cache)?;
    build(&work)?;
    let _ = std::fs::remove_dir_all(&work);
    std::fs::write(&stamp, "").map_err(|e| e.to_string())
}

fn untar(sources: &Path, name: &str, into: &Path) -> Result<(), String> {
    run(Command::new("tar")
        .arg("xzf")
        .arg(sources.join(format!("{name}.tar.gz")))
        .arg("-C")
        .arg(into))
}

/// Configure, build and install one CMake project into `prefix`.
fn cmake(source: &Path, prefix: &Path, options: &[&str]) -> Result<(), String> {
    let flags = format!("-I{}/include", prefix.display());
    let link = format!("-L{}/lib", prefix.display());
    let build = source.join("build");
    run(Command::new("cmake")
        .arg("-S")
        .arg(source)
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
    run(Command::new("cmake").arg("--install").arg(&build))
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

/// What one run of real fw4 printed.
#[derive(Debug, Clone)]
pub struct Fw4Output {
    pub success: bool,
    pub stdout: String,
    /// fw4's warnings and the mock library's notes about missing fixtures.
    pub stderr: String,
}

impl Fw4 {
    /// Run firewall4's own test suite with this ucode: (tests run, tests passed,
    /// the suite's output).
    pub fn upstream_suite(&self) -> Result<(usize, usize, String), String> {
        let path = match std::env::var_os("PATH") {
            Some(path) => {
                let mut dirs = vec![self.ucode.parent().expect("bin/ucode").to_path_buf()];
                dirs.extend(std::env::split_paths(&path));
                std::env::join_paths(dirs).map_err(|e| e.to_string())?
            }
            None => self.ucode.parent().expect("bin/ucode").into(),
        };
        let output = Command::new("bash")
            .arg("run_tests.sh")
            .current_dir(&self.tree)
            .env("PATH", path)
            .output()
            .map_err(|e| format!("bash run_tests.sh: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        // The last line: "Ran N tests, K okay, F failures".
        let summary = text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("Ran "))
            .ok_or_else(|| format!("run_tests.sh printed no summary:\n{text}"))?;
        let numbers: Vec<usize> = summary
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        match numbers[..] {
            [ran, okay, _] => Ok((ran, okay, text)),
            _ => Err(format!("unexpected run_tests.sh summary: {summary}")),
        }
    }

    /// `fw4 print` (main.uc with ACTION=print) under firewall4's mock library: the
    /// uci, ubus and fs fixtures are read from `mocks` first (`uci/firewall.json`,
    /// `ubus/network.interface~dump.json`, `fs/...`), then from the tree's own
    /// `tests/mocks` (the helper definitions, /proc/version, ...).
    pub fn print(&self, mocks: &Path) -> Result<Fw4Output, String> {
        let search = json_array(&[mocks, &self.tree.join("tests/mocks")]);
        // `include` resolves against the including file, so the path is absolute.
        let main = json_array(&[&self.tree.join("root/usr/share/firewall4/main.uc")]);
        let main = main.trim_start_matches('[').trim_end_matches(']');
        let script = format!(
            "{{%\ninclude({main}, {{\n\tgetenv: function(name) {{ return name == \"ACTION\" ? \"print\" : null; }}\n}})\n%}}\n"
        );
        let script_path = mocks.join("print.uc");
        std::fs::write(&script_path, script)
            .map_err(|e| format!("{}: {e}", script_path.display()))?;
        let output = Command::new(&self.ucode)
            .args(["-S", "-T,", "-L./tests/lib", "-L./root/usr/share/ucode"])
            .arg("-D")
            .arg(format!("MOCK_SEARCH_PATH={search}"))
            .args(["-l", "mocklib", "-l", "fw4"])
            .arg(&script_path)
            .current_dir(&self.tree)
            .output()
            .map_err(|e| format!("{}: {e}", self.ucode.display()))?;
        Ok(Fw4Output {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// A JSON array of path strings (testkit has no JSON dependency; paths are ours
/// and only need `"` and `\` escaped).
fn json_array(paths: &[&Path]) -> String {
    let items: Vec<String> = paths
        .iter()
        .map(|p| {
            let s = p.display().to_string();
            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The build is proven by firewall4's own suite: every upstream test passes with
    /// the ucode built here, for both eras.
    #[test]
    fn firewall4_passes_its_own_test_suite_with_the_built_ucode() {
        let test = "firewall4_passes_its_own_test_suite";
        // run_tests.sh is a bash script.
        if !crate::require(test, &["bash"], false) {
            return;
        }
        for era in Fw4Era::ALL {
            let Some(fw4) = firewall4(test, era) else {
                return;
            };
            let (ran, okay, text) = fw4.upstream_suite().unwrap();
            assert_eq!(
                (ran, okay),
                (era.upstream_tests(), era.upstream_tests()),
                "{era:?}:\n{text}"
            );
        }
    }
}
