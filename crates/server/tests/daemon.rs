//! The macOS LaunchDaemon: install, status, conflicts and uninstall against recorded
//! outputs of launchctl, dscl, pmset, fdesetup, lsof and ps, with files installed
//! under a temp root. Each transcript is compared whole and in order, and a mutation
//! test shows the checks fail when any single step of the plan is left out.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{exists, fake_executable, fixture, write};
use sovereign_model::Deployment;
use sovereign_server::daemon::{DaemonOptions, SystemLaunchd};
use sovereign_server::macos::MacUser;
use sovereign_server::plan::Action;
use sovereign_server::status::{self, ApiStatus};
use sovereign_server::{
    Backend, ConflictKind, Control, Filesystem, InstallKind, InstallManifest, Plan, RootedFs,
    ScriptedRunner, ServiceSpec, execute,
};

const NOT_FOUND: i32 = 113;
const PLIST: &str = "/Library/LaunchDaemons/com.sovereign.ollama.plist";
const NEWSYSLOG: &str = "/etc/newsyslog.d/com.sovereign.ollama.conf";
const DATA: &str = "/Library/Application Support/sovereign/ollama";

fn console() -> MacUser {
    MacUser {
        uid: 501,
        home: PathBuf::from("/Users/alice"),
    }
}

fn state_dir() -> PathBuf {
    PathBuf::from("/Users/alice/sovereign.state")
}

fn everything() -> DaemonOptions {
    DaemonOptions {
        create_account: true,
        move_models: true,
        power: true,
    }
}

fn spec() -> ServiceSpec {
    ServiceSpec::from_deployment(&Deployment::reference())
}

/// A Mac with no daemon, no agent, no app, no account, laptop power defaults and
/// FileVault on, except what the test scripted already (a scripted line keeps its
/// first answer).
fn clean_mac(runner: &ScriptedRunner) {
    let answer = |line: &str, status: i32, stdout: &str, stderr: &str| {
        if !runner.is_scripted(line) {
            runner.on(line, status, stdout, stderr);
        }
    };
    let gui_missing = fixture("macos/launchctl-print-not-found.stderr");
    for label in [
        "com.sovereign.ollama",
        "com.ollama.ollama",
        "homebrew.mxcl.ollama",
        "com.ollama",
    ] {
        answer(
            &format!("launchctl print gui/501/{label}"),
            NOT_FOUND,
            "",
            &gui_missing,
        );
    }
    answer(
        "launchctl print system/com.sovereign.ollama",
        NOT_FOUND,
        "",
        &fixture("macos/launchctl-print-system-not-found.stderr"),
    );
    answer(
        "ps -axo pid=,command=",
        0,
        &fixture("macos/ps-clean.txt"),
        "",
    );
    answer("lsof -nP -iTCP:11434 -sTCP:LISTEN", 1, "", "");
    answer(
        "pmset -g",
        0,
        &fixture("macos/pmset-g-laptop-defaults.txt"),
        "",
    );
    answer("fdesetup status", 0, &fixture("macos/fdesetup-on.txt"), "");
    answer(
        "dscl . -read /Users/_ollama",
        56,
        "",
        &fixture("macos/dscl-read-not-found.stderr"),
    );
    answer(
        "dscl . -list /Users UniqueID",
        0,
        &fixture("macos/dscl-list-users.txt"),
        "",
    );
    answer(
        "dscl . -list /Groups PrimaryGroupID",
        0,
        &fixture("macos/dscl-list-groups.txt"),
        "",
    );
    answer(
        "stat -f %u:%g /Users/alice/.ollama/models",
        0,
        "501:20\n",
        "",
    );
}

/// Every mutating command succeeds.
fn script_mutations(runner: &ScriptedRunner, plan: &Plan) {
    for action in &plan.actions {
        if let Action::Run { command, .. } = action {
            let line = command.to_string();
            if !runner.is_scripted(&line) {
                runner.on(&line, 0, "", "");
            }
        }
    }
}

fn install_probes() -> Vec<&'static str> {
    vec![
        "launchctl print gui/501/com.sovereign.ollama",
        "launchctl print system/com.sovereign.ollama",
        "ps -axo pid=,command=",
        "launchctl print gui/501/com.ollama.ollama",
        "launchctl print gui/501/homebrew.mxcl.ollama",
        "launchctl print gui/501/com.ollama",
        "lsof -nP -iTCP:11434 -sTCP:LISTEN",
        "pmset -g",
        "fdesetup status",
        "dscl . -read /Users/_ollama",
        "dscl . -list /Users UniqueID",
        "dscl . -list /Groups PrimaryGroupID",
        "stat -f %u:%g /Users/alice/.ollama/models",
        "launchctl print system/com.sovereign.ollama",
    ]
}

/// The commands a full install runs after its probes: account, models, ownership,
/// power, then the system domain.
fn install_mutations() -> Vec<&'static str> {
    vec![
        "dscl . -create /Groups/_ollama",
        "dscl . -create /Groups/_ollama PrimaryGroupID 302",
        "dscl . -create /Groups/_ollama RealName 'sovereign Ollama service'",
        "dscl . -create /Groups/_ollama Password '*'",
        "dscl . -create /Users/_ollama",
        "dscl . -create /Users/_ollama UniqueID 302",
        "dscl . -create /Users/_ollama PrimaryGroupID 302",
        "dscl . -create /Users/_ollama RealName 'sovereign Ollama service'",
        "dscl . -create /Users/_ollama UserShell /usr/bin/false",
        "dscl . -create /Users/_ollama NFSHomeDirectory '/Library/Application Support/sovereign/ollama'",
        "dscl . -create /Users/_ollama Password '*'",
        "dscl . -create /Users/_ollama IsHidden 1",
        "mv /Users/alice/.ollama/models '/Library/Application Support/sovereign/ollama/models'",
        "chown -R _ollama:_ollama '/Library/Application Support/sovereign/ollama'",
        "pmset -a sleep 0 autorestart 1 womp 1",
        "launchctl enable system/com.sovereign.ollama",
        "launchctl bootstrap system /Library/LaunchDaemons/com.sovereign.ollama.plist",
    ]
}

/// Executes `plan` on a fresh runner and checks everything a full install must
/// leave behind: the whole ordered transcript, every file and the manifest.
fn check_install(plan: &Plan, root: &Path) -> Result<(), String> {
    let fs = RootedFs::under(root);
    let runner = ScriptedRunner::new();
    script_mutations(&runner, plan);
    execute(plan, &runner, &fs).map_err(|e| e.to_string())?;
    let commands = runner.commands();
    if commands != install_mutations() {
        return Err(format!("transcript differs: {commands:#?}"));
    }
    for path in [
        PLIST,
        NEWSYSLOG,
        DATA,
        "/Library/Logs/sovereign",
        "/Users/alice/sovereign.state/server-install.json",
    ] {
        if !exists(root, path) {
            return Err(format!("{path} is missing"));
        }
    }
    // Each directory with its own mode: a parent made on the way by `create_dir_all`
    // would carry its child's mode instead.
    for (path, mode) in [
        ("/Library/Application Support/sovereign", 0o755),
        (DATA, 0o750),
        ("/Library/Logs/sovereign", 0o755),
    ] {
        let real = root.join(path.trim_start_matches('/'));
        let actual = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        if actual != mode {
            return Err(format!("{path} has mode {actual:o}, not {mode:o}"));
        }
    }
    let plist = fs.read_to_string(Path::new(PLIST)).unwrap().unwrap();
    if !plist.contains("<string>_ollama</string>") {
        return Err("the plist names no UserName".into());
    }
    let manifest = InstallManifest::load(&fs, &state_dir())
        .map_err(|e| e.to_string())?
        .ok_or("no manifest")?;
    if manifest.kind != InstallKind::LaunchDaemon
        || manifest.created_account.as_ref().map(|a| a.uid) != Some(302)
        || manifest.moved_models.is_none()
        || manifest.previous_power.len() != 3
    {
        return Err(format!("incomplete manifest: {manifest:?}"));
    }
    Ok(())
}

fn planned(root: &Path, options: DaemonOptions) -> (ScriptedRunner, sovereign_server::InstallPlan) {
    let fs = RootedFs::under(root);
    let runner = ScriptedRunner::new();
    clean_mac(&runner);
    let backend = SystemLaunchd::new(&runner, &fs, console(), "_ollama", options);
    let install = backend.install_plan(&spec(), None, &state_dir()).unwrap();
    (runner, install)
}

/// What every Mac has, plus Homebrew's ollama and a user with models.
fn a_mac_with_models(root: &Path) {
    for dir in ["Library/LaunchDaemons", "etc/newsyslog.d", "Library/Logs"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    fake_executable(root, "/opt/homebrew/bin/ollama");
    write(
        root,
        "/Users/alice/.ollama/models/blobs/sha256-abc",
        "weights",
    );
}

#[test]
fn install_creates_the_account_moves_models_sets_power_and_bootstraps_into_system() {
    let root = tempfile::tempdir().unwrap();
    a_mac_with_models(root.path());
    let (runner, install) = planned(root.path(), everything());
    assert!(install.conflicts.is_empty(), "{:?}", install.conflicts);
    assert_eq!(runner.commands(), install_probes());
    insta::assert_snapshot!("daemon_install_dry_run", install.plan.describe());
    // FileVault is on in the recording: the notes say what that means, never to turn it off.
    assert!(
        install
            .notes
            .iter()
            .any(|n| n.contains("FileVault is on") && n.contains("fdesetup authrestart")),
        "{:?}",
        install.notes
    );
    check_install(&install.plan, root.path()).unwrap();
}

#[test]
fn leaving_out_any_install_step_fails_the_check() {
    let root = tempfile::tempdir().unwrap();
    a_mac_with_models(root.path());
    let (_, install) = planned(root.path(), everything());
    for index in 0..install.plan.actions.len() {
        let case = tempfile::tempdir().unwrap();
        a_mac_with_models(case.path());
        let mut plan = install.plan.clone();
        let removed = plan.actions.remove(index);
        assert!(
            check_install(&plan, case.path()).is_err(),
            "the check passed without step {index}: {removed:?}"
        );
    }
}

#[test]
fn the_dry_run_probes_only_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    a_mac_with_models(root.path());
    let (runner, install) = planned(root.path(), everything());
    // Every probe is a read: no dscl -create, mv, chown, pmset -a or bootstrap.
    assert_eq!(runner.commands(), install_probes());
    let described = install.plan.describe();
    for command in install_mutations() {
        assert!(
            described.contains(command),
            "{command} not shown:\n{described}"
        );
    }
    for path in [PLIST, NEWSYSLOG, DATA, "/Library/Logs/sovereign"] {
        assert!(!exists(root.path(), path), "{path} was created");
    }
    assert!(exists(
        root.path(),
        "/Users/alice/.ollama/models/blobs/sha256-abc"
    ));
}

#[test]
fn without_create_account_a_missing_account_blocks_and_nothing_is_created() {
    let root = tempfile::tempdir().unwrap();
    a_mac_with_models(root.path());
    let (runner, install) = planned(root.path(), DaemonOptions::default());
    assert!(install.blocked());
    assert_eq!(install.conflicts.len(), 1);
    assert_eq!(
        install.conflicts[0].kind,
        ConflictKind::ServiceAccountMissing
    );
    assert!(install.conflicts[0].fix.contains("--create-account"));
    let described = install.plan.describe();
    assert!(!described.contains("dscl . -create"), "{described}");
    assert!(!described.contains("pmset -a"), "{described}");
    assert!(!described.contains("mv "), "{described}");
    // Without --power the contradicting settings are named in the notes instead.
    assert!(
        install
            .notes
            .iter()
            .any(|n| n.starts_with("pmset sleep is 1"))
    );
    assert!(
        !runner
            .commands()
            .iter()
            .any(|c| c.starts_with("dscl . -list") || c.starts_with("stat ")),
        "{:?}",
        runner.commands()
    );
}

#[test]
fn an_existing_account_is_used_with_its_own_group() {
    let root = tempfile::tempdir().unwrap();
    fake_executable(root.path(), "/opt/homebrew/bin/ollama");
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    runner.on(
        "dscl . -read /Users/_ollama",
        0,
        &fixture("macos/dscl-read-ollama.txt"),
        "",
    );
    runner.on(
        "dscl . -list /Groups PrimaryGroupID",
        0,
        &format!("{}ollama-svc 302\n", fixture("macos/dscl-list-groups.txt")),
        "",
    );
    runner.on("pmset -g", 0, &fixture("macos/pmset-g-always-on.txt"), "");
    clean_mac(&runner);
    let backend = SystemLaunchd::new(&runner, &fs, console(), "_ollama", everything());
    let install = backend.install_plan(&spec(), None, &state_dir()).unwrap();
    assert!(install.conflicts.is_empty(), "{:?}", install.conflicts);
    let described = install.plan.describe();
    assert!(!described.contains("dscl . -create"), "{described}");
    // Power is already right: nothing to change, nothing to restore later.
    assert!(!described.contains("pmset -a"), "{described}");
    assert!(install.manifest.previous_power.is_empty());
    assert!(
        described.contains("chown -R _ollama:ollama-svc"),
        "{described}"
    );
    assert!(
        described.contains("<key>GroupName</key>\n    \t<string>ollama-svc</string>"),
        "{described}"
    );
    assert!(install.manifest.created_account.is_none());
}

#[test]
fn reinstall_unloads_the_running_daemon_and_its_listener_is_no_conflict() {
    let root = tempfile::tempdir().unwrap();
    let manifest = installed(root.path());
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    running_daemon(&runner);
    runner.on(
        "lsof -nP -iTCP:11434 -sTCP:LISTEN",
        0,
        "COMMAND PID    USER FD TYPE DEVICE SIZE/OFF NODE NAME\n\
         ollama  312 _ollama 3u IPv4 0x1 0t0 TCP 192.168.250.20:11434 (LISTEN)\n",
        "",
    );
    runner.on(
        "dscl . -read /Users/_ollama",
        0,
        &fixture("macos/dscl-read-ollama.txt"),
        "",
    );
    runner.on("pmset -g", 0, &fixture("macos/pmset-g-always-on.txt"), "");
    clean_mac(&runner);
    let backend = SystemLaunchd::new(&runner, &fs, console(), "_ollama", everything());
    let install = backend.install_plan(&spec(), None, &state_dir()).unwrap();
    assert!(install.conflicts.is_empty(), "{:?}", install.conflicts);
    let described = install.plan.describe();
    let bootout = described
        .find("launchctl bootout system/com.sovereign.ollama  # may fail harmlessly")
        .expect(&described);
    let bootstrap = described.find("launchctl bootstrap system").unwrap();
    assert!(bootout < bootstrap, "{described}");
    // Nothing is created twice, and uninstall will still undo the first install.
    assert!(!described.contains("dscl . -create"), "{described}");
    assert!(!described.contains("mv "), "{described}");
    assert_eq!(install.manifest.created_account, manifest.created_account);
    assert_eq!(install.manifest.moved_models, manifest.moved_models);
    assert_eq!(install.manifest.previous_power, manifest.previous_power);
}

#[test]
fn the_users_agent_the_app_and_a_foreign_listener_are_conflicts() {
    let root = tempfile::tempdir().unwrap();
    fake_executable(root.path(), "/opt/homebrew/bin/ollama");
    write(
        root.path(),
        "/Users/alice/Library/LaunchAgents/com.sovereign.ollama.plist",
        "<plist/>",
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
        "ps -axo pid=,command=",
        0,
        &fixture("macos/ps-app-running.txt"),
        "",
    );
    // The agent (48211) and a stray server (7777) listen.
    runner.on(
        "lsof -nP -iTCP:11434 -sTCP:LISTEN",
        0,
        "COMMAND  PID  USER FD TYPE DEVICE SIZE/OFF NODE NAME\n\
         ollama  48211 alice 3u IPv4 0x1 0t0 TCP 192.168.250.20:11434 (LISTEN)\n\
         python3  7777 alice 3u IPv4 0x2 0t0 TCP 127.0.0.1:11434 (LISTEN)\n",
        "",
    );
    clean_mac(&runner);
    let backend = SystemLaunchd::new(&runner, &fs, console(), "_ollama", everything());
    let conflicts = backend.conflicts(&spec()).unwrap();
    let kinds: Vec<ConflictKind> = conflicts.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ConflictKind::SovereignAgent,
            ConflictKind::OllamaApp,
            ConflictKind::PortInUse
        ]
    );
    assert!(conflicts.iter().all(|c| c.blocking));
    assert!(conflicts[0].summary.contains("loaded"));
    assert!(conflicts[0].fix.contains("sovereign server uninstall"));
    assert!(conflicts[2].summary.contains("pid 7777"));
    assert_eq!(
        runner.commands(),
        [
            "launchctl print gui/501/com.sovereign.ollama",
            "launchctl print system/com.sovereign.ollama",
            "ps -axo pid=,command=",
            "launchctl print gui/501/homebrew.mxcl.ollama",
            "launchctl print gui/501/com.ollama",
            "lsof -nP -iTCP:11434 -sTCP:LISTEN",
        ]
    );
    let install = backend.install_plan(&spec(), None, &state_dir()).unwrap();
    assert!(install.blocked());
}

#[test]
fn the_agent_refuses_while_the_daemon_is_installed() {
    let root = tempfile::tempdir().unwrap();
    write(root.path(), PLIST, "<plist/>");
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    clean_mac(&runner);
    let agent = sovereign_server::macos::Launchd::new(&runner, &fs, console());
    let conflicts = agent.conflicts(&spec()).unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].kind, ConflictKind::SovereignDaemon);
}

/// The daemon as install left it: running, with its manifest on disk.
fn installed(root: &Path) -> InstallManifest {
    a_mac_with_models(root);
    let (_, install) = planned(root, everything());
    check_install(&install.plan, root).unwrap();
    // What the scripted `mv` stood for.
    std::fs::rename(
        root.join("Users/alice/.ollama/models"),
        root.join(DATA.trim_start_matches('/')).join("models"),
    )
    .unwrap();
    install.manifest
}

fn uninstall_mutations() -> Vec<&'static str> {
    vec![
        "launchctl bootout system/com.sovereign.ollama",
        "pmset -a autorestart 0 sleep 1 womp 0",
        "mv '/Library/Application Support/sovereign/ollama/models' /Users/alice/.ollama/models",
        "chown -R 501:20 /Users/alice/.ollama/models",
        "dscl . -delete /Users/_ollama",
        "dscl . -delete /Groups/_ollama",
    ]
}

fn running_daemon(runner: &ScriptedRunner) {
    runner.on(
        "launchctl print system/com.sovereign.ollama",
        0,
        &fixture("macos/launchctl-print-daemon-running.txt"),
        "",
    );
}

fn check_uninstall(plan: &Plan, root: &Path) -> Result<(), String> {
    let fs = RootedFs::under(root);
    let runner = ScriptedRunner::new();
    script_mutations(&runner, plan);
    execute(plan, &runner, &fs).map_err(|e| e.to_string())?;
    let commands = runner.commands();
    if commands != uninstall_mutations() {
        return Err(format!("transcript differs: {commands:#?}"));
    }
    for path in [
        PLIST,
        NEWSYSLOG,
        "/Users/alice/sovereign.state/server-install.json",
    ] {
        if exists(root, path) {
            return Err(format!("{path} is still there"));
        }
    }
    // Logs and the data directory are data: they stay.
    for path in ["/Library/Logs/sovereign", DATA] {
        if !exists(root, path) {
            return Err(format!("{path} was removed"));
        }
    }
    Ok(())
}

#[test]
fn uninstall_reverses_exactly_what_install_did() {
    let root = tempfile::tempdir().unwrap();
    installed(root.path());
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    running_daemon(&runner);
    let backend = SystemLaunchd::new(&runner, &fs, console(), "_ollama", DaemonOptions::default());
    let uninstall = backend.uninstall_plan(&state_dir()).unwrap();
    assert!(!uninstall.from_known_paths);
    assert_eq!(
        runner.commands(),
        ["launchctl print system/com.sovereign.ollama"]
    );
    insta::assert_snapshot!("daemon_uninstall_dry_run", uninstall.plan.describe());
    assert!(
        uninstall
            .kept
            .iter()
            .any(|k| k.contains("logs in /Library/Logs/sovereign"))
    );
    assert!(uninstall.kept.iter().any(|k| k.contains("uid 302")));
    check_uninstall(&uninstall.plan, root.path()).unwrap();
}

#[test]
fn leaving_out_any_uninstall_step_fails_the_check() {
    let root = tempfile::tempdir().unwrap();
    installed(root.path());
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    running_daemon(&runner);
    let uninstall =
        SystemLaunchd::new(&runner, &fs, console(), "_ollama", DaemonOptions::default())
            .uninstall_plan(&state_dir())
            .unwrap();
    for index in 0..uninstall.plan.actions.len() {
        let case = tempfile::tempdir().unwrap();
        installed(case.path());
        let mut plan = uninstall.plan.clone();
        let removed = plan.actions.remove(index);
        // RemoveEmptyDir of a directory that is not empty (the data dir inside) does
        // nothing either way; every other step must be missed.
        if matches!(removed, Action::RemoveEmptyDir { .. }) {
            continue;
        }
        assert!(
            check_uninstall(&plan, case.path()).is_err(),
            "the check passed without step {index}: {removed:?}"
        );
    }
}

#[test]
fn models_are_not_moved_back_onto_a_directory_that_exists_again() {
    let root = tempfile::tempdir().unwrap();
    installed(root.path());
    // The user pulled a model again after the move.
    write(
        root.path(),
        "/Users/alice/.ollama/models/blobs/sha256-new",
        "weights",
    );
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    running_daemon(&runner);
    let uninstall =
        SystemLaunchd::new(&runner, &fs, console(), "_ollama", DaemonOptions::default())
            .uninstall_plan(&state_dir())
            .unwrap();
    let described = uninstall.plan.describe();
    assert!(!described.contains("mv "), "{described}");
    assert!(!described.contains("chown"), "{described}");
    assert!(
        uninstall.kept.iter().any(|k| k.contains("not moved back")),
        "{:?}",
        uninstall.kept
    );
}

#[test]
fn uninstall_without_a_manifest_removes_only_files_that_are_ours() {
    let root = tempfile::tempdir().unwrap();
    write(
        root.path(),
        PLIST,
        "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>Label</key>\
         <string>com.sovereign.ollama</string></dict></plist>",
    );
    write(root.path(), NEWSYSLOG, "# someone else's rotation rule\n");
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    clean_mac(&runner);
    let uninstall =
        SystemLaunchd::new(&runner, &fs, console(), "_ollama", DaemonOptions::default())
            .uninstall_plan(&state_dir())
            .unwrap();
    assert!(uninstall.from_known_paths);
    assert_eq!(uninstall.plan.describe(), format!("rm -f {PLIST}\n"));
}

#[test]
fn status_reports_the_daemon_domain_and_contradicting_power_settings() {
    let root = tempfile::tempdir().unwrap();
    write(root.path(), PLIST, "x");
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    running_daemon(&runner);
    runner.on(
        "lsof -nP -iTCP:11434 -sTCP:LISTEN",
        0,
        "COMMAND PID    USER FD TYPE DEVICE SIZE/OFF NODE NAME\n\
         ollama  312 _ollama 3u IPv4 0x1 0t0 TCP 192.168.250.20:11434 (LISTEN)\n",
        "",
    );
    clean_mac(&runner);
    let backend = Backend::MacosDaemon(Box::new(SystemLaunchd::new(
        &runner,
        &fs,
        console(),
        "_ollama",
        DaemonOptions::default(),
    )));
    let state = backend.state(&state_dir()).unwrap();
    assert_eq!(state.domain, "daemon");
    assert!(state.runs_without_login);
    assert!(state.running && state.pid == Some(312));
    assert_eq!(
        state.environment["OLLAMA_MODELS"],
        "/Library/Application Support/sovereign/ollama/models"
    );
    let mut report = status::evaluate(
        &spec(),
        65536,
        state,
        backend.listeners(11434).unwrap(),
        reachable(),
    );
    assert!(report.consistent(), "{:?}", report.problems);
    report.add_power(backend.power_status().unwrap().unwrap());
    // Still consistent: power settings warn, they do not fail status.
    assert!(report.consistent());
    let power: Vec<&String> = report
        .warnings
        .iter()
        .filter(|w| w.starts_with("pmset "))
        .collect();
    assert_eq!(power.len(), 3, "{:?}", report.warnings);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("FileVault is on"))
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["service"]["domain"], "daemon");
    assert_eq!(json["service"]["runs_without_login"], true);
    assert_eq!(json["power"]["settings"]["sleep"], "1");
    assert_eq!(json["power"]["filevault"], true);

    assert_eq!(
        runner.commands(),
        [
            "launchctl print system/com.sovereign.ollama",
            "lsof -nP -iTCP:11434 -sTCP:LISTEN",
            "pmset -g",
            "fdesetup status",
        ]
    );
}

#[test]
fn an_always_on_mac_has_no_power_warnings() {
    let runner = ScriptedRunner::new();
    runner.on("pmset -g", 0, &fixture("macos/pmset-g-always-on.txt"), "");
    runner.on("fdesetup status", 0, "FileVault is Off.\n", "");
    let power = sovereign_server::daemon::power_status(&runner).unwrap();
    assert!(
        power.contradictions.is_empty(),
        "{:?}",
        power.contradictions
    );
    assert_eq!(power.filevault, Some(false));
}

#[test]
fn control_uses_the_system_domain() {
    let root = tempfile::tempdir().unwrap();
    let fs = RootedFs::under(root.path());
    let runner = ScriptedRunner::new();
    running_daemon(&runner);
    let backend = SystemLaunchd::new(&runner, &fs, console(), "_ollama", DaemonOptions::default());
    assert_eq!(
        backend.control_plan(Control::Restart).unwrap().describe(),
        "launchctl kickstart -k system/com.sovereign.ollama\n"
    );
    assert_eq!(
        backend.control_plan(Control::Stop).unwrap().describe(),
        "launchctl bootout system/com.sovereign.ollama\n"
    );
    let stopped = ScriptedRunner::new();
    clean_mac(&stopped);
    let backend = SystemLaunchd::new(
        &stopped,
        &fs,
        console(),
        "_ollama",
        DaemonOptions::default(),
    );
    assert_eq!(
        backend.control_plan(Control::Start).unwrap().describe(),
        format!("launchctl bootstrap system {PLIST}\n")
    );
}

fn reachable() -> ApiStatus {
    ApiStatus {
        url: "http://192.168.250.20:11434".into(),
        reachable: true,
        error: None,
        version: Some("0.14.0".into()),
        families: status::api_families("0.14.0"),
        loaded_models: Vec::new(),
    }
}
