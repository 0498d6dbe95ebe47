//! `status` and `warm` for real over HTTP against the Ollama API emulator, and the
//! `ss` parser against this machine's real sockets.

mod common;

use std::collections::BTreeMap;

use ollama_emulator::{Emulator, EmulatorConfig};
use sovereign_model::Deployment;
use sovereign_ollama::Client;
use sovereign_ollama::types::native::PullProgress;
use sovereign_server::linux::Systemd;
use sovereign_server::parse::ListenAddress;
use sovereign_server::status;
use sovereign_server::warm::{self, WarmObserver, WarmOutcome};
use sovereign_server::{RootedFs, ServiceSpec, ServiceState, SystemRunner};

fn emulator(version: &str) -> Emulator {
    let config = EmulatorConfig {
        version: version.into(),
        ..EmulatorConfig::default()
    };
    Emulator::start("127.0.0.1:0", config).expect("emulator starts")
}

#[test]
fn probe_reports_version_families_and_loaded_models() {
    let emulator = emulator("0.14.0");
    let client = Client::new(&emulator.base_url()).unwrap();
    client
        .warm(
            "toy:latest",
            sovereign_ollama::types::native::KeepAlive::Duration("10m".into()),
        )
        .unwrap();

    let api = status::probe_api(&client);
    assert!(api.reachable, "{:?}", api.error);
    assert_eq!(api.version.as_deref(), Some("0.14.0"));
    let available: BTreeMap<&str, bool> =
        api.families.iter().map(|f| (f.path, f.available)).collect();
    assert!(available["/v1/responses"]);
    assert!(available["/v1/messages"]);
    let loaded: Vec<&str> = api.loaded_models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(loaded, ["toy:latest"]);
}

#[test]
fn an_older_server_lacks_the_newer_families() {
    let emulator = emulator("0.13.3");
    let api = status::probe_api(&Client::new(&emulator.base_url()).unwrap());
    let available: BTreeMap<&str, bool> =
        api.families.iter().map(|f| (f.path, f.available)).collect();
    assert!(available["/v1/responses"]);
    assert!(!available["/v1/messages"]);
    assert!(api.loaded_models.is_empty());
}

#[test]
fn an_unreachable_server_is_reported_not_raised() {
    let emulator = emulator("0.14.0");
    let url = emulator.base_url();
    emulator.shutdown();
    let api = status::probe_api(&Client::new(&url).unwrap());
    assert!(!api.reachable);
    assert!(api.error.is_some());
}

/// The whole status path on Linux: real `ss` finds the emulator's socket, which is
/// loopback, so status must contradict a deployment that binds the LAN address.
#[test]
fn status_end_to_end_with_real_sockets() {
    if !cfg!(target_os = "linux") || !sovereign_testkit::require("ss", &["ss"], false) {
        return;
    }
    let emulator = emulator("0.14.0");
    let port = emulator.local_addr().port();
    let fs = RootedFs::real();
    let listeners = Systemd::new(&SystemRunner, &fs).listeners(port).unwrap();
    assert_eq!(listeners.len(), 1, "{listeners:?}");
    assert_eq!(
        listeners[0].address,
        ListenAddress::Ip("127.0.0.1".parse().unwrap())
    );
    if let Some(pid) = listeners[0].pid {
        assert_eq!(
            pid,
            std::process::id(),
            "the socket belongs to this test process"
        );
    }

    let mut deployment = Deployment::reference();
    deployment.server.platform = sovereign_model::Platform::Linux;
    deployment.server.api_port = port;
    let spec = ServiceSpec::from_deployment(&deployment);
    let service = ServiceState {
        manager: "systemd".into(),
        name: "sovereign-ollama.service".into(),
        installed: true,
        loaded: true,
        running: true,
        pid: Some(std::process::id()),
        state: "active (running)".into(),
        ..ServiceState::default()
    };
    let api = status::probe_api(&Client::new(&emulator.base_url()).unwrap());
    let report = status::evaluate(&spec, 65536, service, listeners, api);
    assert!(report.api.reachable);
    assert!(!report.consistent());
    assert!(
        report.warnings.iter().any(|w| w.contains("loopback")),
        "{:?}",
        report.warnings
    );
    // The JSON form is what `status --json` prints.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["api"]["version"], "0.14.0");
    assert_eq!(json["bind_matches"], false);
}

#[derive(Default)]
struct Recorder {
    events: Vec<String>,
    layer_progress: Vec<(u64, u64)>,
}

impl WarmObserver for Recorder {
    fn pulling(&mut self, model: &str, progress: &PullProgress) {
        if let (Some(total), Some(completed)) = (progress.total, progress.completed) {
            self.layer_progress.push((completed, total));
        }
        self.events.push(format!("{model}: {}", progress.status));
    }

    fn loading(&mut self, model: &str) {
        self.events.push(format!("{model}: loading"));
    }

    fn finished(&mut self, outcome: &WarmOutcome) {
        self.events.push(format!("{}: finished", outcome.model));
    }
}

#[test]
fn warm_pulls_with_progress_and_leaves_models_resident() {
    let emulator = emulator("0.14.0");
    let client = Client::new(&emulator.base_url()).unwrap();
    let models = vec!["qwen2.5-coder:32b".to_string(), "toy:latest".to_string()];
    let mut recorder = Recorder::default();
    let outcomes = warm::warm(&client, &models, "24h", &mut recorder);
    assert!(
        outcomes
            .iter()
            .all(|o| o.pulled && o.loaded && o.error.is_none()),
        "{outcomes:?}"
    );

    assert_eq!(
        recorder.events.first().map(String::as_str),
        Some("qwen2.5-coder:32b: pulling manifest")
    );
    assert!(
        recorder
            .events
            .contains(&"qwen2.5-coder:32b: success".to_string())
    );
    let loading = recorder
        .events
        .iter()
        .position(|e| e == "qwen2.5-coder:32b: loading")
        .unwrap();
    let success = recorder
        .events
        .iter()
        .position(|e| e == "qwen2.5-coder:32b: success")
        .unwrap();
    assert!(success < loading, "loads only after the pull finished");
    // Progress climbs to the total.
    assert!(recorder.layer_progress.windows(2).any(|w| w[0].0 < w[1].0));
    assert!(
        recorder
            .layer_progress
            .iter()
            .any(|(done, total)| done == total && *total > 0)
    );

    let api = status::probe_api(&client);
    let mut loaded: Vec<&str> = api.loaded_models.iter().map(|m| m.name.as_str()).collect();
    loaded.sort();
    assert_eq!(loaded, ["qwen2.5-coder:32b", "toy:latest"]);
}

#[test]
fn warm_reports_each_failure_and_goes_on() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let models = ["a:1".to_string(), "b:2".to_string()];
    let mut recorder = Recorder::default();
    let outcomes = warm::warm(&client, &models, "10m", &mut recorder);
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes.iter().all(|o| !o.pulled
            && !o.loaded
            && o.error
                .as_deref()
                .is_some_and(|e| e.starts_with("pull failed"))),
        "{outcomes:?}"
    );
    assert_eq!(recorder.events, ["a:1: finished", "b:2: finished"]);
}

#[test]
fn keep_alive_accepts_seconds_and_durations() {
    use sovereign_ollama::types::native::KeepAlive;
    assert_eq!(warm::keep_alive("-1"), KeepAlive::Seconds(-1));
    assert_eq!(warm::keep_alive("3600"), KeepAlive::Seconds(3600));
    assert_eq!(warm::keep_alive("24h"), KeepAlive::Duration("24h".into()));
}
