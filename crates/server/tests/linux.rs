//! Linux install (unit and drop-in), uninstall, status and conflicts against
//! recorded outputs of systemctl and ss, with files under a temp root.

mod common;

use std::path::{Path, PathBuf};

use common::{exists, fake_executable, fixture, write};
use sovereign_model::Deployment;
use sovereign_server::linux::Systemd;
use sovereign_server::status::{self, ApiStatus};
use sovereign_server::{
    ConflictKind, Filesystem, InstallKind, InstallManifest, RootedFs, ScriptedRunner, ServiceSpec,
    execute,
};

const SHOW: &str = "-p LoadState,ActiveState,SubState,MainPID,NRestarts,ExecMainStatus,UnitFileState,FragmentPath,DropInPaths,Environment";

fn show(unit: &str) -> String {
    format!("systemctl show {unit} {SHOW}")
}

fn state_dir() -> PathBuf {
    PathBuf::from("/root/sovereign.state")
}

fn spec() -> ServiceSpec {
    ServiceSpec::from_deployment(&Deployment::reference())
}

#[test]
fn install_without_ollama_service_writes_our_unit() {
    let root = tempfile::tempdir().unwrap();
    fake_executable(root.path(), "/usr/local/bin/ollama");
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    runner.on(
        &show("ollama.service"),
        0,
        &fixture("linux/systemctl-show-not-found.txt"),
        "",
    );
    runner.on(
        &show("sovereign-ollama.service"),
        0,
        &fixture("linux/systemctl-show-not-found.txt"),
        "",
    );
    runner.on("ss -Hltnp", 0, "", "");
    runner.on("id -u ollama", 1, "", "id: 'ollama': no such user\n");
    let systemd = Systemd::new(&runner, &fs);

    let install = systemd.install_plan(&spec(), None, &state_dir()).unwrap();
    assert!(install.conflicts.is_empty(), "{:?}", install.conflicts);
    assert_eq!(install.manifest.kind, InstallKind::SystemdUnit);
    let plan = install.plan.describe();
    assert!(plan.contains("DynamicUser=yes"), "{plan}");
    let commands: Vec<&str> = plan
        .lines()
        .filter(|l| l.starts_with("systemctl"))
        .collect();
    assert_eq!(
        commands,
        [
            "systemctl daemon-reload",
            "systemctl enable sovereign-ollama.service",
            "systemctl restart sovereign-ollama.service"
        ]
    );

    for command in &commands {
        runner.on(command, 0, "", "");
    }
    execute(&install.plan, &runner, &fs).unwrap();
    let unit = fs
        .read_to_string(Path::new("/etc/systemd/system/sovereign-ollama.service"))
        .unwrap()
        .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/ollama serve"));
    assert!(unit.contains("Environment=\"OLLAMA_HOST=192.168.250.20:11434\""));
    assert!(exists(
        root.path(),
        "/root/sovereign.state/server-install.json"
    ));
}

#[test]
fn install_with_the_ollama_user_runs_as_it() {
    let root = tempfile::tempdir().unwrap();
    fake_executable(root.path(), "/usr/bin/ollama");
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    runner.on(
        &show("ollama.service"),
        0,
        &fixture("linux/systemctl-show-not-found.txt"),
        "",
    );
    runner.on(
        &show("sovereign-ollama.service"),
        0,
        &fixture("linux/systemctl-show-not-found.txt"),
        "",
    );
    runner.on("ss -Hltnp", 0, "", "");
    runner.on("id -u ollama", 0, "998\n", "");
    let install = Systemd::new(&runner, &fs)
        .install_plan(&spec(), None, &state_dir())
        .unwrap();
    let plan = install.plan.describe();
    assert!(
        plan.contains("User=ollama") && !plan.contains("DynamicUser"),
        "{plan}"
    );
    assert!(plan.contains("ExecStart=/usr/bin/ollama serve"), "{plan}");
}

/// A machine where Ollama's installer already wrote ollama.service, and someone
/// followed the FAQ with an override.conf that exposes it on 0.0.0.0.
fn upstream_machine(root: &Path) -> ScriptedRunner {
    fake_executable(root, "/usr/local/bin/ollama");
    write(
        root,
        "/etc/systemd/system/ollama.service",
        "[Service]\nExecStart=/usr/local/bin/ollama serve\n",
    );
    write(
        root,
        "/etc/systemd/system/ollama.service.d/override.conf",
        &fixture("linux/override.conf"),
    );
    let runner = ScriptedRunner::new();
    runner.on(
        &show("ollama.service"),
        0,
        &fixture("linux/systemctl-show-upstream-ollama.txt"),
        "",
    );
    runner.on("ss -Hltnp", 0, &fixture("linux/ss-any.txt"), "");
    runner
}

#[test]
fn install_next_to_an_existing_ollama_service_writes_a_drop_in() {
    let root = tempfile::tempdir().unwrap();
    let runner = upstream_machine(root.path());
    let fs = RootedFs::under(root.path());
    let systemd = Systemd::new(&runner, &fs);

    let install = systemd.install_plan(&spec(), None, &state_dir()).unwrap();
    assert_eq!(install.manifest.kind, InstallKind::SystemdDropIn);
    // Its own listener (pid 1187 = MainPID) is not a conflict; override.conf is, but
    // sovereign.conf sorts after it, so it does not block.
    let kinds: Vec<(ConflictKind, bool)> = install
        .conflicts
        .iter()
        .map(|c| (c.kind, c.blocking))
        .collect();
    assert_eq!(kinds, [(ConflictKind::OtherDropIn, false)]);
    insta::assert_snapshot!("linux_dropin_install_dry_run", install.plan.describe());

    for command in [
        "systemctl daemon-reload",
        "systemctl restart ollama.service",
    ] {
        runner.on(command, 0, "", "");
    }
    execute(&install.plan, &runner, &fs).unwrap();
    assert!(exists(
        root.path(),
        "/etc/systemd/system/ollama.service.d/sovereign.conf"
    ));
    let manifest = InstallManifest::load(&fs, &state_dir()).unwrap().unwrap();
    assert!(!manifest.enabled_unit, "ollama.service was enabled already");
    assert!(
        manifest.directories.is_empty(),
        "the .d directory existed already"
    );
}

#[test]
fn a_later_drop_in_that_sets_ollama_host_blocks_install() {
    let root = tempfile::tempdir().unwrap();
    let runner = upstream_machine(root.path());
    write(
        root.path(),
        "/etc/systemd/system/ollama.service.d/zz-local.conf",
        "[Service]\nEnvironment=OLLAMA_HOST=127.0.0.1\n",
    );
    let fs = RootedFs::under(root.path());
    let runner_show = fixture("linux/systemctl-show-upstream-ollama.txt").replace(
        "DropInPaths=/etc/systemd/system/ollama.service.d/override.conf",
        "DropInPaths=/etc/systemd/system/ollama.service.d/override.conf /etc/systemd/system/ollama.service.d/zz-local.conf",
    );
    let fresh = ScriptedRunner::new();
    fresh.on(&show("ollama.service"), 0, &runner_show, "");
    fresh.on("ss -Hltnp", 0, &fixture("linux/ss-any.txt"), "");
    drop(runner);
    let conflicts = Systemd::new(&fresh, &fs)
        .conflicts(&spec(), &state_dir())
        .unwrap();
    let blocking: Vec<&str> = conflicts
        .iter()
        .filter(|c| c.blocking)
        .map(|c| c.summary.as_str())
        .collect();
    assert_eq!(blocking.len(), 1, "{conflicts:?}");
    assert!(blocking[0].contains("zz-local.conf"));
}

#[test]
fn a_foreign_listener_blocks_install() {
    let root = tempfile::tempdir().unwrap();
    fake_executable(root.path(), "/usr/local/bin/ollama");
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    runner.on(
        &show("ollama.service"),
        0,
        &fixture("linux/systemctl-show-not-found.txt"),
        "",
    );
    runner.on(
        &show("sovereign-ollama.service"),
        0,
        &fixture("linux/systemctl-show-not-found.txt"),
        "",
    );
    runner.on("ss -Hltnp", 0, &fixture("linux/ss-foreign.txt"), "");
    runner.on("id -u ollama", 1, "", "");
    let install = Systemd::new(&runner, &fs)
        .install_plan(&spec(), None, &state_dir())
        .unwrap();
    assert!(install.blocked());
    assert_eq!(
        install.conflicts.len(),
        2,
        "IPv4 and IPv6 docker-proxy sockets"
    );
    assert!(
        install.conflicts[0]
            .summary
            .contains("docker-proxy, pid 3390")
    );
}

#[test]
fn uninstall_of_a_drop_in_leaves_ollama_service_and_its_override_alone() {
    let root = tempfile::tempdir().unwrap();
    let runner = upstream_machine(root.path());
    let fs = RootedFs::under(root.path());
    let install = Systemd::new(&runner, &fs)
        .install_plan(&spec(), None, &state_dir())
        .unwrap();
    for command in [
        "systemctl daemon-reload",
        "systemctl restart ollama.service",
    ] {
        runner.on(command, 0, "", "");
    }
    execute(&install.plan, &runner, &fs).unwrap();

    let runner = ScriptedRunner::new();
    runner.on("systemctl daemon-reload", 0, "", "");
    runner.on("systemctl try-restart ollama.service", 0, "", "");
    let uninstall = Systemd::new(&runner, &fs)
        .uninstall_plan(&state_dir())
        .unwrap();
    insta::assert_snapshot!("linux_dropin_uninstall_dry_run", uninstall.plan.describe());
    execute(&uninstall.plan, &runner, &fs).unwrap();
    assert!(!exists(
        root.path(),
        "/etc/systemd/system/ollama.service.d/sovereign.conf"
    ));
    assert!(exists(
        root.path(),
        "/etc/systemd/system/ollama.service.d/override.conf"
    ));
    assert!(exists(root.path(), "/etc/systemd/system/ollama.service"));
    assert!(!exists(
        root.path(),
        "/root/sovereign.state/server-install.json"
    ));
    assert_eq!(
        runner.commands(),
        [
            "systemctl daemon-reload",
            "systemctl try-restart ollama.service"
        ]
    );
}

#[test]
fn uninstall_of_our_unit_disables_and_removes_it() {
    let root = tempfile::tempdir().unwrap();
    let fs = RootedFs::under(root.path());
    // No manifest (state dir lost): the unit is recognised by its header.
    let unit =
        sovereign_server::render::render_unit(&sovereign_server::render::SystemdService::new(
            &spec(),
            "/usr/local/bin/ollama".into(),
            sovereign_server::render::UnitUser::Dynamic,
        ));
    write(
        root.path(),
        "/etc/systemd/system/sovereign-ollama.service",
        &unit,
    );
    write(
        root.path(),
        "/etc/systemd/system/unrelated.service",
        "[Service]\nExecStart=/bin/true\n",
    );
    let runner = ScriptedRunner::new();
    for command in [
        "systemctl disable --now sovereign-ollama.service",
        "systemctl daemon-reload",
        "systemctl reset-failed sovereign-ollama.service",
    ] {
        runner.on(command, 0, "", "");
    }
    let uninstall = Systemd::new(&runner, &fs)
        .uninstall_plan(&state_dir())
        .unwrap();
    assert!(uninstall.from_known_paths);
    execute(&uninstall.plan, &runner, &fs).unwrap();
    assert!(!exists(
        root.path(),
        "/etc/systemd/system/sovereign-ollama.service"
    ));
    assert!(exists(root.path(), "/etc/systemd/system/unrelated.service"));
    assert!(uninstall.kept.iter().any(|k| k.contains("models")));
}

#[test]
fn status_from_systemctl_and_ss() {
    let root = tempfile::tempdir().unwrap();
    write(
        root.path(),
        "/etc/systemd/system/sovereign-ollama.service",
        "x",
    );
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    runner.on(
        &show("ollama.service"),
        0,
        &fixture("linux/systemctl-show-not-found.txt"),
        "",
    );
    runner.on(
        &show("sovereign-ollama.service"),
        0,
        &fixture("linux/systemctl-show-sovereign-running.txt"),
        "",
    );
    runner.on("ss -Hltnp", 0, &fixture("linux/ss-lan.txt"), "");
    let systemd = Systemd::new(&runner, &fs);
    let state = systemd.state(&state_dir()).unwrap();
    assert!(state.installed && state.loaded && state.running);
    assert_eq!((state.pid, state.restarts), (Some(2411), Some(2)));
    let listeners = systemd.listeners(11434).unwrap();
    assert_eq!(listeners.len(), 1, "only port 11434 counts");
    let report = status::evaluate(&spec(), 65536, state.clone(), listeners, reachable());
    assert!(report.consistent(), "{:?}", report.problems);

    // A wildcard socket owned by another process: two contradictions and a loud warning.
    let runner = ScriptedRunner::new();
    runner.on("ss -Hltnp", 0, &fixture("linux/ss-any.txt"), "");
    let listeners = Systemd::new(&runner, &fs).listeners(11434).unwrap();
    let report = status::evaluate(&spec(), 65536, state, listeners, reachable());
    assert!(!report.consistent());
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with("!!!") && w.contains("EVERY network"))
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("another process"))
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("listens on *:11434"))
    );
}

#[test]
fn status_flags_an_installed_service_that_is_out_of_date() {
    let root = tempfile::tempdir().unwrap();
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    runner.on(
        &show("ollama.service"),
        0,
        &fixture("linux/systemctl-show-upstream-ollama.txt"),
        "",
    );
    let state = Systemd::new(&runner, &fs).state(&state_dir()).unwrap();
    assert_eq!(state.name, "ollama.service");
    let report = status::evaluate(&spec(), 65536, state, Vec::new(), reachable());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("OLLAMA_HOST=0.0.0.0:11434") && p.contains("install")),
        "{:?}",
        report.problems
    );
}

fn reachable() -> ApiStatus {
    ApiStatus {
        url: "http://192.168.250.20:11434".into(),
        reachable: true,
        version: Some("0.14.0".into()),
        families: status::api_families("0.14.0"),
        ..ApiStatus::default()
    }
}

/// Without a running systemd (a container, a chroot) the plan is still made,
/// assuming no unit exists, and says what it could not inspect; with systemd the
/// list is empty.
#[test]
fn without_systemd_the_plan_says_what_it_could_not_inspect() {
    let root = tempfile::tempdir().unwrap();
    fake_executable(root.path(), "/usr/local/bin/ollama");
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    let down = "System has not been booted with systemd as init system (PID 1). Can't operate.\n\
                Failed to connect to bus: Host is down\n";
    for unit in ["ollama.service", "sovereign-ollama.service"] {
        runner.on(&show(unit), 1, "", down);
    }
    runner.on("ss -Hltnp", 0, "", "");
    runner.on("id -u ollama", 1, "", "id: 'ollama': no such user\n");
    let install = Systemd::new(&runner, &fs)
        .install_plan(&spec(), None, &state_dir())
        .unwrap();
    assert_eq!(install.manifest.kind, InstallKind::SystemdUnit);
    assert_eq!(install.uninspected.len(), 1, "{:?}", install.uninspected);
    let note = &install.uninspected[0];
    assert!(
        note.contains("ollama.service and sovereign-ollama.service"),
        "{note}"
    );
    assert!(note.contains("systemd is not running here"), "{note}");
    assert!(install.plan.describe().contains("systemctl daemon-reload"));

    // Any other systemctl failure is still an error, never assumed away.
    let runner = ScriptedRunner::new();
    runner.on(&show("ollama.service"), 1, "", "Access denied\n");
    let error = Systemd::new(&runner, &fs)
        .install_plan(&spec(), None, &state_dir())
        .unwrap_err();
    assert!(error.to_string().contains("Access denied"), "{error}");
}
