//! The OpenWrt scripts executed for real: `sh` runs every script `apply` sends, in
//! a temporary root that stands in for the router's /etc and /tmp, with fake `uci`,
//! `fw4`, `ubus`, `ifup`, `nft`, `wg` and a `sysctl` that keeps kernel values in
//! files. The transcripts prove what is sent; this proves what it does to the
//! sysctl file and the kernel values: install, load, roll back, remove, reset.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sovereign_remote::{
    ApplyError, ApplyOptions, OPENWRT_SYSCTL_FILE, OpenwrtConfig, Output, RouterConfig, Transport,
    TransportError, apply,
};

const FAKE_TOOLS: &[(&str, &str)] = &[
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
struct FakeRouter {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl FakeRouter {
    fn new(values: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for sub in ["bin", "proc", "tmp", "etc/config", "etc/sysctl.d"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        for (name, body) in FAKE_TOOLS {
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

    fn set(&self, key: &str, value: &str) {
        std::fs::write(self.root.join("proc").join(key), format!("{value}\n")).unwrap();
    }

    /// Kernel values of every key the fake knows.
    fn values(&self) -> BTreeMap<String, String> {
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

    fn sysctl_file(&self) -> PathBuf {
        self.root.join(OPENWRT_SYSCTL_FILE.trim_start_matches('/'))
    }

    fn installed(&self) -> Option<String> {
        std::fs::read_to_string(self.sysctl_file()).ok()
    }

    /// The router's paths inside the root; tools that do not exist here become `true`.
    fn inside(&self, text: &str) -> String {
        let root = self.root.display();
        text.replace("/etc/init.d/dnsmasq", "true")
            .replace("/etc/", &format!("{root}/etc/"))
            .replace("/lib/netifd/", &format!("{root}/lib/netifd/"))
            .replace("/tmp/sovereign-", &format!("{root}/tmp/sovereign-"))
    }

    fn outside(&self, text: &str) -> String {
        text.replace(
            &format!("{}/tmp/sovereign-", self.root.display()),
            "/tmp/sovereign-",
        )
    }

    fn sh(&self, script: &str, stdin: &[u8]) -> Output {
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
    fn fire_rollback(&self) {
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

const LAN4: &str = "net.ipv4.conf.lan4.proxy_arp";
const LAN3: &str = "net.ipv4.conf.lan3.proxy_arp";
const BR_LAN: &str = "net.ipv4.conf.br-lan.proxy_arp";
const DEFAULT: &str = "net.ipv4.conf.default.proxy_arp";

fn sysctl_for(port: &str) -> String {
    format!("# proxy ARP for the server's own port\nnet.ipv4.conf.{port}.proxy_arp=1\n{BR_LAN}=1\n")
}

fn config(sysctl: Option<String>) -> RouterConfig {
    RouterConfig::Openwrt(OpenwrtConfig {
        uci_batch: "set network.wg0=interface\nset firewall.sovereign_vpn=zone\n".into(),
        wg_interface: "wg0".into(),
        sysctl_conf: sysctl,
    })
}

fn dedicated() -> RouterConfig {
    config(Some(sysctl_for("lan4")))
}

fn shared() -> RouterConfig {
    config(None)
}

/// Long enough never to fire during a test: rollbacks are fired by hand.
fn options() -> ApplyOptions {
    ApplyOptions {
        confirm_timeout_secs: 600,
        ..ApplyOptions::default()
    }
}

fn lost() -> ApplyOptions {
    ApplyOptions {
        simulate_lost_connection: true,
        ..options()
    }
}

/// A stock router: proxy ARP off everywhere, no sovereign sysctl file.
fn stock() -> FakeRouter {
    FakeRouter::new(&[(LAN4, "0"), (LAN3, "0"), (BR_LAN, "0"), (DEFAULT, "0")])
}

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn apply_installs_the_file_atomically_and_loads_it() {
    let router = stock();
    apply(&router, &dedicated(), &options()).expect("apply");
    assert_eq!(router.installed(), Some(sysctl_for("lan4")));
    let mode = std::fs::metadata(router.sysctl_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "sysctl files are world-readable");
    assert_eq!(
        std::fs::read_dir(router.sysctl_file().parent().unwrap())
            .unwrap()
            .count(),
        1,
        "no temp file is left beside it"
    );
    assert_eq!(
        router.values(),
        values(&[(BR_LAN, "1"), (DEFAULT, "0"), (LAN3, "0"), (LAN4, "1")])
    );
}

#[test]
fn a_rollback_removes_a_file_that_was_absent_and_turns_the_values_back() {
    let router = stock();
    let error = apply(&router, &dedicated(), &lost()).unwrap_err();
    assert!(error.rollback_armed(), "{error}");
    assert_eq!(router.values()[LAN4], "1", "the apply went live");
    router.fire_rollback();
    assert_eq!(router.installed(), None);
    assert_eq!(
        router.values(),
        values(&[(BR_LAN, "0"), (DEFAULT, "0"), (LAN3, "0"), (LAN4, "0")])
    );
}

#[test]
fn a_rollback_restores_the_previous_file_and_its_values() {
    let router = stock();
    apply(&router, &dedicated(), &options()).expect("first apply");
    // The server moves to lan3: lan4 drops out of the file and is reset.
    let moved = config(Some(sysctl_for("lan3")));
    let error = apply(&router, &moved, &lost()).unwrap_err();
    assert!(error.rollback_armed(), "{error}");
    assert_eq!(router.installed(), Some(sysctl_for("lan3")));
    assert_eq!(
        router.values(),
        values(&[(BR_LAN, "1"), (DEFAULT, "0"), (LAN3, "1"), (LAN4, "0")])
    );
    router.fire_rollback();
    assert_eq!(router.installed(), Some(sysctl_for("lan4")));
    assert_eq!(
        router.values(),
        values(&[(BR_LAN, "1"), (DEFAULT, "0"), (LAN3, "0"), (LAN4, "1")])
    );
}

#[test]
fn switching_to_shared_removes_the_file_and_resets_its_keys_to_the_default() {
    let router = stock();
    apply(&router, &dedicated(), &options()).expect("dedicated-port apply");
    let report = apply(&router, &shared(), &options()).expect("shared apply");
    assert!(
        report.steps[5].detail.contains("removed"),
        "{:?}",
        report.steps
    );
    assert_eq!(router.installed(), None);
    assert_eq!(
        router.values(),
        values(&[(BR_LAN, "0"), (DEFAULT, "0"), (LAN3, "0"), (LAN4, "0")])
    );

    // And back: rolling the switch back brings proxy ARP back.
    apply(&router, &dedicated(), &options()).expect("dedicated-port again");
    apply(&router, &shared(), &lost()).unwrap_err();
    router.fire_rollback();
    assert_eq!(router.installed(), Some(sysctl_for("lan4")));
    assert_eq!(router.values()[LAN4], "1");
    assert_eq!(router.values()[BR_LAN], "1");
}

#[test]
fn a_shared_apply_on_a_router_without_the_file_changes_no_value() {
    let router = stock();
    router.set(LAN4, "1"); // set by the admin for reasons of their own
    let report = apply(&router, &shared(), &options()).expect("apply");
    assert!(!report.steps[5].detail.contains("removed"));
    assert_eq!(router.values()[LAN4], "1");
}

#[test]
fn a_failed_fw4_check_touches_neither_the_file_nor_the_values() {
    let router = stock();
    apply(&router, &dedicated(), &options()).expect("first apply");
    std::fs::write(router.root.join("fw4-fails"), "").unwrap();
    let before = router.values();
    let error = apply(&router, &shared(), &options()).unwrap_err();
    assert!(
        matches!(error, ApplyError::ValidationFailed { .. }),
        "{error}"
    );
    assert_eq!(router.installed(), Some(sysctl_for("lan4")));
    assert_eq!(router.values(), before);
    assert!(
        !Path::new(&router.root.join("tmp/sovereign-apply.lock")).exists(),
        "the lock was released"
    );
}
