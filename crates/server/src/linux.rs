//! Linux: our own systemd unit, or a drop-in for an `ollama.service` that already exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::fs::Filesystem;
use crate::macos::{find_ollama, push_manifest};
use crate::manifest::{InstallKind, InstallManifest};
use crate::parse::{self, Listener};
use crate::plan::{Action, Plan};
use crate::render::{SystemdService, UnitUser, render_dropin, render_unit};
use crate::runner::{Command, CommandRunner};
use crate::service::{Conflict, ConflictKind, Control, InstallPlan, ServiceState, UninstallPlan};
use crate::spec::{
    DROPIN_NAME, LINUX_OLLAMA_CANDIDATES, LinuxLayout, STATE_DIRECTORY, ServiceSpec, UPSTREAM_UNIT,
};

/// The properties `status` reads.
const STATE_PROPERTIES: &str = "LoadState,ActiveState,SubState,MainPID,NRestarts,ExecMainStatus,UnitFileState,FragmentPath,DropInPaths,Environment";
/// The account Ollama's installer creates.
const OLLAMA_USER: &str = "ollama";
use crate::render::MANAGED_MARKER;

pub struct Systemd<'a> {
    runner: &'a dyn CommandRunner,
    fs: &'a dyn Filesystem,
    /// The units that could not be inspected because systemd is not running (a
    /// container, a chroot), and systemctl's reason: the plan then assumes they do
    /// not exist, and says so.
    uninspected: std::cell::RefCell<(std::collections::BTreeSet<String>, String)>,
}

impl<'a> Systemd<'a> {
    pub fn new(runner: &'a dyn CommandRunner, fs: &'a dyn Filesystem) -> Systemd<'a> {
        Systemd {
            runner,
            fs,
            uninspected: Default::default(),
        }
    }

    pub fn find_ollama(&self, explicit: Option<&Path>) -> Result<PathBuf, Error> {
        find_ollama(self.fs, explicit, &LINUX_OLLAMA_CANDIDATES)
    }

    /// `systemctl show` properties of `unit` (LoadState=not-found when it does not exist).
    pub fn show(&self, unit: &str) -> Result<BTreeMap<String, String>, Error> {
        let command = Command::new(
            "systemctl",
            [
                "show".to_string(),
                unit.to_string(),
                "-p".into(),
                STATE_PROPERTIES.into(),
            ],
        );
        let output = self.runner.run(&command)?;
        if !output.success() && systemd_unavailable(&output.stderr) {
            let mut uninspected = self.uninspected.borrow_mut();
            uninspected.0.insert(unit.to_string());
            uninspected.1 = output
                .stderr
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            return Ok(BTreeMap::from([("LoadState".into(), "not-found".into())]));
        }
        if !output.success() {
            return Err(Error::CommandFailed {
                command: command.to_string(),
                status: output.status,
                stderr: output.stderr.trim().to_string(),
            });
        }
        Ok(parse::systemctl_show(&output.stdout))
    }

    /// Which file is (or would be) ours: the manifest decides after an install;
    /// before one, an existing `ollama.service` gets a drop-in.
    pub fn layout(&self, state_dir: &Path) -> Result<LinuxLayout, Error> {
        if let Some(manifest) = InstallManifest::load(self.fs, state_dir)? {
            return Ok(match manifest.kind {
                InstallKind::SystemdDropIn => LinuxLayout::drop_in(),
                _ => LinuxLayout::unit(),
            });
        }
        let upstream = self.show(UPSTREAM_UNIT)?;
        let exists = upstream.get("LoadState").is_some_and(|s| s == "loaded")
            && upstream.get("FragmentPath").is_some_and(|p| !p.is_empty());
        Ok(if exists {
            LinuxLayout::drop_in()
        } else {
            LinuxLayout::unit()
        })
    }

    pub fn state(&self, state_dir: &Path) -> Result<ServiceState, Error> {
        let layout = self.layout(state_dir)?;
        let properties = self.show(layout.unit_name())?;
        let get = |key: &str| properties.get(key).map(String::as_str).unwrap_or("");
        let loaded = get("LoadState") == "loaded";
        let pid = get("MainPID").parse::<u32>().ok().filter(|pid| *pid != 0);
        let environment = get("Environment")
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(ServiceState {
            manager: "systemd".into(),
            // A system unit wanted by multi-user.target: started at boot, no login needed.
            domain: "system".into(),
            runs_without_login: true,
            name: layout.unit_name().to_string(),
            file: Some(layout.path().to_path_buf()),
            installed: self.fs.exists(layout.path()),
            loaded,
            running: get("ActiveState") == "active" && get("SubState") == "running",
            pid,
            restarts: get("NRestarts").parse().ok(),
            last_exit_code: get("ExecMainStatus").parse().ok(),
            state: format!("{} ({})", get("ActiveState"), get("SubState")),
            environment,
        })
    }

    /// One line for what could not be inspected, if anything.
    fn uninspected_summary(&self) -> Vec<String> {
        let (units, reason) = self.uninspected.take();
        if units.is_empty() {
            return Vec::new();
        }
        let units: Vec<String> = units.into_iter().collect();
        vec![format!(
            "{}: systemd is not running here (systemctl: {reason}), so the plan assumes they do not exist",
            units.join(" and ")
        )]
    }

    pub fn listeners(&self, port: u16) -> Result<Vec<Listener>, Error> {
        let command = Command::new("ss", ["-Hltnp"]);
        let output = self.runner.run(&command)?;
        if !output.success() {
            return Err(Error::CommandFailed {
                command: command.to_string(),
                status: output.status,
                stderr: output.stderr.trim().to_string(),
            });
        }
        Ok(parse::ss_listeners(&output.stdout)
            .into_iter()
            .filter(|l| l.port == port)
            .collect())
    }

    pub fn conflicts(&self, spec: &ServiceSpec, state_dir: &Path) -> Result<Vec<Conflict>, Error> {
        let layout = self.layout(state_dir)?;
        let properties = self.show(layout.unit_name())?;
        let ours = properties
            .get("MainPID")
            .and_then(|pid| pid.parse::<u32>().ok())
            .filter(|pid| *pid != 0);
        let mut conflicts = Vec::new();
        for listener in self.listeners(spec.port)? {
            if listener.pid.is_some() && listener.pid == ours {
                continue;
            }
            let fix = match listener.pid {
                Some(pid) => format!(
                    "Stop it (`kill {pid}`), or, if a service runs it, `systemctl status {pid}` names the unit to stop and disable."
                ),
                None => "Run `sudo ss -ltnp` to see which process owns it, then stop that process."
                    .into(),
            };
            conflicts.push(Conflict {
                kind: ConflictKind::PortInUse,
                summary: format!("port {} is already taken by {listener}", spec.port),
                fix,
                blocking: true,
            });
        }
        if let LinuxLayout::DropIn {
            path: ours_path, ..
        } = &layout
        {
            let drop_ins = properties
                .get("DropInPaths")
                .map(String::as_str)
                .unwrap_or("");
            for other in drop_ins.split_whitespace().map(PathBuf::from) {
                if other == *ours_path {
                    continue;
                }
                let text = self.fs.read_to_string(&other)?.unwrap_or_default();
                if !text.contains("OLLAMA_") {
                    continue;
                }
                let name = other.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let wins_over_ours = name > DROPIN_NAME;
                conflicts.push(Conflict {
                    kind: ConflictKind::OtherDropIn,
                    summary: format!(
                        "{} also sets OLLAMA_* variables{}",
                        other.display(),
                        if wins_over_ours {
                            format!(
                                "; it sorts after {DROPIN_NAME}, so its values win over sovereign's"
                            )
                        } else {
                            format!("; {DROPIN_NAME} sorts after it, so sovereign's values win")
                        }
                    ),
                    fix: format!(
                        "Remove the OLLAMA_* lines from {} (keep anything else it sets).",
                        other.display()
                    ),
                    blocking: wins_over_ours,
                });
            }
        }
        Ok(conflicts)
    }

    pub fn install_plan(
        &self,
        spec: &ServiceSpec,
        ollama: Option<&Path>,
        state_dir: &Path,
    ) -> Result<InstallPlan, Error> {
        let previous = InstallManifest::load(self.fs, state_dir)?;
        let layout = self.layout(state_dir)?;
        let conflicts = self.conflicts(spec, state_dir)?;
        let mut plan = Plan::default();
        let unit = layout.unit_name().to_string();
        let (program, kind) = match &layout {
            LinuxLayout::Unit { path, .. } => {
                let program = self.find_ollama(ollama)?;
                let user = if self
                    .runner
                    .run(&Command::new("id", ["-u", OLLAMA_USER]))?
                    .success()
                {
                    UnitUser::Named(OLLAMA_USER.into())
                } else {
                    UnitUser::Dynamic
                };
                let service = SystemdService::new(spec, program.clone(), user);
                let dir = path.parent().expect("unit has a directory");
                if !self.fs.exists(dir) {
                    // Only on unusual systems; it is systemd's directory, never removed.
                    plan.push(Action::CreateDir {
                        path: dir.to_path_buf(),
                        mode: 0o755,
                    });
                }
                plan.push(Action::WriteFile {
                    path: path.clone(),
                    mode: 0o644,
                    contents: render_unit(&service),
                });
                (program, InstallKind::SystemdUnit)
            }
            LinuxLayout::DropIn { path, .. } => {
                // The existing unit keeps its own ExecStart; the binary is only reported.
                let program = self
                    .find_ollama(ollama)
                    .unwrap_or_else(|_| PathBuf::from("(from ollama.service)"));
                let service =
                    SystemdService::new(spec, program.clone(), UnitUser::Named(OLLAMA_USER.into()));
                let dir = path.parent().expect("drop-in has a directory");
                if !self.fs.exists(dir) {
                    plan.push(Action::CreateDir {
                        path: dir.to_path_buf(),
                        mode: 0o755,
                    });
                }
                plan.push(Action::WriteFile {
                    path: path.clone(),
                    mode: 0o644,
                    contents: render_dropin(&service),
                });
                (program, InstallKind::SystemdDropIn)
            }
        };
        let mut manifest = InstallManifest::new(kind, &unit, vec![layout.path().to_path_buf()]);
        manifest.directories = previous
            .as_ref()
            .map(|m| m.directories.clone())
            .unwrap_or_default();
        manifest.enabled_unit = previous.as_ref().is_some_and(|m| m.enabled_unit);
        if kind == InstallKind::SystemdDropIn
            && let Some(Action::CreateDir { path, .. }) = plan.actions.first()
            && !manifest.directories.contains(path)
        {
            manifest.directories.push(path.clone());
        }
        plan.run(Command::new("systemctl", ["daemon-reload"]));
        let enabled = self
            .show(&unit)?
            .get("UnitFileState")
            .is_some_and(|s| s == "enabled");
        if !enabled {
            plan.run(Command::new("systemctl", ["enable", unit.as_str()]));
            if kind == InstallKind::SystemdDropIn {
                manifest.enabled_unit = true;
            }
        }
        // restart, not start: a running service must pick up the new environment.
        plan.run(Command::new("systemctl", ["restart", unit.as_str()]));
        push_manifest(&mut plan, state_dir, &manifest);
        Ok(InstallPlan {
            program,
            conflicts,
            plan,
            manifest,
            uninspected: self.uninspected_summary(),
            notes: vec![format!(
                "The service waits up to {}s at boot for {} to be assigned, then restarts every \
                 3s until it is; pin the address (`sovereign server static-ip`) so it always is.",
                crate::render::ADDRESS_WAIT_SECONDS,
                spec.server_address
            )],
        })
    }

    pub fn uninstall_plan(&self, state_dir: &Path) -> Result<UninstallPlan, Error> {
        let manifest = InstallManifest::load(self.fs, state_dir)?;
        let from_known_paths = manifest.is_none();
        let manifest = match manifest {
            Some(manifest) => manifest,
            None => match self.known_install()? {
                Some(manifest) => manifest,
                None => {
                    return Ok(UninstallPlan {
                        plan: Plan::default(),
                        kept: Vec::new(),
                        from_known_paths,
                    });
                }
            },
        };
        let unit = manifest.service.as_str();
        let mut plan = Plan::default();
        if manifest.kind == InstallKind::SystemdUnit {
            plan.run_tolerating_failure(Command::new("systemctl", ["disable", "--now", unit]));
        }
        for file in &manifest.files {
            plan.push(Action::RemoveFile { path: file.clone() });
        }
        for dir in &manifest.directories {
            plan.push(Action::RemoveEmptyDir { path: dir.clone() });
        }
        plan.run(Command::new("systemctl", ["daemon-reload"]));
        let mut kept = vec![format!("logs in the journal (`journalctl -u {unit}`)")];
        match manifest.kind {
            InstallKind::SystemdDropIn => {
                if manifest.enabled_unit {
                    plan.run(Command::new("systemctl", ["disable", unit]));
                }
                // Back to ollama.service's own settings, if it is running.
                plan.run(Command::new("systemctl", ["try-restart", unit]));
                kept.push(format!(
                    "{unit} itself and its models (it belongs to Ollama's installer)"
                ));
            }
            _ => {
                plan.run_tolerating_failure(Command::new("systemctl", ["reset-failed", unit]));
                kept.push(format!(
                    "models in /var/lib/{STATE_DIRECTORY} (no ollama user) or ~ollama/.ollama/models"
                ));
            }
        }
        if !from_known_paths {
            plan.push(Action::RemoveFile {
                path: InstallManifest::path(state_dir),
            });
        }
        Ok(UninstallPlan {
            plan,
            kept,
            from_known_paths,
        })
    }

    /// Without a manifest: our unit or drop-in, recognised by its header.
    fn known_install(&self) -> Result<Option<InstallManifest>, Error> {
        for (layout, kind) in [
            (LinuxLayout::unit(), InstallKind::SystemdUnit),
            (LinuxLayout::drop_in(), InstallKind::SystemdDropIn),
        ] {
            let Some(text) = self.fs.read_to_string(layout.path())? else {
                continue;
            };
            if !text.starts_with(MANAGED_MARKER) {
                continue;
            }
            return Ok(Some(InstallManifest::new(
                kind,
                layout.unit_name(),
                vec![layout.path().to_path_buf()],
            )));
        }
        Ok(None)
    }

    pub fn control_plan(&self, control: Control, state_dir: &Path) -> Result<Plan, Error> {
        let layout = self.layout(state_dir)?;
        let verb = match control {
            Control::Start => "start",
            Control::Stop => "stop",
            Control::Restart => "restart",
        };
        let mut plan = Plan::default();
        plan.run(Command::new("systemctl", [verb, layout.unit_name()]));
        Ok(plan)
    }

    pub fn logs_command(&self, follow: bool, state_dir: &Path) -> Result<Command, Error> {
        let layout = self.layout(state_dir)?;
        let mut args = vec![
            "-u".to_string(),
            layout.unit_name().to_string(),
            "-n".into(),
            "200".into(),
            "--no-pager".into(),
        ];
        if follow {
            args.push("-f".into());
        }
        Ok(Command::new("journalctl", args))
    }
}

/// systemctl's answer when there is no systemd to talk to (PID 1 is something
/// else, or its bus is down), as opposed to a failure of systemd itself.
fn systemd_unavailable(stderr: &str) -> bool {
    stderr.contains("System has not been booted with systemd")
        || stderr.contains("Failed to connect to bus")
}
