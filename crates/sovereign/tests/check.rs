//! `sovereign check` through the real binary, against the emulator (a test double).

use std::process::Command;

use ollama_emulator::{Emulator, EmulatorConfig};

fn check(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sovereign"))
        .arg("check")
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_remove("SOVEREIGN_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn a_conforming_server_passes_with_exit_0() {
    let emulator = Emulator::start("127.0.0.1:0", EmulatorConfig::default()).unwrap();
    let output = check(&["--url", &emulator.base_url(), "--json"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["summary"]["failed"], 0);
    assert!(report["summary"]["passed"].as_u64().unwrap() >= 20);
}

#[test]
fn an_older_server_skips_newer_apis_without_failing() {
    let config = EmulatorConfig {
        version: "0.13.0".into(),
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start("127.0.0.1:0", config).unwrap();
    let output = check(&["--url", &emulator.base_url(), "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let skipped: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "skip")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        skipped.iter().any(|id| id.starts_with("anthropic.")),
        "{skipped:?}"
    );
    assert!(
        skipped.iter().any(|id| id.starts_with("openai.responses")),
        "{skipped:?}"
    );
}

#[test]
fn an_unreachable_server_fails_with_exit_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = check(&["--url", &format!("127.0.0.1:{port}"), "--timeout", "10"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("fail"));
}

#[test]
fn a_bad_url_is_a_usage_error() {
    let output = check(&["--url", "https://example.invalid"]);
    assert_eq!(output.status.code(), Some(2));
}
