//! A stand-in OpenWrt router for executing the apply scripts for real: a temp root
//! that stands in for the router's /etc, /tmp and /sys/class/net, with fake `uci`,
//! `fw4`, `ubus`, `ifup`, `nft`, `wg` and a `sysctl` that keeps kernel values in
//! files. Tests can replace any tool (openwrt_real_uci.rs puts the real uci in).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use sovereign_remote::{ApplyOptions, OPENWRT_SYSCTL_FILE, Output, Transport, TransportError};

pub const FAKE_TOOLS: &[(&str, &str)] = &[
    (
        "uci",
        "#!/bin/sh\necho \"uci $*\" >> \"$FAKE_ROOT/uci.log\"\n",
    ),
    (
        "fw4",
        "#!/bin/sh\nif [ \"$1\" = check ] && [ -f \"$FAKE_ROOT/fw4-fails\" ]; then echo 'Error: rule'; exit 1; fi\n\
         [ \"$1\" = check ] && echo 'Ruleset passes nftables check.'\nexit 0\n",
    ),
    ("ubus", "#!/bin/sh\nexit 0\n"),
    ("ifup", "#!/bin/sh\nexit 0\n"),
    ("nft", "#!/bin/sh\nexit 0\n"),
    ("wg", "#!/bin/sh\nexit 0\n"),
    // busybox semantics: -p always exits 0, -e hides unknown keys, -n KEY fails
    // for an unknown key.
    (
        "sysctl",
        "#!/bin/sh\n\
         e=; p=\n\
         while [ $# -gt 0 ]; do case \"$1\" in -e) e=1;; -p) p=1;; -n|-w|-q) ;; *) break;; esac; shift; done\n\
         if [ -n \"$p\" ]; then\n\
         \tfor f in \"$@\"; do\n\
         \t\tgrep -v '^[[:space:]]*[#;]' \"$f\" | grep = | while IFS='=' read -r k v; do\n\
         \t\t\tk=$(echo $k | tr / .); v=$(echo $v)\n\
         \t\t\tif [ -f \"$FAKE_ROOT/proc/$k\" ]; then echo \"$v\" > \"$FAKE_ROOT/proc/$k\"; echo \"$k = $v\";\n\
         \t\t\telif [ -z \"$e\" ]; then echo \"sysctl: error: '$k' is an unknown key\" >&2; fi\n\
         \t\tdone\n\
         \tdone\n\
         \texit 0\n\
         fi\n\
         k=$(echo \"$1\" | tr / .)\n\
         [ -f \"$FAKE_ROOT/proc/$k\" ] || exit 1\n\
         cat \"$FAKE_ROOT/proc/$k\"\n",
    ),
];

/// A stand-in router: a temp root, the fake tools, and the kernel values.
pub struct FakeRouter {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl FakeRouter {
    /// The fake tools, with `tools` (name, script) replacing or adding to them, and
    /// the kernel values.
    pub fn new(tools: &[(&str, String)], values: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for sub in [
            "bin",
            "proc",
            "tmp",
            "etc/config",
            "etc/sysctl.d",
            "sys/class/net",
        ] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let fakes = FAKE_TOOLS.iter().map(|(n, b)| (*n, b.to_string()));
        for (name, body) in fakes.chain(tools.iter().cloned()) {
            let path = root.join("bin").join(name);
            std::fs::write(&path, body).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let router = Self { _dir: dir, root };
        for (key, value) in values {
            router.set(key, value);
        }
        router
    }

    pub fn set(&self, key: &str, value: &str) {
        std::fs::write(self.root.join("proc").join(key), format!("{value}\n")).unwrap();
    }

    /// Kernel values of every key the fake knows.
    pub fn values(&self) -> BTreeMap<String, String> {
        std::fs::read_dir(self.root.join("proc"))
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                let value = std::fs::read_to_string(e.path()).unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    value.trim().to_string(),
                )
            })
            .collect()
    }

    pub fn sysctl_file(&self) -> PathBuf {
        self.root.join(OPENWRT_SYSCTL_FILE.trim_start_matches('/'))
    }

    pub fn installed(&self) -> Option<String> {
        std::fs::read_to_string(self.sysctl_file()).ok()
    }

    /// The router's paths inside the root; tools that do not exist here become `true`.
    pub fn inside(&self, text: &str) -> String {
        let root = self.root.display();
        text.replace("/etc/init.d/dnsmasq", "true")
            .replace("/etc/", &format!("{root}/etc/"))
            .replace("/lib/netifd/", &format!("{root}/lib/netifd/"))
            .replace("/sys/class/net/", &format!("{root}/sys/class/net/"))
            .replace("/tmp/sovereign-", &format!("{root}/tmp/sovereign-"))
    }

    pub fn outside(&self, text: &str) -> String {
        text.replace(
            &format!("{}/tmp/sovereign-", self.root.display()),
            "/tmp/sovereign-",
        )
    }

    pub fn sh(&self, script: &str, stdin: &[u8]) -> Output {
        use std::io::Write as _;
        let path = format!(
            "{}:{}",
            self.root.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(self.inside(script))
            .env("PATH", path)
            .env("FAKE_ROOT", &self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin_text = self.inside(&String::from_utf8_lossy(stdin));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin_text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Output {
            status: out.status.code().unwrap_or(-1),
            stdout: self.outside(&String::from_utf8_lossy(&out.stdout)),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// What the armed timer does when it fires, without the wait: stop the timer,
    /// then run the uploaded rollback.sh.
    pub fn fire_rollback(&self) {
        let staging = std::fs::read_dir(self.root.join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("sovereign-apply.")
                    && p.is_dir()
                    && !p.ends_with("sovereign-apply.lock")
            })
            .expect("the staging dir is still there");
        // As the router names it: sh() maps it into the root.
        let s = self.outside(&staging.display().to_string());
        let out = self.sh(
            &format!(
                "pid=$(cat {s}/timer.pid); kill -TERM -\"$pid\" 2>/dev/null || kill -TERM \"$pid\"\n\
                 sh {s}/rollback.sh"
            ),
            &[],
        );
        assert!(out.success(), "rollback.sh failed: {out:?}");
    }
}

impl Transport for FakeRouter {
    fn run(&self, script: &str, stdin: &[u8]) -> Result<Output, TransportError> {
        Ok(self.sh(script, stdin))
    }

    fn run_fresh(&self, script: &str) -> Result<Output, TransportError> {
        Ok(self.sh(script, &[]))
    }

    fn describe(&self) -> String {
        "fake-openwrt".into()
    }
}

impl Drop for FakeRouter {
    /// A timer left armed by a failing test must not outlive it.
    fn drop(&mut self) {
        let _ = self.sh(
            "for f in /tmp/sovereign-apply.*/timer.pid; do [ -f \"$f\" ] && kill -TERM -\"$(cat \"$f\")\"; done; true",
            &[],
        );
    }
}

/// Long enough never to fire during a test: rollbacks are fired by hand.
pub fn options() -> ApplyOptions {
    ApplyOptions {
        confirm_timeout_secs: 600,
        ..ApplyOptions::default()
    }
}

/// As if the fresh ssh session never arrived: the rollback stays armed.
pub fn lost() -> ApplyOptions {
    ApplyOptions {
        simulate_lost_connection: true,
        ..options()
    }
}
