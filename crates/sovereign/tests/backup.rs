//! `sovereign backup` / `sovereign restore` through the real binary: a wiped
//! deployment comes back byte for byte with its modes; wrong passphrases, damaged
//! and foreign archives exit 2 and change nothing; nothing is overwritten without
//! --force.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CONFIG: &str = "# backed up\n[wan]\nendpoint = \"vpn.example.com:51820\"\n";

struct Deployment {
    dir: tempfile::TempDir,
}

impl Deployment {
    fn new() -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sovereign.toml"), CONFIG).unwrap();
        let d = Deployment { dir };
        d.secret_file("pass", "correct horse battery staple\n");
        d.secret_file("wrong-pass", "incorrect horse\n");
        d
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn secret_file(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
        std::fs::set_permissions(self.path(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sovereign"))
            .args(["--config", "sovereign.toml"])
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("SOVEREIGN_CONFIG")
            .output()
            .expect("the binary runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// The deployment file and the state directory: relative path -> (mode, bytes).
    fn deployment(&self) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
        let root = self.dir.path();
        let mut files = sovereign_testkit::tree(root, &[&root.join("sovereign.state")]);
        let config = root.join("sovereign.toml");
        if config.exists() {
            files.insert(
                "sovereign.toml".into(),
                (mode(&config), std::fs::read(&config).unwrap()),
            );
        }
        files
    }

    fn wipe(&self) {
        std::fs::remove_dir_all(self.path("sovereign.state")).unwrap();
        std::fs::remove_file(self.path("sovereign.toml")).unwrap();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn populated() -> Deployment {
    let d = Deployment::new();
    d.ok(&["peer", "add", "laptop"]);
    d.ok(&["peer", "add", "phone", "--no-psk"]);
    d.ok(&["peer", "revoke", "phone", "--yes"]);
    d
}

#[test]
fn backup_wipe_restore_gives_the_same_bytes_and_modes() {
    let d = populated();
    let before = d.deployment();
    assert!(before.contains_key(Path::new("sovereign.state/peers/laptop.key")));
    d.ok(&["backup", "--out", "b.age", "--passphrase-file", "pass"]);
    assert_eq!(mode(&d.path("b.age")), 0o600);
    let archive = std::fs::read(d.path("b.age")).unwrap();
    assert!(archive.starts_with(b"age-encryption.org/v1"));
    let key = std::fs::read_to_string(d.path("sovereign.state/peers/laptop.key")).unwrap();
    assert!(
        !archive.windows(20).any(|w| w == &key.as_bytes()[..20]),
        "a key in the clear"
    );
    d.wipe();
    let out = d.ok(&["restore", "b.age", "--passphrase-file", "pass", "--json"]);
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["action"], "restore");
    assert_eq!(d.deployment(), before);
    assert_eq!(mode(&d.path("sovereign.state")), 0o700);
    assert_eq!(mode(&d.path("sovereign.state/peers")), 0o700);
    // And the restored deployment works.
    d.ok(&["peer", "show", "laptop", "--conf"]);
    d.ok(&["router", "render"]);
}

#[test]
fn restore_never_overwrites_without_force() {
    let d = populated();
    d.ok(&["backup", "--out", "b.age", "--passphrase-file", "pass"]);
    let backed_up = d.deployment();
    d.ok(&["peer", "add", "tablet"]);
    let now = d.deployment();
    let out = d.run(&["restore", "b.age", "--passphrase-file", "pass"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--force"), "{}", text(&out));
    assert_eq!(d.deployment(), now);
    d.ok(&["restore", "b.age", "--passphrase-file", "pass", "--force"]);
    assert_eq!(d.deployment(), backed_up);
    // backup itself does not replace a file either.
    let out = d.run(&["backup", "--out", "b.age", "--passphrase-file", "pass"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn wrong_passphrase_truncated_and_foreign_archives_exit_2_and_change_nothing() {
    let d = populated();
    d.ok(&["backup", "--out", "b.age", "--passphrase-file", "pass"]);
    let archive = std::fs::read(d.path("b.age")).unwrap();
    std::fs::write(d.path("cut.age"), &archive[..archive.len() - 40]).unwrap();
    let mut flipped = archive.clone();
    let last = flipped.len() - 30;
    flipped[last] ^= 1;
    std::fs::write(d.path("flipped.age"), &flipped).unwrap();
    std::fs::write(d.path("foreign.tar"), b"ustar? no, just text\n").unwrap();
    d.wipe();
    // A partial state would also count as a change: start from nothing.
    let before = sovereign_testkit::tree(d.dir.path(), &[d.dir.path()]);
    for (file, pass, expected) in [
        ("b.age", "wrong-pass", "cannot decrypt"),
        ("cut.age", "pass", "cannot decrypt"),
        ("flipped.age", "pass", "cannot decrypt"),
        ("foreign.tar", "pass", "cannot decrypt"),
    ] {
        let out = d.run(&["restore", file, "--passphrase-file", pass, "--force"]);
        assert_eq!(out.status.code(), Some(2), "{file}: {}", text(&out));
        assert!(text(&out).contains(expected), "{file}: {}", text(&out));
        assert!(
            text(&out).contains("nothing was changed"),
            "{file}: {}",
            text(&out)
        );
        assert_eq!(
            sovereign_testkit::tree(d.dir.path(), &[d.dir.path()]),
            before,
            "{file}"
        );
    }
}

#[test]
fn an_age_recipient_and_identity_work_and_a_readable_passphrase_file_is_refused() {
    let d = Deployment::new();
    d.ok(&["peer", "add", "laptop"]);
    let before = d.deployment();
    // A throwaway test key pair (age-keygen format), not a secret of anything.
    let identity = "AGE-SECRET-KEY-1DPCAYA7DNJUXYLSA0T3PTT0RSG0RU6CJ3LRHVGNNYQDVMMGL4H7QWMJXAD";
    d.secret_file("key.txt", &format!("# test key\n{identity}\n"));
    let recipient = "age1x5xz22gdsu76kyfqhqerd6dxa3z42f6lnsyzsj2w09tc3r9nkp7stmvks5";
    d.ok(&["backup", "--out", "b.age", "--recipient", recipient]);
    d.wipe();
    d.ok(&["restore", "b.age", "--identity", "key.txt"]);
    assert_eq!(d.deployment(), before);
    std::fs::set_permissions(d.path("pass"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = d.run(&["backup", "--out", "c.age", "--passphrase-file", "pass"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("chmod 600"), "{}", text(&out));
    let out = d.run(&["backup", "--out", "c.age"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
