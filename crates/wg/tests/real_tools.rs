//! Compatibility with tools nobody here wrote: wireguard-tools (`wg`, `wg-quick`),
//! wireguard-go and zbar. A missing tool skips the test locally and fails it in CI
//! (`CI=true`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sovereign_model::{Deployment, Peer, PeerStatus};
use sovereign_wg::{Key, qr_png, render_client_config};

fn run(command: &mut Command, stdin: Option<&str>) -> String {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn peer(private: &Key) -> Peer {
    Peer {
        name: "laptop".into(),
        address: "10.10.10.2".parse().unwrap(),
        public_key: private.public_key().to_base64(),
        created: "2026-01-01T00:00:00Z".into(),
        status: PeerStatus::Active,
        preshared_key: true,
        changed: String::new(),
        expires: None,
    }
}

/// A client config with real, freshly generated keys.
fn fresh_config() -> (String, Key) {
    let private = Key::generate_private().unwrap();
    let router = Key::generate_private().unwrap();
    let psk = Key::generate_preshared().unwrap();
    let d = Deployment::reference();
    let text = render_client_config(
        &d,
        &peer(&private),
        Some(&private),
        Some(&psk),
        &router.public_key(),
    );
    (text, router)
}

#[test]
fn wg_pubkey_agrees_with_key_public_key() {
    if !sovereign_testkit::require("real_tools", &["wg"], false) {
        return;
    }
    for _ in 0..16 {
        let private = Key::generate_private().unwrap();
        let theirs = run(
            Command::new("wg").arg("pubkey"),
            Some(&format!("{}\n", private.to_base64())),
        );
        assert_eq!(theirs.trim(), private.public_key().to_base64());
    }
    // And the other way round: keys from `wg genkey` parse and derive the same public key.
    for _ in 0..4 {
        let private = run(Command::new("wg").arg("genkey"), None);
        let ours = Key::from_base64(private.trim())
            .unwrap()
            .public_key()
            .to_base64();
        let theirs = run(Command::new("wg").arg("pubkey"), Some(&private));
        assert_eq!(theirs.trim(), ours);
    }
    let psk = run(Command::new("wg").arg("genpsk"), None);
    assert!(Key::from_base64(psk.trim()).is_ok());
}

#[test]
fn wg_quick_strip_accepts_the_client_config() {
    if !sovereign_testkit::require("real_tools", &["wg-quick", "wg"], false) {
        return;
    }
    let (config, _) = fresh_config();
    let dir = tempfile::tempdir().unwrap();
    // wg-quick takes the interface name from the file name.
    let path = dir.path().join("wgsov0.conf");
    std::fs::write(&path, &config).unwrap();
    let stripped = run(Command::new("wg-quick").arg("strip").arg(&path), None);
    // wg-quick strips exactly its own keys and keeps every `wg` key.
    let expected: String = config
        .lines()
        .filter(|l| !l.starts_with("Address") && !l.starts_with("MTU"))
        .map(|l| format!("{l}\n"))
        .collect();
    // (wg-quick ends its output with one extra blank line.)
    assert_eq!(stripped.trim_end(), expected.trim_end());
}

#[test]
fn zbarimg_decodes_the_png_to_exactly_the_config() {
    if !sovereign_testkit::require("real_tools", &["zbarimg"], false) {
        return;
    }
    let (config, _) = fresh_config();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.png");
    std::fs::write(&path, qr_png(&config).unwrap()).unwrap();
    let decoded = run(
        Command::new("zbarimg").args(["--raw", "-q"]).arg(&path),
        None,
    );
    // zbarimg ends each symbol with a newline of its own.
    assert_eq!(decoded, format!("{config}\n"));
}

/// A userspace WireGuard interface inside a network namespace of our own; dropping
/// it kills wireguard-go and removes the namespace and the control socket.
struct UserspaceInterface {
    netns: String,
    ifname: String,
    process: Child,
}

impl UserspaceInterface {
    fn start() -> UserspaceInterface {
        let id = std::process::id();
        let netns = format!("swg{id}");
        let ifname = format!("swg{}", id % 1_000_000_000);
        assert!(ifname.len() <= 15);
        run(Command::new("ip").args(["netns", "add", &netns]), None);
        let process = Command::new("ip")
            .args(["netns", "exec", &netns, "wireguard-go", &ifname])
            .env("WG_PROCESS_FOREGROUND", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("wireguard-go starts");
        let guard = UserspaceInterface {
            netns,
            ifname,
            process,
        };
        let socket = guard.socket();
        for _ in 0..200 {
            if socket.exists() {
                return guard;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("wireguard-go did not create {}", socket.display());
    }

    fn socket(&self) -> PathBuf {
        Path::new("/var/run/wireguard").join(format!("{}.sock", self.ifname))
    }

    fn wg(&self, args: &[&str]) -> String {
        run(
            Command::new("ip")
                .args(["netns", "exec", &self.netns, "wg"])
                .args(args),
            None,
        )
    }
}

impl Drop for UserspaceInterface {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let _ = std::fs::remove_file(self.socket());
    }
}

#[test]
fn wg_setconf_accepts_the_stripped_client_config_on_a_real_interface() {
    if !sovereign_testkit::require(
        "real_tools",
        &["wg", "wg-quick", "wireguard-go", "ip"],
        true,
    ) {
        return;
    }
    let (config, router) = fresh_config();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("wgsov1.conf");
    std::fs::write(&conf, &config).unwrap();
    let stripped = dir.path().join("stripped.conf");
    std::fs::write(
        &stripped,
        run(Command::new("wg-quick").arg("strip").arg(&conf), None),
    )
    .unwrap();

    let interface = UserspaceInterface::start();
    interface.wg(&["setconf", &interface.ifname, stripped.to_str().unwrap()]);
    let shown = interface.wg(&["show", &interface.ifname, "dump"]);
    let router_public = router.public_key().to_base64();
    let peer_line = shown
        .lines()
        .find(|l| l.starts_with(&router_public))
        .unwrap_or_else(|| panic!("the router peer is missing from `wg show dump`:\n{shown}"));
    let fields: Vec<&str> = peer_line.split('\t').collect();
    // public-key, preshared-key, endpoint, allowed-ips, handshake, rx, tx, keepalive
    assert_ne!(fields[1], "(none)", "the preshared key was not taken");
    assert_eq!(fields[2], "192.168.2.90:51820");
    assert_eq!(fields[3], "192.168.250.20/32");
    assert_eq!(fields[7], "25");
}
