//! `router apply`: push a rendered configuration and make it live without ever
//! locking the user out.
//!
//! The order is fixed: prepare (tools, lock, staging dir) -> upload -> snapshot ->
//! validate on the router -> arm a rollback timer -> apply -> prove a FRESH ssh
//! session still works -> confirm (disarm the timer, clean up). A failure before
//! the apply step changes nothing; a failure after it leaves the rollback armed,
//! so the router returns to the snapshot by itself.

use serde::Serialize;

use crate::script::{field, quote};
use crate::target::{RouterConfig, TargetScripts};
use crate::transport::{Output, Transport, TransportError};

/// The lock directory: `mkdir` is atomic, so two applies cannot interleave.
pub const LOCK_DIR: &str = "/tmp/sovereign-apply.lock";
/// Where the last automatic rollback leaves its log.
pub const ROLLBACK_LOG: &str = "/tmp/sovereign-rollback.log";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Seconds until the armed rollback restores the snapshot.
    pub confirm_timeout_secs: u32,
    pub dry_run: bool,
    /// Test hook: behave as if the fresh session in step 6 could not reach the
    /// router, so the confirmation never arrives.
    #[doc(hidden)]
    pub simulate_lost_connection: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            confirm_timeout_secs: 60,
            dry_run: false,
            simulate_lost_connection: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Prepare,
    Upload,
    Snapshot,
    Validate,
    ArmRollback,
    Apply,
    Reconnect,
    Confirm,
}

impl Step {
    pub fn describe(self) -> &'static str {
        match self {
            Step::Prepare => "check tools, take the lock, create the staging dir",
            Step::Upload => "upload the rendered config",
            Step::Snapshot => "snapshot the current config",
            Step::Validate => "validate it on the router",
            Step::ArmRollback => "arm the automatic rollback",
            Step::Apply => "apply the new config",
            Step::Reconnect => "reconnect over a fresh ssh session",
            Step::Confirm => "confirm: cancel the rollback and clean up",
        }
    }
}

/// What `apply` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    pub router: String,
    pub dry_run: bool,
    /// Steps that completed, in order, with what each one reported.
    pub steps: Vec<StepRecord>,
    /// Unified diff of live -> rendered (dry run only); empty when nothing would change.
    pub diff: Option<String>,
    pub warnings: Vec<String>,
}

impl ApplyReport {
    /// A step completed: kept for the report, and logged as it happens.
    fn record(&mut self, record: StepRecord) {
        tracing::info!(step = ?record.step, "{}: {}", record.step.describe(), record.detail);
        self.steps.push(record);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    pub step: Step,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{step:?} failed, nothing on the router was changed: {source}")]
    Transport {
        step: Step,
        #[source]
        source: TransportError,
    },
    #[error(
        "the router lacks {}; nothing was changed. {hint}",
        missing.join(", ")
    )]
    MissingTools { missing: Vec<String>, hint: String },
    #[error("{0}; nothing was changed")]
    Precondition(String),
    #[error(
        "another apply holds the router's lock ({holder}); nothing was changed. If no apply is \
         running and no rollback is pending, remove it on the router: rm -rf {LOCK_DIR}"
    )]
    Locked { holder: String },
    #[error("the router rejected the new config, nothing was changed:\n{output}")]
    ValidationFailed { output: String },
    #[error("{step:?} ({}) failed, nothing was changed:\n{output}", step.describe())]
    BeforeChange { step: Step, output: String },
    #[error(
        "{step:?} ({}) failed AFTER the new config started to go live:\n{output}\n\
         The rollback is still armed: the router restores the previous config by itself within \
         {seconds} s (log: {ROLLBACK_LOG}). Do not start another apply before then.",
        step.describe()
    )]
    RollbackArmed {
        step: Step,
        output: String,
        seconds: u32,
    },
    #[error(
        "the new config went live but did not hold:\n{output}\n{}",
        if *restored {
            format!("sovereign rolled the router back to the previous config at once (log: {ROLLBACK_LOG}).")
        } else {
            format!("The immediate rollback FAILED; see {ROLLBACK_LOG} on the router and restore by hand.")
        }
    )]
    RolledBack { output: String, restored: bool },
}

impl ApplyError {
    /// Whether anything on the router may have changed (then the rollback is armed).
    pub fn rollback_armed(&self) -> bool {
        matches!(self, ApplyError::RollbackArmed { .. })
    }
}

/// Shell lines for the apply script when it finds the new config wrong after going
/// live: stop the armed timer and run its rollback now (`timer.sh now`, so the
/// `decided` race and the log stay in one place), then report `rolled-back=`.
pub(crate) fn rollback_now(staging: &str) -> String {
    let s = quote(staging);
    format!(
        "pid=$(cat {s}/timer.pid 2>/dev/null) && {{ kill -TERM -\"$pid\" 2>/dev/null || kill -TERM \"$pid\" 2>/dev/null; }}\n\
         \tsh {s}/timer.sh now\n\
         \tif grep -q ': restored ' {ROLLBACK_LOG} 2>/dev/null; then echo rolled-back=restored; else echo rolled-back=FAILED; fi\n"
    )
}

/// Apply `config` to the router behind `transport`.
pub fn apply(
    transport: &dyn Transport,
    config: &RouterConfig,
    options: &ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let scripts = config.scripts();
    let mut report = ApplyReport {
        router: transport.describe(),
        dry_run: options.dry_run,
        steps: Vec::new(),
        diff: None,
        warnings: Vec::new(),
    };

    let prepared = run(
        transport,
        Step::Prepare,
        &scripts.prepare(!options.dry_run),
        &[],
    )?;
    let staging = check_prepared(&*scripts, &prepared.stdout, &mut report)?;
    let session = Session {
        transport,
        staging: &staging,
        scripts: &*scripts,
        locked: !options.dry_run,
        confirm_timeout_secs: options.confirm_timeout_secs,
    };
    report.record(StepRecord {
        step: Step::Prepare,
        detail: format!("staging {staging}"),
    });

    session.guard(Step::Upload, |s| s.upload())?;
    report.record(StepRecord {
        step: Step::Upload,
        detail: format!("{} files", scripts.files(&staging).len() + 1),
    });

    if options.dry_run {
        let preview = session.guard(Step::Validate, |s| {
            s.checked(Step::Validate, &s.scripts.preview(&staging))
        });
        let cleanup = session.abort();
        let preview = preview?;
        cleanup.map_err(|source| ApplyError::Transport {
            step: Step::Validate,
            source,
        })?;
        let diff = scripts
            .diff(&preview.stdout)
            .map_err(|output| ApplyError::ValidationFailed { output })?;
        report.record(StepRecord {
            step: Step::Validate,
            detail: "previewed; nothing changed".into(),
        });
        report.diff = Some(diff);
        return Ok(report);
    }

    // The snapshot comes before validation: staging a change must never be able
    // to reach the files the rollback restores.
    let snapshot = session.guard(Step::Snapshot, |s| {
        s.checked(Step::Snapshot, &s.scripts.snapshot(&staging))
    })?;
    report.record(StepRecord {
        step: Step::Snapshot,
        detail: last_line(&snapshot.stdout),
    });

    let validated = session.guard(Step::Validate, |s| {
        let output = s.call(Step::Validate, &s.scripts.validate(&staging))?;
        if output.success() {
            Ok(output)
        } else {
            Err(ApplyError::ValidationFailed {
                output: combined(&output),
            })
        }
    })?;
    report.record(StepRecord {
        step: Step::Validate,
        detail: last_line(&validated.stdout),
    });

    let armed = session.guard(Step::ArmRollback, |s| {
        let output = s.checked(Step::ArmRollback, &arm_script(&staging))?;
        match field(&output.stdout, "armed") {
            Some("yes") => Ok(output),
            _ => Err(ApplyError::BeforeChange {
                step: Step::ArmRollback,
                output: combined(&output),
            }),
        }
    })?;
    report.record(StepRecord {
        step: Step::ArmRollback,
        detail: format!(
            "restores the snapshot in {} s unless confirmed (timer pid {})",
            options.confirm_timeout_secs,
            field(&armed.stdout, "timer").unwrap_or("?")
        ),
    });

    let after = |step: Step, output: String| ApplyError::RollbackArmed {
        step,
        output,
        seconds: options.confirm_timeout_secs,
    };
    let applied = transport
        .run(&scripts.apply(&staging), &[])
        .map_err(|e| after(Step::Apply, e.to_string()))?;
    if !applied.success() {
        if let Some(result) = field(&applied.stdout, "rolled-back") {
            return Err(ApplyError::RolledBack {
                output: combined(&applied),
                restored: result == "restored",
            });
        }
        return Err(after(Step::Apply, combined(&applied)));
    }
    report.record(StepRecord {
        step: Step::Apply,
        detail: last_line(&applied.stdout),
    });

    let reconnect = format!("# sovereign: reconnect\ncat {}/applied\n", quote(&staging));
    let fresh = if options.simulate_lost_connection {
        Err(TransportError::Unreachable {
            destination: transport.describe(),
            detail: "simulated: the fresh session never arrived".into(),
        })
    } else {
        transport.run_fresh(&reconnect)
    };
    let fresh = fresh.map_err(|e| after(Step::Reconnect, e.to_string()))?;
    if !fresh.success() || fresh.stdout.trim() != "applied" {
        return Err(after(Step::Reconnect, combined(&fresh)));
    }
    report.record(StepRecord {
        step: Step::Reconnect,
        detail: "a new ssh session reached the router".into(),
    });

    let confirmed = transport
        .run(&confirm_script(&staging), &[])
        .map_err(|e| after(Step::Confirm, e.to_string()))?;
    match field(&confirmed.stdout, "confirmed") {
        Some("yes") => {}
        Some("too-late") => {
            return Err(ApplyError::RollbackArmed {
                step: Step::Confirm,
                output: "the rollback timer fired before the confirmation arrived; the router is \
                         back on (or returning to) the previous config. Raise --confirm-timeout \
                         and apply again."
                    .into(),
                seconds: 0,
            });
        }
        _ => return Err(after(Step::Confirm, combined(&confirmed))),
    }
    report.record(StepRecord {
        step: Step::Confirm,
        detail: "rollback cancelled, staging removed, lock released".into(),
    });
    Ok(report)
}

struct Session<'a> {
    transport: &'a dyn Transport,
    staging: &'a str,
    scripts: &'a dyn TargetScripts,
    locked: bool,
    confirm_timeout_secs: u32,
}

impl Session<'_> {
    fn call(&self, step: Step, script: &str) -> Result<Output, ApplyError> {
        self.transport
            .run(script, &[])
            .map_err(|source| ApplyError::Transport { step, source })
    }

    fn checked(&self, step: Step, script: &str) -> Result<Output, ApplyError> {
        let output = self.call(step, script)?;
        if output.success() {
            Ok(output)
        } else {
            Err(ApplyError::BeforeChange {
                step,
                output: combined(&output),
            })
        }
    }

    fn upload(&self) -> Result<(), ApplyError> {
        let mut files = self.scripts.files(self.staging);
        files.push((
            "timer.sh".to_string(),
            timer_script(self.staging, self.confirm_timeout_secs),
        ));
        for (name, contents) in files {
            let path = format!("{}/{name}", self.staging);
            let script = format!(
                "# sovereign: upload {name}\numask 077\ncat > {}\n",
                quote(&path)
            );
            let output = self
                .transport
                .run(&script, contents.as_bytes())
                .map_err(|source| ApplyError::Transport {
                    step: Step::Upload,
                    source,
                })?;
            if !output.success() {
                return Err(ApplyError::BeforeChange {
                    step: Step::Upload,
                    output: combined(&output),
                });
            }
        }
        Ok(())
    }

    /// Run `body`; if it fails, undo everything so far (nothing was applied yet).
    fn guard<T>(
        &self,
        _step: Step,
        body: impl FnOnce(&Self) -> Result<T, ApplyError>,
    ) -> Result<T, ApplyError> {
        body(self).inspect_err(|_| {
            // The original error is what the user needs; a failing cleanup only
            // leaves a staging dir (and the lock) behind, which the error names.
            let _ = self.abort();
        })
    }

    fn abort(&self) -> Result<Output, TransportError> {
        let s = quote(self.staging);
        let mut script = format!(
            "# sovereign: abort\n\
             mkdir {s}/decided 2>/dev/null\n\
             if [ -f {s}/timer.pid ]; then pid=$(cat {s}/timer.pid); kill -TERM -\"$pid\" 2>/dev/null || kill -TERM \"$pid\" 2>/dev/null; fi\n"
        );
        script.push_str(&self.scripts.discard(self.staging));
        script.push_str(&format!("rm -rf {s}\n"));
        if self.locked {
            script.push_str(&format!("rm -rf {LOCK_DIR}\n"));
        }
        self.transport.run(&script, &[])
    }
}

fn check_prepared(
    scripts: &dyn TargetScripts,
    stdout: &str,
    report: &mut ApplyReport,
) -> Result<String, ApplyError> {
    let missing: Vec<String> = field(stdout, "missing")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if !missing.is_empty() {
        return Err(ApplyError::MissingTools {
            missing,
            hint: scripts.missing_tools_hint().to_string(),
        });
    }
    if let Some(problem) = field(stdout, "problem") {
        return Err(ApplyError::Precondition(problem.to_string()));
    }
    if let Some(holder) = field(stdout, "locked") {
        return Err(ApplyError::Locked {
            holder: holder.to_string(),
        });
    }
    for (key, value) in crate::script::fields(stdout) {
        if key == "warning" {
            report.warnings.push(value.to_string());
        }
    }
    field(stdout, "staging")
        .filter(|s| s.starts_with("/tmp/sovereign-apply."))
        .map(str::to_string)
        .ok_or_else(|| ApplyError::BeforeChange {
            step: Step::Prepare,
            output: format!("no staging dir was created:\n{stdout}"),
        })
}

fn run(
    transport: &dyn Transport,
    step: Step,
    script: &str,
    stdin: &[u8],
) -> Result<Output, ApplyError> {
    let output = transport
        .run(script, stdin)
        .map_err(|source| ApplyError::Transport { step, source })?;
    if output.success() {
        Ok(output)
    } else {
        Err(ApplyError::BeforeChange {
            step,
            output: combined(&output),
        })
    }
}

/// The detached timer: after `N` seconds, unless the apply was confirmed first,
/// restore the snapshot. `mkdir decided` is the atomic race between the timer and
/// the confirmation: exactly one of them wins.
pub(crate) fn timer_script(staging: &str, seconds: u32) -> String {
    let s = quote(staging);
    format!(
        "#!/bin/sh\n\
         # sovereign: rollback timer\n\
         trap '' HUP\n\
         [ \"$1\" = now ] || sleep {seconds}\n\
         mkdir {s}/decided 2>/dev/null || exit 0\n\
         if sh {s}/rollback.sh > {s}/rollback.out 2>&1; then result=restored; else result=FAILED; fi\n\
         {{ echo \"sovereign rollback $(date): $result the config from before the apply\"; cat {s}/rollback.out; }} > {ROLLBACK_LOG}\n\
         [ \"$result\" = restored ] && rm -rf {s}\n\
         rm -rf {LOCK_DIR}\n"
    )
}

fn arm_script(staging: &str) -> String {
    let s = quote(staging);
    format!(
        "# sovereign: arm rollback\n\
         cd /\n\
         if command -v setsid >/dev/null 2>&1; then\n\
         \tsetsid sh {s}/timer.sh </dev/null >/dev/null 2>&1 &\n\
         else\n\
         \tnohup sh {s}/timer.sh </dev/null >/dev/null 2>&1 &\n\
         fi\n\
         pid=$!\n\
         echo \"$pid\" > {s}/timer.pid\n\
         echo \"timer=$pid\"\n\
         if kill -0 \"$pid\" 2>/dev/null; then echo armed=yes; else echo armed=no; fi\n"
    )
}

fn confirm_script(staging: &str) -> String {
    let s = quote(staging);
    format!(
        "# sovereign: confirm\n\
         if mkdir {s}/decided 2>/dev/null; then\n\
         \tpid=$(cat {s}/timer.pid)\n\
         \tkill -TERM -\"$pid\" 2>/dev/null || kill -TERM \"$pid\" 2>/dev/null\n\
         \trm -rf {s} {LOCK_DIR}\n\
         \techo confirmed=yes\n\
         else\n\
         \techo confirmed=too-late\n\
         fi\n"
    )
}

/// The common head of the prepare script: after the target's tool checks have
/// printed `missing=`/`problem=` (and exited if needed), take the lock and make the
/// staging dir.
pub(crate) fn lock_and_stage(lock: bool) -> String {
    let mut script = String::new();
    if lock {
        script.push_str(&format!(
            "if ! mkdir {LOCK_DIR} 2>/dev/null; then\n\
             \techo \"locked=$(cat {LOCK_DIR}/owner 2>/dev/null || echo 'owner unknown')\"\n\
             \texit 0\n\
             fi\n"
        ));
    }
    script.push_str("S=$(mktemp -d /tmp/sovereign-apply.XXXXXX) || exit 1\nchmod 700 \"$S\"\n");
    if lock {
        script.push_str(&format!(
            "echo \"staging $S since $(date -u +%Y-%m-%dT%H:%M:%SZ)\" > {LOCK_DIR}/owner\n"
        ));
    }
    script.push_str("echo \"staging=$S\"\n");
    script
}

fn combined(output: &Output) -> String {
    let mut text = output.stdout.trim_end().to_string();
    if !output.stderr.trim().is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(output.stderr.trim_end());
    }
    if text.is_empty() {
        text = format!("(exit status {}, no output)", output.status);
    }
    text
}

fn last_line(text: &str) -> String {
    text.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("ok")
        .trim()
        .to_string()
}
