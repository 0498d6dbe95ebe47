//! `sovereign server`: Ollama as a supervised service on the AI server (issue #8).
//!
//! The logic lives in `sovereign-server`; this file picks the backend for the machine
//! it runs on, prints plans and reports, and maps outcomes to exit codes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use sovereign_model::{Deployment, Platform};
use sovereign_server::linux::Systemd;
use sovereign_server::macos::{Launchd, MacUser};
use sovereign_server::render::{
    LaunchAgent, SystemdService, UnitUser, render_dropin, render_plist, render_unit,
};
use sovereign_server::spec::{
    DROPIN_NAME, MACOS_OLLAMA_CANDIDATES, MacPaths, SYSTEMD_UNIT, UPSTREAM_UNIT,
};
use sovereign_server::status::{self, Status};
use sovereign_server::{
    Backend, Command, CommandRunner, Control, Plan, RootedFs, ServiceSpec, SystemRunner, static_ip,
    warm,
};

use crate::context::{Context, Outcome, usage};
use crate::output::print_json;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    sovereign server render --platform linux --out ./server\n  \
    sovereign server install --dry-run\n  \
    sovereign server status --json\n  \
    sovereign server warm qwen2.5-coder:32b\n  \
    sovereign server static-ip --apply")]
pub struct ServerArgs {
    #[command(subcommand)]
    pub command: ServerCommand,
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Print (or write to --out) the launchd plist or the systemd unit and drop-in.
    Render(RenderArgs),
    /// Install and start the service on this machine (checks for conflicts first).
    Install(InstallArgs),
    /// Remove exactly what install created; models and logs stay.
    Uninstall(DryRunArgs),
    /// Compare what runs (service, listening sockets, API) with the deployment.
    Status(StatusArgs),
    /// Start the service.
    Start(DryRunArgs),
    /// Stop the service (it starts again at the next login or boot).
    Stop(DryRunArgs),
    /// Restart the service.
    Restart(DryRunArgs),
    /// Show the service's log.
    Logs(LogsArgs),
    /// Pull models and load them so they stay resident.
    Warm(WarmArgs),
    /// Pin the server's LAN address (macOS: networksetup; Linux: printed advice).
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
}

#[derive(Debug, Args)]
pub struct DryRunArgs {
    /// Print the exact commands and files; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
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
            let paths = MacPaths::for_home(&home);
            let agent = LaunchAgent::new(&spec, program, &paths);
            vec![(
                PathBuf::from(format!("{}.plist", sovereign_server::LAUNCHD_LABEL)),
                render_plist(&agent)?,
            )]
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

/// The backend for the machine this runs on, checked against `server.platform`.
fn host_backend<'a>(
    context: &Context,
    deployment: &Deployment,
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
            "{}: server.platform is {:?} but this machine runs {:?}; run this on the AI server, \
             or fix server.platform",
            context.config_path().display(),
            deployment.server.platform,
            here
        )));
    }
    Ok(match here {
        Platform::Macos => {
            let uid = runner.run(&Command::new("id", ["-u"]))?;
            let uid: u32 = uid
                .stdout
                .trim()
                .parse()
                .context("`id -u` printed no number")?;
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
        Platform::Linux => Backend::Linux(Systemd::new(runner, fs)),
    })
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
    let backend = host_backend(context, &deployment, &runner, &fs)?;
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
    let execution = sovereign_server::execute(&install.plan, &runner, &fs)?;
    for step in &execution.steps {
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
    let backend = host_backend(context, &deployment, &runner, &fs)?;
    let state_dir = absolute(&context.state_dir());
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
    let report = status::evaluate(
        &spec,
        deployment.ollama.context_length,
        service,
        listeners,
        api,
    );
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
