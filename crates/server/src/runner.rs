//! Every external program sovereign runs on the server goes through [`CommandRunner`],
//! so tests can replay recorded outputs of `launchctl`, `lsof`, `ss` and `systemctl`.

use std::collections::VecDeque;
use std::fmt;
use std::process::Stdio;
use std::sync::Mutex;

use crate::error::Error;

/// A program and its arguments, exactly as it will be executed (no shell).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
}

impl Command {
    pub fn new<I, S>(program: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command {
            program: program.to_string(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }
}

/// Renders the command so it can be pasted into a POSIX shell.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", shell_quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

/// What a finished command returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit code; `-1` when the process was killed by a signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

pub trait CommandRunner {
    /// Runs to completion and captures stdout and stderr. A program that does not
    /// exist is [`Error::ProgramMissing`], not an exit code.
    fn run(&self, command: &Command) -> Result<Output, Error>;

    /// Runs with the terminal attached (for `logs -f`) and returns the exit code.
    fn run_attached(&self, command: &Command) -> Result<i32, Error>;
}

/// Runs real processes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run(&self, command: &Command) -> Result<Output, Error> {
        tracing::debug!(%command, "run");
        let output = std::process::Command::new(&command.program)
            .args(&command.args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| spawn_error(command, source))?;
        Ok(Output {
            status: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    fn run_attached(&self, command: &Command) -> Result<i32, Error> {
        tracing::debug!(%command, "run attached");
        let status = std::process::Command::new(&command.program)
            .args(&command.args)
            .status()
            .map_err(|source| spawn_error(command, source))?;
        Ok(status.code().unwrap_or(-1))
    }
}

fn spawn_error(command: &Command, source: std::io::Error) -> Error {
    if source.kind() == std::io::ErrorKind::NotFound {
        return Error::ProgramMissing {
            program: command.program.clone(),
        };
    }
    Error::Spawn {
        command: command.to_string(),
        source,
    }
}

/// A runner that answers from a script of recorded outputs and remembers every
/// command it was asked to run, for tests and for `--dry-run` probes.
#[derive(Debug, Default)]
pub struct ScriptedRunner {
    replies: Mutex<Vec<Reply>>,
    log: Mutex<Vec<Command>>,
}

#[derive(Debug)]
struct Reply {
    /// The command line (as [`Command`]'s `Display`) this reply answers.
    command_line: String,
    /// Each call consumes the front; the last one repeats.
    outputs: VecDeque<Result<Output, MissingProgram>>,
}

#[derive(Debug, Clone)]
struct MissingProgram;

impl ScriptedRunner {
    pub fn new() -> ScriptedRunner {
        ScriptedRunner::default()
    }

    /// Answers `command_line` (e.g. `"launchctl print gui/501/com.sovereign.ollama"`).
    /// Calling this again for the same command line queues another answer.
    pub fn on(&self, command_line: &str, status: i32, stdout: &str, stderr: &str) -> &Self {
        self.push(
            command_line,
            Ok(Output {
                status,
                stdout: stdout.to_string(),
                stderr: stderr.to_string(),
            }),
        );
        self
    }

    /// Makes `command_line` fail as if its program were not installed.
    pub fn missing(&self, command_line: &str) -> &Self {
        self.push(command_line, Err(MissingProgram));
        self
    }

    /// Whether `command_line` has an answer already.
    pub fn is_scripted(&self, command_line: &str) -> bool {
        self.replies
            .lock()
            .expect("runner replies")
            .iter()
            .any(|r| r.command_line == command_line)
    }

    /// Every command run so far, in order.
    pub fn commands(&self) -> Vec<String> {
        self.log
            .lock()
            .expect("runner log")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn push(&self, command_line: &str, output: Result<Output, MissingProgram>) {
        let mut replies = self.replies.lock().expect("runner replies");
        match replies.iter_mut().find(|r| r.command_line == command_line) {
            Some(reply) => reply.outputs.push_back(output),
            None => replies.push(Reply {
                command_line: command_line.to_string(),
                outputs: VecDeque::from([output]),
            }),
        }
    }

    fn answer(&self, command: &Command) -> Result<Output, Error> {
        self.log.lock().expect("runner log").push(command.clone());
        let line = command.to_string();
        let mut replies = self.replies.lock().expect("runner replies");
        let Some(reply) = replies.iter_mut().find(|r| r.command_line == line) else {
            return Err(Error::Unscripted { command: line });
        };
        let output = if reply.outputs.len() > 1 {
            reply.outputs.pop_front().expect("non-empty")
        } else {
            reply.outputs.front().cloned().expect("non-empty")
        };
        output.map_err(|MissingProgram| Error::ProgramMissing {
            program: command.program.clone(),
        })
    }
}

impl CommandRunner for ScriptedRunner {
    fn run(&self, command: &Command) -> Result<Output, Error> {
        self.answer(command)
    }

    fn run_attached(&self, command: &Command) -> Result<i32, Error> {
        Ok(self.answer(command)?.status)
    }
}

/// Quotes `text` for a POSIX shell only when it needs quoting.
pub fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_wraps_the_rest() {
        assert_eq!(
            shell_quote("gui/501/com.sovereign.ollama"),
            "gui/501/com.sovereign.ollama"
        );
        assert_eq!(shell_quote("USB 10/100/1000 LAN"), "'USB 10/100/1000 LAN'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn scripted_runner_replays_in_order_and_repeats_the_last() {
        let runner = ScriptedRunner::new();
        runner
            .on("id -u", 0, "501\n", "")
            .on("id -u", 0, "502\n", "");
        let id = Command::new("id", ["-u"]);
        assert_eq!(runner.run(&id).unwrap().stdout, "501\n");
        assert_eq!(runner.run(&id).unwrap().stdout, "502\n");
        assert_eq!(runner.run(&id).unwrap().stdout, "502\n");
        assert!(matches!(
            runner.run(&Command::new("whoami", Vec::<String>::new())),
            Err(Error::Unscripted { .. })
        ));
        assert_eq!(runner.commands(), ["id -u", "id -u", "id -u", "whoami"]);
    }

    #[test]
    fn system_runner_reports_a_missing_program() {
        let error = SystemRunner
            .run(&Command::new("/nonexistent/sovereign-test-program", ["x"]))
            .unwrap_err();
        assert!(matches!(error, Error::ProgramMissing { .. }), "{error:?}");
    }
}
