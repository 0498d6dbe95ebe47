//! What the lab needs from the host, and the one rule for tests about it: skip
//! with a printed reason locally, fail in CI.

use std::path::Path;

/// The programs the lab runs.
pub const PROGRAMS: [&str; 5] = ["ip", "nft", "wg", "wireguard-go", "sysctl"];

/// The Debian packages that provide [`PROGRAMS`].
pub const DEBIAN_PACKAGES: [&str; 4] = ["nftables", "wireguard-tools", "wireguard-go", "iproute2"];

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Everything missing, each as a sentence that says how to fix it; empty when
/// the lab can run.
pub fn missing() -> Vec<String> {
    let mut out = Vec::new();
    if !is_root() {
        out.push("root: network namespaces need root (run with sudo)".to_string());
    }
    if !Path::new("/dev/net/tun").exists() {
        out.push("/dev/net/tun: userspace WireGuard needs the TUN device".to_string());
    }
    let programs = missing_programs();
    if !programs.is_empty() {
        out.push(format!(
            "{} not on PATH (apt-get install -y --no-install-recommends {})",
            programs.join(", "),
            DEBIAN_PACKAGES.join(" ")
        ));
    }
    out
}

pub fn missing_programs() -> Vec<&'static str> {
    PROGRAMS
        .into_iter()
        .filter(|p| crate::system::find_program(p).is_none())
        .collect()
}

/// For tests: `true` when the lab can run. Otherwise prints why and returns
/// `false`, except with `CI=true`, where a missing prerequisite is a failure.
pub fn available_or_skip(test: &str) -> bool {
    sovereign_testkit::skip_or_fail(test, &missing())
}
