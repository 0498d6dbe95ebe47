//! A plan is the list of exact steps a mutating command takes. It is computed
//! without side effects, so `--dry-run` prints the very steps that would run.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::Error;
use crate::fs::Filesystem;
use crate::runner::{Command, CommandRunner};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    CreateDir {
        path: PathBuf,
        mode: u32,
    },
    WriteFile {
        path: PathBuf,
        mode: u32,
        contents: String,
    },
    RemoveFile {
        path: PathBuf,
    },
    /// Removes a directory install created, only when nothing else was put in it.
    RemoveEmptyDir {
        path: PathBuf,
    },
    /// Runs a command. When `tolerate_failure` is set a non-zero exit is reported but
    /// does not stop the plan (e.g. unloading a job that is already gone).
    Run {
        command: Command,
        tolerate_failure: bool,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
}

impl Plan {
    pub fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    pub fn run(&mut self, command: Command) {
        self.push(Action::Run {
            command,
            tolerate_failure: false,
        });
    }

    pub fn run_tolerating_failure(&mut self, command: Command) {
        self.push(Action::Run {
            command,
            tolerate_failure: true,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The plan as a reader checks it: each command and each file with its contents.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for action in &self.actions {
            match action {
                Action::CreateDir { path, mode } => {
                    let _ = writeln!(out, "mkdir -p -m {mode:o} {}", quote_path(path));
                }
                Action::WriteFile {
                    path,
                    mode,
                    contents,
                } => {
                    let _ = writeln!(out, "write {} (mode {mode:o}):", path.display());
                    for line in contents.lines() {
                        let _ = writeln!(out, "    {line}");
                    }
                }
                Action::RemoveFile { path } => {
                    let _ = writeln!(out, "rm -f {}", quote_path(path));
                }
                Action::RemoveEmptyDir { path } => {
                    let _ = writeln!(out, "rmdir {}  # only if empty", quote_path(path));
                }
                Action::Run {
                    command,
                    tolerate_failure,
                } => {
                    let suffix = if *tolerate_failure {
                        "  # may fail harmlessly"
                    } else {
                        ""
                    };
                    let _ = writeln!(out, "{command}{suffix}");
                }
            }
        }
        out
    }
}

fn quote_path(path: &std::path::Path) -> String {
    crate::runner::shell_quote(&path.display().to_string())
}

/// What executing a plan did, step by step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Execution {
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub description: String,
    /// For files: whether something was there to remove. For commands: success.
    pub ok: bool,
    pub detail: Option<String>,
}

/// Executes `plan` in order and stops at the first failure that is not tolerated.
pub fn execute(
    plan: &Plan,
    runner: &dyn CommandRunner,
    fs: &dyn Filesystem,
) -> Result<Execution, Error> {
    let mut execution = Execution::default();
    for action in &plan.actions {
        let step = match action {
            Action::CreateDir { path, mode } => {
                fs.create_dir_all(path, *mode)?;
                Step {
                    description: format!("created {}", path.display()),
                    ok: true,
                    detail: None,
                }
            }
            Action::WriteFile {
                path,
                mode,
                contents,
            } => {
                fs.write_atomic(path, contents, *mode)?;
                Step {
                    description: format!("wrote {}", path.display()),
                    ok: true,
                    detail: None,
                }
            }
            Action::RemoveFile { path } => {
                let removed = fs.remove_file(path)?;
                Step {
                    description: if removed {
                        format!("removed {}", path.display())
                    } else {
                        format!("{} was already gone", path.display())
                    },
                    ok: removed,
                    detail: None,
                }
            }
            Action::RemoveEmptyDir { path } => {
                let removed = fs.remove_empty_dir(path)?;
                Step {
                    description: if removed {
                        format!("removed directory {}", path.display())
                    } else {
                        format!(
                            "kept directory {} (not empty or already gone)",
                            path.display()
                        )
                    },
                    ok: removed,
                    detail: None,
                }
            }
            Action::Run {
                command,
                tolerate_failure,
            } => {
                let output = runner.run(command)?;
                if !output.success() && !tolerate_failure {
                    return Err(Error::CommandFailed {
                        command: command.to_string(),
                        status: output.status,
                        stderr: output.stderr.trim().to_string(),
                    });
                }
                let detail = (!output.success()).then(|| output.stderr.trim().to_string());
                Step {
                    description: format!("ran {command}"),
                    ok: output.success(),
                    detail,
                }
            }
        };
        execution.steps.push(step);
    }
    Ok(execution)
}
