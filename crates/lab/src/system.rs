//! Host commands (`ip`, `wg`, `nft`, `sysctl`) and the lab's daemon processes.

use std::fs;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::topology::Step;

/// Run a command to completion; a non-zero exit is an error carrying its stderr.
pub fn run(
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
    cwd: Option<&Path>,
) -> Result<String, LabError> {
    let shown = format!("{program} {}", args.join(" "));
    // Lab keys travel in files and on stdin, never as arguments.
    tracing::debug!(command = %shown, "run");
    let mut command = Command::new(program);
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    let mut child = command.spawn().map_err(|source| LabError::Spawn {
        command: shown.clone(),
        source,
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A command that exits early closes the pipe; its exit status tells why.
        let _ = pipe.write_all(text.as_bytes());
    }
    let output = child.wait_with_output().map_err(|source| LabError::Spawn {
        command: shown.clone(),
        source,
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let detail = if stderr.is_empty() {
            output.status.to_string()
        } else {
            stderr
        };
        return Err(LabError::Command {
            command: shown,
            detail,
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Run a command inside a namespace with `ip netns exec`.
pub fn run_in(
    netns: &str,
    program: &str,
    args: &[&str],
    cwd: Option<&Path>,
) -> Result<String, LabError> {
    let mut full = vec!["netns", "exec", netns, program];
    full.extend_from_slice(args);
    run("ip", &full, None, cwd)
}

/// Execute wiring steps, batching consecutive `ip` commands of one namespace into
/// a single `ip -batch` and the sysctls of one namespace into one `sysctl` call:
/// one process per group instead of one per command keeps `lab up` fast.
pub fn execute(steps: &[Step]) -> Result<(), LabError> {
    let mut i = 0;
    while i < steps.len() {
        match &steps[i] {
            Step::Ip { netns, .. } => {
                let mut batch = String::new();
                while let Some(Step::Ip { netns: n, args }) = steps.get(i) {
                    if n != netns {
                        break;
                    }
                    batch.push_str(&args.join(" "));
                    batch.push('\n');
                    i += 1;
                }
                let mut args = Vec::new();
                if let Some(netns) = netns {
                    args.extend(["-n", netns.as_str()]);
                }
                args.extend(["-batch", "-"]);
                run("ip", &args, Some(&batch), None)?;
            }
            Step::Sysctl { netns, .. } => {
                let mut required = Vec::new();
                let mut optional = Vec::new();
                while let Some(Step::Sysctl {
                    netns: n,
                    key,
                    value,
                    optional: opt,
                }) = steps.get(i)
                {
                    if n != netns {
                        break;
                    }
                    let pair = format!("{key}={value}");
                    if *opt {
                        optional.push(pair)
                    } else {
                        required.push(pair)
                    }
                    i += 1;
                }
                if !required.is_empty() {
                    let mut args = vec!["-q", "-w"];
                    args.extend(required.iter().map(String::as_str));
                    run_in(netns, "sysctl", &args, None)?;
                }
                if !optional.is_empty() {
                    // -e: a kernel without the knob (e.g. no br_netfilter) has nothing to turn off.
                    let mut args = vec!["-q", "-e", "-w"];
                    args.extend(optional.iter().map(String::as_str));
                    let _ = run_in(netns, "sysctl", &args, None);
                }
            }
        }
    }
    Ok(())
}

/// A process the lab started, as recorded in its state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Daemon {
    /// What it is, e.g. `wireguard-go rtr` or `listeners srv`.
    pub name: String,
    pub netns: String,
    pub pid: u32,
    /// Field 22 of /proc/PID/stat: with the PID it identifies the process, so a
    /// reused PID is never killed.
    pub start_time: u64,
}

/// A started daemon: its record, and the `Child` when this process started it
/// (so it can be waited for instead of left as a zombie).
#[derive(Debug)]
pub struct Running {
    pub daemon: Daemon,
    pub child: Option<Child>,
}

/// Start `program` inside `netns` in its own process group (terminal signals aimed
/// at the shell must not kill the lab), with output going to `log`.
pub fn spawn_daemon(
    name: &str,
    netns: &str,
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    log: &Path,
    pipe_stdout: bool,
) -> Result<Running, LabError> {
    let shown = format!(
        "ip netns exec {netns} {} {}",
        program.display(),
        args.join(" ")
    );
    let log_file = fs::File::create(log).map_err(|e| LabError::io(log, e))?;
    let stdout = if pipe_stdout {
        Stdio::piped()
    } else {
        Stdio::from(log_file.try_clone().map_err(|e| LabError::io(log, e))?)
    };
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", netns])
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::from(log_file))
        .process_group(0);
    let child = command.spawn().map_err(|source| LabError::Spawn {
        command: shown,
        source,
    })?;
    let pid = child.id();
    let start_time = start_time(pid).unwrap_or(0);
    Ok(Running {
        daemon: Daemon {
            name: name.to_string(),
            netns: netns.to_string(),
            pid,
            start_time,
        },
        child: Some(child),
    })
}

/// Field 22 of /proc/PID/stat (after the parenthesised command name).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

fn state_letter(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

impl Daemon {
    /// Still running and still the process we started. A zombie counts as gone:
    /// `kill(pid, 0)` succeeds on zombies, and PID 1 may reap them only seconds later.
    pub fn is_alive(&self) -> bool {
        if start_time(self.pid) != Some(self.start_time) {
            return false;
        }
        !matches!(state_letter(self.pid), None | Some('Z') | Some('X'))
    }

    pub fn signal(&self, signal: i32) {
        if self.is_alive() {
            // SAFETY: plain kill(2) on a PID we verified is our process.
            unsafe {
                libc::kill(self.pid as i32, signal);
            }
        }
    }
}

/// Stop daemons: SIGTERM, wait up to `grace`, SIGKILL, wait again. Children of this
/// process are reaped; the others are polled until they are gone or zombies.
pub fn stop_all(running: &mut [Running], grace: Duration) -> Vec<String> {
    for r in running.iter() {
        r.daemon.signal(libc::SIGTERM);
    }
    let mut problems = Vec::new();
    let deadline = Instant::now() + grace;
    let mut killed = false;
    loop {
        let mut left = 0;
        for r in running.iter_mut() {
            if let Some(child) = r.child.as_mut() {
                if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                    r.child = None;
                    continue;
                }
                left += 1;
            } else if r.daemon.is_alive() {
                left += 1;
            }
        }
        if left == 0 {
            break;
        }
        if Instant::now() >= deadline {
            if killed {
                for r in running.iter().filter(|r| r.daemon.is_alive()) {
                    problems.push(format!(
                        "{} (pid {}) did not exit",
                        r.daemon.name, r.daemon.pid
                    ));
                }
                break;
            }
            for r in running.iter() {
                r.daemon.signal(libc::SIGKILL);
            }
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    problems
}

/// Wait for a path to appear (e.g. a WireGuard control socket).
pub fn wait_for_path(path: &Path, timeout: Duration) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        if Instant::now() >= deadline {
            return Err(LabError::Timeout(format!(
                "{} did not appear",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// `program` on PATH, like `command -v`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
