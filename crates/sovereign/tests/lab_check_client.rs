//! `sovereign check` (issue 6) and `sovereign client test` (issue 9) as a user runs
//! them: the real binary, inside the lab's namespaces, against the AI server's API
//! emulator through the WireGuard tunnel and directly from the LAN. Needs root and
//! the lab's tools: skipped with a printed reason locally, a failure with CI=true.

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use sovereign_lab::{AgentCommand, ApiServer, Lab, LabName, LabOptions, prereq, slot};
use sovereign_model::Deployment;

fn unique_name() -> LabName {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    LabName::new(&format!("c{}x{n}", std::process::id() % 100_000)).unwrap()
}

fn lab() -> Lab {
    // lan_api: a LAN device may use the API, so "directly from the LAN" is a plain host.
    let mut d = Deployment::reference();
    d.policy.lan_api = true;
    let options = LabOptions {
        name: unique_name(),
        peers: 1,
        agent: AgentCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_sovereign")),
            args: vec!["lab".into(), "_serve".into()],
        },
        api_server: ApiServer::Emulator,
    };
    Lab::up(&d, options).unwrap()
}

fn api(lab: &Lab) -> SocketAddrV4 {
    let d = &lab.topology().deployment;
    SocketAddrV4::new(d.server.address, d.server.api_port)
}

/// `sovereign ARGS` inside a node's namespace, as a user whose HOME is `home` (and
/// whose working directory holds no sovereign.toml).
fn sovereign_in(lab: &Lab, node: &str, home: &Path, args: &[&str]) -> Output {
    let netns = &lab.topology().node(node).unwrap().netns;
    Command::new("ip")
        .args(["netns", "exec", netns, env!("CARGO_BIN_EXE_sovereign")])
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("SOVEREIGN_CONFIG")
        .output()
        .unwrap()
}

fn report(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn assert_all_checks_pass(output: &Output, what: &str) {
    let value = report(output);
    let summary = &value["summary"];
    assert_eq!(output.status.code(), Some(0), "{what}: {value:#}");
    assert_eq!(summary["failed"], 0, "{what}: {value:#}");
    assert_eq!(summary["skipped"], 0, "{what}: {value:#}");
    assert!(
        summary["passed"].as_u64().unwrap() > 10,
        "{what}: {value:#}"
    );
}

#[test]
fn sovereign_check_passes_through_the_tunnel_and_from_the_lan() {
    if !prereq::available_or_skip("sovereign_check_passes_through_the_tunnel") {
        return;
    }
    let _slot = slot::acquire().unwrap();
    let lab = lab();
    let home = tempfile::tempdir().unwrap();
    let url = format!("http://{}", api(&lab));
    for node in ["v1", "dev"] {
        let output = sovereign_in(&lab, node, home.path(), &["check", "--url", &url, "--json"]);
        assert_all_checks_pass(&output, &format!("sovereign check from {node}"));
    }
    // The same command from the internet is stopped by the firewall: a failed check.
    let output = sovereign_in(
        &lab,
        "net",
        home.path(),
        &[
            "check",
            "--url",
            &url,
            "--request-timeout",
            "2",
            "--timeout",
            "5",
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", report(&output));
}

#[test]
fn client_test_passes_on_a_vpn_client_through_the_tunnel() {
    if !prereq::available_or_skip("client_test_passes_on_a_vpn_client") {
        return;
    }
    let _slot = slot::acquire().unwrap();
    let lab = lab();
    let home = tempfile::tempdir().unwrap();
    let url = format!("http://{}", api(&lab));
    let output = sovereign_in(
        &lab,
        "v1",
        home.path(),
        &["client", "test", "--url", &url, "--json"],
    );
    assert_all_checks_pass(&output, "sovereign client test from v1");
    // Human output too: the summary table a user reads.
    let output = sovereign_in(&lab, "v1", home.path(), &["client", "test", "--url", &url]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // Nothing was written into the user's home by a test run.
    assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 0);
}
