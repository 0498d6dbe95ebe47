//! `sovereign router apply|audit|status --ssh` end to end: the real binary, run from
//! a LAN device of the lab, drives Debian's sshd on the lab's router node, which runs
//! the rendered Linux config (nftables, userspace WireGuard). Root only: skipped with
//! a printed reason when a prerequisite is missing, a failure with CI=true.
//!
//! The lab's router already answers TCP 22 on every address with its HTTP stand-in
//! for "router services", so sshd listens on the router's LAN address, port 2222;
//! the rendered firewall accepts every router port from the LAN bridge, so this is
//! the same "LAN device -> router services: allow" cell as port 22.

use std::net::SocketAddrV4;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use sovereign_lab::{AgentCommand, ApiServer, Lab, LabName, LabOptions, http, prereq, slot};
use sovereign_remote::testing::{Sshd, skip_reason};
use sovereign_remote::{
    ApplyError, ApplyOptions, LinuxConfig, RouterConfig, SshTarget, SshTransport, Transport,
};

const SSH_PORT: u16 = 2222;
const SOVEREIGN: &str = env!("CARGO_BIN_EXE_sovereign");

#[test]
fn the_binary_applies_audits_and_inspects_the_lab_router_over_ssh() {
    if !prereq::available_or_skip("router_apply_lab") {
        return;
    }
    if let Some(reason) = skip_reason() {
        eprintln!("skipping router_apply_lab: {reason}");
        return;
    }
    // At most two labs at once on this host; waiting for a slot is not part of the run.
    let _slot = slot::acquire().unwrap();
    let started = Instant::now();
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    let mut mark = {
        let mut last = Instant::now();
        move |timings: &mut Vec<(&'static str, Duration)>, what: &'static str| {
            timings.push((what, last.elapsed()));
            last = Instant::now();
        }
    };

    // 1. A deployment file for the Linux target, shaped exactly like the lab's copy of
    //    it (so the binary renders what the lab applied), and the lab built from it.
    let dir = tempfile::Builder::new()
        .prefix("sovereign-router-apply-lab.")
        .tempdir_in("/var/tmp")
        .unwrap();
    let config = dir.path().join("sovereign.toml");
    let name = LabName::new(&format!("ra{}", std::process::id() % 100_000_000)).unwrap();
    let run = Sovereign::new(&config);
    run.ok(&["init", "--yes", "--router", "linux"]);
    let text = std::fs::read_to_string(&config).unwrap();
    let text = replace_line(
        &text,
        "interface = \"wg0\"",
        &format!("interface = \"{}\"", name.router_wireguard()),
    );
    let text = replace_line(&text, "endpoint = ", "endpoint = \"192.168.2.90:51820\"");
    let text = replace_line(
        &text,
        "# client_allowed_ips = ",
        "client_allowed_ips = [\"192.168.250.0/24\", \"10.10.10.0/24\", \"203.0.113.10/32\"]",
    );
    std::fs::write(&config, &text).unwrap();
    let user = sovereign_model::load(&config).unwrap();
    let lab = Lab::up(&user, lab_options(name.clone())).unwrap();
    mark(&mut timings, "lab up");
    eprintln!(
        "router_apply_lab: the lab's own setup took {} ms",
        lab.state().setup.total_ms
    );

    let mut text = text;
    for peer in &lab.topology().deployment.peers {
        text = sovereign_model::upsert_peer(&text, peer).unwrap();
    }
    std::fs::write(&config, &text).unwrap();
    assert_eq!(
        sovereign_model::load(&config).unwrap(),
        lab.topology().deployment,
        "the file describes the deployment the lab runs"
    );
    adopt_lab_keys(&lab, &sovereign_model::state_dir_for(&config));

    let d = lab.topology().deployment.clone();
    let wg = d.wireguard.interface.clone();
    let rtr = lab.topology().router().netns.clone();
    let dev = lab.topology().node("dev").unwrap().netns.clone();
    let v1 = lab.topology().node("v1").unwrap().netns.clone();
    let sshd = Sshd::start(&rtr, SocketAddrV4::new(d.lan.router_address, SSH_PORT)).unwrap();
    let run = run.inside(&dev, sshd.ssh_wrapper_dir().unwrap());
    let ssh = [
        "--ssh".to_string(),
        sshd.destination(),
        "--port".to_string(),
        SSH_PORT.to_string(),
    ];
    let with_ssh = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(ssh.iter().cloned());
        all
    };
    mark(&mut timings, "sshd up");

    // What the lab applied with setup.sh is what the binary renders: no drift, no diff.
    let audit = run.json(&with_ssh(&["router", "audit", "--json"]), 0);
    assert_eq!(audit["drift"], Value::Array(vec![]), "{audit:#}");
    assert_eq!(audit["verification"]["passed"], true, "{audit:#}");
    let preview = run.ok(&with_ssh(&["router", "apply", "--dry-run"]));
    assert!(
        stdout(&preview).contains("already matches"),
        "{}",
        stdout(&preview)
    );
    mark(&mut timings, "audit + dry run of the lab as built");

    // 2. The changed deployment: a new peer and VPN -> server SSH.
    let server_ssh = SocketAddrV4::new(d.server.address, d.server.ssh_port);
    let server_api = SocketAddrV4::new(d.server.address, d.server.api_port);
    assert!(
        !answers(&v1, server_ssh),
        "VPN -> server:22 is closed before the change"
    );
    run.ok(&["peer", "add", "phone"]);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        replace_line(&text, "vpn_ssh = false", "vpn_ssh = true"),
    )
    .unwrap();
    let changed = sovereign_model::load(&config).unwrap();
    let phone = changed.peer("phone").unwrap().public_key.clone();
    let ssh_rule = "vpn-peer -> server-ssh: allow";

    let preview = run.ok(&with_ssh(&["router", "apply", "--dry-run"]));
    let diff = stdout(&preview);
    assert!(
        diff.contains(ssh_rule) && diff.contains(&phone),
        "the dry run shows the new rule and peer:\n{diff}"
    );
    // The same preview, machine-readable.
    let report = run.json(&with_ssh(&["router", "apply", "--dry-run", "--json"]), 0);
    assert_eq!(report["dry_run"], true, "{report:#}");
    assert!(
        report["diff"]
            .as_str()
            .unwrap_or_default()
            .contains(ssh_rule),
        "{report:#}"
    );
    assert!(
        !nft_ruleset(&rtr).to_string().contains(ssh_rule),
        "a dry run changes nothing"
    );

    mark(&mut timings, "peer add + dry run of the change");
    let applied = run.ok(&with_ssh(&[
        "-vv",
        "router",
        "apply",
        "--confirm-timeout",
        "30",
    ]));
    let report = stdout(&applied);
    assert!(
        report.contains("reconnect over a fresh ssh session: a new ssh session reached the router")
            && report.contains("confirm: cancel the rollback and clean up"),
        "{report}"
    );
    // The log follows every ssh call and step, and never shows a key it uploaded.
    let log = String::from_utf8_lossy(&applied.stderr);
    assert!(
        log.contains("ssh finished") && log.contains("fresh=true"),
        "{log}"
    );
    for key_file in ["router.key", "peers/phone.psk"] {
        let path = sovereign_model::state_dir_for(&config).join(key_file);
        let key = std::fs::read_to_string(&path).unwrap();
        assert!(
            !log.contains(key.trim()),
            "{key_file} is in the log:\n{log}"
        );
    }
    mark(&mut timings, "apply the change");
    assert!(
        nft_ruleset(&rtr).to_string().contains(ssh_rule),
        "the live ruleset has the new rule"
    );
    let peers = in_netns(&rtr, &["wg", "show", &wg, "peers"]);
    assert!(peers.contains(&phone), "{peers}");
    assert!(peers.contains(&d.peers[0].public_key), "{peers}");
    assert_no_rollback_pending(&rtr, &dev, &sshd);
    assert!(
        answers(&v1, server_ssh),
        "VPN -> server:22 opens with vpn_ssh"
    );
    assert!(
        answers(&v1, server_api),
        "the lab peer's tunnel survived the apply"
    );
    let other = SocketAddrV4::new(
        d.server.address,
        sovereign_lab::topology::server_other_port(&d),
    );
    assert!(!answers(&v1, other), "VPN -> server other stays closed");
    mark(&mut timings, "check the live state");

    // 3. Audit right after: clean. Then drift by hand, which audit names.
    let audit = run.json(&with_ssh(&["router", "audit", "--json"]), 0);
    assert_eq!(audit["drift"], Value::Array(vec![]), "{audit:#}");
    assert_eq!(audit["verification"]["passed"], true, "{audit:#}");
    let by_hand = "by hand: vpn -> server other";
    in_netns(
        &rtr,
        &[
            "nft",
            "insert",
            "rule",
            "inet",
            "sovereign",
            "forward",
            "iifname",
            &wg,
            "tcp",
            "dport",
            &other.port().to_string(),
            "accept",
            "comment",
            &format!("\"{by_hand}\""),
        ],
    );
    in_netns(&rtr, &["wg", "set", &wg, "peer", &phone, "remove"]);
    assert!(answers(&v1, other), "the hand-made rule opens the port");
    let audit = run.json(&with_ssh(&["router", "audit", "--json"]), 1);
    let drift = audit["drift"].as_array().unwrap();
    assert!(
        drift.iter().any(|x| x["kind"] == "rule"
            && x["change"] == "extra"
            && x["key"].as_str().unwrap().contains(by_hand)),
        "{audit:#}"
    );
    assert!(
        drift.iter().any(|x| x["kind"] == "peer"
            && x["change"] == "missing"
            && x["name"] == "phone"
            && x["key"] == phone.as_str()),
        "{audit:#}"
    );
    assert_eq!(drift.len(), 2, "{audit:#}");
    assert_eq!(
        audit["verification"]["passed"], false,
        "the verifier sees the opened port: {audit:#}"
    );
    let text = stdout(&run.exit(&with_ssh(&["router", "audit"]), 1));
    assert!(text.contains(by_hand) && text.contains("phone"), "{text}");
    mark(&mut timings, "audit clean, then drift");

    // Apply repairs the drift.
    run.ok(&with_ssh(&["router", "apply", "--confirm-timeout", "30"]));
    let audit = run.json(&with_ssh(&["router", "audit", "--json"]), 0);
    assert_eq!(audit["drift"], Value::Array(vec![]), "{audit:#}");
    assert!(!answers(&v1, other), "the hand-made rule is gone");
    mark(&mut timings, "apply repairs the drift");

    // 4. Status: peers by name with handshakes, rule counters.
    assert!(answers(&v1, server_api));
    let status = run.json(&with_ssh(&["router", "status", "--json"]), 0);
    assert_eq!(status["interface"], wg.as_str(), "{status:#}");
    assert_eq!(status["interface_up"], true, "{status:#}");
    let listed = status["peers"].as_array().unwrap();
    let lab1 = listed
        .iter()
        .find(|p| p["name"] == "lab1")
        .unwrap_or_else(|| panic!("{status:#}"));
    assert!(
        lab1["handshake_age_secs"].is_u64(),
        "lab1 talked: {status:#}"
    );
    assert!(lab1["rx_bytes"].as_u64().unwrap() > 0, "{status:#}");
    let phone_status = listed
        .iter()
        .find(|p| p["name"] == "phone")
        .unwrap_or_else(|| panic!("{status:#}"));
    assert!(
        phone_status["handshake_age_secs"].is_null(),
        "phone never connected"
    );
    let counters = status["counters"].as_array().unwrap();
    let api = counters
        .iter()
        .find(|c| c["role"] == "api" && c["comment"] == "vpn-peer -> server-api: allow")
        .unwrap_or_else(|| panic!("{status:#}"));
    assert!(
        api["packets"].as_u64().unwrap() > 0,
        "the API request above was counted: {status:#}"
    );
    assert!(
        counters.iter().any(|c| c["role"] == "wireguard"),
        "{status:#}"
    );
    mark(&mut timings, "status");

    // 5. A ruleset nft rejects changes nothing: fed to the engine through the
    //    library, over the same ssh path from the LAN device.
    let rendered = dir.path().join("rendered");
    run.ok(&["router", "render", "--out", &rendered.display().to_string()]);
    let ruleset = std::fs::read_to_string(rendered.join("nftables.nft")).unwrap();
    let broken = ruleset.replacen(
        "policy drop;\n",
        "policy drop;\n\t\tip saddr @allowed_admins accept comment \"a set nobody defined\"\n",
        1,
    );
    assert_ne!(broken, ruleset);
    let config = RouterConfig::Linux(LinuxConfig {
        nft_ruleset: broken,
        wg_interface: wg.clone(),
        wg_config: std::fs::read_to_string(rendered.join(format!("{wg}.conf"))).unwrap(),
    });
    let before = live_state(&rtr, &wg);
    let transport = from_lan_device(&dev, &sshd);
    let error = sovereign_remote::apply(
        &transport,
        &config,
        &ApplyOptions {
            confirm_timeout_secs: 30,
            ..ApplyOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&error, ApplyError::ValidationFailed { output } if output.contains("allowed_admins")),
        "{error}"
    );
    assert!(!error.rollback_armed());
    assert_eq!(live_state(&rtr, &wg), before, "nothing changed");
    assert_no_rollback_pending(&rtr, &dev, &sshd);
    mark(&mut timings, "failed validation");

    // 6. An apply whose confirmation never arrives: the new config goes live, then the
    //    router restores the previous ruleset and peers by itself.
    let confirmed = std::fs::read_to_string(&run.config).unwrap();
    std::fs::write(
        &run.config,
        replace_line(&confirmed, "vpn_ssh = true", "vpn_ssh = false"),
    )
    .unwrap();
    let before = live_state(&rtr, &wg);
    let unconfirmed = run.exit(
        &with_ssh(&["router", "apply", "--confirm-timeout", "10", "--no-confirm"]),
        1,
    );
    let error = String::from_utf8_lossy(&unconfirmed.stderr);
    assert!(error.contains("rollback is still armed"), "{error}");
    assert!(
        !nft_ruleset(&rtr).to_string().contains(ssh_rule),
        "the unconfirmed config went live"
    );
    let deadline = Instant::now() + Duration::from_secs(45);
    while live_state(&rtr, &wg) != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        live_state(&rtr, &wg),
        before,
        "the rollback restored the previous ruleset and peers"
    );
    let log = from_lan_device(&dev, &sshd)
        .run_fresh("cat /tmp/sovereign-rollback.log")
        .unwrap();
    assert!(log.stdout.contains("restored"), "{log:?}");
    assert!(answers(&v1, server_ssh), "VPN -> server:22 is open again");
    assert!(answers(&v1, server_api), "the lab peer's tunnel survived");
    std::fs::write(&run.config, confirmed).unwrap();
    run.json(&with_ssh(&["router", "audit", "--json"]), 0);
    mark(&mut timings, "unconfirmed apply rolls back");

    drop(sshd);
    lab.down().unwrap();
    mark(&mut timings, "teardown");
    for (what, took) in &timings {
        eprintln!("router_apply_lab: {what}: {} ms", took.as_millis());
    }
    eprintln!(
        "router_apply_lab: total {} ms",
        started.elapsed().as_millis()
    );
}

/// The `sovereign` binary with one config file, optionally inside a namespace with an
/// `ssh` on PATH that knows the lab key and the pinned host key.
struct Sovereign {
    config: PathBuf,
    netns: Option<(String, PathBuf)>,
}

impl Sovereign {
    fn new(config: &Path) -> Self {
        Sovereign {
            config: config.to_path_buf(),
            netns: None,
        }
    }

    fn inside(&self, netns: &str, ssh_dir: PathBuf) -> Self {
        Sovereign {
            config: self.config.clone(),
            netns: Some((netns.to_string(), ssh_dir)),
        }
    }

    fn output<S: AsRef<str>>(&self, args: &[S]) -> Output {
        let mut command = match &self.netns {
            Some((netns, ssh_dir)) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns, SOVEREIGN]);
                let path = std::env::var("PATH").unwrap_or_default();
                c.env("PATH", format!("{}:{path}", ssh_dir.display()));
                c
            }
            None => Command::new(SOVEREIGN),
        };
        command
            .arg("--config")
            .arg(&self.config)
            .args(args.iter().map(AsRef::as_ref))
            .output()
            .unwrap()
    }

    fn exit<S: AsRef<str>>(&self, args: &[S], code: i32) -> Output {
        let output = self.output(args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "sovereign {}\nstdout:\n{}\nstderr:\n{}",
            args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" "),
            stdout(&output),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn ok<S: AsRef<str>>(&self, args: &[S]) -> Output {
        self.exit(args, 0)
    }

    fn json<S: AsRef<str>>(&self, args: &[S], code: i32) -> Value {
        serde_json::from_slice(&self.exit(args, code).stdout).unwrap()
    }
}

fn lab_options(name: LabName) -> LabOptions {
    LabOptions {
        name,
        peers: 1,
        agent: AgentCommand {
            program: PathBuf::from(SOVEREIGN),
            args: vec!["lab".into(), "_serve".into()],
        },
        api_server: ApiServer::Emulator,
    }
}

/// The state dir of the config file holds the keys the lab generated (router key and
/// preshared keys), so the binary renders the very config the lab runs.
fn adopt_lab_keys(lab: &Lab, state: &Path) {
    let keys = lab.state_dir().join("keys");
    let peers = state.join("peers");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&peers)
        .unwrap();
    let copy = |from: PathBuf, to: PathBuf| {
        use std::io::Write as _;
        let text = std::fs::read_to_string(&from).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .unwrap()
            .write_all(text.trim().as_bytes())
            .unwrap();
    };
    copy(keys.join("router.key"), state.join("router.key"));
    for peer in &lab.topology().deployment.peers {
        let psk = format!("{}.psk", peer.name);
        copy(keys.join(&psk), peers.join(&psk));
    }
}

/// An ssh transport that runs the client inside the LAN device's namespace.
fn from_lan_device(dev: &str, sshd: &Sshd) -> SshTransport {
    let ssh = sshd.ssh_wrapper_dir().unwrap().join("ssh");
    let program = sshd.path("ssh-from-lan-device");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\nexec ip netns exec {dev} {} \"$@\"\n",
            ssh.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut target: SshTarget = sshd.target();
    target.program = program;
    SshTransport::new(target)
}

/// A GET from inside `netns` gets an HTTP answer.
fn answers(netns: &str, target: SocketAddrV4) -> bool {
    sovereign_lab::run_in_netns(netns, move || {
        http::get(target, "/", Duration::from_secs(2)).is_ok()
    })
    .unwrap()
}

fn in_netns(netns: &str, args: &[&str]) -> String {
    let output = Command::new("ip")
        .args(["netns", "exec", netns])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

fn nft_ruleset(netns: &str) -> Value {
    serde_json::from_str(&in_netns(netns, &["nft", "-j", "list", "ruleset"])).unwrap()
}

/// The router's table without counter values, and its WireGuard config with the
/// peers sorted (wireguard-go lists them in random order) and each key replaced by a
/// fingerprint, so a failed assertion never prints a secret.
fn live_state(netns: &str, wg: &str) -> (String, String) {
    let fingerprint = |secret: &str| {
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        secret.hash(&mut hasher);
        format!("(secret {:016x})", hasher.finish())
    };
    let mut sections: Vec<String> = Vec::new();
    let config = in_netns(netns, &["wg", "showconf", wg]);
    for line in config.lines().filter(|line| !line.trim().is_empty()) {
        let line = match line.split_once(" = ") {
            Some((key @ ("PrivateKey" | "PresharedKey"), secret)) => {
                format!("{key} = {}", fingerprint(secret))
            }
            _ => line.to_string(),
        };
        match sections.last_mut() {
            Some(section) if !line.starts_with('[') => {
                section.push_str(&line);
                section.push('\n');
            }
            _ => sections.push(format!("{line}\n")),
        }
    }
    sections.sort();
    (
        in_netns(netns, &["nft", "-s", "list", "table", "inet", "sovereign"]),
        sections.concat(),
    )
}

/// No rollback timer runs in the router and no apply left its lock or staging dir
/// (they live in sshd's private /tmp, so look over ssh).
fn assert_no_rollback_pending(rtr: &str, dev: &str, sshd: &Sshd) {
    let pids = Command::new("ip")
        .args(["netns", "pids", rtr])
        .output()
        .unwrap();
    for pid in stdout(&pids).split_whitespace() {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains("timer.sh"),
            "a rollback timer still runs: {cmdline}"
        );
    }
    let listing = from_lan_device(dev, sshd).run_fresh("ls -a /tmp").unwrap();
    assert!(listing.success(), "{listing:?}");
    let listing = listing.stdout;
    assert!(
        !listing.contains("sovereign-apply"),
        "the router's /tmp holds apply leftovers:\n{listing}"
    );
}

fn replace_line(text: &str, starts_with: &str, with: &str) -> String {
    let mut found = false;
    let out: String = text
        .lines()
        .map(|line| {
            if !found && line.trim_start().starts_with(starts_with) {
                found = true;
                format!("{with}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert!(found, "no line starting with {starts_with:?}");
    out
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
