//! `sovereign server`: Ollama as a supervised service on the AI server (issue #8).
//!
//! The logic lives in `sovereign-server`; this file picks the backend for the machine
//! it runs on, prints plans and reports, and maps outcomes to exit codes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use sovereign_model::{Deployment, MacService, Platform};
use sovereign_server::daemon::{DaemonOptions, SystemLaunchd};
use sovereign_server::linux::Systemd;
use sovereign_server::macos::{Launchd, MacUser};
use sovereign_server::render::{
    LaunchAgent, LaunchDaemon, SystemdService, UnitUser, render_daemon_plist, render_dropin,
    render_newsyslog, render_plist, render_unit,
};
use sovereign_server::spec::{
    DROPIN_NAME, DaemonPaths, MACOS_OLLAMA_CANDIDATES, MacPaths, SYSTEMD_UNIT, UPSTREAM_UNIT,
};
use sovereign_server::status::{self, Status};
use sovereign_server::{
    Backend, Command, CommandRunner, Control, Plan, RootedFs, ServiceSpec, SystemRunner, static_ip,
    warm,
};
use sovereign_server::{InstallKind, InstallManifest};

use crate::context::{Context, Outcome, usage};
use crate::output::print_json;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    sovereign server render --platform linux --out ./server\n  \
    sovereign server install --dry-run\n  \
    sudo sovereign server install --create-account --power   # server.service = \"daemon\"\n  \
    sovereign server status --json\n  \
    sovereign server warm qwen2.5-coder:32b\n  \
    sovereign server static-ip --apply")]
pub struct ServerArgs {
    #[command(subcommand)]
    pub command: ServerCommand,
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Print (or write to --out) the launchd plist (and, for a daemon, its newsyslog
    /// rule) or the systemd unit and drop-in.
    #[command(
        after_help = "Examples:\n  sovereign server render\n  sovereign server render --out server/"
    )]
    Render(RenderArgs),
    /// Install and start the service on this machine (checks for conflicts first).
    #[command(
        after_help = "Examples:\n  sovereign server install --dry-run\n  sovereign server install\n  sudo sovereign server install --create-account --power   # server.service = \"daemon\""
    )]
    Install(InstallArgs),
    /// Remove exactly what install created; models and logs stay.
    #[command(
        after_help = "Examples:\n  sovereign server uninstall --dry-run\n  sovereign server uninstall"
    )]
    Uninstall(DryRunArgs),
    /// Compare what runs (service, listening sockets, API) with the deployment.
    #[command(
        after_help = "Examples:\n  sovereign server status\n  sovereign server status --json | jq .service"
    )]
    Status(StatusArgs),
    /// Start the service.
    #[command(after_help = "Examples:\n  sovereign server start")]
    Start(DryRunArgs),
    /// Stop the service (it starts again at the next login or boot).
    #[command(after_help = "Examples:\n  sovereign server stop")]
    Stop(DryRunArgs),
    /// Restart the service.
    #[command(after_help = "Examples:\n  sovereign server restart")]
    Restart(DryRunArgs),
    /// Show the service's log.
    #[command(after_help = "Examples:\n  sovereign server logs\n  sovereign server logs --follow")]
    Logs(LogsArgs),
    /// Pull models and load them so they stay resident.
    #[command(
        after_help = "Examples:\n  sovereign server warm qwen3-coder:30b\n  sovereign server warm qwen3-coder:30b --json"
    )]
    Warm(WarmArgs),
    /// Pin the server's LAN address (macOS: networksetup; Linux: printed advice).
    #[command(
        after_help = "Examples:\n  sovereign server static-ip --dry-run\n  sovereign server static-ip"
    )]
    StaticIp(StaticIpArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlatformArg {
    Macos,
    Linux,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Default: server.platform from the deployment.
    #[arg(long, value_enum)]
    pub platform: Option<PlatformArg>,
    /// Write the files into this directory instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The ollama binary the service runs. Default: the first one installed here, else
    /// /opt/homebrew/bin/ollama (macOS) or /usr/local/bin/ollama (Linux).
    #[arg(long, value_name = "PATH")]
    pub ollama: Option<PathBuf>,
    /// macOS: the home directory of the user the agent runs as (logs live there).
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Linux: run the unit as this user instead of a systemd DynamicUser.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Machine-readable output: the platform and each file's path and contents.
    #[arg(long, conflicts_with = "out")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Print the exact commands and files; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The ollama binary to run (default: detected).
    #[arg(long, value_name = "PATH")]
    pub ollama: Option<PathBuf>,
    /// Daemon: create server.service_account (hidden, id 300-499, no login shell) when
    /// it does not exist. Uninstall deletes it again.
    #[arg(long)]
    pub create_account: bool,
    /// Daemon: move the invoking user's ~/.ollama/models into the daemon's models
    /// directory (moved back on uninstall).
    #[arg(long)]
    pub move_models: bool,
    /// Daemon: set pmset for always-on (sleep 0, autorestart 1, womp 1); uninstall
    /// restores the previous values. FileVault is never touched.
    #[arg(long)]
    pub power: bool,
}

#[derive(Debug, Args)]
pub struct DryRunArgs {
    /// Print the exact commands and files; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
    #[arg(long)]
    pub json: bool,
    /// Ask this API URL instead of http://<server.address>:<server.api_port>.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing new lines.
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct WarmArgs {
    /// Models to pull and load (default: ollama.models from the deployment).
    #[arg(value_name = "MODEL")]
    pub models: Vec<String>,
    /// The API URL (default: http://<server.address>:<server.api_port>).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Print the outcome as JSON (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StaticIpArgs {
    /// macOS: run the networksetup commands (with sudo) instead of printing them.
    #[arg(long)]
    pub apply: bool,
    /// macOS: the network service to configure (default: the first wired one).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Print the result as JSON on stdout (a failure as {"ok": false, "errors": [...]}).
    #[arg(long)]
    pub json: bool,
}

pub fn run(context: &Context, args: ServerArgs) -> anyhow::Result<Outcome> {
    match args.command {
        ServerCommand::Render(args) => render(context, args),
        ServerCommand::Install(args) => install(context, args),
        ServerCommand::Uninstall(args) => uninstall(context, args),
        ServerCommand::Status(args) => status_command(context, args),
        ServerCommand::Start(args) => control(context, Control::Start, args),
        ServerCommand::Stop(args) => control(context, Control::Stop, args),
        ServerCommand::Restart(args) => control(context, Control::Restart, args),
        ServerCommand::Logs(args) => logs(context, args),
        ServerCommand::Warm(args) => warm_command(context, args),
        ServerCommand::StaticIp(args) => static_ip_command(context, args),
    }
}

fn render(context: &Context, args: RenderArgs) -> anyhow::Result<Outcome> {
    let (deployment, _) = context.load_or_reference()?;
    let spec = ServiceSpec::from_deployment(&deployment);
    let platform = match args.platform {
        Some(PlatformArg::Macos) => Platform::Macos,
        Some(PlatformArg::Linux) => Platform::Linux,
        None => deployment.server.platform,
    };
    let fs = RootedFs::real();
    let files: Vec<(PathBuf, String)> = match platform {
        Platform::Macos => {
            let home = args.home.clone().unwrap_or_else(default_mac_home);
            let program = args.ollama.clone().unwrap_or_else(|| {
                let launchd = Launchd::new(
                    &SystemRunner,
                    &fs,
                    MacUser {
                        uid: 0,
                        home: home.clone(),
                    },
                );
                launchd
                    .find_ollama(None)
                    .unwrap_or_else(|_| PathBuf::from(MACOS_OLLAMA_CANDIDATES[0]))
            });
            let plist_name = PathBuf::from(format!("{}.plist", sovereign_server::LAUNCHD_LABEL));
            match deployment.server.service {
                MacService::Agent => {
                    let paths = MacPaths::for_home(&home);
                    let agent = LaunchAgent::new(&spec, program, &paths);
                    vec![(plist_name, render_plist(&agent)?)]
                }
                MacService::Daemon => {
                    let paths = DaemonPaths::system();
                    let account = &deployment.server.service_account;
                    let daemon = LaunchDaemon::new(&spec, program, account, account, &paths);
                    vec![
                        (plist_name, render_daemon_plist(&daemon)?),
                        (
                            PathBuf::from("newsyslog.d")
                                .join(format!("{}.conf", sovereign_server::LAUNCHD_LABEL)),
                            render_newsyslog(&paths, account, account),
                        ),
                    ]
                }
            }
        }
        Platform::Linux => {
            let program = args.ollama.clone().unwrap_or_else(|| {
                Systemd::new(&SystemRunner, &fs)
                    .find_ollama(None)
                    .unwrap_or_else(|_| PathBuf::from("/usr/local/bin/ollama"))
            });
            let user = args.user.clone().map_or(UnitUser::Dynamic, UnitUser::Named);
            let service = SystemdService::new(&spec, program, user);
            vec![
                (PathBuf::from(SYSTEMD_UNIT), render_unit(&service)),
                (
                    PathBuf::from(format!("{UPSTREAM_UNIT}.d")).join(DROPIN_NAME),
                    render_dropin(&service),
                ),
            ]
        }
    };
    if args.json {
        let files: Vec<_> = files
            .iter()
            .map(|(path, contents)| serde_json::json!({ "path": path, "contents": contents }))
            .collect();
        print_json(&serde_json::json!({ "platform": platform, "files": files }))?;
        return Ok(Outcome::Success);
    }
    let Some(out) = args.out else {
        for (i, (name, text)) in files.iter().enumerate() {
            if files.len() > 1 {
                if i > 0 {
                    println!();
                }
                println!("# ==> {} <==", name.display());
            }
            print!("{text}");
        }
        return Ok(Outcome::Success);
    };
    for (name, text) in &files {
        let path = out.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        super::init::write_atomically(&path, text)?;
        println!("wrote {}", path.display());
    }
    if platform == Platform::Linux {
        println!(
            "Use {SYSTEMD_UNIT} on a machine without ollama.service; otherwise the drop-in \
             (in /etc/systemd/system/{UPSTREAM_UNIT}.d/). `sovereign server install` picks for you."
        );
    }
    if platform == Platform::Macos && deployment.server.service == MacService::Daemon {
        let paths = DaemonPaths::system();
        println!(
            "The plist goes to {} (root:wheel, 0644) and the rotation rule to {}; \
             `sudo sovereign server install` also sets up the account and directories.",
            paths.plist.display(),
            paths.newsyslog.display()
        );
    }
    Ok(Outcome::Success)
}

fn default_mac_home() -> PathBuf {
    if cfg!(target_os = "macos")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home);
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "you".into());
    PathBuf::from("/Users").join(user)
}

/// The backend for the machine this runs on, checked against `server.platform`;
/// on macOS the agent or the daemon as `service` says.
fn host_backend<'a>(
    context: &Context,
    deployment: &Deployment,
    runner: &'a SystemRunner,
    fs: &'a RootedFs,
) -> anyhow::Result<Backend<'a>> {
    backend_for(
        context,
        deployment,
        deployment.server.service,
        DaemonOptions::default(),
        runner,
        fs,
    )
}

fn backend_for<'a>(
    context: &Context,
    deployment: &Deployment,
    service: MacService,
    options: DaemonOptions,
    runner: &'a SystemRunner,
    fs: &'a RootedFs,
) -> anyhow::Result<Backend<'a>> {
    let here = match std::env::consts::OS {
        "macos" => Platform::Macos,
        "linux" => Platform::Linux,
        other => {
            return Err(usage(format!(
                "`sovereign server` supports macOS and Linux, not {other}"
            )));
        }
    };
    if deployment.server.platform != here {
        return Err(usage(format!(
            "{}: server.platform is {} but this machine runs {}; run this on the AI server, \
             or fix server.platform",
            context.config_path().display(),
            deployment.server.platform,
            here
        )));
    }
    Ok(match (here, service) {
        (Platform::Macos, MacService::Agent) => {
            let uid = current_uid(runner)?;
            let home = std::env::var_os("HOME").context("HOME is not set")?;
            Backend::Macos(Launchd::new(
                runner,
                fs,
                MacUser {
                    uid,
                    home: home.into(),
                },
            ))
        }
        (Platform::Macos, MacService::Daemon) => {
            Backend::MacosDaemon(Box::new(SystemLaunchd::new(
                runner,
                fs,
                console_user(runner)?,
                &deployment.server.service_account,
                options,
            )))
        }
        (Platform::Linux, _) => Backend::Linux(Systemd::new(runner, fs)),
    })
}

fn current_uid(runner: &SystemRunner) -> anyhow::Result<u32> {
    let uid = runner.run(&Command::new("id", ["-u"]))?;
    uid.stdout
        .trim()
        .parse()
        .context("`id -u` printed no number")
}

/// The person whose agent, app and models matter next to the daemon: under sudo the
/// one who ran it (SUDO_UID, SUDO_USER), otherwise the current user.
fn console_user(runner: &SystemRunner) -> anyhow::Result<MacUser> {
    let sudo_uid = std::env::var("SUDO_UID").ok().and_then(|u| u.parse().ok());
    let sudo_user = std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty());
    if let (Some(uid), Some(name)) = (sudo_uid, sudo_user) {
        // sudo may or may not keep HOME; the directory service knows the real one.
        let read = runner.run(&Command::new(
            "dscl",
            [".", "-read", &format!("/Users/{name}"), "NFSHomeDirectory"],
        ))?;
        let home = sovereign_server::parse::dscl_record(&read.stdout)
            .remove("NFSHomeDirectory")
            .filter(|_| read.success())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/Users").join(&name));
        return Ok(MacUser { uid, home });
    }
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(MacUser {
        uid: current_uid(runner)?,
        home: home.into(),
    })
}

/// A daemon install or uninstall changes the system domain, accounts and power
/// settings: only root may, so say so before probing anything.
fn require_root_for_daemon(runner: &SystemRunner, what: &str) -> anyhow::Result<()> {
    if current_uid(runner)? == 0 {
        return Ok(());
    }
    Err(usage(format!(
        "server.service is \"daemon\": {what} needs root. Run `sudo sovereign server {what}`, \
         or add --dry-run to see every step without changing anything."
    )))
}

/// Files root wrote into the invoking user's state directory go back to that user,
/// so later commands (`peer add`, the next install) can still use it.
fn give_back_to_sudo_user(paths: &[PathBuf]) {
    let uid = std::env::var("SUDO_UID").ok().and_then(|u| u.parse().ok());
    let gid = std::env::var("SUDO_GID").ok().and_then(|g| g.parse().ok());
    let Some(uid) = uid else {
        return;
    };
    for path in paths.iter().filter(|p| p.exists()) {
        if let Err(error) = std::os::unix::fs::chown(path, Some(uid), gid) {
            eprintln!(
                "warning: cannot hand {} back to uid {uid}: {error}",
                path.display()
            );
        }
    }
}

/// Serializes state changes (install, uninstall) on the state directory.
fn lock_state(state_dir: &Path) -> anyhow::Result<File> {
    use std::os::unix::fs::DirBuilderExt;
    if !state_dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
    }
    let path = state_dir.join("server.lock");
    let file = File::create(&path).with_context(|| format!("cannot open {}", path.display()))?;
    file.lock()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(file)
}

fn install(context: &Context, args: InstallArgs) -> anyhow::Result<Outcome> {
    let deployment = context.load()?;
    let spec = ServiceSpec::from_deployment(&deployment);
    let (runner, fs) = (SystemRunner, RootedFs::real());
    let daemon = deployment.server.platform == Platform::Macos
        && deployment.server.service == MacService::Daemon;
    let options = DaemonOptions {
        create_account: args.create_account,
        move_models: args.move_models,
        power: args.power,
    };
    if !daemon && options != DaemonOptions::default() {
        return Err(usage(format!(
            "{}: --create-account, --move-models and --power belong to the macOS LaunchDaemon; \
             set server.service = \"daemon\" (macOS) to use them",
            context.config_path().display()
        )));
    }
    let backend = backend_for(
        context,
        &deployment,
        deployment.server.service,
        options,
        &runner,
        &fs,
    )?;
    if daemon && !args.dry_run {
        require_root_for_daemon(&runner, "install")?;
    }
    let state_dir = absolute(&context.state_dir());
    let _lock = if args.dry_run {
        None
    } else {
        Some(lock_state(&state_dir)?)
    };
    let install = backend.install_plan(&spec, args.ollama.as_deref(), &state_dir)?;
    println!("ollama binary: {}", install.program.display());
    print_conflicts(&install.conflicts);
    if args.dry_run {
        println!("\nWould run (dry run, nothing changed):\n");
        print!("{}", install.plan.describe());
        println!();
        for note in &install.notes {
            println!("note: {note}");
        }
        for what in &install.uninspected {
            println!("note: could not inspect {what}");
        }
        if install.blocked() {
            println!(
                "\nInstall would stop before these steps until the conflicts above are resolved."
            );
            return Ok(Outcome::CheckFailed);
        }
        return Ok(Outcome::Success);
    }
    if install.blocked() {
        eprintln!("\nNothing was changed. Resolve the conflicts above, then run install again.");
        return Ok(Outcome::CheckFailed);
    }
    if let Some(what) = install.uninspected.first() {
        return Err(anyhow::anyhow!(
            "cannot install here, nothing was changed: could not inspect {what}. Run install on \
             the AI server itself, where systemd runs"
        ));
    }
    let execution = sovereign_server::execute(&install.plan, &runner, &fs);
    if daemon {
        give_back_to_sudo_user(&[
            state_dir.clone(),
            state_dir.join("server.lock"),
            InstallManifest::path(&state_dir),
        ]);
    }
    for step in &execution?.steps {
        println!("{}", step.description);
    }
    println!();
    for note in &install.notes {
        println!("note: {note}");
    }
    println!("\nCheck it with `sovereign server status`.");
    Ok(Outcome::Success)
}

fn print_conflicts(conflicts: &[sovereign_server::Conflict]) {
    for conflict in conflicts {
        let level = if conflict.blocking {
            "CONFLICT"
        } else {
            "note"
        };
        println!("\n{level}: {}\n  fix: {}", conflict.summary, conflict.fix);
    }
}

fn uninstall(context: &Context, args: DryRunArgs) -> anyhow::Result<Outcome> {
    let (deployment, _) = context.load_or_reference()?;
    let (runner, fs) = (SystemRunner, RootedFs::real());
    let state_dir = absolute(&context.state_dir());
    // What was installed decides, not what the file says now: a switch from daemon to
    // agent in sovereign.toml must still be able to remove the daemon.
    let service = match InstallManifest::load(&fs, &state_dir)?.map(|m| m.kind) {
        Some(InstallKind::LaunchDaemon) => MacService::Daemon,
        Some(InstallKind::LaunchAgent) => MacService::Agent,
        _ => deployment.server.service,
    };
    let backend = backend_for(
        context,
        &deployment,
        service,
        DaemonOptions::default(),
        &runner,
        &fs,
    )?;
    if matches!(backend, Backend::MacosDaemon(_)) && !args.dry_run {
        require_root_for_daemon(&runner, "uninstall")?;
    }
    let _lock = if args.dry_run || !state_dir.is_dir() {
        None
    } else {
        Some(lock_state(&state_dir)?)
    };
    let uninstall = backend.uninstall_plan(&state_dir)?;
    if uninstall.plan.is_empty() {
        println!("Nothing to remove: sovereign's Ollama service is not installed here.");
        return Ok(Outcome::Success);
    }
    if uninstall.from_known_paths {
        println!(
            "No install record in {}; removing sovereign's files by their fixed paths.",
            state_dir.display()
        );
    }
    if args.dry_run {
        println!("Would run (dry run, nothing changed):\n");
        print!("{}", uninstall.plan.describe());
    } else {
        let execution = sovereign_server::execute(&uninstall.plan, &runner, &fs)?;
        println!("Removed:");
        for step in &execution.steps {
            println!("  {}", step.description);
        }
    }
    println!("Kept:");
    for kept in &uninstall.kept {
        println!("  {kept}");
    }
    Ok(Outcome::Success)
}

fn status_command(context: &Context, args: StatusArgs) -> anyhow::Result<Outcome> {
    let deployment = context.load()?;
    let spec = ServiceSpec::from_deployment(&deployment);
    let (runner, fs) = (SystemRunner, RootedFs::real());
    let backend = host_backend(context, &deployment, &runner, &fs)?;
    let state_dir = absolute(&context.state_dir());
    let service = backend.state(&state_dir)?;
    let listeners = backend.listeners(spec.port)?;
    let url = args.url.unwrap_or_else(|| spec.api_url());
    let client = sovereign_server::ollama::Client::new(&url)?.with_timeout(Duration::from_secs(5));
    let api = status::probe_api(&client);
    let mut report = status::evaluate(
        &spec,
        deployment.ollama.context_length,
        service,
        listeners,
        api,
    );
    if let Some(power) = backend.power_status()? {
        report.add_power(power);
    }
    if args.json {
        print_json(&report)?;
    } else {
        print!("{}", format_status(&report));
    }
    Ok(Outcome::from_passed(report.consistent()))
}

/// The human form of `status`.
pub fn format_status(report: &Status) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let service = &report.service;
    let mut state = if service.running {
        "running".to_string()
    } else {
        service.state.clone()
    };
    if let Some(pid) = service.pid {
        let _ = write!(state, ", pid {pid}");
    }
    if let Some(restarts) = service.restarts {
        let _ = write!(state, ", {restarts} restarts");
    }
    if let Some(code) = service.last_exit_code {
        let _ = write!(state, ", last exit {code}");
    }
    let _ = writeln!(
        out,
        "service   {} ({}): {state}",
        service.name, service.manager
    );
    if !service.domain.is_empty() {
        let _ = writeln!(
            out,
            "domain    {}: {}",
            service.domain,
            if service.runs_without_login {
                "starts at boot, runs with nobody logged in"
            } else {
                "runs only while its user is logged in"
            }
        );
    }
    if let Some(file) = &service.file {
        let installed = if service.installed { "" } else { " (missing)" };
        let _ = writeln!(out, "file      {}{installed}", file.display());
    }
    let listening: Vec<String> = report.listeners.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "bind      configured {}; listening {}  {}",
        report.configured_bind,
        if listening.is_empty() {
            "nowhere".to_string()
        } else {
            listening.join(", ")
        },
        if report.bind_matches {
            "ok"
        } else {
            "MISMATCH"
        }
    );
    let api = &report.api;
    match &api.version {
        Some(version) => {
            let _ = writeln!(out, "api       {}: Ollama {version}", api.url);
            let families: Vec<String> = api
                .families
                .iter()
                .map(|f| format!("{} {}", f.path, if f.available { "yes" } else { "no" }))
                .collect();
            let _ = writeln!(out, "apis      {}", families.join(", "));
        }
        None => {
            let _ = writeln!(out, "api       {}: unreachable", api.url);
        }
    }
    if api.reachable {
        if api.loaded_models.is_empty() {
            let _ = writeln!(
                out,
                "models    none loaded (`sovereign server warm` loads them)"
            );
        }
        for model in &api.loaded_models {
            let context = model
                .context_length
                .map(|c| format!("ctx {c}, "))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "models    {} ({context}{:.1} GB in VRAM, until {})",
                model.name,
                model.size_vram as f64 / 1e9,
                model.expires_at
            );
        }
    }
    if let Some(power) = &report.power {
        let settings: Vec<String> = power
            .settings
            .iter()
            .map(|(key, value)| format!("{key} {value}"))
            .collect();
        let filevault = match power.filevault {
            Some(true) => "on",
            Some(false) => "off",
            None => "unknown",
        };
        let _ = writeln!(
            out,
            "power     pmset {}; FileVault {filevault}",
            if settings.is_empty() {
                "unknown".to_string()
            } else {
                settings.join(", ")
            }
        );
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "\nWARNING: {warning}");
    }
    for problem in &report.problems {
        let _ = writeln!(out, "PROBLEM: {problem}");
    }
    out
}

fn control(context: &Context, control: Control, args: DryRunArgs) -> anyhow::Result<Outcome> {
    let (deployment, _) = context.load_or_reference()?;
    let (runner, fs) = (SystemRunner, RootedFs::real());
    let backend = host_backend(context, &deployment, &runner, &fs)?;
    if matches!(backend, Backend::MacosDaemon(_)) && !args.dry_run {
        let verb = match control {
            Control::Start => "start",
            Control::Stop => "stop",
            Control::Restart => "restart",
        };
        require_root_for_daemon(&runner, verb)?;
    }
    let plan: Plan = backend.control_plan(control, &absolute(&context.state_dir()))?;
    if plan.is_empty() {
        println!("Nothing to do: the service is not loaded.");
        return Ok(Outcome::Success);
    }
    if args.dry_run {
        print!("{}", plan.describe());
        return Ok(Outcome::Success);
    }
    for step in sovereign_server::execute(&plan, &runner, &fs)?.steps {
        println!("{}", step.description);
    }
    Ok(Outcome::Success)
}

fn logs(context: &Context, args: LogsArgs) -> anyhow::Result<Outcome> {
    let (deployment, _) = context.load_or_reference()?;
    let (runner, fs) = (SystemRunner, RootedFs::real());
    let backend = host_backend(context, &deployment, &runner, &fs)?;
    let command = backend.logs_command(args.follow, &absolute(&context.state_dir()))?;
    let status = runner.run_attached(&command)?;
    Ok(Outcome::from_passed(status == 0))
}

fn warm_command(context: &Context, args: WarmArgs) -> anyhow::Result<Outcome> {
    let (deployment, _) = context.load_or_reference()?;
    let spec = ServiceSpec::from_deployment(&deployment);
    let models = if args.models.is_empty() {
        spec.models.clone()
    } else {
        args.models
    };
    if models.is_empty() {
        return Err(usage(
            "no models to warm: pass MODEL... or list them in ollama.models in sovereign.toml",
        ));
    }
    let url = args.url.unwrap_or_else(|| spec.api_url());
    let client = sovereign_server::ollama::Client::new(&url)?;
    let mut bars = warm::ProgressBars::new();
    let outcomes = warm::warm(&client, &models, &spec.keep_alive, &mut bars);
    if args.json {
        print_json(&outcomes)?;
    }
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    if !args.json {
        println!(
            "{} of {} models ready (keep_alive {})",
            models.len() - failed,
            models.len(),
            spec.keep_alive
        );
    }
    Ok(Outcome::from_passed(failed == 0))
}

fn static_ip_command(context: &Context, args: StaticIpArgs) -> anyhow::Result<Outcome> {
    let (deployment, _) = context.load_or_reference()?;
    let target = static_ip::target(&deployment);
    let runner = SystemRunner;
    match std::env::consts::OS {
        "macos" => {
            let plan = static_ip::macos_plan(&runner, &target, args.service.as_deref())?;
            let root = runner.run(&Command::new("id", ["-u"]))?.stdout.trim() == "0";
            let commands: Vec<Command> = plan
                .commands
                .iter()
                .map(|c| if root { c.clone() } else { sudo(c) })
                .collect();
            if args.json {
                print_json(
                    &serde_json::json!({ "service": plan.service, "alternatives": plan.alternatives,
                    "commands": commands.iter().map(ToString::to_string).collect::<Vec<_>>() }),
                )?;
            } else {
                println!(
                    "Wired network service: {:?} (device {}, port {:?})",
                    plan.service.name, plan.service.device, plan.service.port
                );
                for other in &plan.alternatives {
                    println!(
                        "  also wired: {:?} (device {}); pick it with --service",
                        other.name, other.device
                    );
                }
            }
            if !args.apply {
                if !args.json {
                    println!("\nRun these (or pass --apply):");
                    for command in &commands {
                        println!("  {command}");
                    }
                }
                return Ok(Outcome::Success);
            }
            for command in &commands {
                println!("$ {command}");
                let status = runner.run_attached(command)?;
                if status != 0 {
                    anyhow::bail!("`{command}` failed with exit code {status}");
                }
            }
            Ok(Outcome::Success)
        }
        _ => {
            if args.apply {
                return Err(usage(
                    "--apply is for macOS; on Linux, apply the printed configuration with your network stack",
                ));
            }
            let interface =
                static_ip::linux_interface(&runner).unwrap_or_else(|| "<interface>".into());
            if args.json {
                print_json(
                    &serde_json::json!({ "interface": interface, "target": target,
                    "advice": static_ip::linux_advice(&interface, &target) }),
                )?;
            } else {
                print!("{}", static_ip::linux_advice(&interface, &target));
            }
            Ok(Outcome::Success)
        }
    }
}

fn sudo(command: &Command) -> Command {
    let mut args = vec![command.program.clone()];
    args.extend(command.args.iter().cloned());
    Command::new("sudo", args)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_server::ServiceState;
    use sovereign_server::power::PowerStatus;
    use sovereign_server::status::ApiStatus;

    #[test]
    fn status_shows_the_domain_and_power_settings_that_contradict_always_on() {
        let spec = ServiceSpec::from_deployment(&Deployment::reference());
        let service = ServiceState {
            manager: "launchd".into(),
            name: "com.sovereign.ollama".into(),
            domain: "daemon".into(),
            runs_without_login: true,
            installed: true,
            loaded: true,
            running: true,
            pid: Some(312),
            state: "running".into(),
            ..ServiceState::default()
        };
        let mut report = status::evaluate(&spec, 65536, service, Vec::new(), ApiStatus::default());
        let pmset = [("sleep", "1"), ("autorestart", "1"), ("womp", "0")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        report.add_power(PowerStatus::new(&pmset, Some(true)));
        let text = format_status(&report);
        assert!(
            text.contains("domain    daemon: starts at boot, runs with nobody logged in"),
            "{text}"
        );
        assert!(
            text.contains("power     pmset autorestart 1, sleep 1, womp 0; FileVault on"),
            "{text}"
        );
        assert!(text.contains("WARNING: pmset sleep is 1"), "{text}");
        assert!(text.contains("WARNING: pmset womp is 0"), "{text}");
        assert!(!text.contains("pmset autorestart is"), "{text}");
        assert!(text.contains("fdesetup authrestart"), "{text}");
    }
}
