//! What both platforms share: the service's state, conflicts, and the plans that
//! install, remove and control it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::daemon::SystemLaunchd;
use crate::error::Error;
use crate::linux::Systemd;
use crate::macos::Launchd;
use crate::manifest::InstallManifest;
use crate::parse::Listener;
use crate::plan::Plan;
use crate::runner::Command;
use crate::spec::ServiceSpec;

/// The supervised service as its manager reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceState {
    /// `launchd` or `systemd`.
    pub manager: String,
    /// The launchd label or systemd unit.
    pub name: String,
    /// `agent` (a user's LaunchAgent), `daemon` (a system LaunchDaemon) or `system`
    /// (a systemd system unit).
    pub domain: String,
    /// Whether it starts at boot with nobody logged in.
    pub runs_without_login: bool,
    /// The plist, unit or drop-in file.
    pub file: Option<PathBuf>,
    pub installed: bool,
    pub loaded: bool,
    pub running: bool,
    pub pid: Option<u32>,
    /// How often the manager restarted it (launchd: runs since load minus one).
    pub restarts: Option<u32>,
    pub last_exit_code: Option<i32>,
    /// The manager's own words: `running`, `active (running)`, ...
    pub state: String,
    /// The environment the manager passes to Ollama, when it shows it.
    pub environment: BTreeMap<String, String>,
}

impl ServiceState {
    /// What launchd says about a loaded job (agent or daemon alike).
    pub(crate) fn loaded_launchd_job(mut self, job: crate::parse::LaunchdJob) -> Self {
        self.loaded = true;
        self.running = job.state == "running" && job.pid.is_some();
        self.pid = job.pid;
        self.restarts = job.runs.map(|runs| runs.saturating_sub(1));
        self.last_exit_code = job.last_exit_code;
        self.state = job.state;
        self.environment = job.environment;
        self
    }
}

/// Something on this machine that competes with our service, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub kind: ConflictKind,
    pub summary: String,
    pub fix: String,
    /// Install refuses to continue while a blocking conflict exists.
    pub blocking: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictKind {
    OllamaApp,
    OllamaAppLoginItem,
    OllamaAppExposed,
    HomebrewService,
    LegacyAgent,
    PortInUse,
    OtherDropIn,
    /// The user's own sovereign LaunchAgent, while installing the daemon.
    SovereignAgent,
    /// sovereign's LaunchDaemon, while installing the agent.
    SovereignDaemon,
    /// The daemon's service account does not exist and `--create-account` was not given.
    ServiceAccountMissing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Control {
    Start,
    Stop,
    Restart,
}

/// Everything `install` would do, with what it found first.
#[derive(Debug, Clone, Serialize)]
pub struct InstallPlan {
    pub program: PathBuf,
    pub conflicts: Vec<Conflict>,
    pub plan: Plan,
    pub manifest: InstallManifest,
    /// Advice printed after installing (logins, sleep, firewall prompts).
    pub notes: Vec<String>,
    /// What could not be inspected on this machine (systemd not running): a dry run
    /// shows the plan anyway and lists these; a real install refuses.
    pub uninspected: Vec<String>,
}

impl InstallPlan {
    pub fn blocked(&self) -> bool {
        self.conflicts.iter().any(|c| c.blocking)
    }
}

/// Everything `uninstall` would do.
#[derive(Debug, Clone, Serialize)]
pub struct UninstallPlan {
    pub plan: Plan,
    /// What stays on purpose (models, logs, Ollama itself).
    pub kept: Vec<String>,
    /// Set when no manifest was found and the plan comes from our fixed paths.
    pub from_known_paths: bool,
}

/// The service manager of the machine this runs on.
pub enum Backend<'a> {
    Macos(Launchd<'a>),
    /// `server.service = "daemon"`: the system LaunchDaemon.
    MacosDaemon(Box<SystemLaunchd<'a>>),
    Linux(Systemd<'a>),
}

impl Backend<'_> {
    pub fn platform(&self) -> sovereign_model::Platform {
        match self {
            Backend::Macos(_) | Backend::MacosDaemon(_) => sovereign_model::Platform::Macos,
            Backend::Linux(_) => sovereign_model::Platform::Linux,
        }
    }

    pub fn install_plan(
        &self,
        spec: &ServiceSpec,
        ollama: Option<&Path>,
        state_dir: &Path,
    ) -> Result<InstallPlan, Error> {
        let mut plan = match self {
            Backend::Macos(b) => b.install_plan(spec, ollama, state_dir),
            Backend::MacosDaemon(b) => b.install_plan(spec, ollama, state_dir),
            Backend::Linux(b) => b.install_plan(spec, ollama, state_dir),
        }?;
        plan.notes.extend(cli_note(spec));
        Ok(plan)
    }

    pub fn uninstall_plan(&self, state_dir: &Path) -> Result<UninstallPlan, Error> {
        match self {
            Backend::Macos(b) => b.uninstall_plan(state_dir),
            Backend::MacosDaemon(b) => b.uninstall_plan(state_dir),
            Backend::Linux(b) => b.uninstall_plan(state_dir),
        }
    }

    pub fn state(&self, state_dir: &Path) -> Result<ServiceState, Error> {
        match self {
            Backend::Macos(b) => b.state(),
            Backend::MacosDaemon(b) => b.state(),
            Backend::Linux(b) => b.state(state_dir),
        }
    }

    pub fn listeners(&self, port: u16) -> Result<Vec<Listener>, Error> {
        match self {
            Backend::Macos(b) => b.listeners(port),
            Backend::MacosDaemon(b) => b.listeners(port),
            Backend::Linux(b) => b.listeners(port),
        }
    }

    pub fn conflicts(&self, spec: &ServiceSpec, state_dir: &Path) -> Result<Vec<Conflict>, Error> {
        match self {
            Backend::Macos(b) => b.conflicts(spec),
            Backend::MacosDaemon(b) => b.conflicts(spec),
            Backend::Linux(b) => b.conflicts(spec, state_dir),
        }
    }

    pub fn control_plan(&self, control: Control, state_dir: &Path) -> Result<Plan, Error> {
        match self {
            Backend::Macos(b) => b.control_plan(control),
            Backend::MacosDaemon(b) => b.control_plan(control),
            Backend::Linux(b) => b.control_plan(control, state_dir),
        }
    }

    /// The power settings that matter for an always-on Mac; `None` on Linux.
    pub fn power_status(&self) -> Result<Option<crate::power::PowerStatus>, Error> {
        match self {
            Backend::Macos(b) => crate::daemon::power_status(b.runner()).map(Some),
            Backend::MacosDaemon(b) => b.power_status().map(Some),
            Backend::Linux(_) => Ok(None),
        }
    }

    pub fn logs_command(&self, follow: bool, state_dir: &Path) -> Result<Command, Error> {
        match self {
            Backend::Macos(b) => Ok(b.logs_command(follow)),
            Backend::MacosDaemon(b) => Ok(b.logs_command(follow)),
            Backend::Linux(b) => b.logs_command(follow, state_dir),
        }
    }
}

/// Bound to the LAN address, Ollama no longer answers on 127.0.0.1, which is where
/// the `ollama` command line looks by default (the bash original's `ollama pull`
/// broke exactly so).
fn cli_note(spec: &ServiceSpec) -> Option<String> {
    if spec.bind != sovereign_model::BindMode::LanIp {
        return None;
    }
    Some(format!(
        "Ollama listens only on {address}:{port}, so the `ollama` command line on this machine \
         needs `export OLLAMA_HOST={address}:{port}` (add it to your shell profile); \
         `sovereign server warm` already uses that address.",
        address = spec.server_address,
        port = spec.port
    ))
}

#[cfg(test)]
mod cli_note_tests {
    use super::*;

    #[test]
    fn a_lan_bound_server_tells_how_to_reach_it_from_the_local_cli() {
        let mut d = sovereign_model::Deployment::reference();
        let note = cli_note(&ServiceSpec::from_deployment(&d)).unwrap();
        assert!(
            note.contains("export OLLAMA_HOST=192.168.250.20:11434"),
            "{note}"
        );
        d.server.bind = sovereign_model::BindMode::All;
        assert_eq!(cli_note(&ServiceSpec::from_deployment(&d)), None);
    }
}
