//! The deployment file through the real binary: `init`, `config`, `plan`, and every
//! bad-input case, each checked for exit code 2 and a message that names the
//! file, line and field.

use std::path::Path;
use std::process::{Command, Output};

fn sovereign(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sovereign"))
        .args(args)
        .current_dir(dir)
        .env_remove("SOVEREIGN_CONFIG")
        .output()
        .expect("the sovereign binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A valid file from `init --yes`, with `edit` applied to its text.
fn config_with(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let init = sovereign(dir.path(), &["init", "--yes"]);
    assert!(init.status.success(), "{}", stderr(&init));
    let path = dir.path().join("sovereign.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
    dir
}

fn replace(from: &'static str, to: &'static str) -> impl FnOnce(String) -> String {
    move |text| {
        assert!(text.contains(from), "template lacks `{from}`");
        text.replacen(from, to, 1)
    }
}

fn with_peers(peers: &'static str) -> impl FnOnce(String) -> String {
    move |text| format!("{text}\n{peers}")
}

/// Run `config validate` and return the line number the error names for `field`.
fn assert_config_error(dir: &tempfile::TempDir, field: &str, needle: &str) -> String {
    let output = sovereign(dir.path(), &["config", "validate"]);
    let err = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(2),
        "expected exit 2 for {field}; stderr:\n{err}"
    );
    assert!(err.contains(needle), "expected `{needle}` in:\n{err}");
    assert!(err.contains(field), "expected field `{field}` in:\n{err}");
    assert!(err.contains("hint:"), "expected a hint in:\n{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    err
}

/// The line the error points at must actually hold `text`.
fn assert_points_at(dir: &tempfile::TempDir, err: &str, text: &str) {
    let location = err
        .split_whitespace()
        .find(|w| w.starts_with("sovereign.toml:"))
        .unwrap_or_else(|| panic!("no file:line in {err}"));
    let line: usize = location.split(':').nth(1).unwrap().parse().unwrap();
    let file = std::fs::read_to_string(dir.path().join("sovereign.toml")).unwrap();
    let actual = file.lines().nth(line - 1).unwrap();
    assert!(
        actual.contains(text),
        "line {line} is `{actual}`, expected it to contain `{text}`"
    );
}

#[test]
fn init_yes_then_plan_works_in_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let init = sovereign(dir.path(), &["init", "--yes"]);
    assert!(init.status.success(), "{}", stderr(&init));
    let plan = sovereign(dir.path(), &["plan"]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let text = stdout(&plan);
    assert!(text.contains("192.168.250.20:11434"), "{text}");
    assert!(text.contains("Intended reachability"), "{text}");
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    assert!(sovereign(dir.path(), &["init", "--yes"]).status.success());
    let path = dir.path().join("sovereign.toml");
    std::fs::write(&path, "# mine\n[wan]\nendpoint = \"a.example:1\"\n").unwrap();
    let again = sovereign(dir.path(), &["init", "--yes"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("--force"));
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("# mine")
    );
    let forced = sovereign(
        dir.path(),
        &["init", "--yes", "--force", "--router", "linux"],
    );
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("target = \"linux\"")
    );
}

#[test]
fn init_flags_shape_the_file_and_bad_choices_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ok = sovereign(
        dir.path(),
        &[
            "init",
            "--yes",
            "--lan",
            "10.0.5.0/24",
            "--endpoint",
            "vpn.example.org:443",
            "--platform",
            "linux",
        ],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    let show = sovereign(dir.path(), &["config", "show", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(
        json["server"]["address"], "10.0.5.20",
        "the server follows the LAN"
    );
    assert_eq!(json["wan"]["endpoint"], "vpn.example.org:443");
    assert_eq!(json["server"]["platform"], "linux");

    let empty = tempfile::tempdir().unwrap();
    let bad = sovereign(
        empty.path(),
        &[
            "init",
            "--yes",
            "--lan",
            "10.0.5.0/24",
            "--server-ip",
            "10.0.6.20",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("outside lan.subnet"),
        "{}",
        stderr(&bad)
    );
    assert!(!empty.path().join("sovereign.toml").exists());
}

#[test]
fn init_without_a_terminal_asks_for_yes() {
    let dir = tempfile::tempdir().unwrap();
    let output = sovereign(dir.path(), &["init"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--yes"));
}

#[test]
fn config_show_includes_defaults() {
    let dir = config_with(|t| t);
    let show = sovereign(dir.path(), &["config", "show", "--json"]);
    assert!(show.status.success());
    let json: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(json["wireguard"]["mtu"], 1420);
    assert_eq!(json["ollama"]["context_length"], 65536);
    let toml_text = stdout(&sovereign(dir.path(), &["config", "show"]));
    assert!(toml_text.contains("[server]"), "{toml_text}");
}

#[test]
fn malformed_toml() {
    let dir = config_with(replace("mtu = 1420", "mtu = = 1420"));
    let err = assert_config_error(&dir, "sovereign.toml:", "sovereign.toml:");
    assert_points_at(&dir, &err, "mtu = = 1420");
}

#[test]
fn unknown_key_is_a_typo_not_a_default() {
    let dir = config_with(replace("num_parallel = 1", "num_paralel = 1"));
    let err = assert_config_error(&dir, "ollama.num_paralel", "unknown field `num_paralel`");
    assert_points_at(&dir, &err, "num_paralel");
}

#[test]
fn invalid_ip_address() {
    let dir = config_with(replace(
        "address = \"192.168.250.20\"",
        "address = \"192.168.250.300\"",
    ));
    let err = assert_config_error(&dir, "server.address", "invalid");
    assert_points_at(&dir, &err, "192.168.250.300");
}

#[test]
fn invalid_cidr() {
    let dir = config_with(replace(
        "subnet = \"10.10.10.0/24\"",
        "subnet = \"10.10.10.0/33\"",
    ));
    let err = assert_config_error(&dir, "wireguard.subnet", "invalid");
    assert_points_at(&dir, &err, "10.10.10.0/33");
}

#[test]
fn server_outside_the_lan() {
    let dir = config_with(replace(
        "address = \"192.168.250.20\"",
        "address = \"192.168.251.20\"",
    ));
    let err = assert_config_error(&dir, "server.address", "outside lan.subnet");
    assert_points_at(&dir, &err, "192.168.251.20");
}

#[test]
fn server_equal_to_the_router() {
    let dir = config_with(replace(
        "address = \"192.168.250.20\"",
        "address = \"192.168.250.1\"",
    ));
    let err = assert_config_error(&dir, "server.address", "router's own LAN address");
    assert_points_at(&dir, &err, "192.168.250.1");
}

#[test]
fn server_on_the_network_address() {
    let dir = config_with(replace(
        "address = \"192.168.250.20\"",
        "address = \"192.168.250.0\"",
    ));
    assert_config_error(&dir, "server.address", "network address");
}

#[test]
fn server_on_the_broadcast_address() {
    let dir = config_with(replace(
        "address = \"192.168.250.20\"",
        "address = \"192.168.250.255\"",
    ));
    assert_config_error(&dir, "server.address", "broadcast address");
}

#[test]
fn overlapping_lan_and_vpn() {
    let dir = config_with(|t| {
        t.replacen(
            "subnet = \"10.10.10.0/24\"",
            "subnet = \"192.168.250.128/25\"",
            1,
        )
        .replacen(
            "address = \"10.10.10.1\"",
            "address = \"192.168.250.129\"",
            1,
        )
    });
    let err = assert_config_error(&dir, "wireguard.subnet", "overlaps lan.subnet");
    assert_points_at(&dir, &err, "192.168.250.128/25");
}

#[test]
fn overlapping_wan_and_lan() {
    let dir = config_with(replace(
        "address = \"192.168.2.90/24\"",
        "address = \"192.168.250.90/16\"",
    ));
    assert_config_error(&dir, "wan.address", "overlaps");
}

#[test]
fn port_out_of_range() {
    let dir = config_with(replace("api_port = 11434", "api_port = 70000"));
    let err = assert_config_error(&dir, "server.api_port", "70000");
    assert_points_at(&dir, &err, "api_port = 70000");
}

#[test]
fn port_zero() {
    let dir = config_with(replace("ssh_port = 22", "ssh_port = 0"));
    assert_config_error(&dir, "server.ssh_port", "port 0");
}

#[test]
fn wireguard_port_equal_to_api_port() {
    let dir = config_with(replace("listen_port = 51820", "listen_port = 11434"));
    let err = assert_config_error(&dir, "wireguard.listen_port", "also server.api_port");
    assert_points_at(&dir, &err, "listen_port = 11434");
}

#[test]
fn duplicate_peer_names() {
    let dir = config_with(with_peers(
        "[[peer]]\nname = \"laptop\"\naddress = \"10.10.10.2\"\npublic_key = \"YNqHbfBQKaGvzefSSuufuJpMWOX+X1ApM6aeN2xoU2s=\"\n\n\
         [[peer]]\nname = \"laptop\"\naddress = \"10.10.10.3\"\npublic_key = \"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\"\n",
    ));
    let err = assert_config_error(&dir, "peer[1].name", "already used by peer[0]");
    assert_points_at(&dir, &err, "name = \"laptop\"");
}

#[test]
fn duplicate_peer_addresses() {
    let dir = config_with(with_peers(
        "[[peer]]\nname = \"laptop\"\naddress = \"10.10.10.2\"\npublic_key = \"YNqHbfBQKaGvzefSSuufuJpMWOX+X1ApM6aeN2xoU2s=\"\n\n\
         [[peer]]\nname = \"phone\"\naddress = \"10.10.10.2\"\npublic_key = \"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\"\n",
    ));
    let err = assert_config_error(&dir, "peer[1].address", "already used by peer[0]");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].contains("sovereign.toml:"), "{err}");
}

#[test]
fn peer_outside_the_vpn_subnet() {
    let dir = config_with(with_peers(
        "[[peer]]\nname = \"laptop\"\naddress = \"10.10.11.2\"\npublic_key = \"YNqHbfBQKaGvzefSSuufuJpMWOX+X1ApM6aeN2xoU2s=\"\n",
    ));
    let err = assert_config_error(&dir, "peer[0].address", "outside wireguard.subnet");
    assert_points_at(&dir, &err, "10.10.11.2");
}

#[test]
fn peer_with_a_bad_key_and_name() {
    let dir = config_with(with_peers(
        "[[peer]]\nname = \"my laptop\"\naddress = \"10.10.10.2\"\npublic_key = \"not-a-key\"\n",
    ));
    let err = assert_config_error(&dir, "peer[0].public_key", "not a WireGuard public key");
    assert!(
        err.contains("peer[0].name"),
        "both problems are reported at once:\n{err}"
    );
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sovereign.toml"), "\n  \n").unwrap();
    let output = sovereign(dir.path(), &["config", "validate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("sovereign.toml: the file is empty"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("sovereign init"));
}

#[test]
fn missing_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sovereign.toml"),
        "[wan]\ninterface = \"eth0\"\n",
    )
    .unwrap();
    let output = sovereign(dir.path(), &["plan"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("missing field `endpoint`"), "{err}");
    assert!(err.contains("vpn.example.com:51820"), "{err}");
}

#[test]
fn missing_explicit_config_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = sovereign(dir.path(), &["--config", "nope.toml", "config", "validate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("sovereign init"));
}

#[test]
fn plan_without_a_file_says_it_uses_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let output = sovereign(dir.path(), &["plan", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(json["config"].is_null());
    let cells = json["intent"]["cells"].as_array().unwrap();
    assert!(cells.iter().any(|c| c["source"] == "vpn-peer"
        && c["destination"] == "server-api"
        && c["expect"] == "allow"));
    let text = stdout(&sovereign(dir.path(), &["plan"]));
    assert!(text.contains("reference deployment"), "{text}");
}

#[test]
fn plan_flags_shared_isolation_as_unenforceable() {
    let dir = config_with(replace(
        "isolation = \"dedicated-port\"",
        "isolation = \"shared\"",
    ));
    let output = sovereign(dir.path(), &["plan"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("NOT enforceable"), "{text}");
}

#[test]
fn environment_variable_names_the_config() {
    let dir = config_with(replace("target = \"openwrt\"", "target = \"linux\""));
    std::fs::rename(
        dir.path().join("sovereign.toml"),
        dir.path().join("site.toml"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sovereign"))
        .args(["config", "show", "--json"])
        .current_dir(dir.path())
        .env("SOVEREIGN_CONFIG", "site.toml")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["router"]["target"], "linux");
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let output = sovereign(dir.path(), &["completions", shell]);
        assert!(output.status.success());
        assert!(
            stdout(&output).contains("plan"),
            "{shell} completions lack `plan`"
        );
    }
    let man = sovereign(dir.path(), &["man"]);
    assert!(man.status.success());
    assert!(stdout(&man).contains(".TH sovereign"));
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = sovereign(dir.path(), &["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn bad_server_mac() {
    let dir = config_with(replace(
        "# mac = \"3c:22:fb:12:34:56\"",
        "mac = \"3c:22:fb:12:34\"",
    ));
    let err = assert_config_error(&dir, "server.mac", "not a MAC address");
    assert!(err.contains("six hex pairs"), "{err}");
    assert!(!err.contains("IPv4"), "{err}");
    assert_points_at(&dir, &err, "3c:22:fb:12:34");
}

#[test]
fn plan_lists_router_files_and_creates_no_keys() {
    let dir = config_with(replace("target = \"openwrt\"", "target = \"linux\""));
    let output = sovereign(dir.path(), &["plan", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let files: Vec<&str> = json["router"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"nftables.json"), "{files:?}");
    assert_eq!(json["router"]["placeholder_keys"], true);
    assert_eq!(json["router"]["isolation"]["enforceable"], true);
    assert!(
        !dir.path().join("sovereign.state").exists(),
        "plan is offline and must not create the key store"
    );
    let text = stdout(&output);
    assert!(
        !text.contains("PrivateKey"),
        "plan never shows file contents"
    );
}

#[test]
fn plan_shows_the_verifier_verdict_on_the_rendered_linux_firewall() {
    let dir = config_with(replace("target = \"openwrt\"", "target = \"linux\""));
    let output = sovereign(dir.path(), &["plan", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        json["verifier"]["summary"]["holds"], true,
        "{}",
        json["verifier"]
    );
    assert!(json["verifier"]["summary"]["cells"].as_u64().unwrap() > 20);
}

#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    // The verifier's JSON report is far larger than a pipe buffer (64 KiB), so the
    // writer is still writing when the reader hangs up.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sovereign"))
        .args(["verify", "--rendered", "--json"])
        .current_dir(dir.path())
        .env_remove("SOVEREIGN_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one byte, then hang up, like `| head -c1`.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(status.code(), Some(101), "a panic exits 101");
}

#[test]
fn router_ssh_flags_reach_ssh_and_a_missing_key_file_exits_2() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = config_with(|text| text);
    // A stand-in `ssh` that records its arguments and fails the login, as a router
    // without our key would: nothing here needs a real router.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let recorded = dir.path().join("ssh-args");
    let fake = bin.join("ssh");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\necho 'root@router: Permission denied (publickey).' >&2\nexit 255\n",
            recorded.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("id_router"), "not really a key\n").unwrap();
    std::fs::write(dir.path().join("ssh_config"), "# empty\n").unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sovereign"))
            .args(args)
            .current_dir(dir.path())
            .env("PATH", &path)
            .env_remove("SOVEREIGN_CONFIG")
            .output()
            .unwrap()
    };

    let output = run(&[
        "router",
        "apply",
        "--dry-run",
        "--ssh",
        "root@router",
        "--identity",
        "id_router",
        "--ssh-config",
        "ssh_config",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("refused the login"),
        "{}",
        stderr(&output)
    );
    let args = std::fs::read_to_string(&recorded).unwrap();
    let args: Vec<&str> = args.lines().collect();
    let position = |flag: &str| args.iter().position(|a| *a == flag);
    let identity = position("-i").expect("-i passed");
    assert_eq!(args[identity + 1], "id_router");
    assert!(args.contains(&"IdentitiesOnly=yes"), "{args:?}");
    assert_eq!(args[position("-F").expect("-F passed") + 1], "ssh_config");
    // Options come before the destination, so ssh reads them as options.
    assert!(identity < position("root@router").unwrap());

    std::fs::remove_file(&recorded).unwrap();
    let output = run(&[
        "router",
        "audit",
        "--ssh",
        "root@router",
        "--identity",
        "missing_key",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--identity missing_key"),
        "{}",
        stderr(&output)
    );
    assert!(!recorded.exists(), "ssh ran despite the missing key file");
}

#[test]
fn server_render_json_carries_the_same_files_as_the_text_output() {
    let dir = config_with(replace(
        "address = \"192.168.250.20\"",
        "address = \"192.168.250.42\"",
    ));
    for platform in ["linux", "macos"] {
        let output = sovereign(
            dir.path(),
            &["server", "render", "--platform", platform, "--json"],
        );
        assert!(output.status.success(), "{}", stderr(&output));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["platform"], platform);
        let files = report["files"].as_array().unwrap();
        assert_eq!(files.len(), if platform == "linux" { 2 } else { 1 });
        let text = stdout(&sovereign(
            dir.path(),
            &["server", "render", "--platform", platform],
        ));
        for file in files {
            let contents = file["contents"].as_str().unwrap();
            assert!(contents.contains("192.168.250.42:11434"), "{contents}");
            assert!(text.contains(contents), "{platform}: text and JSON differ");
        }
    }
    let both = sovereign(dir.path(), &["server", "render", "--json", "--out", "x"]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
}

/// Files that are not TOML text at all are usage errors too (exit 2, the path and
/// what to do), never exit 1: binary data, invalid UTF-8, a directory.
#[test]
fn a_file_that_is_not_text_or_not_a_file_is_a_usage_error() {
    type MakeFile = dyn Fn(&Path);
    let cases: [(&str, &MakeFile); 3] = [
        ("not valid UTF-8", &|p| {
            std::fs::write(p, b"\xff\xfe\x00binary\x80").unwrap()
        }),
        ("is a directory", &|p| std::fs::create_dir(p).unwrap()),
        // Valid UTF-8 but garbage: TOML's own syntax error, already a config error.
        ("sovereign.toml", &|p| {
            std::fs::write(p, "\u{1}\u{2}garbage = = =").unwrap()
        }),
    ];
    for (needle, make) in cases {
        let dir = tempfile::tempdir().unwrap();
        make(&dir.path().join("sovereign.toml"));
        for args in [
            &["config", "validate"][..],
            &["plan"],
            &["router", "render"],
        ] {
            let output = sovereign(dir.path(), args);
            let err = stderr(&output);
            assert_eq!(output.status.code(), Some(2), "{args:?} {needle}: {err}");
            assert!(
                err.contains(needle),
                "{args:?}: expected `{needle}` in {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

#[test]
fn a_daemon_on_linux_is_a_config_error() {
    let dir = config_with(|text| {
        text.replacen("[server]\n", "[server]\nservice = \"daemon\"\n", 1)
            .replacen("platform = \"macos\"", "platform = \"linux\"", 1)
    });
    let err = assert_config_error(&dir, "server.service", "not macos");
    assert!(err.contains("systemd unit already starts at boot"), "{err}");
}

#[test]
fn a_bad_service_account_is_a_config_error() {
    let dir = config_with(replace(
        "[server]\n",
        "[server]\nservice = \"daemon\"\nservice_account = \"Ollama Svc\"\n",
    ));
    assert_config_error(&dir, "server.service_account", "not a usable account name");
}

#[test]
fn plan_shows_the_daemon_and_its_power_policy() {
    let dir = config_with(replace("[server]\n", "[server]\nservice = \"daemon\"\n"));
    let output = sovereign(dir.path(), &["plan", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["deployment"]["server"]["service"], "daemon");
    let server = json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "AI server")
        .unwrap();
    let runs: Vec<&str> = server["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        runs[0].contains("system LaunchDaemon as _ollama"),
        "{runs:?}"
    );
    assert!(
        runs.iter().any(|r| r.contains("pmset autorestart 1")),
        "{runs:?}"
    );
    assert!(
        runs.iter().any(|r| r.contains("install --power")),
        "{runs:?}"
    );
    assert!(
        runs.iter().any(|r| r.contains("fdesetup authrestart")),
        "{runs:?}"
    );

    // The agent's plan says it needs a login, and leaves pmset to the user.
    let dir = config_with(|text| text);
    let output = sovereign(dir.path(), &["plan"]);
    let text = stdout(&output);
    assert!(
        text.contains("runs only while its user is logged in"),
        "{text}"
    );
    assert!(
        text.contains("sudo pmset -a sleep 0 autorestart 1 womp 1"),
        "{text}"
    );
}

/// Every name a person reads is the one the file and the README use: `openwrt`,
/// `macos`, `dedicated-port`, `IPv4`, never the Rust enum names.
#[test]
fn output_never_shows_rust_enum_names() {
    const RUST_NAMES: [&str; 8] = [
        "Openwrt",
        "Macos",
        "DedicatedPort",
        "LanDevice",
        "LanAdmin",
        "(Ipv4)",
        "(Ipv6)",
        "NotRouted",
    ];
    let dir = config_with(|text| text);
    let report = dir.path().join("report.html");
    let report_arg = report.to_str().unwrap();
    let runs: [&[&str]; 5] = [
        &["router", "render", "--out", "rendered"],
        &["plan"],
        &["verify", "--rendered"],
        &["verify", "--rendered", "--html", report_arg],
        // platform macos on this Linux machine: the mismatch names both platforms.
        &["server", "install", "--dry-run"],
    ];
    let mut seen = String::new();
    for args in runs {
        let output = sovereign(dir.path(), args);
        seen += &stdout(&output);
        seen += &stderr(&output);
    }
    seen += &std::fs::read_to_string(&report).unwrap();
    assert!(seen.contains("files for openwrt"), "{seen}");
    assert!(
        seen.contains("server.platform is macos but this machine runs linux"),
        "{seen}"
    );
    for name in RUST_NAMES {
        assert!(!seen.contains(name), "`{name}` leaked into the output");
    }
}

/// `init --yes` writes the router's WAN address as the endpoint: a private address
/// that no peer outside can dial. validate and plan say so; a public name does not
/// warn. CGNAT and a full-tunnel client_allowed_ips warn too.
#[test]
fn unreachable_endpoints_and_full_tunnel_clients_are_warned_about() {
    let warned = |dir: &tempfile::TempDir, needle: &str| {
        for args in [&["config", "validate"][..], &["plan"]] {
            let output = sovereign(dir.path(), args);
            assert!(output.status.success(), "{}", stderr(&output));
            let text = stdout(&output) + &stderr(&output);
            assert!(text.contains(needle), "{args:?}: `{needle}` not in\n{text}");
        }
    };
    let dir = config_with(|text| text);
    warned(&dir, "is a private (RFC 1918) address");
    let dir = config_with(replace(
        "endpoint = \"192.168.2.90:51820\"",
        "endpoint = \"100.72.1.9:51820\"",
    ));
    warned(&dir, "carrier-grade NAT");
    let dir = config_with(|text| {
        text.replacen(
            "endpoint = \"192.168.2.90:51820\"",
            "endpoint = \"vpn.example.org:51820\"",
            1,
        )
        .replacen(
            "[wireguard]\n",
            "[wireguard]\nclient_allowed_ips = [\"0.0.0.0/0\"]\n",
            1,
        )
    });
    warned(&dir, "the client loses its internet");
    let output = sovereign(dir.path(), &["config", "validate"]);
    assert!(
        !stdout(&output).contains("RFC 1918"),
        "a DNS name is not warned about"
    );
}

/// Each number out of range names its own range, not the ports'.
#[test]
fn out_of_range_numbers_get_their_own_hint() {
    for (from, to, hint) in [
        ("mtu = 1420", "mtu = 70000", "WireGuard's MTU is 1280-1500"),
        (
            "persistent_keepalive = 25",
            "persistent_keepalive = -5",
            "seconds between keepalives",
        ),
    ] {
        let dir = config_with(replace(from, to));
        let output = sovereign(dir.path(), &["config", "validate"]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{err}");
        assert!(err.contains(hint), "`{hint}` not in\n{err}");
        assert!(!err.contains("ports are"), "{err}");
    }
}

/// `lab down` is idempotent: a lab that is not up leaves nothing to remove.
#[test]
fn lab_down_on_a_lab_that_is_not_up_succeeds() {
    if !sovereign_testkit::require("lab_down_idempotent", &["ip"], true) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = sovereign(dir.path(), &["lab", "down", "--name", "neverup"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("nothing to remove"),
        "{}",
        stdout(&output)
    );
}

/// A `--json` command that fails still prints JSON on stdout, with the fields the
/// text names, beside the text on stderr.
#[test]
fn failing_json_commands_print_json_errors() {
    let dir = config_with(replace(
        "address = \"192.168.250.20\"",
        "address = \"10.9.9.9\"",
    ));
    let output = sovereign(dir.path(), &["config", "validate", "--json"]);
    assert_eq!(output.status.code(), Some(2));
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(value["ok"], false);
    let first = &value["errors"][0];
    assert_eq!(first["field"], "server.address", "{value}");
    assert!(
        first["line"].is_u64() && first["hint"].is_string(),
        "{value}"
    );
    assert!(stderr(&output).contains("server.address"));

    let empty = tempfile::tempdir().unwrap();
    let output = sovereign(
        empty.path(),
        &["--config", "missing.toml", "config", "validate", "--json"],
    );
    assert_eq!(output.status.code(), Some(2));
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(
        value["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("missing.toml"),
        "{value}"
    );
}

/// `init` on a terminal checks each answer as it is given and asks again: an
/// unknown router or platform never silently becomes the default, and a server
/// address outside the LAN is refused at once, keeping the other answers. Needs
/// `script` (util-linux) for a pseudo-terminal.
#[test]
fn init_asks_again_for_each_invalid_answer() {
    if !sovereign_testkit::require("init_asks_again", &["script"], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let answers = "vpn.example.org:51820\npfsense\nlinux\n\n10.9.9.9\n\n\nwindows\nlinux\n";
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!("{} init", env!("CARGO_BIN_EXE_sovereign")),
            "/dev/null",
        ])
        .current_dir(dir.path())
        .env_remove("SOVEREIGN_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answers.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let shown = stdout(&output);
    assert!(output.status.success(), "{shown}");
    for said in [
        "`pfsense` is not one of: openwrt, linux; try again",
        "10.9.9.9 is not in the LAN 192.168.250.0/24; try again",
        "`windows` is not one of: macos, linux; try again",
    ] {
        assert!(shown.contains(said), "`{said}` not in\n{shown}");
    }
    let text = std::fs::read_to_string(dir.path().join("sovereign.toml")).unwrap();
    for line in [
        "target = \"linux\"",
        "platform = \"linux\"",
        "endpoint = \"vpn.example.org:51820\"",
        "address = \"192.168.250.20\"",
    ] {
        assert!(text.contains(line), "`{line}` not in\n{text}");
    }
}

/// Every page the man page names (`sovereign-init(1)` ...) is one that
/// `sovereign man --out DIR` writes, for every command and subcommand.
#[test]
fn every_man_page_named_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = sovereign(dir.path(), &["man", "--out", "man1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pages = dir.path().join("man1");
    let mut named = 0;
    for page in std::fs::read_dir(&pages).unwrap() {
        let text = std::fs::read_to_string(page.unwrap().path())
            .unwrap()
            .replace("\\-", "-");
        for reference in text
            .split_whitespace()
            .filter(|w| w.starts_with("sovereign-") && w.ends_with("(1)"))
        {
            let file = format!("{}.1", reference.trim_end_matches("(1)"));
            assert!(
                pages.join(&file).exists(),
                "{reference} is named but {file} was not written"
            );
            named += 1;
        }
    }
    assert!(named >= 10, "only {named} references checked");
    let overview = sovereign(dir.path(), &["man"]);
    assert!(stdout(&overview).contains("sovereign\\-init(1)"));
}

/// `-v` logs the steps of render, verify and plan to stderr (and never a key).
#[test]
fn verbose_logs_the_steps_of_render_verify_and_plan() {
    let dir = config_with(|text| text);
    for (args, needle) in [
        (
            &["-v", "router", "render"][..],
            "rendered sovereign.uci for openwrt",
        ),
        (
            &["-v", "verify", "--rendered"],
            "verified rendered sovereign.uci",
        ),
        (&["-v", "plan"], "rendered"),
    ] {
        let output = sovereign(dir.path(), args);
        let err = stderr(&output);
        assert!(err.contains("INFO"), "{args:?}: no log in\n{err}");
        assert!(err.contains(needle), "{args:?}: `{needle}` not in\n{err}");
        assert!(
            !err.contains("PrivateKey") && !err.contains("private_key"),
            "{err}"
        );
    }
}

/// The HTML report tells open from closed at a glance (different classes and
/// colours for "allow ok" and "deny ok"), and records when, by which version and
/// from which input (its SHA-256) it was made.
#[test]
fn the_html_report_separates_open_from_closed_and_records_its_provenance() {
    use sha2::Digest as _;
    let dir = config_with(|text| text);
    let out = sovereign(
        dir.path(),
        &["verify", "--rendered", "--html", "report.html"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(
        html.contains("<td class=\"open\""),
        "allowed cells are marked open"
    );
    assert!(
        html.contains("<td class=\"ok\""),
        "denied cells keep their own class"
    );
    assert!(html.contains(".matrix td.open{background:#dce8fb}"));
    assert!(html.contains(".matrix td.ok{background:#e3f6e7}"));
    let version = format!(
        "<meta name=\"sovereign-version\" content=\"{}\">",
        env!("CARGO_PKG_VERSION")
    );
    assert!(html.contains(&version), "{version}");
    assert!(html.contains("<meta name=\"generated\" content=\"20"));
    let toml = std::fs::read(dir.path().join("sovereign.toml")).unwrap();
    let sha: String = sha2::Sha256::digest(&toml)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        html.contains(&format!("(sha256 {sha})")),
        "the input's hash is recorded"
    );
}
