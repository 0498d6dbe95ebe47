//! macOS install, uninstall, status and conflicts against recorded outputs of
//! launchctl, lsof, ps and networksetup, with files installed under a temp root.

mod common;

use std::path::{Path, PathBuf};

use common::{exists, fake_executable, fixture, write};
use sovereign_model::Deployment;
use sovereign_server::macos::{Launchd, MacUser};
use sovereign_server::render::StaticAddress;
use sovereign_server::status::{self, ApiStatus};
use sovereign_server::{
    Backend, ConflictKind, Control, Filesystem, InstallManifest, RootedFs, ScriptedRunner,
    ServiceSpec, execute, static_ip,
};

const HOME: &str = "/Users/alice";
const NOT_FOUND: i32 = 113;

fn user() -> MacUser {
    MacUser {
        uid: 501,
        home: PathBuf::from(HOME),
    }
}

fn state_dir() -> PathBuf {
    PathBuf::from("/Users/alice/sovereign.state")
}

/// A Mac with nothing running or loaded, except what the test scripted already:
/// a scripted command keeps its first answer.
fn clean_mac(runner: &ScriptedRunner) {
    let scripted = |line: &str| runner.is_scripted(line);
    let not_found = fixture("macos/launchctl-print-not-found.stderr");
    for label in [
        "com.sovereign.ollama",
        "com.ollama.ollama",
        "homebrew.mxcl.ollama",
        "com.ollama",
    ] {
        let line = format!("launchctl print gui/501/{label}");
        if !scripted(&line) {
            runner.on(&line, NOT_FOUND, "", &not_found);
        }
    }
    if !scripted("ps -axo pid=,command=") {
        runner.on(
            "ps -axo pid=,command=",
            0,
            &fixture("macos/ps-clean.txt"),
            "",
        );
    }
    if !scripted("lsof -nP -iTCP:11434 -sTCP:LISTEN") {
        runner.on("lsof -nP -iTCP:11434 -sTCP:LISTEN", 1, "", "");
    }
}

#[test]
fn install_on_a_clean_mac_writes_the_agent_and_bootstraps_it() {
    let root = tempfile::tempdir().unwrap();
    fake_executable(root.path(), "/opt/homebrew/bin/ollama");
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    clean_mac(&runner);
    let backend = Backend::Macos(Launchd::new(&runner, &fs, user()));
    let spec = ServiceSpec::from_deployment(&Deployment::reference());

    let install = backend.install_plan(&spec, None, &state_dir()).unwrap();
    assert!(install.conflicts.is_empty(), "{:?}", install.conflicts);
    assert_eq!(install.program, Path::new("/opt/homebrew/bin/ollama"));
    insta::assert_snapshot!("macos_install_dry_run", install.plan.describe());
    // Planning ran only probes and wrote nothing.
    assert!(!exists(
        root.path(),
        "/Users/alice/Library/LaunchAgents/com.sovereign.ollama.plist"
    ));

    runner.on("launchctl enable gui/501/com.sovereign.ollama", 0, "", "");
    runner.on(
        "launchctl bootstrap gui/501 /Users/alice/Library/LaunchAgents/com.sovereign.ollama.plist",
        0,
        "",
        "",
    );
    execute(&install.plan, &runner, &fs).unwrap();
    let plist = fs
        .read_to_string(Path::new(
            "/Users/alice/Library/LaunchAgents/com.sovereign.ollama.plist",
        ))
        .unwrap()
        .unwrap();
    assert!(plist.contains("<string>192.168.250.20:11434</string>"));
    assert!(exists(root.path(), "/Users/alice/Library/Logs/sovereign"));
    let manifest = InstallManifest::load(&fs, &state_dir()).unwrap().unwrap();
    assert_eq!(
        manifest.files,
        [PathBuf::from(
            "/Users/alice/Library/LaunchAgents/com.sovereign.ollama.plist"
        )]
    );
    let commands = runner.commands();
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("launchctl bootstrap gui/501 "))
    );
    assert!(
        !commands.iter().any(|c| c.contains("bootout")),
        "nothing was loaded: {commands:?}"
    );
}

#[test]
fn reinstall_unloads_the_running_agent_before_bootstrapping() {
    let root = tempfile::tempdir().unwrap();
    fake_executable(root.path(), "/opt/homebrew/bin/ollama");
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    runner.on(
        "launchctl print gui/501/com.sovereign.ollama",
        0,
        &fixture("macos/launchctl-print-sovereign-running.txt"),
        "",
    );
    runner.on(
        "lsof -nP -iTCP:11434 -sTCP:LISTEN",
        0,
        &fixture("macos/lsof-lan.txt"),
        "",
    );
    clean_mac(&runner);
    let backend = Launchd::new(&runner, &fs, user());
    let install = backend
        .install_plan(
            &ServiceSpec::from_deployment(&Deployment::reference()),
            None,
            &state_dir(),
        )
        .unwrap();
    // Our own listener (pid 48211) is not a conflict.
    assert!(install.conflicts.is_empty(), "{:?}", install.conflicts);
    let plan = install.plan.describe();
    let bootout = plan
        .find("launchctl bootout gui/501/com.sovereign.ollama")
        .expect("bootout");
    let bootstrap = plan.find("launchctl bootstrap gui/501").expect("bootstrap");
    assert!(bootout < bootstrap, "{plan}");
}

#[test]
fn every_conflict_is_detected_and_explained() {
    let root = tempfile::tempdir().unwrap();
    fake_executable(
        root.path(),
        "/Applications/Ollama.app/Contents/Resources/ollama",
    );
    write(
        root.path(),
        "/Users/alice/Library/LaunchAgents/com.ollama.plist",
        "<plist/>",
    );
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    runner.on(
        "ps -axo pid=,command=",
        0,
        &fixture("macos/ps-app-running.txt"),
        "",
    );
    runner.on(
        "launchctl print gui/501/homebrew.mxcl.ollama",
        0,
        &fixture("macos/launchctl-print-homebrew-running.txt"),
        "",
    );
    runner.on(
        "lsof -nP -iTCP:11434 -sTCP:LISTEN",
        0,
        &fixture("macos/lsof-app-exposed.txt"),
        "",
    );
    clean_mac(&runner);
    let backend = Launchd::new(&runner, &fs, user());
    let spec = ServiceSpec::from_deployment(&Deployment::reference());

    let conflicts = backend.conflicts(&spec).unwrap();
    let kinds: Vec<ConflictKind> = conflicts.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ConflictKind::OllamaApp,
            ConflictKind::HomebrewService,
            ConflictKind::LegacyAgent,
            ConflictKind::OllamaAppExposed
        ]
    );
    assert!(conflicts.iter().all(|c| c.blocking && !c.fix.is_empty()));
    assert!(conflicts[1].fix.contains("brew services stop ollama"));
    assert!(
        conflicts[2]
            .fix
            .contains("launchctl bootout gui/501/com.ollama")
    );
    assert!(
        conflicts[3].summary.contains("*:11434"),
        "{}",
        conflicts[3].summary
    );

    let install = backend.install_plan(&spec, None, &state_dir()).unwrap();
    assert!(install.blocked());
    assert_eq!(
        install.program,
        Path::new("/Applications/Ollama.app/Contents/Resources/ollama")
    );
}

#[test]
fn a_foreign_listener_is_a_conflict() {
    let root = tempfile::tempdir().unwrap();
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    runner.on(
        "lsof -nP -iTCP:11434 -sTCP:LISTEN",
        0,
        "COMMAND  PID  USER FD TYPE DEVICE SIZE/OFF NODE NAME\n\
         python3 7777 alice 3u IPv4 0x1      0t0  TCP 127.0.0.1:11434 (LISTEN)\n",
        "",
    );
    clean_mac(&runner);
    let conflicts = Launchd::new(&runner, &fs, user())
        .conflicts(&ServiceSpec::from_deployment(&Deployment::reference()))
        .unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].kind, ConflictKind::PortInUse);
    assert!(conflicts[0].summary.contains("python3, pid 7777"));
    assert!(conflicts[0].fix.contains("kill 7777"));
}

#[test]
fn uninstall_removes_exactly_what_install_created() {
    let root = tempfile::tempdir().unwrap();
    fake_executable(root.path(), "/opt/homebrew/bin/ollama");
    write(
        root.path(),
        "/Users/alice/Library/LaunchAgents/com.example.other.plist",
        "<plist/>",
    );
    write(
        root.path(),
        "/Users/alice/.ollama/models/blobs/sha256-abc",
        "weights",
    );
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    clean_mac(&runner);
    runner.on("launchctl enable gui/501/com.sovereign.ollama", 0, "", "");
    runner.on(
        "launchctl bootstrap gui/501 /Users/alice/Library/LaunchAgents/com.sovereign.ollama.plist",
        0,
        "",
        "",
    );
    let backend = Launchd::new(&runner, &fs, user());
    let spec = ServiceSpec::from_deployment(&Deployment::reference());
    execute(
        &backend
            .install_plan(&spec, None, &state_dir())
            .unwrap()
            .plan,
        &runner,
        &fs,
    )
    .unwrap();
    write(
        root.path(),
        "/Users/alice/Library/Logs/sovereign/ollama.err.log",
        "Listening on 192.168.250.20:11434\n",
    );

    // Now loaded and running.
    let runner = ScriptedRunner::new();
    runner.on(
        "launchctl print gui/501/com.sovereign.ollama",
        0,
        &fixture("macos/launchctl-print-sovereign-running.txt"),
        "",
    );
    runner.on("launchctl bootout gui/501/com.sovereign.ollama", 0, "", "");
    let backend = Launchd::new(&runner, &fs, user());
    let uninstall = backend.uninstall_plan(&state_dir()).unwrap();
    assert!(!uninstall.from_known_paths);
    insta::assert_snapshot!("macos_uninstall_dry_run", uninstall.plan.describe());
    let execution = execute(&uninstall.plan, &runner, &fs).unwrap();
    assert!(
        execution.steps.iter().all(|s| s.ok),
        "{:?}",
        execution.steps
    );

    assert!(!exists(
        root.path(),
        "/Users/alice/Library/LaunchAgents/com.sovereign.ollama.plist"
    ));
    assert!(!exists(
        root.path(),
        "/Users/alice/sovereign.state/server-install.json"
    ));
    assert!(exists(
        root.path(),
        "/Users/alice/Library/LaunchAgents/com.example.other.plist"
    ));
    assert!(exists(
        root.path(),
        "/Users/alice/.ollama/models/blobs/sha256-abc"
    ));
    assert!(exists(
        root.path(),
        "/Users/alice/Library/Logs/sovereign/ollama.err.log"
    ));
    assert!(uninstall.kept.iter().any(|k| k.contains("models")));
    assert!(uninstall.kept.iter().any(|k| k.contains("Logs/sovereign")));
}

#[test]
fn uninstall_without_a_manifest_only_touches_a_plist_that_is_ours() {
    let root = tempfile::tempdir().unwrap();
    // Same path, foreign label: not ours to delete.
    write(
        root.path(),
        "/Users/alice/Library/LaunchAgents/com.sovereign.ollama.plist",
        "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>Label</key><string>someone.else</string></dict></plist>",
    );
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    clean_mac(&runner);
    let plan = Launchd::new(&runner, &fs, user())
        .uninstall_plan(&state_dir())
        .unwrap();
    assert!(plan.plan.is_empty(), "{}", plan.plan.describe());
}

#[test]
fn status_reads_launchctl_and_lsof() {
    let root = tempfile::tempdir().unwrap();
    write(
        root.path(),
        "/Users/alice/Library/LaunchAgents/com.sovereign.ollama.plist",
        "x",
    );
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    runner.on(
        "launchctl print gui/501/com.sovereign.ollama",
        0,
        &fixture("macos/launchctl-print-sovereign-running.txt"),
        "",
    );
    runner.on(
        "lsof -nP -iTCP:11434 -sTCP:LISTEN",
        0,
        &fixture("macos/lsof-lan.txt"),
        "",
    );
    let backend = Launchd::new(&runner, &fs, user());
    let state = backend.state().unwrap();
    assert!(state.installed && state.loaded && state.running);
    assert_eq!(state.pid, Some(48211));
    assert_eq!(state.restarts, Some(2));
    assert_eq!(state.last_exit_code, Some(1));
    assert_eq!(state.environment["OLLAMA_HOST"], "192.168.250.20:11434");

    let spec = ServiceSpec::from_deployment(&Deployment::reference());
    let listeners = backend.listeners(11434).unwrap();
    let report = status::evaluate(&spec, 65536, state.clone(), listeners, reachable("0.14.0"));
    assert!(report.consistent(), "{:?}", report.problems);
    assert!(report.bind_matches);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    // The same service answering on loopback contradicts the deployment, loudly.
    let runner = ScriptedRunner::new();
    runner.on(
        "lsof -nP -iTCP:11434 -sTCP:LISTEN",
        0,
        &fixture("macos/lsof-loopback.txt"),
        "",
    );
    let listeners = Launchd::new(&runner, &fs, user()).listeners(11434).unwrap();
    let report = status::evaluate(&spec, 65536, state, listeners, reachable("0.13.3"));
    assert!(!report.consistent());
    assert!(!report.bind_matches);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with("!!!") && w.contains("loopback"))
    );
    assert!(report.warnings.iter().any(|w| w.contains("/v1/messages")));
}

#[test]
fn status_of_a_missing_agent_says_to_install() {
    let root = tempfile::tempdir().unwrap();
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    clean_mac(&runner);
    let backend = Launchd::new(&runner, &fs, user());
    let spec = ServiceSpec::from_deployment(&Deployment::reference());
    let report = status::evaluate(
        &spec,
        65536,
        backend.state().unwrap(),
        backend.listeners(11434).unwrap(),
        ApiStatus {
            url: spec.api_url(),
            error: Some("connection refused".into()),
            ..ApiStatus::default()
        },
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("sovereign server install"))
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("nothing listens"))
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("does not answer"))
    );
}

#[test]
fn control_uses_bootstrap_kickstart_and_bootout() {
    let root = tempfile::tempdir().unwrap();
    let fs = RootedFs::under(root.path());
    let running = ScriptedRunner::new();
    running.on(
        "launchctl print gui/501/com.sovereign.ollama",
        0,
        &fixture("macos/launchctl-print-sovereign-running.txt"),
        "",
    );
    let backend = Backend::Macos(Launchd::new(&running, &fs, user()));
    let describe = |c| backend.control_plan(c, &state_dir()).unwrap().describe();
    assert_eq!(
        describe(Control::Restart),
        "launchctl kickstart -k gui/501/com.sovereign.ollama\n"
    );
    assert_eq!(
        describe(Control::Stop),
        "launchctl bootout gui/501/com.sovereign.ollama\n"
    );

    let stopped = ScriptedRunner::new();
    clean_mac(&stopped);
    let backend = Launchd::new(&stopped, &fs, user());
    assert_eq!(
        backend.control_plan(Control::Start).unwrap().describe(),
        "launchctl bootstrap gui/501 /Users/alice/Library/LaunchAgents/com.sovereign.ollama.plist\n"
    );
}

#[test]
fn static_ip_resolves_the_service_name_not_the_device() {
    let runner = ScriptedRunner::new();
    runner.on(
        "networksetup -listallhardwareports",
        0,
        &fixture("macos/networksetup-listallhardwareports.txt"),
        "",
    );
    runner.on(
        "networksetup -listnetworkserviceorder",
        0,
        &fixture("macos/networksetup-listnetworkserviceorder.txt"),
        "",
    );
    let target = static_ip::target(&Deployment::reference());
    let plan = static_ip::macos_plan(&runner, &target, None).unwrap();
    // The renamed USB adapter comes first in service order; en0 is the alternative.
    assert_eq!(plan.service.name, "Studio Wired");
    assert_eq!(plan.service.device, "en7");
    assert_eq!(plan.alternatives.len(), 1);
    assert_eq!(plan.alternatives[0].name, "Ethernet");
    let commands: Vec<String> = plan.commands.iter().map(ToString::to_string).collect();
    assert_eq!(
        commands,
        [
            "networksetup -setmanual 'Studio Wired' 192.168.250.20 255.255.255.0 192.168.250.1",
            "networksetup -setdnsservers 'Studio Wired' 192.168.250.1",
        ]
    );

    let chosen = static_ip::macos_plan(&runner, &target, Some("Ethernet")).unwrap();
    assert_eq!(chosen.service.device, "en0");
    assert!(
        static_ip::macos_plan(&runner, &target, Some("en0")).is_err(),
        "a device is not a service"
    );
}

#[test]
fn linux_static_advice_names_the_interface_and_prefix() {
    let target = StaticAddress {
        address: "192.168.250.20".parse().unwrap(),
        subnet: "192.168.250.0/24".parse().unwrap(),
        router: "192.168.250.1".parse().unwrap(),
        dns: "192.168.250.1".parse().unwrap(),
    };
    insta::assert_snapshot!(
        "linux_static_advice",
        static_ip::linux_advice("enp3s0", &target)
    );
}

fn reachable(version: &str) -> ApiStatus {
    ApiStatus {
        url: "http://192.168.250.20:11434".into(),
        reachable: true,
        error: None,
        version: Some(version.into()),
        families: status::api_families(version),
        loaded_models: Vec::new(),
    }
}
