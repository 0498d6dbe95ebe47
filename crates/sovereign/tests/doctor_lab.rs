//! `sovereign doctor` (issue 18) proven by breaking each layer of a real lab: the
//! binary runs in the VPN client's namespace against what `sovereign client setup`
//! wrote there, with `--ssh` to Debian's sshd on the lab router where the router's
//! view is needed. Each fault is injected, doctor must name its layer and cause
//! (and no other layer), then the fault is repaired and doctor must pass again.
//! One lab, the faults in sequence. Needs root and the lab's tools: skipped with a
//! printed reason locally, a failure with CI=true.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sovereign_lab::{AgentCommand, ApiServer, Lab, LabError, LabName, LabOptions, prereq, slot};
use sovereign_model::Deployment;
use sovereign_remote::testing::{Sshd, skip_reason};
use sovereign_wg::{ClientMaterial, Key};

const SOVEREIGN: &str = env!("CARGO_BIN_EXE_sovereign");
const SSH_PORT: u16 = 2222;

fn lab() -> Lab {
    let name = LabName::new(&format!("d{}", std::process::id() % 100_000)).unwrap();
    let options = LabOptions {
        name,
        peers: 1,
        agent: AgentCommand {
            program: PathBuf::from(SOVEREIGN),
            args: vec!["lab".into(), "_serve".into()],
        },
        api_server: ApiServer::Emulator,
    };
    Lab::up(&Deployment::reference(), options).unwrap()
}

/// The bundle `sovereign peer export lab1` would write for the lab's VPN client.
fn write_bundle(lab: &Lab, path: &Path) {
    let keys = lab.state_dir().join("keys");
    let read = |file: &str| {
        let text = std::fs::read_to_string(keys.join(file)).unwrap();
        Key::from_base64(text.trim()).unwrap()
    };
    let deployment = lab.topology().deployment.clone();
    let peer = deployment.peers[0].clone();
    let material = ClientMaterial {
        private_key: Some(read(&format!("{}.key", peer.name))),
        preshared_key: Some(read(&format!("{}.psk", peer.name))),
        router_public_key: read("router.key").public_key(),
        deployment,
        peer,
    };
    std::fs::write(path, material.bundle().to_json()).unwrap();
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A command in a lab namespace.
fn sh_in(netns: &str, program: &str, args: &[&str]) -> String {
    let output = Command::new("ip")
        .args(["netns", "exec", netns, program])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} in {netns}: {}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

struct Doctor {
    /// The VPN client's namespace.
    netns: String,
    home: PathBuf,
    /// `PATH` with the ssh that reaches the lab router.
    path: String,
    ssh: String,
    server_ssh: String,
    timings: Vec<(String, Duration)>,
}

impl Doctor {
    fn run(&mut self, what: &str, with_ssh: bool) -> Value {
        let netns = &self.netns;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", netns, SOVEREIGN, "doctor", "--json"])
            .args(["--timeout", "2", "--handshake-wait", "2"])
            .current_dir(&self.home)
            .env("HOME", &self.home)
            .env("PATH", &self.path)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("SOVEREIGN_CONFIG");
        if with_ssh {
            command.args(["--ssh", &self.ssh, "--port", &SSH_PORT.to_string()]);
            command.args([
                "--server-ssh",
                &self.server_ssh,
                "--server-port",
                &SSH_PORT.to_string(),
            ]);
        }
        let started = Instant::now();
        let output = command.output().unwrap();
        let elapsed = started.elapsed();
        let label = if with_ssh {
            format!("{what} --ssh")
        } else {
            what.to_string()
        };
        self.timings.push((label, elapsed));
        let value: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", text(&output)));
        let code = if value["ok"] == true { 0 } else { 1 };
        assert_eq!(output.status.code(), Some(code), "{what}: {value:#}");
        value
    }

    fn passes(&mut self, what: &str, with_ssh: bool) {
        let value = self.run(what, with_ssh);
        assert_eq!(value["ok"], true, "{what}: {value:#}");
        assert_eq!(value["first_failure"], Value::Null, "{what}: {value:#}");
        let layers = value["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 9, "{what}: {value:#}");
        for layer in layers {
            assert_eq!(layer["status"], "pass", "{what}: {value:#}");
        }
    }

    fn fails(&mut self, what: &str, with_ssh: bool, layer: &str, cause: &str) -> Value {
        let value = self.run(what, with_ssh);
        assert_eq!(value["first_failure"], layer, "{what}: {value:#}");
        let failing: Vec<&Value> = value["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["status"] == "fail")
            .collect();
        assert_eq!(failing.len(), 1, "{what}: one layer fails: {value:#}");
        assert_eq!(failing[0]["layer"], layer, "{what}: {value:#}");
        assert_eq!(failing[0]["cause"], cause, "{what}: {value:#}");
        assert!(failing[0]["fix"].is_string(), "{what}: {value:#}");
        value
    }
}

/// An HTTP request from inside a namespace (the lab's small client has no DELETE).
fn http_in(
    netns: &str,
    target: SocketAddrV4,
    method: &'static str,
    path: &'static str,
    body: String,
) -> String {
    sovereign_lab::run_in_netns(netns, move || {
        let mut stream = TcpStream::connect_timeout(&target.into(), Duration::from_secs(2))
            .map_err(|e| LabError::Unsupported(e.to_string()))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        Ok::<String, LabError>(answer)
    })
    .unwrap()
    .unwrap()
}

/// The lab's emulator again, bound to 127.0.0.1 only (the wrong bind).
fn loopback_emulator(lab: &Lab) -> Child {
    let d = &lab.topology().deployment;
    let netns = &lab.topology().node("srv").unwrap().netns;
    let mut child = Command::new("ip")
        .args([
            "netns", "exec", netns, SOVEREIGN, "lab", "_serve", "--node", "srv",
        ])
        .args([
            "--listen",
            &format!("tcp:api:127.0.0.1:{}", d.server.api_port),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

#[test]
fn doctor_names_each_broken_layer_in_the_lab() {
    if !prereq::available_or_skip("doctor_lab") {
        return;
    }
    if let Some(reason) = skip_reason() {
        eprintln!("skipping doctor_lab: {reason}");
        return;
    }
    let _slot = slot::acquire().unwrap();
    let started = Instant::now();
    let mut lab = lab();
    let lab_up = started.elapsed();
    let topology = lab.topology().clone();
    let d = topology.deployment.clone();
    let rtr = topology.router().netns.clone();
    let v1 = topology.node("v1").unwrap().clone();
    let dev = topology.node("dev").unwrap().netns.clone();
    let tunnel = v1.tunnel.clone().unwrap();
    let api = SocketAddrV4::new(d.server.address, d.server.api_port);

    // The client as a user leaves it after `client setup` (the lab brought the
    // tunnel up itself, as `--up` would).
    let home = tempfile::tempdir().unwrap();
    let bundle = home.path().join("lab1.peer.json");
    write_bundle(&lab, &bundle);
    let wg_dir = home.path().join("wg");
    let setup = Command::new("ip")
        .args(["netns", "exec", &v1.netns, SOVEREIGN, "client", "setup"])
        .args(["--bundle", &bundle.to_string_lossy(), "--offline"])
        .args([
            "--interface",
            &tunnel.interface,
            "--wg-dir",
            &wg_dir.to_string_lossy(),
        ])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert!(setup.status.success(), "client setup: {}", text(&setup));
    let tunnel_config = wg_dir.join(format!("{}.conf", tunnel.interface));

    // The admin's ssh to the router, from a LAN device (when the tunnel is broken,
    // the router is still reachable from home).
    let sshd = Sshd::start(&rtr, SocketAddrV4::new(d.lan.router_address, SSH_PORT)).unwrap();
    let inner = sshd.ssh_wrapper_dir().unwrap();
    let outer = home.path().join("bin");
    std::fs::create_dir_all(&outer).unwrap();
    // The server's sshd: the lab's firewall lets only admin hosts reach the
    // server's ssh port, and the lab's own listener holds that port, so doctor's
    // `--server-ssh` reaches this one on the server's loopback, from inside the
    // server's namespace. What it reads (`ss -Hltn` there) is the server's truth.
    let srv = topology.node("srv").unwrap().netns.clone();
    let server_sshd = Sshd::start(
        &srv,
        SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, SSH_PORT),
    )
    .unwrap();
    let server_inner = server_sshd.ssh_wrapper_dir().unwrap();
    let wrapper = outer.join("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \" $* \" in\n\
             *\" {server} \"*) exec ip netns exec {srv} {} \"$@\" ;;\n\
             *) exec ip netns exec {dev} {} \"$@\" ;;\nesac\n",
            server_inner.join("ssh").display(),
            inner.join("ssh").display(),
            server = server_sshd.destination(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut doctor = Doctor {
        netns: v1.netns.clone(),
        home: home.path().to_path_buf(),
        path: format!(
            "{}:{}",
            outer.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
        ssh: sshd.destination(),
        server_ssh: server_sshd.destination(),
        timings: Vec::new(),
    };
    let router_dir = lab.router_dir();
    let router_setup = router_dir.join("setup.sh");
    let reapply_router = || {
        let output = Command::new("ip")
            .args(["netns", "exec", &rtr, "sh", &router_setup.to_string_lossy()])
            .current_dir(&router_dir)
            .output()
            .unwrap();
        assert!(output.status.success(), "setup.sh: {}", text(&output));
    };
    let router_wg = d.wireguard.interface.clone();
    let client_public = {
        let key = std::fs::read_to_string(
            lab.state_dir()
                .join("keys")
                .join(format!("{}.key", tunnel.peer_name)),
        )
        .unwrap();
        Key::from_base64(key.trim())
            .unwrap()
            .public_key()
            .to_base64()
    };

    // A healthy lab passes, with and without the router's view.
    doctor.passes("healthy", false);
    doctor.passes("healthy", true);

    // 1. The emulator stopped: refused, in the server layer.
    lab_stop_api(&mut lab);
    doctor.fails("1 emulator stopped", false, "server", "refused");
    doctor.fails("1 emulator stopped", true, "server", "server-down");
    lab_start_api(&mut lab);
    doctor.passes("1 repaired", false);

    // 4. The peer removed from the router (revoked); the client's next session
    //    needs a handshake the router will not answer.
    sh_in(
        &rtr,
        "wg",
        &["set", &router_wg, "peer", &client_public, "remove"],
    );
    lab.reset_client("v1").unwrap();
    let v = doctor.fails("4 peer removed, client only", false, "handshake", "silence");
    assert!(
        v["layers"][2]["candidates"].as_array().unwrap().len() >= 4,
        "{v:#}"
    );
    doctor.fails("4 peer removed", true, "handshake", "peer-not-on-router");
    reapply_router();
    lab.reset_client("v1").unwrap();
    doctor.passes("4 repaired", true);

    // 7. The API rule deleted from the router's ruleset.
    let ruleset = sh_in(
        &rtr,
        "nft",
        &["-j", "-a", "list", "table", "inet", "sovereign"],
    );
    let doc: Value = serde_json::from_str(&ruleset).unwrap();
    let mut deleted = 0;
    for item in doc["nftables"].as_array().unwrap() {
        let Some(rule) = item.get("rule") else {
            continue;
        };
        let json = rule["expr"].to_string();
        if json.contains("\"dport\"") && json.contains(&format!("\"right\":{}", d.server.api_port))
        {
            let handle = rule["handle"].to_string();
            let chain = rule["chain"].as_str().unwrap();
            sh_in(
                &rtr,
                "nft",
                &[
                    "delete",
                    "rule",
                    "inet",
                    "sovereign",
                    chain,
                    "handle",
                    &handle,
                ],
            );
            deleted += 1;
        }
    }
    assert!(deleted > 0, "no API rule in {ruleset}");
    // The rendered ruleset rejects what it does not allow (ICMP admin-prohibited):
    // seen from the client alone.
    doctor.fails("7 API rule deleted", false, "firewall", "rejected");
    // A drop in front instead of the reject: silence, which only the router's
    // counters place.
    let api_port = d.server.api_port.to_string();
    sh_in(&rtr, "nft", &["add", "table", "inet", "doctorfault"]);
    sh_in(
        &rtr,
        "nft",
        &["add chain inet doctorfault dropper { type filter hook forward priority -10 ; }"],
    );
    sh_in(
        &rtr,
        "nft",
        &[&format!(
            "add rule inet doctorfault dropper tcp dport {api_port} drop"
        )],
    );
    doctor.fails("7 API rule deleted, dropped", false, "firewall", "silence");
    doctor.fails(
        "7 API rule deleted, dropped",
        true,
        "firewall",
        "dropped-by-router",
    );
    sh_in(&rtr, "nft", &["delete", "table", "inet", "doctorfault"]);
    lab.restore_ruleset().unwrap();
    doctor.passes("7 repaired", true);

    // 9. The server's route removed on the client: traffic leaves by the underlay.
    let routes = sh_in(
        &v1.netns,
        "ip",
        &["-4", "route", "show", "dev", &tunnel.interface],
    );
    let removed: Vec<String> = routes
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|net| {
            net.parse::<ipnet::Ipv4Net>()
                .is_ok_and(|n| n.contains(&d.server.address))
        })
        .collect();
    assert!(!removed.is_empty(), "{routes}");
    for net in &removed {
        sh_in(
            &v1.netns,
            "ip",
            &["route", "del", net, "dev", &tunnel.interface],
        );
    }
    doctor.fails(
        "9 route removed",
        false,
        "route",
        "route-not-through-tunnel",
    );
    for net in &removed {
        sh_in(
            &v1.netns,
            "ip",
            &["route", "add", net, "dev", &tunnel.interface],
        );
    }
    doctor.passes("9 repaired", false);

    // 8. An MTU black hole: the client's hop into the internet carries less than
    //    the tunnel needs (1420 + 60 B of WireGuard over IPv4), and the oversized
    //    frames vanish without any "fragmentation needed" (as behind a PPPoE line
    //    whose ICMP is filtered). Small requests still work. The router's MSS clamp
    //    cannot help: it only knows its own links.
    let net = topology.node("net").unwrap().netns.clone();
    let links = sh_in(&net, "ip", &["-d", "-o", "link", "show"]);
    let hop = links
        .lines()
        .find(|l| l.contains(&format!("link-netns {}", v1.netns)))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(|name| {
            name.trim_end_matches(':')
                .split('@')
                .next()
                .unwrap()
                .to_string()
        })
        .unwrap_or_else(|| panic!("no link to {} in {links}", v1.netns));
    sh_in(&net, "ip", &["link", "set", &hop, "mtu", "1400"]);
    doctor.fails("8 MTU black hole", false, "mtu", "mtu-black-hole");
    // The fix doctor prints confirms it.
    sh_in(
        &v1.netns,
        "ip",
        &["link", "set", &tunnel.interface, "mtu", "1280"],
    );
    doctor.passes("8 confirmed by doctor's fix", false);
    sh_in(
        &v1.netns,
        "ip",
        &[
            "link",
            "set",
            &tunnel.interface,
            "mtu",
            &d.wireguard.mtu.to_string(),
        ],
    );
    sh_in(&net, "ip", &["link", "set", &hop, "mtu", "1500"]);
    doctor.passes("8 repaired", false);

    // 2. The emulator bound to 127.0.0.1 only.
    lab_stop_api(&mut lab);
    let mut loopback = loopback_emulator(&lab);
    let v = doctor.fails("2 bound to 127.0.0.1", false, "server", "refused");
    assert!(
        v["layers"][5]["candidates"]
            .to_string()
            .contains("127.0.0.1"),
        "{v:#}"
    );
    doctor.fails("2 bound to 127.0.0.1", true, "server", "wrong-bind");
    let _ = loopback.kill();
    let _ = loopback.wait();
    lab_start_api(&mut lab);
    doctor.passes("2 repaired", false);

    // 10. No chat model on the server.
    let deleted = http_in(
        &v1.netns,
        api,
        "DELETE",
        "/api/delete",
        r#"{"model":"toy:latest"}"#.into(),
    );
    assert!(deleted.starts_with("HTTP/1.1 200"), "{deleted}");
    doctor.fails("10 no chat model", false, "model", "no-chat-model");
    let pulled = http_in(
        &v1.netns,
        api,
        "POST",
        "/api/pull",
        r#"{"model":"toy:latest","stream":false}"#.into(),
    );
    assert!(pulled.starts_with("HTTP/1.1 200"), "{pulled}");
    doctor.passes("10 repaired", false);

    // 3. The router's WireGuard port dropped on the WAN, before its accept rule.
    let port = d.wireguard.listen_port.to_string();
    sh_in(&rtr, "nft", &["add", "table", "inet", "doctorfault"]);
    sh_in(
        &rtr,
        "nft",
        &["add chain inet doctorfault in { type filter hook input priority -10 ; }"],
    );
    sh_in(
        &rtr,
        "nft",
        &[&format!(
            "add rule inet doctorfault in udp dport {port} drop"
        )],
    );
    lab.reset_client("v1").unwrap();
    doctor.fails("3 WAN port dropped", true, "handshake", "wan-port-blocked");
    sh_in(&rtr, "nft", &["delete", "table", "inet", "doctorfault"]);
    lab.reset_client("v1").unwrap();
    doctor.passes("3 repaired", true);

    // 5. The router's key replaced without exporting the bundles again.
    let new_key = home.path().join("new-router.key");
    std::fs::write(&new_key, Key::generate_private().unwrap().to_base64()).unwrap();
    sh_in(
        &rtr,
        "wg",
        &["set", &router_wg, "private-key", &new_key.to_string_lossy()],
    );
    lab.reset_client("v1").unwrap();
    doctor.fails("5 router rekeyed", true, "handshake", "router-key-changed");
    reapply_router();
    lab.reset_client("v1").unwrap();
    doctor.passes("5 repaired", true);

    // 6. The client's endpoint changed to a wrong address, in the config and live
    //    (as when the router's dynamic IP changed under its DNS name).
    let original = std::fs::read_to_string(&tunnel_config).unwrap();

    let right = sovereign_wg::quick::value(&original, "Endpoint").unwrap();
    // An address next to the router's own WAN address, where nothing answers.
    let right_ip: std::net::Ipv4Addr = right.rsplit_once(':').unwrap().0.parse().unwrap();
    let wrong = format!(
        "{}:{port}",
        std::net::Ipv4Addr::from(u32::from(right_ip) + 9)
    );
    std::fs::write(&tunnel_config, original.replace(&right, &wrong)).unwrap();
    // The live interface gets the same, as a fresh peer (a new session).
    let setconf = lab.state_dir().join(format!("{}.conf", tunnel.interface));
    let wrong_setconf = home.path().join("wrong-endpoint.conf");
    let live = std::fs::read_to_string(&setconf).unwrap();
    assert!(live.contains(&right), "{live}");
    std::fs::write(&wrong_setconf, live.replace(&right, &wrong)).unwrap();
    sh_in(
        &v1.netns,
        "wg",
        &[
            "setconf",
            &tunnel.interface,
            &wrong_setconf.to_string_lossy(),
        ],
    );
    doctor.fails(
        "6 wrong endpoint, client only",
        false,
        "handshake",
        "silence",
    );
    doctor.fails("6 wrong endpoint", true, "handshake", "wrong-endpoint");
    std::fs::write(&tunnel_config, &original).unwrap();
    lab.reset_client("v1").unwrap();
    doctor.passes("6 repaired", true);

    let timings = std::mem::take(&mut doctor.timings);
    eprintln!("doctor_lab: lab up {} ms", lab_up.as_millis());
    for (what, took) in &timings {
        eprintln!("doctor_lab: {what:<34} {:>6} ms", took.as_millis());
    }
    eprintln!("doctor_lab: total {} ms", started.elapsed().as_millis());
    drop(sshd);
    drop(server_sshd);
    lab.down().unwrap();
}

fn lab_stop_api(lab: &mut Lab) {
    lab.stop_api().unwrap();
}

fn lab_start_api(lab: &mut Lab) {
    lab.start_api().unwrap();
}
