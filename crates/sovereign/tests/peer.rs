//! `sovereign peer` end to end through the real binary: the lifecycle, concurrency,
//! exit codes, untouched state on bad input, and no key material where it must not be.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sovereign_wg::PeerBundle;

const CONFIG: &str = "# sovereign test deployment\n[wan]\nendpoint = \"vpn.example.com:51820\"\n";

struct Deployment {
    dir: tempfile::TempDir,
}

impl Deployment {
    fn new(text: &str) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sovereign.toml"), text).unwrap();
        Deployment { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("sovereign.toml")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("sovereign.state")
    }

    fn run(&self, args: &[&str]) -> Output {
        // Relative, as users type it: `sovereign.toml` has the parent "".
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
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Every private and preshared key in the state directory.
    fn secrets(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for dir in [self.state(), self.state().join("peers")] {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let ext = path.extension().and_then(|e| e.to_str());
                if matches!(ext, Some("key" | "psk")) {
                    keys.push(std::fs::read_to_string(&path).unwrap().trim().to_string());
                }
            }
        }
        assert!(!keys.is_empty());
        keys
    }

    /// Every file: relative path -> (mode, bytes).
    fn snapshot(&self) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
        sovereign_testkit::tree(self.dir.path(), &[self.dir.path()])
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

#[test]
fn lifecycle_add_list_show_export_rotate_revoke() {
    let d = Deployment::new(CONFIG);
    let added = d.ok(&["peer", "add", "laptop"]);
    assert!(added.contains("10.10.10.2"), "{added}");
    d.ok(&["peer", "add", "phone", "--no-psk"]);

    let list: serde_json::Value = serde_json::from_str(&d.ok(&["peer", "list", "--json"])).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["laptop", "phone"]);
    assert_eq!(list[1]["address"], "10.10.10.3");
    assert_eq!(list[1]["preshared_key"], false);
    assert_eq!(list[0]["status"], "active");

    let conf = d.ok(&["peer", "show", "laptop", "--conf"]);
    let private = std::fs::read_to_string(d.state().join("peers/laptop.key")).unwrap();
    let psk = std::fs::read_to_string(d.state().join("peers/laptop.psk")).unwrap();
    assert!(conf.contains(&format!("PrivateKey = {}", private.trim())));
    assert!(conf.contains(&format!("PresharedKey = {}", psk.trim())));
    assert!(conf.contains("Address = 10.10.10.2/32"));
    assert!(conf.contains("AllowedIPs = 192.168.250.20/32"));
    assert!(
        !d.ok(&["peer", "show", "phone", "--conf"])
            .contains("PresharedKey")
    );

    d.ok(&["peer", "show", "laptop", "--conf", "--out", "laptop.conf"]);
    let written = d.dir.path().join("laptop.conf");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), conf);
    assert_eq!(mode(&written), 0o600);
    let again = d.run(&["peer", "show", "laptop", "--conf", "--out", "laptop.conf"]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing file is not replaced without --force"
    );
    d.ok(&[
        "peer",
        "show",
        "laptop",
        "--conf",
        "--out",
        "laptop.conf",
        "--force",
    ]);

    let qr = d.ok(&["peer", "show", "laptop", "--qr"]);
    assert!(qr.contains('█') && qr.contains('▀'), "{qr}");

    d.ok(&["peer", "export", "laptop"]);
    let bundle_path = d.dir.path().join("laptop.peer.json");
    assert_eq!(mode(&bundle_path), 0o600);
    let bundle = PeerBundle::parse(&std::fs::read_to_string(&bundle_path).unwrap()).unwrap();
    assert_eq!(bundle.wireguard.config, conf);
    assert_eq!(bundle.peer.name, "laptop");
    assert_eq!(bundle.api.anthropic, "http://192.168.250.20:11434");
    assert_eq!(bundle.api.openai, "http://192.168.250.20:11434/v1");
    assert_eq!(bundle.context_length, 65536);

    let old_public = list[0]["public_key"].as_str().unwrap().to_string();
    d.ok(&["peer", "rotate", "laptop"]);
    let rotated = d.ok(&["peer", "show", "laptop", "--conf"]);
    assert!(rotated.contains("Address = 10.10.10.2/32"));
    assert!(!rotated.contains(private.trim()) && !rotated.contains(psk.trim()));
    let list: serde_json::Value = serde_json::from_str(&d.ok(&["peer", "list", "--json"])).unwrap();
    assert_ne!(list[0]["public_key"].as_str().unwrap(), old_public);

    d.ok(&["peer", "revoke", "phone", "--yes"]);
    assert!(!d.state().join("peers/phone.key").exists());
    let list: serde_json::Value = serde_json::from_str(&d.ok(&["peer", "list", "--json"])).unwrap();
    assert_eq!(list[1]["status"], "revoked");
    let shown = d.run(&["peer", "show", "phone", "--conf"]);
    assert_eq!(shown.status.code(), Some(2));
    assert!(text(&shown).contains("revoked"));
    // The revoked peer's address stays taken.
    assert!(d.ok(&["peer", "add", "tablet"]).contains("10.10.10.4"));
    let model = sovereign_model::load(&d.config()).unwrap();
    assert_eq!(
        model
            .active_peers()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["laptop", "tablet"]
    );
    assert!(
        std::fs::read_to_string(d.config())
            .unwrap()
            .starts_with("# sovereign test deployment\n")
    );
}

#[test]
fn key_files_are_0600_in_0700_directories() {
    let d = Deployment::new(CONFIG);
    d.ok(&["peer", "add", "laptop"]);
    assert_eq!(mode(&d.state()), 0o700);
    assert_eq!(mode(&d.state().join("peers")), 0o700);
    for file in ["router.key", "peers/laptop.key", "peers/laptop.psk", "lock"] {
        assert_eq!(mode(&d.state().join(file)), 0o600, "{file}");
    }
}

#[test]
fn no_key_material_outside_show() {
    let d = Deployment::new(CONFIG);
    let mut outputs = vec![
        d.run(&["peer", "add", "laptop"]),
        d.run(&["peer", "add", "phone"]),
    ];
    outputs.push(d.run(&["peer", "list"]));
    outputs.push(d.run(&["peer", "list", "--json"]));
    outputs.push(d.run(&["peer", "show", "laptop"]));
    outputs.push(d.run(&["peer", "show", "laptop", "--json"]));
    outputs.push(d.run(&["peer", "export", "laptop"]));
    outputs.push(d.run(&["peer", "show", "laptop", "--png", "laptop.png"]));
    outputs.push(d.run(&["peer", "revoke", "phone", "--yes"]));
    let before_rotate = d.secrets();
    outputs.push(d.run(&["peer", "rotate", "laptop"]));
    let mut secrets = d.secrets();
    secrets.extend(before_rotate);
    let mut checked = 0;
    for out in &outputs {
        assert!(out.status.success(), "{}", text(out));
        let printed = text(out);
        for secret in &secrets {
            assert!(
                !printed.contains(secret.as_str()),
                "a secret leaked into:\n{printed}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
    // The public keys are there, so the check above looks at real output.
    let listed = text(&d.run(&["peer", "list"]));
    let model = sovereign_model::load(&d.config()).unwrap();
    assert!(listed.contains(&model.peers[0].public_key));
}

#[test]
fn bad_input_exits_2_names_the_fix_and_changes_nothing() {
    let d = Deployment::new(CONFIG);
    d.ok(&["peer", "add", "laptop"]);
    d.ok(&["peer", "add", "old"]);
    d.ok(&["peer", "revoke", "old", "--yes"]);
    let before = d.snapshot();
    let cases: &[(&[&str], &str)] = &[
        (&["peer", "add", "laptop"], "already exists"),
        (&["peer", "add", "old"], "revoked peers included"),
        (&["peer", "add", "bad/name"], "use 1-32 letters"),
        (
            &["peer", "add", "x", "--public-key", "abc"],
            "not a WireGuard public key",
        ),
        (
            &["peer", "add", "x", "--ip", "10.10.10.2"],
            "already used by the peer `laptop`",
        ),
        (
            &["peer", "add", "x", "--ip", "10.10.10.3"],
            "never handed out again",
        ),
        (
            &["peer", "add", "x", "--ip", "10.10.10.1"],
            "router's own address",
        ),
        (
            &["peer", "add", "x", "--ip", "10.20.0.5"],
            "outside the VPN subnet",
        ),
        (
            &["peer", "show", "ghost", "--conf"],
            "known peers: laptop, old",
        ),
        (&["peer", "show", "ghost"], "no peer named `ghost`"),
        (&["peer", "export", "ghost"], "no peer named"),
        (&["peer", "rotate", "ghost"], "no peer named"),
        (&["peer", "rotate", "old"], "is revoked"),
        (&["peer", "revoke", "ghost"], "no peer named"),
    ];
    for (args, expected) in cases {
        let out = d.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains(expected),
            "{args:?}: {expected:?} not in {}",
            text(&out)
        );
        assert_eq!(d.snapshot(), before, "{args:?} changed the state");
    }
}

#[test]
fn a_full_subnet_exits_2_and_bad_input_on_a_fresh_deployment_creates_nothing() {
    let d = Deployment::new(&format!(
        "{CONFIG}[wireguard]\nsubnet = \"10.10.10.0/30\"\n"
    ));
    let fresh = d.snapshot();
    let out = d.run(&["peer", "add", "bad name"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(d.snapshot(), fresh, "a rejected add created files");
    d.ok(&["peer", "add", "only"]);
    let before = d.snapshot();
    let out = d.run(&["peer", "add", "more"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("is full"), "{}", text(&out));
    assert!(text(&out).contains("wireguard.subnet"), "{}", text(&out));
    assert_eq!(d.snapshot(), before);
}

#[test]
fn device_keyed_peer_gets_a_placeholder_and_a_note() {
    let d = Deployment::new(CONFIG);
    let device = sovereign_wg::Key::generate_private().unwrap();
    let public = device.public_key().to_base64();
    d.ok(&["peer", "add", "desktop", "--public-key", &public]);
    assert!(!d.state().join("peers/desktop.key").exists());
    let out = d.run(&["peer", "show", "desktop", "--conf"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!(
        "PrivateKey = {}",
        sovereign_wg::PRIVATE_KEY_PLACEHOLDER
    )));
    assert!(String::from_utf8_lossy(&out.stderr).contains("registered its own public key"));
    let rotate = d.run(&["peer", "rotate", "desktop"]);
    assert_eq!(rotate.status.code(), Some(2));
    assert!(text(&rotate).contains("--public-key"));
}

#[test]
fn png_decodes_to_exactly_the_config() {
    if !sovereign_testkit::require("peer show --png", &["zbarimg"], false) {
        return;
    }
    let d = Deployment::new(CONFIG);
    d.ok(&["peer", "add", "phone"]);
    let conf = d.ok(&["peer", "show", "phone", "--conf"]);
    d.ok(&["peer", "show", "phone", "--png", "phone.png"]);
    let png = d.dir.path().join("phone.png");
    assert_eq!(mode(&png), 0o600);
    let out = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{conf}\n"));
}

#[test]
fn twenty_concurrent_adds_give_twenty_distinct_peers() {
    let d = Deployment::new(CONFIG);
    let children: Vec<_> = (0..20)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_sovereign"))
                .arg("--config")
                .arg(d.config())
                .args(["peer", "add", &format!("device{i}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let model = sovereign_model::load(&d.config()).expect("the file is still valid");
    assert_eq!(model.peers.len(), 20);
    let names: std::collections::HashSet<_> = model.peers.iter().map(|p| p.name.as_str()).collect();
    let addresses: std::collections::HashSet<_> = model.peers.iter().map(|p| p.address).collect();
    assert_eq!((names.len(), addresses.len()), (20, 20));
    let store = sovereign_wg::KeyStore::open(d.state()).unwrap();
    for peer in &model.peers {
        let key = store
            .peer_private_key(&peer.name)
            .unwrap()
            .expect("each peer has its key");
        assert_eq!(key.public_key().to_base64(), peer.public_key);
    }
    // No temporary or backup files are left behind.
    let leftovers: Vec<_> = d
        .snapshot()
        .into_keys()
        .filter(|p| p.to_string_lossy().contains(".tmp-") || p.to_string_lossy().contains(".bak-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_deleted_router_key_is_refused_and_rekey_replaces_it_only_with_yes() {
    let d = Deployment::new(CONFIG);
    d.ok(&["peer", "add", "laptop"]);
    d.ok(&["peer", "add", "phone"]);
    std::fs::remove_file(d.state().join("router.key")).unwrap();
    let before = d.snapshot();

    // Rendering would silently make a new key and strand both peers: refused.
    for args in [
        &["router", "render"][..],
        &["peer", "show", "laptop", "--conf"],
    ] {
        let out = d.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let message = text(&out);
        assert!(message.contains("router.key is missing"), "{message}");
        assert!(message.contains("laptop, phone"), "{message}");
        assert!(!message.contains("panicked"), "{message}");
    }
    let refused = d.run(&["router", "rekey"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("--yes"), "{}", text(&refused));
    assert_eq!(d.snapshot(), before, "a refusal changed files");

    let done: serde_json::Value =
        serde_json::from_str(&d.ok(&["router", "rekey", "--yes", "--json"])).unwrap();
    assert_eq!(done["replaces_key"], true);
    assert_eq!(done["peers"], serde_json::json!(["laptop", "phone"]));
    let public = done["public_key"].as_str().unwrap();
    // The new public key is what every re-exported config dials, and no secret leaks.
    let conf = d.ok(&["peer", "show", "laptop", "--conf"]);
    assert!(conf.contains(&format!("PublicKey = {public}")), "{conf}");
    let rendered = d.ok(&["router", "render"]);
    let router_key = std::fs::read_to_string(d.state().join("router.key")).unwrap();
    assert!(!rendered.contains(router_key.trim()));
    assert_eq!(mode(&d.state().join("router.key")), 0o600);
}

#[test]
fn verbose_logs_name_what_changed_and_never_a_key() {
    let d = Deployment::new(CONFIG);
    let mut logs = String::new();
    let mut secrets = std::collections::BTreeSet::new();
    let steps: [&[&str]; 7] = [
        &["-vvv", "peer", "add", "laptop"],
        &["-vvv", "peer", "add", "phone", "--no-psk"],
        &["-vvv", "peer", "show", "laptop", "--conf"],
        &["-vvv", "peer", "rotate", "laptop"],
        &["-vvv", "router", "render", "--out", "router-files"],
        &["-vvv", "router", "rekey", "--yes"],
        &["-vvv", "peer", "export", "laptop"],
    ];
    for args in steps {
        let out = d.run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        logs.push_str(&String::from_utf8_lossy(&out.stderr));
        secrets.extend(d.secrets());
    }
    // The logs are really on: every change names the files it wrote.
    assert!(logs.contains("wrote"), "{logs}");
    assert!(logs.contains("peers/laptop.psk"), "{logs}");
    assert!(logs.contains("router.key"), "{logs}");
    assert!(logs.contains("updated the deployment file"), "{logs}");
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a key is in the logs:\n{logs}"
        );
    }
    // Without -v nothing is logged, and SOVEREIGN_LOG turns logging on as well.
    let quiet = d.run(&["peer", "add", "tablet"]);
    assert!(quiet.stderr.is_empty(), "{}", text(&quiet));
    let from_env = Command::new(env!("CARGO_BIN_EXE_sovereign"))
        .args(["--config", "sovereign.toml", "peer", "add", "watch"])
        .current_dir(d.dir.path())
        .env("SOVEREIGN_LOG", "info")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&from_env.stderr).contains("peers/watch.psk"),
        "{}",
        text(&from_env)
    );
}

/// A held state lock makes the next command say who holds it, then give up after
/// --lock-timeout with exit 2, changing nothing.
#[test]
fn a_held_lock_is_named_and_times_out() {
    let d = Deployment::new(CONFIG);
    d.ok(&["peer", "add", "laptop"]);
    let lock_path = d.state().join("lock");
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.lock().unwrap();
    std::fs::write(&lock_path, "PID 4242 (sovereign peer add phone)").unwrap();
    let before = d.snapshot();
    let output = d.run(&["--lock-timeout", "1", "peer", "add", "phone"]);
    let err = text(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("waiting for the state lock held by PID 4242 (sovereign peer add phone)"),
        "{err}"
    );
    assert!(err.contains("gave up after 1 s"), "{err}");
    assert_eq!(d.snapshot(), before, "nothing changed");
    drop(lock);
    // Free again: the next command takes it at once.
    d.ok(&["peer", "add", "phone"]);
}

/// A symlinked sovereign.toml is followed by every command: `peer add` edits the
/// file it points to and the link stays a link.
#[test]
fn a_symlinked_deployment_file_is_followed() {
    let d = Deployment::new(CONFIG);
    let real = d.dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::rename(d.config(), real.join("sovereign.toml")).unwrap();
    std::os::unix::fs::symlink("real/sovereign.toml", d.config()).unwrap();
    d.ok(&["peer", "add", "laptop"]);
    assert!(
        std::fs::symlink_metadata(d.config())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let text = std::fs::read_to_string(real.join("sovereign.toml")).unwrap();
    assert!(text.contains("name = \"laptop\""), "{text}");
    assert!(d.ok(&["peer", "list"]).contains("laptop"));
    assert!(
        d.state().join("peers").exists(),
        "the state dir stays beside the link"
    );
}

#[test]
fn a_missing_key_file_makes_show_conf_exit_2_and_validate_warn() {
    let d = Deployment::new(CONFIG);
    d.ok(&["peer", "add", "laptop"]);
    std::fs::remove_file(d.state().join("peers/laptop.key")).unwrap();
    let out = d.run(&["peer", "show", "laptop", "--conf"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert!(text(&out).contains("peer rotate laptop"), "{}", text(&out));
    assert!(!text(&out).contains("registered its own public key"));
    let validate = d.ok(&["config", "validate"]);
    assert!(validate.contains("missing key file"), "{validate}");
}

#[test]
fn a_deleted_peer_block_frees_nothing_and_validate_says_so() {
    let d = Deployment::new(CONFIG);
    d.ok(&["peer", "add", "laptop"]);
    std::fs::write(d.config(), CONFIG).unwrap();
    let validate = d.ok(&["config", "validate", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&validate).unwrap();
    let messages: Vec<&str> = report["state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("orphaned key file")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("in the ledger")),
        "{messages:?}"
    );
    let before = d.snapshot();
    let out = d.run(&["peer", "add", "laptop"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(d.snapshot(), before);
    let out = d.ok(&["peer", "add", "phone"]);
    assert!(out.contains("10.10.10.3"), "{out}");
}

#[test]
fn a_readable_key_file_is_refused_by_every_command_alike() {
    let d = Deployment::new(CONFIG);
    d.ok(&["peer", "add", "laptop"]);
    let key = d.state().join("peers/laptop.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    for args in [
        &["router", "render"][..],
        &["peer", "show", "laptop", "--conf"],
        &["peer", "rotate", "laptop"],
        &["peer", "add", "phone"],
        &["config", "validate"],
    ] {
        let out = d.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("chmod 600"), "{args:?}: {}", text(&out));
    }
}

#[test]
fn disable_and_enable_keep_keys_and_change_only_the_router_config() {
    let d = Deployment::new(CONFIG);
    d.ok(&["peer", "add", "laptop"]);
    d.ok(&["peer", "add", "phone"]);
    let keys = d.secrets();
    let rendered = |d: &Deployment| d.ok(&["router", "render", "--target", "linux"]);
    let before = rendered(&d);
    let phone_key = {
        let list: serde_json::Value =
            serde_json::from_str(&d.ok(&["peer", "list", "--json"])).unwrap();
        list[1]["public_key"].as_str().unwrap().to_string()
    };
    assert!(before.contains(&phone_key));
    let out = d.ok(&["peer", "disable", "phone", "--json"]);
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["action"], "disable");
    assert_eq!(result["changed"], true);
    assert_eq!(result["peer"]["status"], "disabled");
    assert_eq!(result["peer"]["address"], "10.10.10.3");
    assert!(!result["peer"]["changed"].as_str().unwrap().is_empty());
    assert_eq!(d.secrets(), keys, "disable keeps every key file");
    let off = rendered(&d);
    assert!(!off.contains(&phone_key), "{off}");
    assert!(off.contains("10.10.10.2/32"));
    // Its config can still be shown, for when it comes back.
    d.ok(&["peer", "show", "phone", "--conf"]);
    let list = d.ok(&["peer", "list"]);
    assert!(
        list.contains("STATE") && list.contains("disabled"),
        "{list}"
    );
    // A disabled peer's address is not handed out.
    assert!(d.ok(&["peer", "add", "tablet"]).contains("10.10.10.4"));
    let again = d.ok(&["peer", "disable", "phone"]);
    assert!(again.contains("already disabled"), "{again}");
    d.ok(&["peer", "enable", "phone"]);
    let on = rendered(&d);
    assert!(on.contains(&phone_key));
    // Revoked peers cannot come back.
    d.ok(&["peer", "revoke", "phone", "--yes"]);
    let out = d.run(&["peer", "enable", "phone"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn revoke_without_a_terminal_needs_yes_and_changes_nothing_without_it() {
    let d = Deployment::new(CONFIG);
    d.ok(&["peer", "add", "phone"]);
    let before = d.snapshot();
    let out = d.run(&["peer", "revoke", "phone"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--yes"), "{}", text(&out));
    assert_eq!(d.snapshot(), before);
    let out = d.ok(&["peer", "revoke", "phone", "--yes", "--json"]);
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["peer"]["status"], "revoked");
}

#[test]
fn rename_moves_keys_and_purge_frees_only_the_name() {
    let d = Deployment::new(CONFIG);
    d.ok(&["peer", "add", "laptop"]);
    d.ok(&["peer", "add", "phone"]);
    let keys = d.secrets();
    let out = d.ok(&["peer", "rename", "laptop", "work-laptop", "--json"]);
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["peer"]["name"], "work-laptop");
    assert_eq!(result["peer"]["address"], "10.10.10.2");
    let mut after = d.secrets();
    let mut before = keys.clone();
    after.sort();
    before.sort();
    assert_eq!(after, before, "the same keys, under the new name");
    assert!(d.state().join("peers/work-laptop.key").exists());
    assert!(!d.state().join("peers/laptop.key").exists());
    d.ok(&["peer", "show", "work-laptop", "--conf"]);
    // A router applied before the rename loses the old section too.
    let uci = d.ok(&["router", "render", "--target", "openwrt"]);
    assert!(
        uci.contains("delete network.sovereign_peer_laptop\n"),
        "{uci}"
    );
    // The old name is free (it was never revoked, only renamed).
    assert!(d.ok(&["peer", "add", "laptop"]).contains("10.10.10.4"));

    // Purge: only revoked peers, and the address stays retired.
    let out = d.run(&["peer", "purge", "phone", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("peer revoke phone"), "{}", text(&out));
    d.ok(&["peer", "revoke", "phone", "--yes"]);
    let out = d.run(&["peer", "add", "phone"]);
    assert!(text(&out).contains("peer purge phone"), "{}", text(&out));
    let before = d.snapshot();
    let out = d.run(&["peer", "purge", "phone"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no terminal, no --yes: {}",
        text(&out)
    );
    assert_eq!(d.snapshot(), before);
    d.ok(&["peer", "purge", "phone", "--yes"]);
    let ledger = std::fs::read_to_string(d.state().join("ledger.json")).unwrap();
    assert!(ledger.contains("\"purged\": true"), "{ledger}");
    let out = d.ok(&["peer", "add", "phone"]);
    assert!(
        out.contains("10.10.10.5"),
        "10.10.10.3 stays retired: {out}"
    );
    let validate = d.ok(&["config", "validate", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&validate).unwrap();
    assert_eq!(report["state"], serde_json::json!([]), "{validate}");
}

#[test]
fn expiry_is_stored_listed_planned_and_leaves_the_router_once_passed() {
    let d = Deployment::new(CONFIG);
    d.ok(&["peer", "add", "laptop"]);
    let out = d.ok(&["peer", "add", "guest", "--expires", "30d", "--json"]);
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    let expires = result["peer"]["expires"].as_str().unwrap().to_string();
    assert!(expires.ends_with('Z'), "{expires}");
    assert!(
        std::fs::read_to_string(d.config())
            .unwrap()
            .contains(&format!("expires = \"{expires}\""))
    );
    let guest_key = result["peer"]["public_key"].as_str().unwrap().to_string();
    let render = || d.ok(&["router", "render", "--target", "linux"]);
    assert!(render().contains(&guest_key));
    let plan = d.ok(&["plan"]);
    assert!(
        plan.contains("Peer expiries") && plan.contains("guest: expires"),
        "{plan}"
    );
    // Bad input exits 2 and changes nothing.
    let before = d.snapshot();
    for bad in ["2020-01-01", "soon"] {
        let out = d.run(&["peer", "extend", "guest", "--expires", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
    }
    assert_eq!(d.snapshot(), before);
    // Past its expiry (set by hand here: the CLI refuses past dates), the router drops it.
    let config = std::fs::read_to_string(d.config()).unwrap();
    std::fs::write(d.config(), config.replace(&expires, "2026-01-01T00:00:00Z")).unwrap();
    assert!(!render().contains(&guest_key));
    let list = d.ok(&["peer", "list"]);
    assert!(list.contains("expired"), "{list}");
    let plan = d.ok(&["plan", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(plan["expiries"][0]["peer"], "guest");
    assert_eq!(plan["expiries"][0]["expired"], true);
    // Extending brings it back; `never` clears the expiry.
    d.ok(&["peer", "extend", "guest", "--expires", "2099-12-31"]);
    assert!(render().contains(&guest_key));
    d.ok(&["peer", "extend", "guest", "--expires", "never"]);
    assert!(
        !std::fs::read_to_string(d.config())
            .unwrap()
            .contains("expires")
    );
}
