//! macOS: a user LaunchAgent controlled with `launchctl bootstrap/bootout/kickstart`.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::fs::Filesystem;
use crate::manifest::{InstallKind, InstallManifest};
use crate::parse::{self, LaunchdJob, Listener, Process};
use crate::plan::{Action, Plan};
use crate::render::{LaunchAgent, render_plist};
use crate::runner::{Command, CommandRunner};
use crate::service::{Conflict, ConflictKind, Control, InstallPlan, ServiceState, UninstallPlan};
use crate::spec::{DaemonPaths, LAUNCHD_LABEL, MACOS_OLLAMA_CANDIDATES, MacPaths, ServiceSpec};

/// Homebrew's `brew services` label for ollama.
pub const HOMEBREW_LABEL: &str = "homebrew.mxcl.ollama";
/// The bash original's label.
pub const LEGACY_LABEL: &str = "com.ollama";
/// The LaunchAgent Ollama.app registers to start itself at login.
pub const APP_LABEL: &str = "com.ollama.ollama";
const APP_EXECUTABLE: &str = "/Ollama.app/Contents/MacOS/Ollama";
const APP_BUNDLE: &str = "/Ollama.app/";

/// The user whose GUI session the agent runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacUser {
    pub uid: u32,
    pub home: PathBuf,
}

pub struct Launchd<'a> {
    runner: &'a dyn CommandRunner,
    fs: &'a dyn Filesystem,
    user: MacUser,
    paths: MacPaths,
}

impl<'a> Launchd<'a> {
    pub fn new(
        runner: &'a dyn CommandRunner,
        fs: &'a dyn Filesystem,
        user: MacUser,
    ) -> Launchd<'a> {
        let paths = MacPaths::for_home(&user.home);
        Launchd {
            runner,
            fs,
            user,
            paths,
        }
    }

    pub fn paths(&self) -> &MacPaths {
        &self.paths
    }

    pub(crate) fn runner(&self) -> &'a dyn CommandRunner {
        self.runner
    }

    pub fn domain(&self) -> String {
        format!("gui/{}", self.user.uid)
    }

    pub fn target(&self, label: &str) -> String {
        format!("gui/{}/{label}", self.user.uid)
    }

    /// The first installed `ollama` of [`MACOS_OLLAMA_CANDIDATES`], or `explicit`.
    pub fn find_ollama(&self, explicit: Option<&Path>) -> Result<PathBuf, Error> {
        find_ollama(self.fs, explicit, &MACOS_OLLAMA_CANDIDATES)
    }

    /// `launchctl print` for `label`; `None` when the job is not loaded.
    pub fn job(&self, label: &str) -> Result<Option<LaunchdJob>, Error> {
        let output = self.runner.run(&Command::new(
            "launchctl",
            ["print".to_string(), self.target(label)],
        ))?;
        // 113: "Could not find service ... in domain for user gui: 501".
        if !output.success() {
            return Ok(None);
        }
        Ok(Some(parse::launchctl_print(&output.stdout)))
    }

    pub fn state(&self) -> Result<ServiceState, Error> {
        let installed = self.fs.exists(&self.paths.plist);
        let state = ServiceState {
            manager: "launchd".into(),
            domain: "agent".into(),
            runs_without_login: false,
            name: LAUNCHD_LABEL.into(),
            file: Some(self.paths.plist.clone()),
            installed,
            state: "not loaded".into(),
            ..ServiceState::default()
        };
        Ok(match self.job(LAUNCHD_LABEL)? {
            Some(job) => state.loaded_launchd_job(job),
            None => state,
        })
    }

    /// Listening sockets on `port`; `lsof` exits 1 when there are none.
    pub fn listeners(&self, port: u16) -> Result<Vec<Listener>, Error> {
        let command = Command::new(
            "lsof",
            [
                "-nP".to_string(),
                format!("-iTCP:{port}"),
                "-sTCP:LISTEN".into(),
            ],
        );
        let output = self.runner.run(&command)?;
        if !output.success() && !output.stdout.trim().is_empty() {
            return Err(Error::CommandFailed {
                command: command.to_string(),
                status: output.status,
                stderr: output.stderr.trim().to_string(),
            });
        }
        Ok(parse::lsof_listeners(&output.stdout)
            .into_iter()
            .filter(|l| l.port == port)
            .collect())
    }

    fn processes(&self) -> Result<Vec<Process>, Error> {
        let output = self
            .runner
            .run(&Command::new("ps", ["-axo", "pid=,command="]))?;
        Ok(parse::ps_processes(&output.stdout))
    }

    /// Everything that would fight our agent for the port, each with its fix.
    pub fn conflicts(&self, spec: &ServiceSpec) -> Result<Vec<Conflict>, Error> {
        let ours = self.job(LAUNCHD_LABEL)?.and_then(|job| job.pid);
        let mut conflicts = Vec::new();
        let daemon_plist = DaemonPaths::system().plist;
        if self.fs.exists(&daemon_plist) {
            conflicts.push(Conflict {
                kind: ConflictKind::SovereignDaemon,
                summary: format!(
                    "sovereign's LaunchDaemon {} is installed: it starts Ollama at boot on port \
                     {}, and the agent would be a second instance",
                    daemon_plist.display(),
                    spec.port
                ),
                fix: "Keep the daemon (set server.service = \"daemon\"), or remove it with \
                      `sudo sovereign server uninstall` while server.service is \"daemon\"."
                    .into(),
                blocking: true,
            });
        }
        conflicts.extend(self.conflicts_skipping(spec, ours.as_slice())?);
        Ok(conflicts)
    }

    /// The conflicts shared by the agent and the daemon; listeners owned by one of
    /// `ours` (the service being installed, or one reported already) are skipped.
    pub(crate) fn conflicts_skipping(
        &self,
        spec: &ServiceSpec,
        ours: &[u32],
    ) -> Result<Vec<Conflict>, Error> {
        let mut conflicts = Vec::new();
        let processes = self.processes()?;
        let app_running = processes
            .iter()
            .find(|p| p.command.contains(APP_EXECUTABLE));
        if let Some(app) = app_running {
            conflicts.push(Conflict {
                kind: ConflictKind::OllamaApp,
                summary: format!(
                    "Ollama.app is running (pid {}); it starts its own `ollama serve` on port {} \
                     with its own settings",
                    app.pid, spec.port
                ),
                fix: "Quit Ollama from its menu-bar icon and turn off its start-at-login \
                      (System Settings > General > Login Items). sovereign's agent runs the \
                      ollama binary directly and does not need the app."
                    .into(),
                blocking: true,
            });
        }
        if app_running.is_none() && self.job(APP_LABEL)?.is_some() {
            conflicts.push(Conflict {
                kind: ConflictKind::OllamaAppLoginItem,
                summary: format!("Ollama.app's login agent ({APP_LABEL}) is loaded: the app will start at the next login and take port {}", spec.port),
                fix: "Turn off Ollama in System Settings > General > Login Items.".into(),
                blocking: true,
            });
        }
        let homebrew_loaded = self.job(HOMEBREW_LABEL)?.is_some();
        if homebrew_loaded || self.fs.exists(&self.paths.homebrew_plist) {
            conflicts.push(Conflict {
                kind: ConflictKind::HomebrewService,
                summary: format!(
                    "`brew services` manages ollama ({HOMEBREW_LABEL}{}); Homebrew rewrites its \
                     plist on every upgrade, so settings made there do not last",
                    if homebrew_loaded {
                        ", loaded"
                    } else {
                        ", starts at login"
                    }
                ),
                fix: "Run `brew services stop ollama` (it unloads the job and removes its plist; \
                      the binary stays and sovereign's agent uses it)."
                    .into(),
                blocking: true,
            });
        }
        let legacy_loaded = self.job(LEGACY_LABEL)?.is_some();
        if legacy_loaded || self.fs.exists(&self.paths.legacy_plist) {
            conflicts.push(Conflict {
                kind: ConflictKind::LegacyAgent,
                summary: format!(
                    "an older install's LaunchAgent {} is present{}",
                    self.paths.legacy_plist.display(),
                    if legacy_loaded { " and loaded" } else { "" }
                ),
                fix: format!(
                    "Remove it: `launchctl bootout {}; rm {}` (its logs in /tmp can go too).",
                    self.target(LEGACY_LABEL),
                    crate::runner::shell_quote(&self.paths.legacy_plist.display().to_string())
                ),
                blocking: true,
            });
        }
        for listener in self.listeners(spec.port)? {
            if listener.pid.is_some_and(|pid| ours.contains(&pid)) {
                continue;
            }
            let owner = listener
                .pid
                .and_then(|pid| processes.iter().find(|p| p.pid == pid));
            let from_app =
                owner.is_some_and(|p| p.command.contains(APP_BUNDLE)) && app_running.is_some();
            if from_app && listener.address.is_any() {
                conflicts.push(Conflict {
                    kind: ConflictKind::OllamaAppExposed,
                    summary: format!(
                        "Ollama.app's server listens on {listener}: its \"Expose Ollama to the \
                         network\" setting is on, which serves the unauthenticated API on every \
                         network this Mac joins"
                    ),
                    fix: "Turn off Expose in Ollama's settings, then quit the app (see above)."
                        .into(),
                    blocking: true,
                });
                continue;
            }
            if from_app {
                // Already explained by the running-app conflict.
                continue;
            }
            let fix = match listener.pid {
                Some(pid) => format!(
                    "Stop it (`kill {pid}`); if it comes back, find what supervises it with \
                     `launchctl list | grep -i ollama`."
                ),
                None => "Find the owner with `sudo lsof -nP -iTCP -sTCP:LISTEN`.".into(),
            };
            conflicts.push(Conflict {
                kind: ConflictKind::PortInUse,
                summary: format!("port {} is already taken by {listener}", spec.port),
                fix,
                blocking: true,
            });
        }
        Ok(conflicts)
    }

    pub fn install_plan(
        &self,
        spec: &ServiceSpec,
        ollama: Option<&Path>,
        state_dir: &Path,
    ) -> Result<InstallPlan, Error> {
        let program = self.find_ollama(ollama)?;
        let conflicts = self.conflicts(spec)?;
        let agent = LaunchAgent::new(spec, program.clone(), &self.paths);
        let plist = render_plist(&agent)?;
        let mut plan = Plan::default();
        let mut manifest = InstallManifest::new(
            InstallKind::LaunchAgent,
            LAUNCHD_LABEL,
            vec![self.paths.plist.clone()],
        );
        if let Some(previous) = InstallManifest::load(self.fs, state_dir)? {
            manifest.kept = previous.kept;
        }
        let agents_dir = self.paths.plist.parent().expect("plist has a directory");
        if !self.fs.exists(agents_dir) {
            plan.push(Action::CreateDir {
                path: agents_dir.to_path_buf(),
                mode: 0o755,
            });
        }
        if !self.fs.exists(&self.paths.log_dir) {
            plan.push(Action::CreateDir {
                path: self.paths.log_dir.clone(),
                mode: 0o755,
            });
            manifest.kept.push(self.paths.log_dir.clone());
        }
        plan.push(Action::WriteFile {
            path: self.paths.plist.clone(),
            mode: 0o644,
            contents: plist,
        });
        if self.job(LAUNCHD_LABEL)?.is_some() {
            // bootstrap refuses a loaded job (error 5); unload it so the new plist is read.
            plan.run_tolerating_failure(self.launchctl(["bootout", &self.target(LAUNCHD_LABEL)]));
        }
        // A job disabled earlier (`launchctl disable`) would refuse to bootstrap.
        plan.run(self.launchctl(["enable", &self.target(LAUNCHD_LABEL)]));
        plan.run(self.launchctl([
            "bootstrap",
            &self.domain(),
            &self.paths.plist.display().to_string(),
        ]));
        push_manifest(&mut plan, state_dir, &manifest);
        Ok(InstallPlan {
            program,
            conflicts,
            plan,
            manifest,
            notes: login_notes(),
            uninspected: Vec::new(),
        })
    }

    pub fn uninstall_plan(&self, state_dir: &Path) -> Result<UninstallPlan, Error> {
        let manifest = InstallManifest::load(self.fs, state_dir)?;
        let from_known_paths = manifest.is_none();
        let files = match &manifest {
            Some(manifest) => manifest.files.clone(),
            None => self.known_install_files()?,
        };
        let mut plan = Plan::default();
        if self.job(LAUNCHD_LABEL)?.is_some() {
            plan.run(self.launchctl(["bootout", &self.target(LAUNCHD_LABEL)]));
        }
        for file in files {
            plan.push(Action::RemoveFile { path: file });
        }
        for dir in manifest.iter().flat_map(|m| m.directories.clone()) {
            plan.push(Action::RemoveEmptyDir { path: dir });
        }
        if manifest.is_some() {
            plan.push(Action::RemoveFile {
                path: InstallManifest::path(state_dir),
            });
        }
        let mut kept: Vec<String> = manifest
            .iter()
            .flat_map(|m| m.kept.iter())
            .map(|dir| format!("logs in {}", dir.display()))
            .collect();
        kept.push(format!(
            "models in {}",
            self.user.home.join(".ollama/models").display()
        ));
        kept.push("the ollama binary (Homebrew or Ollama.app)".into());
        Ok(UninstallPlan {
            plan,
            kept,
            from_known_paths,
        })
    }

    /// Without a manifest: our plist, but only when it really is ours.
    fn known_install_files(&self) -> Result<Vec<PathBuf>, Error> {
        let Some(text) = self.fs.read_to_string(&self.paths.plist)? else {
            return Ok(Vec::new());
        };
        let label = plist::Value::from_reader_xml(text.as_bytes())
            .ok()
            .and_then(|v| v.into_dictionary())
            .and_then(|d| {
                d.get("Label")
                    .and_then(|l| l.as_string().map(str::to_string))
            });
        Ok(if label.as_deref() == Some(LAUNCHD_LABEL) {
            vec![self.paths.plist.clone()]
        } else {
            Vec::new()
        })
    }

    pub fn control_plan(&self, control: Control) -> Result<Plan, Error> {
        let target = self.target(LAUNCHD_LABEL);
        let loaded = self.job(LAUNCHD_LABEL)?.is_some();
        let mut plan = Plan::default();
        match (control, loaded) {
            (Control::Start, false) => plan.run(self.launchctl([
                "bootstrap",
                &self.domain(),
                &self.paths.plist.display().to_string(),
            ])),
            (Control::Start, true) => plan.run(self.launchctl(["kickstart", &target])),
            // KeepAlive would respawn a killed process; only unloading stops it. The plist
            // stays, so the agent comes back at the next login or `start`.
            (Control::Stop, true) => plan.run(self.launchctl(["bootout", &target])),
            (Control::Stop, false) => {}
            (Control::Restart, true) => plan.run(self.launchctl(["kickstart", "-k", &target])),
            (Control::Restart, false) => plan.run(self.launchctl([
                "bootstrap",
                &self.domain(),
                &self.paths.plist.display().to_string(),
            ])),
        }
        Ok(plan)
    }

    pub fn logs_command(&self, follow: bool) -> Command {
        let mut args = vec!["-n".to_string(), "200".to_string()];
        if follow {
            args.push("-F".into());
        }
        args.push(self.paths.stderr_log.display().to_string());
        args.push(self.paths.stdout_log.display().to_string());
        Command::new("tail", args)
    }

    fn launchctl<const N: usize>(&self, args: [&str; N]) -> Command {
        Command::new("launchctl", args)
    }
}

/// The caveats of a LaunchAgent that a user has to act on.
pub fn login_notes() -> Vec<String> {
    vec![
        "A LaunchAgent runs only while its user is logged in. For a server that survives \
         reboots unattended, turn on automatic login (System Settings > Users & Groups > \
         Automatically log in as); FileVault disables automatic login, so with FileVault on \
         someone must unlock the Mac after every reboot. For a Mac that starts serving at \
         boot with nobody logged in, set server.service = \"daemon\" and run \
         `sudo sovereign server install --create-account --power`."
            .into(),
        "Keep the Mac awake: System Settings > Energy > Prevent automatic sleeping when the \
         display is off (or `sudo pmset -a sleep 0`)."
            .into(),
        "The first start may ask whether `ollama` may accept incoming network connections: \
         click Allow, or remote clients time out."
            .into(),
    ]
}

pub(crate) fn find_ollama(
    fs: &dyn Filesystem,
    explicit: Option<&Path>,
    candidates: &[&str],
) -> Result<PathBuf, Error> {
    if let Some(path) = explicit {
        if fs.is_executable(path) {
            return Ok(path.to_path_buf());
        }
        return Err(Error::OllamaNotFound {
            looked_in: vec![path.display().to_string()],
        });
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| fs.is_executable(path))
        .ok_or_else(|| Error::OllamaNotFound {
            looked_in: candidates.iter().map(ToString::to_string).collect(),
        })
}

pub(crate) fn push_manifest(plan: &mut Plan, state_dir: &Path, manifest: &InstallManifest) {
    plan.push(Action::CreateDir {
        path: state_dir.to_path_buf(),
        mode: 0o700,
    });
    plan.push(Action::WriteFile {
        path: InstallManifest::path(state_dir),
        mode: 0o600,
        contents: manifest.to_json(),
    });
}
