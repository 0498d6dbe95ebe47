//! Golden files for the plist, the unit and the drop-in; the plist parses back with
//! exactly our keys; the unit and drop-in pass `systemd-analyze verify`.

mod common;

use std::path::{Path, PathBuf};

use sovereign_model::{BindMode, Deployment};
use sovereign_server::render::{
    DAEMON_PLIST_KEYS, LaunchAgent, LaunchDaemon, PLIST_KEYS, SystemdService, UnitUser,
    render_daemon_plist, render_dropin, render_newsyslog, render_plist, render_unit,
};
use sovereign_server::spec::{DaemonPaths, MacPaths, ServiceSpec};

fn configs() -> Vec<(&'static str, Deployment)> {
    let default = Deployment::reference();
    let mut all = Deployment::reference();
    all.server.bind = BindMode::All;
    let mut custom = Deployment::reference();
    custom.ollama.context_length = 131072;
    custom.ollama.keep_alive = "-1".into();
    custom.ollama.num_parallel = 2;
    custom.ollama.flash_attention = false;
    custom.server.address = "192.168.250.77".parse().unwrap();
    custom.server.api_port = 11500;
    vec![
        ("default", default),
        ("bind_all", all),
        ("custom_context", custom),
    ]
}

fn agent(deployment: &Deployment) -> LaunchAgent {
    let spec = ServiceSpec::from_deployment(deployment);
    LaunchAgent::new(
        &spec,
        PathBuf::from("/opt/homebrew/bin/ollama"),
        &MacPaths::for_home(Path::new("/Users/alice")),
    )
}

fn systemd(deployment: &Deployment, program: &Path, user: UnitUser) -> SystemdService {
    SystemdService::new(
        &ServiceSpec::from_deployment(deployment),
        program.to_path_buf(),
        user,
    )
}

#[test]
fn plist_golden_files() {
    for (name, deployment) in configs() {
        insta::assert_snapshot!(
            format!("plist_{name}"),
            render_plist(&agent(&deployment)).unwrap()
        );
    }
}

#[test]
fn unit_and_dropin_golden_files() {
    let program = Path::new("/usr/local/bin/ollama");
    for (name, deployment) in configs() {
        insta::assert_snapshot!(
            format!("unit_{name}"),
            render_unit(&systemd(&deployment, program, UnitUser::Dynamic))
        );
        insta::assert_snapshot!(
            format!("dropin_{name}"),
            render_dropin(&systemd(
                &deployment,
                program,
                UnitUser::Named("ollama".into())
            ))
        );
    }
    insta::assert_snapshot!(
        "unit_named_user",
        render_unit(&systemd(
            &Deployment::reference(),
            program,
            UnitUser::Named("ollama".into())
        ))
    );
}

#[test]
fn plist_parses_back_with_exactly_the_expected_keys_and_values() {
    for (_, deployment) in configs() {
        let spec = ServiceSpec::from_deployment(&deployment);
        let text = render_plist(&agent(&deployment)).unwrap();
        let value = plist::Value::from_reader_xml(text.as_bytes()).expect("a valid property list");
        let root = value.as_dictionary().expect("a dictionary at the top");
        let keys: Vec<&str> = root.keys().map(String::as_str).collect();
        assert_eq!(keys, PLIST_KEYS);

        assert_eq!(root["Label"].as_string(), Some("com.sovereign.ollama"));
        let arguments: Vec<&str> = root["ProgramArguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_string().unwrap())
            .collect();
        assert_eq!(arguments, ["/opt/homebrew/bin/ollama", "serve"]);
        assert_eq!(root["RunAtLoad"].as_boolean(), Some(true));
        assert_eq!(root["KeepAlive"].as_boolean(), Some(true));
        assert_eq!(
            root["StandardErrorPath"].as_string(),
            Some("/Users/alice/Library/Logs/sovereign/ollama.err.log")
        );

        let environment = root["EnvironmentVariables"].as_dictionary().unwrap();
        let names: Vec<&str> = environment.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "OLLAMA_HOST",
                "OLLAMA_CONTEXT_LENGTH",
                "OLLAMA_KEEP_ALIVE",
                "OLLAMA_NUM_PARALLEL",
                "OLLAMA_FLASH_ATTENTION"
            ]
        );
        let expected_host = match deployment.server.bind {
            BindMode::All => format!("0.0.0.0:{}", deployment.server.api_port),
            BindMode::LanIp => format!(
                "{}:{}",
                deployment.server.address, deployment.server.api_port
            ),
        };
        assert_eq!(
            environment["OLLAMA_HOST"].as_string(),
            Some(expected_host.as_str())
        );
        assert_eq!(
            environment["OLLAMA_CONTEXT_LENGTH"].as_string(),
            Some(deployment.ollama.context_length.to_string().as_str())
        );
        assert_eq!(spec.environment.len(), environment.len());
    }
}

#[test]
fn plist_escapes_what_xml_needs_escaping() {
    let mut deployment = Deployment::reference();
    deployment.ollama.keep_alive = "<24h & more>".into();
    let text = render_plist(&agent(&deployment)).unwrap();
    assert!(text.contains("&lt;24h &amp; more&gt;"), "{text}");
    let value = plist::Value::from_reader_xml(text.as_bytes()).unwrap();
    let keep_alive = value.as_dictionary().unwrap()["EnvironmentVariables"]
        .as_dictionary()
        .unwrap()["OLLAMA_KEEP_ALIVE"]
        .as_string()
        .unwrap()
        .to_string();
    assert_eq!(keep_alive, "<24h & more>");
}

/// `systemd-analyze verify` with the directory of the file on the search path, so the
/// drop-in directory beside the unit is read too. Any warning fails the test.
fn verify(unit: &Path) {
    let output = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(unit)
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "verify failed for {}:\n{stderr}",
        unit.display()
    );
    assert!(
        stderr.trim().is_empty(),
        "verify warned for {}:\n{stderr}",
        unit.display()
    );
}

#[test]
fn unit_and_dropin_pass_systemd_analyze_verify() {
    if !sovereign_testkit::require("systemd-analyze", &["systemd-analyze"], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let program = common::fake_executable(dir.path(), "bin/ollama");
    for (name, deployment) in configs() {
        for user in [UnitUser::Dynamic, UnitUser::Named("root".into())] {
            let case = dir
                .path()
                .join(format!("{name}-{}", matches!(user, UnitUser::Dynamic)));
            std::fs::create_dir_all(&case).unwrap();
            let unit = case.join("sovereign-ollama.service");
            std::fs::write(&unit, render_unit(&systemd(&deployment, &program, user))).unwrap();
            verify(&unit);
        }

        // The drop-in on top of a unit shaped like Ollama's own installer writes.
        let case = dir.path().join(format!("{name}-dropin"));
        std::fs::create_dir_all(case.join("ollama.service.d")).unwrap();
        let upstream = case.join("ollama.service");
        std::fs::write(
            &upstream,
            format!(
                "[Unit]\nDescription=Ollama Service\nAfter=network-online.target\n\n[Service]\n\
                 ExecStart={} serve\nUser=root\nGroup=root\nRestart=always\nRestartSec=3\n\n\
                 [Install]\nWantedBy=default.target\n",
                program.display()
            ),
        )
        .unwrap();
        std::fs::write(
            case.join("ollama.service.d/sovereign.conf"),
            render_dropin(&systemd(
                &deployment,
                &program,
                UnitUser::Named("root".into()),
            )),
        )
        .unwrap();
        verify(&upstream);
    }
}

#[test]
fn verify_catches_a_broken_unit() {
    // Guards the test above: a unit with a misplaced assignment must not pass.
    if !sovereign_testkit::require("systemd-analyze", &["systemd-analyze"], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let program = common::fake_executable(dir.path(), "bin/ollama");
    let unit = dir.path().join("broken.service");
    std::fs::write(
        &unit,
        format!(
            "Environment=\"OLLAMA_HOST=1.2.3.4\"\n[Service]\nExecStart={} serve\n",
            program.display()
        ),
    )
    .unwrap();
    let output = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&output.stderr).trim().is_empty());
}

fn daemon(deployment: &Deployment) -> LaunchDaemon {
    LaunchDaemon::new(
        &ServiceSpec::from_deployment(deployment),
        PathBuf::from("/opt/homebrew/bin/ollama"),
        "_ollama",
        "_ollama",
        &DaemonPaths::system(),
    )
}

#[test]
fn daemon_plist_and_newsyslog_golden_files() {
    for (name, deployment) in configs() {
        insta::assert_snapshot!(
            format!("daemon_plist_{name}"),
            render_daemon_plist(&daemon(&deployment)).unwrap()
        );
    }
    insta::assert_snapshot!(
        "daemon_newsyslog",
        render_newsyslog(&DaemonPaths::system(), "_ollama", "_ollama")
    );
}

#[test]
fn daemon_plist_parses_back_with_exactly_the_expected_keys() {
    for (_, deployment) in configs() {
        let text = render_daemon_plist(&daemon(&deployment)).unwrap();
        let value = plist::Value::from_reader_xml(text.as_bytes()).unwrap();
        let root = value.as_dictionary().unwrap();
        let keys: Vec<&str> = root.keys().map(String::as_str).collect();
        assert_eq!(keys, DAEMON_PLIST_KEYS);
        let environment = root["EnvironmentVariables"].as_dictionary().unwrap();
        let names: Vec<&str> = environment.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "OLLAMA_HOST",
                "OLLAMA_CONTEXT_LENGTH",
                "OLLAMA_KEEP_ALIVE",
                "OLLAMA_NUM_PARALLEL",
                "OLLAMA_FLASH_ATTENTION",
                "HOME",
                "OLLAMA_MODELS"
            ]
        );
    }
}

/// Python's plistlib is the reader nobody here wrote: it parses each rendered daemon
/// plist and reports every key with its type and value, which must be what launchd
/// needs (strings, a string array, booleans).
#[test]
fn python_plistlib_reads_every_key_of_the_daemon_plist() {
    if !sovereign_testkit::require(
        "python_plistlib_reads_every_key_of_the_daemon_plist",
        &["python3"],
        false,
    ) {
        return;
    }
    const READER: &str = r#"
import json, plistlib, sys
with open(sys.argv[1], "rb") as f:
    data = plistlib.load(f)
def kind(v):
    return {bool: "bool", str: "string", list: "array", dict: "dict", int: "int"}[type(v)]
print(json.dumps({k: {"type": kind(v), "value": v} for k, v in data.items()}))
"#;
    let dir = tempfile::tempdir().unwrap();
    for (name, deployment) in configs() {
        let path = dir.path().join(format!("{name}.plist"));
        std::fs::write(&path, render_daemon_plist(&daemon(&deployment)).unwrap()).unwrap();
        let output = std::process::Command::new("python3")
            .args(["-c", READER])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "plistlib rejected {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let seen = seen.as_object().unwrap();
        let keys: Vec<&str> = seen.keys().map(String::as_str).collect();
        // plistlib keeps the file's order, and so does serde_json here.
        assert_eq!(keys, DAEMON_PLIST_KEYS, "{name}");
        let string = |key: &str| {
            assert_eq!(seen[key]["type"], "string", "{name} {key}");
            seen[key]["value"].as_str().unwrap().to_string()
        };
        assert_eq!(string("Label"), "com.sovereign.ollama");
        assert_eq!(string("UserName"), "_ollama");
        assert_eq!(string("GroupName"), "_ollama");
        assert_eq!(
            string("StandardOutPath"),
            "/Library/Logs/sovereign/ollama.out.log"
        );
        assert_eq!(
            string("StandardErrorPath"),
            "/Library/Logs/sovereign/ollama.err.log"
        );
        for key in ["RunAtLoad", "KeepAlive"] {
            assert_eq!(seen[key]["type"], "bool", "{name} {key}");
            assert_eq!(seen[key]["value"], true, "{name} {key}");
        }
        assert_eq!(seen["ProgramArguments"]["type"], "array");
        let arguments = seen["ProgramArguments"]["value"].as_array().unwrap();
        let arguments: Vec<&str> = arguments.iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(arguments, daemon(&deployment).program_arguments(), "{name}");
        assert!(arguments.contains(&"/opt/homebrew/bin/ollama"), "{name}");
        assert_eq!(seen["EnvironmentVariables"]["type"], "dict");
        let environment = seen["EnvironmentVariables"]["value"].as_object().unwrap();
        let host = match deployment.server.bind {
            BindMode::All => format!("0.0.0.0:{}", deployment.server.api_port),
            BindMode::LanIp => format!(
                "{}:{}",
                deployment.server.address, deployment.server.api_port
            ),
        };
        assert_eq!(environment["OLLAMA_HOST"], host.as_str());
        assert_eq!(
            environment["HOME"],
            "/Library/Application Support/sovereign/ollama"
        );
        assert_eq!(
            environment["OLLAMA_MODELS"],
            "/Library/Application Support/sovereign/ollama/models"
        );
        assert!(environment.values().all(|v| v.is_string()));
    }
}

/// The boot-time wait runs in a real `/bin/sh` with `ifconfig` replaced by a stub:
/// it execs Ollama (`$0`) with `serve` once the address shows, and gives up with a
/// message when it never does (launchd's KeepAlive then tries again).
#[test]
fn the_address_wait_execs_ollama_once_the_address_is_assigned() {
    let dir = tempfile::tempdir().unwrap();
    let ollama = dir.path().join("ollama");
    std::fs::write(&ollama, "#!/bin/sh\necho \"ran $*\"\n").unwrap();
    make_executable(&ollama);
    let run = |ifconfig_prints: &str| {
        let ifconfig = dir.path().join("ifconfig");
        std::fs::write(
            &ifconfig,
            format!("#!/bin/sh\nprintf '%b' '{ifconfig_prints}'\n"),
        )
        .unwrap();
        make_executable(&ifconfig);
        let mut d = daemon(&Deployment::reference());
        d.program = ollama.clone();
        let arguments = d.program_arguments();
        assert_eq!(arguments[..2], ["/bin/sh", "-c"]);
        // The stub instead of /sbin/ifconfig, grep from PATH, and a 2 s budget.
        let script = arguments[2]
            .replace("/sbin/ifconfig", &ifconfig.display().to_string())
            .replace("/usr/bin/grep", "grep")
            .replace("-ge 60", "-ge 2")
            .replace("sleep 1", "sleep 0");
        assert_ne!(script, arguments[2]);
        std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .arg(&arguments[3])
            .output()
            .unwrap()
    };
    let up = run("en0: flags=8863<UP>\\n\\tinet 192.168.250.20 netmask 0xffffff00\\n");
    assert!(up.status.success());
    assert_eq!(String::from_utf8_lossy(&up.stdout), "ran serve\n");
    // .200 is not .20: the trailing space in the pattern keeps them apart.
    let other = run("en0: flags=8863<UP>\\n\\tinet 192.168.250.200 netmask 0xffffff00\\n");
    assert_eq!(other.status.code(), Some(1));
    assert!(other.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&other.stderr)
            .contains("192.168.250.20 is not assigned to any interface")
    );
}

#[test]
fn a_daemon_bound_to_all_starts_ollama_directly() {
    let mut deployment = Deployment::reference();
    deployment.server.bind = BindMode::All;
    assert_eq!(
        daemon(&deployment).program_arguments(),
        ["/opt/homebrew/bin/ollama", "serve"]
    );
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The README's comparison says the Linux service needs no login: it is a system unit
/// (not a `systemctl --user` one) wanted by multi-user.target, which boot reaches
/// with nobody logged in.
#[test]
fn the_linux_unit_starts_at_boot_without_a_login() {
    let unit = render_unit(&systemd(
        &Deployment::reference(),
        Path::new("/usr/local/bin/ollama"),
        UnitUser::Dynamic,
    ));
    assert!(
        unit.contains("\n[Install]\nWantedBy=multi-user.target\n"),
        "{unit}"
    );
    assert_eq!(sovereign_server::spec::SYSTEMD_DIR, "/etc/systemd/system");
}
