//! `sovereign client` through the real binary, with $HOME pointed at a temporary
//! directory and the tunnel config under --wg-dir. Network traffic stays on 127.0.0.1.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sovereign_model::{Deployment, Peer, PeerStatus};
use sovereign_wg::{Key, PeerBundle, render_client_config};

struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let machine = Machine {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(machine.home()).unwrap();
        machine
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn home(&self) -> PathBuf {
        self.root().join("home")
    }
    fn wg_dir(&self) -> PathBuf {
        self.root().join("wireguard")
    }
    /// Run `sovereign` as a user of this machine whose login shell is `shell`.
    fn run(&self, shell: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sovereign"))
            .args(args)
            .current_dir(self.root())
            .env("HOME", self.home())
            .env("SHELL", shell)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("CODEX_HOME")
            .env_remove("SOVEREIGN_CONFIG")
            .output()
            .expect("the sovereign binary runs")
    }
    fn client(&self, args: &[&str]) -> Output {
        let wg_dir = self.wg_dir().display().to_string();
        let mut all = vec!["client"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--wg-dir", &wg_dir]);
        self.run("/usr/bin/zsh", &all)
    }
    fn write_bundle(&self, bundle: &PeerBundle) -> String {
        let path = self.root().join("laptop.peer.json");
        fs::write(&path, bundle.to_json()).unwrap();
        path.display().to_string()
    }
    /// Every file and directory under HOME and the WireGuard dir: path -> (mode, bytes).
    fn tree(&self) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
        sovereign_testkit::tree(self.root(), &[&self.home(), &self.wg_dir()])
    }
}

const PRIVATE: [u8; 32] = [0x03; 32];

fn bundle(server: &str, port: u16) -> PeerBundle {
    let mut d = Deployment::reference();
    d.server.address = server.parse().unwrap();
    d.server.api_port = port;
    let private = Key::from_bytes(PRIVATE);
    let peer = Peer {
        name: "laptop".into(),
        address: "10.10.10.2".parse().unwrap(),
        public_key: private.public_key().to_base64(),
        created: "2026-01-01T00:00:00Z".into(),
        status: PeerStatus::Active,
        preshared_key: true,
        changed: String::new(),
        expires: None,
    };
    let router = Key::from_bytes([0x01; 32]).public_key();
    let config = render_client_config(
        &d,
        &peer,
        Some(&private),
        Some(&Key::from_bytes([0x04; 32])),
        &router,
    );
    PeerBundle::new(&d, &peer, config, true, &router)
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Answers every request with Ollama's `/api/version`, enough for `client status`.
fn fake_ollama() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buffer[..n]),
                }
            }
            if seen.is_empty() {
                continue;
            }
            let body = r#"{"version":"0.14.0"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn setup_twice_status_and_uninstall_leave_home_as_it_was() {
    let m = Machine::new();
    fs::write(m.home().join(".zshrc"), "setopt autocd\n").unwrap();
    fs::write(m.home().join(".bashrc"), "alias ll='ls -l'").unwrap();
    let before = m.tree();
    let port = fake_ollama();
    let bundle = m.write_bundle(&bundle("127.0.0.1", port));

    for _ in 0..2 {
        let out = m.client(&[
            "setup",
            "--bundle",
            &bundle,
            "--tools",
            "claude-code,codex,opencode,aider",
            "--offline",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            !text(&out.stdout).contains(&Key::from_bytes(PRIVATE).to_base64()),
            "setup never prints the key"
        );
    }
    let zshrc = fs::read_to_string(m.home().join(".zshrc")).unwrap();
    assert_eq!(zshrc.matches("# >>> sovereign >>>").count(), 1, "{zshrc}");
    let env = fs::read_to_string(m.home().join(".config/sovereign/env")).unwrap();
    assert!(env.contains(&format!(
        "export ANTHROPIC_BASE_URL='http://127.0.0.1:{port}'\n"
    )));
    assert!(
        m.home().join(".claude/settings.json").exists()
            && m.home().join(".codex/config.toml").exists()
    );

    let out = m.client(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["server"]["reachable"], true, "{status}");
    assert_eq!(status["server"]["version"], "0.14.0");
    assert_eq!(status["peer"], "laptop");
    assert!(status["tunnel"]["state"].is_string());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = m.client(&["uninstall"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(m.tree(), before);
}

#[test]
fn status_of_an_unreachable_server_exits_1() {
    let m = Machine::new();
    let bundle = m.write_bundle(&bundle("127.0.0.1", closed_port()));
    let out = m.client(&["setup", "--bundle", &bundle, "--offline"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = m.client(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("NOT reachable"),
        "{}",
        text(&out.stdout)
    );
    // It points to the command that finds the broken layer.
    assert!(
        text(&out.stdout).contains("sovereign doctor"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn dry_run_changes_nothing() {
    let m = Machine::new();
    fs::write(m.home().join(".zshrc"), "setopt autocd\n").unwrap();
    let bundle = m.write_bundle(&bundle("127.0.0.1", closed_port()));
    let before = m.tree();
    let out = m.client(&[
        "setup",
        "--bundle",
        &bundle,
        "--tools",
        "claude-code,codex",
        "--dry-run",
        "--up",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("would modify"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("would run"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(m.tree(), before);
}

#[test]
fn missing_corrupt_and_wrong_version_bundles_exit_2() {
    let m = Machine::new();
    let good = bundle("127.0.0.1", closed_port()).to_json();
    let cases = [
        ("absent.json", None, "cannot read the bundle"),
        (
            "corrupt.json",
            Some("{\"format\": \"sovereign-peer-bundle/1\"}".to_string()),
            "damaged",
        ),
        (
            "v2.json",
            Some(good.replace("sovereign-peer-bundle/1", "sovereign-peer-bundle/2")),
            "reads only",
        ),
    ];
    for (name, contents, expected) in cases {
        let path = m.root().join(name);
        if let Some(contents) = contents {
            fs::write(&path, contents).unwrap();
        }
        let out = m.client(&["setup", "--bundle", &path.display().to_string()]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(name) && stderr.contains(expected),
            "{stderr}"
        );
    }
    assert!(
        !m.home().join(".config").exists(),
        "a refused bundle writes nothing"
    );
}

#[test]
fn the_private_key_is_printed_only_when_asked() {
    let m = Machine::new();
    let bundle = m.write_bundle(&bundle("127.0.0.1", closed_port()));
    let out = m.client(&[
        "setup",
        "--bundle",
        &bundle,
        "--offline",
        "--show-private-key",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&Key::from_bytes(PRIVATE).to_base64()));
    let conf = m.wg_dir().join("sovereign.conf");
    assert_eq!(
        fs::metadata(conf).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn client_test_checks_the_given_url_and_needs_a_target() {
    let m = Machine::new();
    let out = m.client(&["test"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--url"));
    let url = format!("http://127.0.0.1:{}", closed_port());
    let out = m.client(&["test", "--url", &url, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["url"], url.as_str());
    assert!(report["summary"]["failed"].as_u64().unwrap() >= 1);
}

#[test]
fn uninstall_without_setup_is_a_no_op() {
    let m = Machine::new();
    let out = m.client(&["uninstall"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("nothing to uninstall"));
}
