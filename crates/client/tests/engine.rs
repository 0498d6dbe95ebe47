//! Setup, status and uninstall over a temporary HOME, with fake processes and a fake
//! (or emulated) server. The whole tree is compared byte for byte before and after.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sovereign_client::{
    BACKUP_SUFFIX, ChangeKind, ClientError, ClientPaths, CommandOutput, CommandRunner, OllamaProbe,
    Platform, ServerProbe, SetupOptions, Shell, Tool, TunnelState, UndoKind, load_bundle, setup,
    status, uninstall,
};
use sovereign_model::{Deployment, Peer, PeerStatus};
use sovereign_wg::{Key, PeerBundle, render_client_config};

const PRIVATE: [u8; 32] = [0x03; 32];

fn bundle_with(server: &str, port: u16, context: u32, with_key: bool) -> PeerBundle {
    let mut d = Deployment::reference();
    d.server.address = server.parse().unwrap();
    d.server.api_port = port;
    d.ollama.context_length = context;
    let private = Key::from_bytes(PRIVATE);
    let peer = Peer {
        name: "laptop".into(),
        address: "10.10.10.2".parse().unwrap(),
        public_key: private.public_key().to_base64(),
        created: "2026-01-01T00:00:00Z".into(),
        status: PeerStatus::Active,
        preshared_key: true,
        changed: String::new(),
        expires: None,
    };
    let router = Key::from_bytes([0x01; 32]).public_key();
    let psk = Key::from_bytes([0x04; 32]);
    let key = with_key.then_some(&private);
    let config = render_client_config(&d, &peer, key, Some(&psk), &router);
    PeerBundle::new(&d, &peer, config, with_key, &router)
}

fn bundle() -> PeerBundle {
    bundle_with("192.168.250.20", 11434, 65536, true)
}

#[derive(Default)]
struct FakeRunner {
    ran: RefCell<Vec<Vec<String>>>,
    handshakes: Option<String>,
}

impl CommandRunner for FakeRunner {
    fn run(&self, argv: &[String]) -> std::io::Result<CommandOutput> {
        self.ran.borrow_mut().push(argv.to_vec());
        let stdout = match (argv.get(3).map(String::as_str), &self.handshakes) {
            (Some("latest-handshakes"), Some(h)) => h.clone(),
            (Some("transfer"), Some(_)) => "KEY=\t1000\t2000\n".into(),
            (Some(_), None) if argv[0] == "wg" => {
                return Ok(CommandOutput {
                    success: false,
                    stdout: String::new(),
                    stderr: "Unable to access interface: No such device".into(),
                });
            }
            _ => String::new(),
        };
        Ok(CommandOutput {
            success: true,
            stdout,
            stderr: String::new(),
        })
    }
}

struct FakeProbe(Result<Vec<String>, String>);

impl ServerProbe for FakeProbe {
    fn version(&self, _: &str) -> Result<String, String> {
        self.0
            .as_ref()
            .map(|_| "0.14.0".to_string())
            .map_err(Clone::clone)
    }
    fn models(&self, _: &str) -> Result<Vec<String>, String> {
        self.0.clone()
    }
}

fn models() -> FakeProbe {
    FakeProbe(Ok(vec!["qwen3-coder:30b".into(), "gpt-oss:20b".into()]))
}

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn paths(&self, platform: Platform) -> ClientPaths {
        let home = self.root().join("home");
        fs::create_dir_all(&home).unwrap();
        let wg = self.root().join("etc-wireguard");
        let wg = (platform == Platform::Linux).then_some(wg);
        ClientPaths::new(&home, None, None, wg.as_deref(), platform)
    }
    fn write(&self, relative: &str, text: &str) {
        let path = self.root().join("home").join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.root().join("home").join(relative)).unwrap()
    }
    /// Every file and directory under the root: relative path -> (mode, bytes).
    fn tree(&self) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
        sovereign_testkit::tree(self.root(), &[self.root()])
    }
}

fn options(shell: Option<Shell>, tools: &[Tool]) -> SetupOptions {
    SetupOptions {
        tools: tools.to_vec(),
        interface: "sovereign".into(),
        platform: Platform::Linux,
        shell,
        model: None,
        probe_models: true,
        private_key: None,
        up: false,
        global_env: false,
    }
}

const BASHRC: &str = "# my bashrc\nalias ll='ls -l'\nexport PATH=\"$HOME/bin:$PATH\"";
const ZSHRC: &str = "setopt autocd\n";
const FISH: &str = "set -g fish_greeting ''\n";
const CLAUDE: &str = "{\n  // keep me\n  \"theme\": \"dark\",\n  \"env\": { \"ANTHROPIC_BASE_URL\": \"https://gw.example\" }\n}\n";
const CODEX: &str = "model = \"gpt-5\"\n\n[model_providers.mine]\nname = \"mine\" # comment\n";
const OPENCODE: &str =
    "{\n  \"$schema\": \"https://opencode.ai/config.json\",\n  \"theme\": \"opencode\"\n}\n";

fn populate(home: &Home) {
    home.write(".bashrc", BASHRC);
    home.write(".zshrc", ZSHRC);
    home.write(".config/fish/config.fish", FISH);
    home.write(".claude/settings.json", CLAUDE);
    home.write(".codex/config.toml", CODEX);
    home.write(".config/opencode/opencode.json", OPENCODE);
}

#[test]
fn setup_twice_then_uninstall_gives_back_every_byte_for_each_shell() {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let home = Home::new();
        let paths = home.paths(Platform::Linux);
        populate(&home);
        let before = home.tree();
        let runner = FakeRunner::default();
        for _ in 0..2 {
            setup(
                &bundle(),
                &options(Some(shell), &Tool::ALL),
                &paths,
                &runner,
                &models(),
                false,
            )
            .unwrap();
        }
        for profile in [".bashrc", ".zshrc", ".config/fish/config.fish"] {
            let text = home.read(profile);
            assert_eq!(
                text.matches("# >>> sovereign >>>").count(),
                1,
                "{shell:?} {profile}: {text}"
            );
            assert_eq!(text.matches("# <<< sovereign <<<").count(), 1, "{profile}");
            let backup = format!("{}{BACKUP_SUFFIX}", paths.home.join(profile).display());
            assert!(Path::new(&backup).exists(), "{backup}");
        }
        assert!(
            home.read(".bashrc").starts_with(BASHRC),
            "the user's lines come first, untouched"
        );
        assert!(home.read(".config/fish/config.fish").contains("env.fish"));
        let env = home.read(".config/sovereign/env");
        assert!(env.contains("export ANTHROPIC_BASE_URL='http://192.168.250.20:11434'\n"));
        assert!(env.contains("export OPENAI_BASE_URL='http://192.168.250.20:11434/v1'\n"));
        assert!(env.contains("export AIDER_MODEL='ollama_chat/qwen3-coder:30b'\n"));
        let claude = home.read(".claude/settings.json");
        assert!(
            claude.contains("// keep me")
                && claude.contains("\"ANTHROPIC_BASE_URL\": \"http://192.168.250.20:11434\"")
        );
        assert!(
            home.read(".codex/config.toml")
                .contains("[model_providers.mine]")
        );
        assert!(
            home.read(".codex/sovereign.config.toml")
                .contains("model = \"qwen3-coder:30b\"")
        );
        assert!(
            home.read(".config/opencode/opencode.json")
                .contains("\"theme\": \"opencode\"")
        );
        assert!(
            runner.ran.borrow().is_empty(),
            "no command runs without --up"
        );

        let report = uninstall(&paths, &runner, false).unwrap().unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.files.iter().any(|f| f.action == UndoKind::Restore));
        assert_eq!(
            home.tree(),
            before,
            "{shell:?}: uninstall must leave exactly the original tree"
        );
    }
}

#[test]
fn a_fresh_home_gets_the_login_shells_profile_and_loses_it_again() {
    let home = Home::new();
    let paths = home.paths(Platform::Linux);
    let before = home.tree();
    setup(
        &bundle(),
        &options(Some(Shell::Fish), &[Tool::ClaudeCode, Tool::Codex]),
        &paths,
        &FakeRunner::default(),
        &models(),
        false,
    )
    .unwrap();
    assert!(paths.home.join(".config/fish/config.fish").exists());
    assert!(
        !paths.home.join(".bashrc").exists(),
        "only the login shell's missing profile is created"
    );
    let config_dir = fs::metadata(paths.sovereign_dir())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(config_dir, 0o700);
    uninstall(&paths, &FakeRunner::default(), false)
        .unwrap()
        .unwrap();
    assert_eq!(home.tree(), before);
}

#[test]
fn the_private_key_lives_only_in_a_0600_file() {
    let home = Home::new();
    let paths = home.paths(Platform::Linux);
    let report = setup(
        &bundle(),
        &options(Some(Shell::Bash), &Tool::ALL),
        &paths,
        &FakeRunner::default(),
        &models(),
        false,
    )
    .unwrap();
    let secret = Key::from_bytes(PRIVATE).to_base64();
    let conf = paths.wg_config("sovereign");
    assert!(fs::read_to_string(&conf).unwrap().contains(&secret));
    assert_eq!(
        fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(&paths.wg_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let holders: Vec<_> = home
        .tree()
        .into_iter()
        .filter(|(_, (_, bytes))| String::from_utf8_lossy(bytes).contains(&secret))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(holders, vec![PathBuf::from("etc-wireguard/sovereign.conf")]);
    assert!(!serde_json::to_string(&report).unwrap().contains(&secret));
    assert!(!format!("{report:?}").contains(&secret));
}

#[test]
fn dry_runs_change_nothing() {
    let home = Home::new();
    let paths = home.paths(Platform::Linux);
    populate(&home);
    let before = home.tree();
    let mut opts = options(Some(Shell::Zsh), &Tool::ALL);
    opts.up = true;
    let runner = FakeRunner::default();
    let report = setup(&bundle(), &opts, &paths, &runner, &models(), true).unwrap();
    assert_eq!(home.tree(), before);
    assert!(runner.ran.borrow().is_empty());
    assert!(
        report
            .changes
            .iter()
            .any(|c| c.change == ChangeKind::Create)
    );
    assert!(
        report
            .changes
            .iter()
            .any(|c| c.change == ChangeKind::Modify)
    );
    assert_eq!(
        report.commands.len(),
        1,
        "the dry run names the command --up would run"
    );

    setup(
        &bundle(),
        &options(Some(Shell::Zsh), &Tool::ALL),
        &paths,
        &runner,
        &models(),
        false,
    )
    .unwrap();
    let installed = home.tree();
    let report = uninstall(&paths, &runner, true).unwrap().unwrap();
    assert!(!report.files.is_empty());
    assert_eq!(
        home.tree(),
        installed,
        "uninstall --dry-run changes nothing either"
    );
}

#[test]
fn edits_made_after_setup_survive_uninstall() {
    let home = Home::new();
    let paths = home.paths(Platform::Linux);
    populate(&home);
    setup(
        &bundle(),
        &options(Some(Shell::Bash), &[Tool::ClaudeCode, Tool::Codex]),
        &paths,
        &FakeRunner::default(),
        &models(),
        false,
    )
    .unwrap();
    let bashrc = paths.home.join(".bashrc");
    let later = format!(
        "{}export EDITOR=vim\n",
        fs::read_to_string(&bashrc).unwrap()
    );
    fs::write(&bashrc, later).unwrap();
    let codex = paths.home.join(".codex/config.toml");
    fs::write(
        &codex,
        format!(
            "{}\n[mcp_servers.x]\ncommand = \"x\"\n",
            fs::read_to_string(&codex).unwrap()
        ),
    )
    .unwrap();

    let report = uninstall(&paths, &FakeRunner::default(), false)
        .unwrap()
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        fs::read_to_string(&bashrc).unwrap(),
        format!("{BASHRC}\nexport EDITOR=vim\n")
    );
    let codex = fs::read_to_string(&codex).unwrap();
    assert!(codex.contains("[mcp_servers.x]") && codex.contains("[model_providers.mine]"));
    assert!(!codex.contains("sovereign"), "{codex}");
    assert!(!paths.home.join(format!(".bashrc{BACKUP_SUFFIX}")).exists());
    assert_eq!(
        home.read(".claude/settings.json"),
        CLAUDE,
        "untouched since setup: restored exactly"
    );
}

#[test]
fn up_starts_the_tunnel_and_uninstall_stops_it() {
    let home = Home::new();
    let paths = home.paths(Platform::Linux);
    let mut opts = options(Some(Shell::Bash), &[]);
    opts.up = true;
    let runner = FakeRunner::default();
    setup(&bundle(), &opts, &paths, &runner, &models(), false).unwrap();
    let conf = paths.wg_config("sovereign").display().to_string();
    assert_eq!(
        runner.ran.borrow().as_slice(),
        &[vec!["wg-quick".to_string(), "up".into(), conf.clone()]]
    );
    uninstall(&paths, &runner, false).unwrap().unwrap();
    assert_eq!(
        runner.ran.borrow().last().unwrap(),
        &vec!["wg-quick".to_string(), "down".into(), conf]
    );
}

#[test]
fn status_reports_tunnel_and_server() {
    let now = 1_800_000_000;
    let runner = FakeRunner {
        handshakes: Some(format!("KEY=\t{}\n", now - 42)),
        ..FakeRunner::default()
    };
    let s = status(
        true,
        Some("laptop".into()),
        "sovereign",
        "http://x:11434",
        &runner,
        &models(),
        now,
    );
    assert_eq!(
        (s.tunnel.state, s.tunnel.last_handshake_age_secs),
        (TunnelState::Up, Some(42))
    );
    assert_eq!(
        (s.tunnel.rx_bytes, s.tunnel.tx_bytes),
        (Some(1000), Some(2000))
    );
    assert!(s.server.reachable && s.healthy());
    assert_eq!(
        runner.ran.borrow()[0],
        vec!["wg", "show", "sovereign", "latest-handshakes"]
    );

    let down = status(
        true,
        None,
        "sovereign",
        "http://x:11434",
        &FakeRunner::default(),
        &FakeProbe(Err("refused".into())),
        now,
    );
    assert_eq!(down.tunnel.state, TunnelState::Down);
    assert!(!down.server.reachable && !down.healthy());
    assert_eq!(down.server.error.as_deref(), Some("refused"));
}

#[test]
fn the_real_probe_sees_an_emulated_server_and_a_closed_port() {
    let emulator =
        ollama_emulator::Emulator::start("127.0.0.1:0", ollama_emulator::EmulatorConfig::default())
            .unwrap();
    let probe = OllamaProbe::default();
    assert_eq!(
        probe.version(&emulator.base_url()).unwrap(),
        ollama_emulator::DEFAULT_VERSION
    );
    assert_eq!(
        probe.models(&emulator.base_url()).unwrap(),
        vec![ollama_emulator::DEFAULT_MODEL.to_string()]
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = probe.version(&format!("http://{closed}")).unwrap_err();
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn setup_without_a_reachable_server_warns_and_still_configures() {
    let home = Home::new();
    let paths = home.paths(Platform::Linux);
    let report = setup(
        &bundle_with("192.168.250.20", 11434, 8192, true),
        &options(Some(Shell::Bash), &[Tool::Codex]),
        &paths,
        &FakeRunner::default(),
        &FakeProbe(Err("no route".into())),
        false,
    )
    .unwrap();
    assert_eq!(report.model, None);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("8192") && w.contains("Codex")),
        "{:?}",
        report.warnings
    );
    assert!(report.warnings.iter().any(|w| w.contains("no route")));
    assert!(
        !home
            .read(".codex/sovereign.config.toml")
            .contains("model =")
    );
}

#[test]
fn macos_keeps_the_tunnel_in_the_config_dir_and_shows_a_qr() {
    let home = Home::new();
    let paths = home.paths(Platform::MacOs);
    let mut opts = options(Some(Shell::Zsh), &[]);
    opts.platform = Platform::MacOs;
    let report = setup(
        &bundle(),
        &opts,
        &paths,
        &FakeRunner::default(),
        &models(),
        false,
    )
    .unwrap();
    assert_eq!(
        report.wg_config,
        paths.sovereign_dir().join("sovereign.conf")
    );
    assert!(report.qr.as_deref().is_some_and(|q| q.lines().count() > 10));
    assert!(
        report
            .next_steps
            .iter()
            .any(|s| s.contains("Import Tunnel"))
    );
}

#[test]
fn device_keyed_bundles_need_the_devices_key() {
    let home = Home::new();
    let paths = home.paths(Platform::Linux);
    let keyless = bundle_with("192.168.250.20", 11434, 65536, false);
    let err = setup(
        &keyless,
        &options(None, &[]),
        &paths,
        &FakeRunner::default(),
        &models(),
        false,
    )
    .unwrap_err();
    assert!(
        matches!(err, ClientError::PrivateKeyNeeded { .. }) && err.is_usage(),
        "{err}"
    );
    let mut opts = options(None, &[]);
    opts.private_key = Some(Key::from_bytes(PRIVATE));
    setup(
        &keyless,
        &opts,
        &paths,
        &FakeRunner::default(),
        &models(),
        false,
    )
    .unwrap();
    let conf = fs::read_to_string(paths.wg_config("sovereign")).unwrap();
    assert!(conf.contains(&Key::from_bytes(PRIVATE).to_base64()));
}

#[test]
fn files_sovereign_did_not_write_are_refused_before_anything_changes() {
    let home = Home::new();
    let paths = home.paths(Platform::Linux);
    fs::create_dir_all(&paths.wg_dir).unwrap();
    fs::write(
        paths.wg_config("sovereign"),
        "[Interface]\n# someone else's\n",
    )
    .unwrap();
    let before = home.tree();
    let err = setup(
        &bundle(),
        &options(Some(Shell::Bash), &[]),
        &paths,
        &FakeRunner::default(),
        &models(),
        false,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("sovereign did not write it"),
        "{err}"
    );
    assert_eq!(home.tree(), before);

    let home = Home::new();
    let paths = home.paths(Platform::Linux);
    home.write(".bashrc", "# >>> sovereign >>>\nhalf a block\n");
    let err = setup(
        &bundle(),
        &options(Some(Shell::Bash), &[]),
        &paths,
        &FakeRunner::default(),
        &models(),
        false,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(".bashrc") && err.to_string().contains("broken"),
        "{err}"
    );
}

#[test]
fn missing_corrupt_and_foreign_bundles_are_clear_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = load_bundle(&dir.path().join("nope.json")).unwrap_err();
    assert!(
        missing.is_usage() && missing.to_string().contains("nope.json"),
        "{missing}"
    );
    let good = bundle().to_json();
    let cases = [
        (
            "corrupt.json",
            "{\"format\": \"sovereign-peer-bundle/1\", \"peer\": 3}".to_string(),
            "damaged",
        ),
        (
            "future.json",
            good.replace("sovereign-peer-bundle/1", "sovereign-peer-bundle/2"),
            "reads only",
        ),
        (
            "other.json",
            "{\"format\": \"wg-easy/1\"}".to_string(),
            "not a sovereign peer bundle",
        ),
        ("text.json", "[Interface]\n".to_string(), "not JSON"),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        let err = load_bundle(&path).unwrap_err();
        assert!(err.is_usage(), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(name) && message.contains(expected),
            "{message}"
        );
    }
    let path = dir.path().join("good.json");
    fs::write(&path, good).unwrap();
    assert_eq!(load_bundle(&path).unwrap(), bundle());
}
