//! macOS: a system LaunchDaemon that starts Ollama at boot, with nobody logged in,
//! under a dedicated service account, controlled with `launchctl ... system/...`.
//!
//! Everything here runs as root (the binary refuses otherwise, except for dry runs).
//! The console user (from `SUDO_USER`) still matters: their LaunchAgent, Ollama.app
//! and `brew services` would start a second Ollama on the same port, and their
//! models may be moved into the daemon's directory.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Error;
use crate::fs::Filesystem;
use crate::macos::{Launchd, MacUser, find_ollama, push_manifest};
use crate::manifest::{CreatedAccount, InstallKind, InstallManifest, MovedModels};
use crate::parse::{self, LaunchdJob, Listener};
use crate::plan::{Action, Plan};
use crate::power::{self, PowerStatus};
use crate::render::{LaunchDaemon, MANAGED_MARKER, render_daemon_plist, render_newsyslog};
use crate::runner::{Command, CommandRunner};
use crate::service::{Conflict, ConflictKind, Control, InstallPlan, ServiceState, UninstallPlan};
use crate::spec::{DaemonPaths, LAUNCHD_LABEL, MACOS_OLLAMA_CANDIDATES, ServiceSpec};

/// Where a service account's id is taken from: below 500, so macOS treats it as a
/// system account (no login window entry, no home in /Users), and above most of
/// Apple's own `_` accounts. Some of those sit in this range too (`_oahd` is 441), so
/// every id is checked against the users and groups that exist.
pub const ACCOUNT_IDS: std::ops::RangeInclusive<u32> = 300..=499;

/// What `install` may do beyond writing and loading the daemon; each is opt-in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DaemonOptions {
    /// Create the service account (hidden, no login shell) when it is missing.
    pub create_account: bool,
    /// Move the console user's `~/.ollama/models` into the daemon's models directory.
    pub move_models: bool,
    /// Apply the always-on `pmset` settings.
    pub power: bool,
}

/// The service account as the directory service knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// The name of its primary group (GroupName in the plist).
    pub group: String,
}

pub struct SystemLaunchd<'a> {
    runner: &'a dyn CommandRunner,
    fs: &'a dyn Filesystem,
    /// The person at the console (who ran sudo): their agent and app are conflicts.
    console: MacUser,
    account: String,
    options: DaemonOptions,
    paths: DaemonPaths,
    agent: Launchd<'a>,
}

impl<'a> SystemLaunchd<'a> {
    pub fn new(
        runner: &'a dyn CommandRunner,
        fs: &'a dyn Filesystem,
        console: MacUser,
        account: &str,
        options: DaemonOptions,
    ) -> SystemLaunchd<'a> {
        SystemLaunchd {
            runner,
            fs,
            agent: Launchd::new(runner, fs, console.clone()),
            console,
            account: account.to_string(),
            options,
            paths: DaemonPaths::system(),
        }
    }

    pub fn paths(&self) -> &DaemonPaths {
        &self.paths
    }

    pub fn target(&self) -> String {
        format!("system/{LAUNCHD_LABEL}")
    }

    pub fn find_ollama(&self, explicit: Option<&Path>) -> Result<PathBuf, Error> {
        find_ollama(self.fs, explicit, &MACOS_OLLAMA_CANDIDATES)
    }

    /// `launchctl print system/com.sovereign.ollama`; `None` when not loaded.
    pub fn job(&self) -> Result<Option<LaunchdJob>, Error> {
        let output = self
            .runner
            .run(&Command::new("launchctl", ["print", &self.target()]))?;
        if !output.success() {
            return Ok(None);
        }
        Ok(Some(parse::launchctl_print(&output.stdout)))
    }

    pub fn state(&self) -> Result<ServiceState, Error> {
        let state = ServiceState {
            manager: "launchd".into(),
            name: LAUNCHD_LABEL.into(),
            domain: "daemon".into(),
            // launchd loads /Library/LaunchDaemons at boot, before any login.
            runs_without_login: true,
            file: Some(self.paths.plist.clone()),
            installed: self.fs.exists(&self.paths.plist),
            state: "not loaded".into(),
            ..ServiceState::default()
        };
        Ok(match self.job()? {
            Some(job) => state.loaded_launchd_job(job),
            None => state,
        })
    }

    pub fn listeners(&self, port: u16) -> Result<Vec<Listener>, Error> {
        self.agent.listeners(port)
    }

    /// `pmset -g` and `fdesetup status`. Either may fail (an old macOS, a sandbox):
    /// that yields no settings or an unknown FileVault state, not an error.
    pub fn power_status(&self) -> Result<PowerStatus, Error> {
        power_status(self.runner)
    }

    /// The agent's conflicts (Ollama.app, `brew services`, the old agent, another
    /// listener) plus the console user's own sovereign agent, which would be a second
    /// Ollama on the same port whenever that user logs in.
    pub fn conflicts(&self, spec: &ServiceSpec) -> Result<Vec<Conflict>, Error> {
        let mut conflicts = Vec::new();
        let agent_job = self.agent.job(LAUNCHD_LABEL)?;
        let agent_plist = &self.agent.paths().plist;
        if agent_job.is_some() || self.fs.exists(agent_plist) {
            conflicts.push(Conflict {
                kind: ConflictKind::SovereignAgent,
                summary: format!(
                    "sovereign's LaunchAgent for {} ({}) is {}: it starts Ollama on port {} at \
                     every login, a second instance beside the daemon",
                    self.console.home.display(),
                    agent_plist.display(),
                    if agent_job.is_some() {
                        "loaded"
                    } else {
                        "installed"
                    },
                    spec.port
                ),
                fix: "Remove it first, as that user and without sudo, with server.service still \
                      \"agent\": `sovereign server uninstall`."
                    .into(),
                blocking: true,
            });
        }
        let mut ours: Vec<u32> = Vec::new();
        ours.extend(self.job()?.and_then(|job| job.pid));
        // The agent's listener is explained by the conflict above already.
        ours.extend(agent_job.and_then(|job| job.pid));
        conflicts.extend(self.agent.conflicts_skipping(spec, &ours)?);
        Ok(conflicts)
    }

    /// The service account, if it exists: `dscl . -read /Users/NAME` and the group
    /// that owns its primary group id.
    pub fn account(&self) -> Result<Option<Account>, Error> {
        let read = self.runner.run(&Command::new(
            "dscl",
            [".", "-read", &format!("/Users/{}", self.account)],
        ))?;
        // dscl exits 56 with eDSRecordNotFound for a missing record.
        if !read.success() {
            return Ok(None);
        }
        let record = parse::dscl_record(&read.stdout);
        let number = |key: &str| -> Result<u32, Error> {
            record
                .get(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| Error::Parse {
                    command: format!("dscl . -read /Users/{}", self.account),
                    reason: format!("no numeric {key}"),
                })
        };
        let (uid, gid) = (number("UniqueID")?, number("PrimaryGroupID")?);
        let group = self
            .group_ids()?
            .into_iter()
            .find(|(_, id)| *id == i64::from(gid))
            .map(|(name, _)| name)
            .unwrap_or_else(|| self.account.clone());
        Ok(Some(Account {
            name: self.account.clone(),
            uid,
            gid,
            group,
        }))
    }

    fn group_ids(&self) -> Result<Vec<(String, i64)>, Error> {
        self.list("/Groups", "PrimaryGroupID")
    }

    fn list(&self, path: &str, attribute: &str) -> Result<Vec<(String, i64)>, Error> {
        let command = Command::new("dscl", [".", "-list", path, attribute]);
        let output = self.runner.run(&command)?;
        if !output.success() {
            return Err(Error::CommandFailed {
                command: command.to_string(),
                status: output.status,
                stderr: output.stderr.trim().to_string(),
            });
        }
        Ok(parse::dscl_ids(&output.stdout))
    }

    /// The lowest id in [`ACCOUNT_IDS`] that is neither a user's nor a group's, so
    /// the account and its group can share it.
    pub fn free_id(&self) -> Result<u32, Error> {
        let users = self.list("/Users", "UniqueID")?;
        let groups = self.group_ids()?;
        let taken = |id: u32| {
            users
                .iter()
                .chain(groups.iter())
                .any(|(_, used)| *used == i64::from(id))
        };
        ACCOUNT_IDS
            .clone()
            .find(|id| !taken(*id))
            .ok_or_else(|| Error::ServiceAccount {
                reason: format!(
                    "every id from {} to {} is taken; create the account yourself and set \
                     server.service_account",
                    ACCOUNT_IDS.start(),
                    ACCOUNT_IDS.end()
                ),
            })
    }

    pub fn install_plan(
        &self,
        spec: &ServiceSpec,
        ollama: Option<&Path>,
        state_dir: &Path,
    ) -> Result<InstallPlan, Error> {
        let program = self.find_ollama(ollama)?;
        let mut conflicts = self.conflicts(spec)?;
        let power = self.power_status()?;
        let mut notes = daemon_notes(&self.paths, &power, self.options.power);
        let mut plan = Plan::default();
        let mut manifest = InstallManifest::new(
            InstallKind::LaunchDaemon,
            LAUNCHD_LABEL,
            vec![self.paths.plist.clone(), self.paths.newsyslog.clone()],
        );
        let previous = InstallManifest::load(self.fs, state_dir)?
            .filter(|m| m.kind == InstallKind::LaunchDaemon);
        if let Some(previous) = &previous {
            // A reinstall keeps what the first install did, so uninstall still undoes it.
            manifest.kept = previous.kept.clone();
            manifest.directories = previous.directories.clone();
            manifest.created_account = previous.created_account.clone();
            manifest.moved_models = previous.moved_models.clone();
            manifest.previous_power = previous.previous_power.clone();
        }

        let account = match self.account()? {
            Some(account) => account,
            None if self.options.create_account => {
                let id = self.free_id()?;
                self.push_create_account(&mut plan, id);
                manifest.created_account = Some(CreatedAccount {
                    name: self.account.clone(),
                    uid: id,
                    gid: id,
                });
                Account {
                    name: self.account.clone(),
                    uid: id,
                    gid: id,
                    group: self.account.clone(),
                }
            }
            None => {
                conflicts.push(Conflict {
                    kind: ConflictKind::ServiceAccountMissing,
                    summary: format!(
                        "the service account `{}` (server.service_account) does not exist",
                        self.account
                    ),
                    fix: format!(
                        "Run install again with --create-account (a hidden account with id \
                         {}-{}, no login shell, home {}), or create it yourself.",
                        ACCOUNT_IDS.start(),
                        ACCOUNT_IDS.end(),
                        self.paths.data_dir.display()
                    ),
                    blocking: true,
                });
                Account {
                    name: self.account.clone(),
                    uid: 0,
                    gid: 0,
                    group: self.account.clone(),
                }
            }
        };
        let owner = format!("{}:{}", account.name, account.group);

        if !self.fs.exists(&self.paths.support_dir) {
            plan.push(Action::CreateDir {
                path: self.paths.support_dir.clone(),
                mode: 0o755,
            });
            push_unique(&mut manifest.directories, &self.paths.support_dir);
        }
        if !self.fs.exists(&self.paths.data_dir) {
            // 0750: the models and Ollama's private key are the account's business.
            plan.push(Action::CreateDir {
                path: self.paths.data_dir.clone(),
                mode: 0o750,
            });
            push_unique(&mut manifest.kept, &self.paths.data_dir);
        }
        let user_models = self.console.home.join(".ollama/models");
        let models_there = self.fs.exists(&self.paths.models_dir);
        if self.options.move_models {
            if !self.fs.exists(&user_models) {
                notes.push(format!(
                    "--move-models: {} does not exist, nothing to move",
                    user_models.display()
                ));
            } else if models_there {
                notes.push(format!(
                    "--move-models: not moved, {} exists already; merge by hand if needed",
                    self.paths.models_dir.display()
                ));
            } else {
                let owner = self.stat_owner(&user_models)?;
                plan.run(Command::new(
                    "mv",
                    [
                        user_models.display().to_string(),
                        self.paths.models_dir.display().to_string(),
                    ],
                ));
                manifest.moved_models = Some(MovedModels {
                    from: user_models.clone(),
                    to: self.paths.models_dir.clone(),
                    owner,
                });
            }
        }
        if !models_there && manifest.moved_models.is_none() {
            plan.push(Action::CreateDir {
                path: self.paths.models_dir.clone(),
                mode: 0o750,
            });
        }
        // Also after a move: the blobs belonged to the console user until now.
        plan.run(Command::new(
            "chown",
            [
                "-R".to_string(),
                owner.clone(),
                self.paths.data_dir.display().to_string(),
            ],
        ));
        // Root-owned is enough: launchd creates StandardOutPath and StandardErrorPath
        // owned by UserName/GroupName (launchd.plist(5)).
        if !self.fs.exists(&self.paths.log_dir) {
            plan.push(Action::CreateDir {
                path: self.paths.log_dir.clone(),
                mode: 0o755,
            });
            push_unique(&mut manifest.kept, &self.paths.log_dir);
        }

        // Both exist on every Mac; created only for a bare root (a fresh volume).
        for file in [&self.paths.plist, &self.paths.newsyslog] {
            let dir = file.parent().expect("absolute paths");
            if !self.fs.exists(dir) {
                plan.push(Action::CreateDir {
                    path: dir.to_path_buf(),
                    mode: 0o755,
                });
            }
        }
        let daemon = LaunchDaemon::new(
            spec,
            program.clone(),
            &account.name,
            &account.group,
            &self.paths,
        );
        // launchd ignores a system plist that is not root-owned or is writable by others;
        // root writes it, and 0644 keeps it so.
        plan.push(Action::WriteFile {
            path: self.paths.plist.clone(),
            mode: 0o644,
            contents: render_daemon_plist(&daemon)?,
        });
        plan.push(Action::WriteFile {
            path: self.paths.newsyslog.clone(),
            mode: 0o644,
            contents: render_newsyslog(&self.paths, &account.name, &account.group),
        });

        if self.options.power {
            let changes = power.previous_values();
            if let Some(command) = power::apply_command(&changes) {
                plan.run(command);
                for (key, value) in changes {
                    // The first install's values are the ones to go back to.
                    manifest.previous_power.entry(key).or_insert(value);
                }
            } else {
                notes.push("--power: pmset already has every always-on setting".into());
            }
        }

        if self.job()?.is_some() {
            plan.run_tolerating_failure(Command::new("launchctl", ["bootout", &self.target()]));
        }
        plan.run(Command::new("launchctl", ["enable", &self.target()]));
        plan.run(Command::new(
            "launchctl",
            [
                "bootstrap".to_string(),
                "system".to_string(),
                self.paths.plist.display().to_string(),
            ],
        ));
        push_manifest(&mut plan, state_dir, &manifest);
        Ok(InstallPlan {
            program,
            conflicts,
            plan,
            manifest,
            notes,
            uninspected: Vec::new(),
        })
    }

    /// `dscl` creates the group, then the account: hidden, no login shell, no
    /// password (`*`), its home the data directory.
    fn push_create_account(&self, plan: &mut Plan, id: u32) {
        let name = &self.account;
        let group = format!("/Groups/{name}");
        let user = format!("/Users/{name}");
        let id = id.to_string();
        let home = self.paths.data_dir.display().to_string();
        let dscl = |args: &[&str]| {
            let mut all = vec![".", "-create"];
            all.extend_from_slice(args);
            Command::new("dscl", all)
        };
        for command in [
            dscl(&[&group]),
            dscl(&[&group, "PrimaryGroupID", &id]),
            dscl(&[&group, "RealName", "sovereign Ollama service"]),
            dscl(&[&group, "Password", "*"]),
            dscl(&[&user]),
            dscl(&[&user, "UniqueID", &id]),
            dscl(&[&user, "PrimaryGroupID", &id]),
            dscl(&[&user, "RealName", "sovereign Ollama service"]),
            dscl(&[&user, "UserShell", "/usr/bin/false"]),
            dscl(&[&user, "NFSHomeDirectory", &home]),
            dscl(&[&user, "Password", "*"]),
            dscl(&[&user, "IsHidden", "1"]),
        ] {
            plan.run(command);
        }
    }

    /// `uid:gid` of `path`, so moving models back can restore them exactly.
    fn stat_owner(&self, path: &Path) -> Result<String, Error> {
        let command = Command::new(
            "stat",
            ["-f".to_string(), "%u:%g".into(), path.display().to_string()],
        );
        let output = self.runner.run(&command)?;
        let owner = output.stdout.trim();
        let valid = owner
            .split_once(':')
            .is_some_and(|(u, g)| u.parse::<u32>().is_ok() && g.parse::<u32>().is_ok());
        if !output.success() || !valid {
            return Err(Error::Parse {
                command: command.to_string(),
                reason: format!("expected uid:gid, got `{owner}`"),
            });
        }
        Ok(owner.to_string())
    }

    /// Undoes what the manifest records, in reverse: unload, files, power, models,
    /// account, directories. Without a manifest only files that are provably ours go.
    pub fn uninstall_plan(&self, state_dir: &Path) -> Result<UninstallPlan, Error> {
        let manifest = InstallManifest::load(self.fs, state_dir)?
            .filter(|m| m.kind == InstallKind::LaunchDaemon);
        let from_known_paths = manifest.is_none();
        let manifest = match manifest {
            Some(manifest) => manifest,
            None => InstallManifest::new(
                InstallKind::LaunchDaemon,
                LAUNCHD_LABEL,
                self.known_install_files()?,
            ),
        };
        let mut plan = Plan::default();
        if self.job()?.is_some() {
            plan.run(Command::new("launchctl", ["bootout", &self.target()]));
        }
        for file in &manifest.files {
            plan.push(Action::RemoveFile { path: file.clone() });
        }
        let previous: Vec<(String, String)> = manifest
            .previous_power
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(command) = power::restore_command(&previous) {
            plan.run(command);
        }
        let mut kept = Vec::new();
        if let Some(moved) = manifest
            .moved_models
            .as_ref()
            .filter(|m| self.fs.exists(&m.from))
        {
            // `mv` onto an existing directory would nest the models inside it.
            kept.push(format!(
                "models in {}: not moved back, because {} exists again; merge by hand",
                moved.to.display(),
                moved.from.display()
            ));
        } else if let Some(moved) = &manifest.moved_models {
            plan.run(Command::new(
                "mv",
                [
                    moved.to.display().to_string(),
                    moved.from.display().to_string(),
                ],
            ));
            plan.run(Command::new(
                "chown",
                [
                    "-R".to_string(),
                    moved.owner.clone(),
                    moved.from.display().to_string(),
                ],
            ));
        } else {
            kept.push(format!("models in {}", self.paths.models_dir.display()));
        }
        if let Some(account) = &manifest.created_account {
            plan.run(Command::new(
                "dscl",
                [".", "-delete", &format!("/Users/{}", account.name)],
            ));
            plan.run(Command::new(
                "dscl",
                [".", "-delete", &format!("/Groups/{}", account.name)],
            ));
            kept.push(format!(
                "{} (Ollama's key pair; owned by uid {} once the account is gone: \
                 `sudo rm -rf` it if you want it gone)",
                self.paths.data_dir.display(),
                account.uid
            ));
        } else {
            kept.push(format!("the account {}", self.account));
        }
        for dir in &manifest.directories {
            plan.push(Action::RemoveEmptyDir { path: dir.clone() });
        }
        if !from_known_paths {
            plan.push(Action::RemoveFile {
                path: InstallManifest::path(state_dir),
            });
        }
        kept.extend(
            manifest
                .kept
                .iter()
                .filter(|dir| **dir != self.paths.data_dir)
                .map(|dir| format!("logs in {}", dir.display())),
        );
        if manifest.previous_power.is_empty() {
            kept.push("the pmset settings (install did not change them)".into());
        }
        kept.push("the ollama binary (Homebrew or Ollama.app)".into());
        Ok(UninstallPlan {
            plan,
            kept,
            from_known_paths,
        })
    }

    /// Without a manifest: the plist if its Label is ours, the newsyslog rule if it
    /// carries our header.
    fn known_install_files(&self) -> Result<Vec<PathBuf>, Error> {
        let mut files = Vec::new();
        if let Some(text) = self.fs.read_to_string(&self.paths.plist)? {
            let label = plist::Value::from_reader_xml(text.as_bytes())
                .ok()
                .and_then(|v| v.into_dictionary())
                .and_then(|d| {
                    d.get("Label")
                        .and_then(|l| l.as_string().map(str::to_string))
                });
            if label.as_deref() == Some(LAUNCHD_LABEL) {
                files.push(self.paths.plist.clone());
            }
        }
        if let Some(text) = self.fs.read_to_string(&self.paths.newsyslog)?
            && text.starts_with(MANAGED_MARKER)
        {
            files.push(self.paths.newsyslog.clone());
        }
        Ok(files)
    }

    pub fn control_plan(&self, control: Control) -> Result<Plan, Error> {
        let target = self.target();
        let loaded = self.job()?.is_some();
        let bootstrap = Command::new(
            "launchctl",
            [
                "bootstrap".to_string(),
                "system".into(),
                self.paths.plist.display().to_string(),
            ],
        );
        let mut plan = Plan::default();
        match (control, loaded) {
            (Control::Start | Control::Restart, false) => plan.run(bootstrap),
            (Control::Start, true) => plan.run(Command::new("launchctl", ["kickstart", &target])),
            // Unloaded, it stays down until the next boot or `start`.
            (Control::Stop, true) => plan.run(Command::new("launchctl", ["bootout", &target])),
            (Control::Stop, false) => {}
            (Control::Restart, true) => {
                plan.run(Command::new("launchctl", ["kickstart", "-k", &target]))
            }
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
}

/// `pmset -g` and `fdesetup status` through `runner`; shared by the agent's status.
pub fn power_status(runner: &dyn CommandRunner) -> Result<PowerStatus, Error> {
    let pmset = match runner.run(&Command::new("pmset", ["-g"])) {
        Ok(output) if output.success() => parse::pmset_settings(&output.stdout),
        Ok(_) | Err(Error::ProgramMissing { .. }) => Default::default(),
        Err(error) => return Err(error),
    };
    let filevault = match runner.run(&Command::new("fdesetup", ["status"])) {
        Ok(output) => parse::fdesetup_enabled(&output.stdout),
        Err(Error::ProgramMissing { .. }) => None,
        Err(error) => return Err(error),
    };
    Ok(PowerStatus::new(&pmset, filevault))
}

fn push_unique(list: &mut Vec<PathBuf>, path: &Path) {
    if !list.iter().any(|p| p == path) {
        list.push(path.to_path_buf());
    }
}

/// What the person installing the daemon should know afterwards.
fn daemon_notes(paths: &DaemonPaths, power: &PowerStatus, applying_power: bool) -> Vec<String> {
    let mut notes = vec![
        format!(
            "The daemon starts at boot with nobody logged in, as its own account, with models \
             in {}. `sovereign server status` shows it; `sudo sovereign server uninstall` \
             removes what install did.",
            paths.models_dir.display()
        ),
        power::filevault_note(power.filevault),
    ];
    if !applying_power {
        notes.extend(power.contradictions.iter().cloned());
    }
    notes.push(
        "The first start may ask whether `ollama` may accept incoming network connections \
         (with the application firewall on): allow it once at the console."
            .into(),
    );
    notes
}
