//! Running shell scripts on the router.
//!
//! Everything the engine does on the router is a POSIX `sh` script sent through a
//! [`Transport`]. The real one wraps the system `ssh` client, so `~/.ssh/config`,
//! agents and `known_hosts` all apply; tests use a replaying fake.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// What a script printed and how it exited on the router.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// The script's exit status (ssh's own failures never get here: they are errors).
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// Runs POSIX `sh` scripts on one router.
pub trait Transport {
    /// Run `script` with `stdin` fed to it. The connection may be shared with
    /// earlier calls (ssh multiplexing, if the user configured it).
    fn run(&self, script: &str, stdin: &[u8]) -> Result<Output, TransportError>;

    /// Run `script` over a connection that shares nothing with earlier ones, so its
    /// success proves that a new session can still reach the router.
    fn run_fresh(&self, script: &str) -> Result<Output, TransportError>;

    /// `user@host:port`, for messages.
    fn describe(&self) -> String;
}

/// Why the router could not be reached or talked to. Each variant says what to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransportError {
    #[error(
        "cannot reach the router at {destination}: {detail}\n\
         Check the address and port, that sshd (dropbear on OpenWrt) runs, and that this \
         machine may connect to it (a LAN address, or the VPN)."
    )]
    Unreachable { destination: String, detail: String },
    #[error(
        "the router at {destination} refused the login: {detail}\n\
         sovereign runs ssh with BatchMode=yes, so it never asks for a password: load a key \
         into ssh-agent or name one in ~/.ssh/config (IdentityFile), and add its public half \
         to the router (/etc/dropbear/authorized_keys on OpenWrt, ~/.ssh/authorized_keys on Linux)."
    )]
    AuthenticationFailed { destination: String, detail: String },
    #[error(
        "the router's host key is not in known_hosts, and sovereign never skips that check.\n\
         Verify the fingerprint on the router's console (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`, \
         or `dropbearkey -y -f /etc/dropbear/dropbear_ed25519_host_key` on OpenWrt), then add it \
         by connecting once interactively: ssh {port_flag}{destination}"
    )]
    UnknownHostKey {
        destination: String,
        port_flag: String,
    },
    #[error(
        "the router's host key CHANGED since you last connected to {destination}; this is either a \
         reinstalled router or someone in the middle. sovereign will not connect. If you know the \
         router was reinstalled, remove the old key with `ssh-keygen -R {host}` and connect once \
         interactively to accept the new one."
    )]
    HostKeyChanged { destination: String, host: String },
    #[error("ssh failed talking to {destination}: {detail}")]
    Ssh { destination: String, detail: String },
    #[error("cannot run the ssh client ({program}): {detail}. Install OpenSSH's client.")]
    ClientMissing { program: String, detail: String },
}

/// How to reach the router with the system `ssh` client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// `user@host` or a `Host` alias from ~/.ssh/config.
    pub destination: String,
    pub port: Option<u16>,
    pub connect_timeout: Duration,
    /// Extra `ssh` arguments placed before the destination (tests pass `-i KEY`,
    /// `-F none`, `-o UserKnownHostsFile=...`).
    pub extra_args: Vec<String>,
    /// The ssh program; `ssh` from PATH unless set.
    pub program: PathBuf,
}

impl SshTarget {
    pub fn new(destination: impl Into<String>) -> Self {
        Self {
            destination: destination.into(),
            port: None,
            connect_timeout: Duration::from_secs(10),
            extra_args: Vec::new(),
            program: PathBuf::from("ssh"),
        }
    }

    pub fn with_port(mut self, port: Option<u16>) -> Self {
        self.port = port;
        self
    }

    /// The host part of the destination, for `ssh-keygen -R`.
    pub fn host(&self) -> &str {
        self.destination
            .rsplit_once('@')
            .map_or(self.destination.as_str(), |(_, host)| host)
    }
}

/// The system `ssh` client. Host keys are always checked; BatchMode makes every
/// prompt a failure instead of a hang.
#[derive(Debug, Clone)]
pub struct SshTransport {
    target: SshTarget,
}

impl SshTransport {
    pub fn new(target: SshTarget) -> Self {
        Self { target }
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// The full argument list (without the program) for running `script`.
    pub fn args(&self, script: &str, fresh: bool) -> Vec<String> {
        let t = &self.target;
        let mut args = vec![
            "-o".to_string(),
            "BatchMode=yes".to_string(),
            "-o".to_string(),
            format!("ConnectTimeout={}", t.connect_timeout.as_secs().max(1)),
            // A router that vanishes mid-script (e.g. a firewall change cut the path)
            // fails the call within ~15 s instead of hanging.
            "-o".to_string(),
            "ServerAliveInterval=5".to_string(),
            "-o".to_string(),
            "ServerAliveCountMax=3".to_string(),
            "-T".to_string(),
        ];
        if fresh {
            // A multiplexed ControlMaster connection would "prove" nothing: it was
            // opened before the change.
            args.extend(["-o", "ControlMaster=no", "-o", "ControlPath=none"].map(String::from));
        }
        if let Some(port) = t.port {
            args.extend(["-p".to_string(), port.to_string()]);
        }
        args.extend(t.extra_args.iter().cloned());
        args.push("--".to_string());
        args.push(t.destination.clone());
        // The remote login shell may be anything; run our scripts under sh explicitly.
        args.push(format!("sh -c {}", crate::script::quote(script)));
        args
    }

    fn exec(&self, script: &str, stdin: &[u8], fresh: bool) -> Result<Output, TransportError> {
        // Sizes only: scripts, uploads and what comes back can hold the router's keys.
        tracing::debug!(
            destination = %self.describe(),
            fresh,
            script_bytes = script.len(),
            stdin_bytes = stdin.len(),
            "ssh"
        );
        let started = std::time::Instant::now();
        let mut child = Command::new(&self.target.program)
            .args(self.args(script, fresh))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TransportError::ClientMissing {
                program: self.target.program.display().to_string(),
                detail: e.to_string(),
            })?;
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let input = stdin.to_vec();
        // Feed stdin from a thread so a large upload cannot deadlock against a full stdout pipe.
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
        let output = child.wait_with_output().map_err(|e| TransportError::Ssh {
            destination: self.describe(),
            detail: e.to_string(),
        })?;
        let _ = writer.join();
        let status = output.status.code().unwrap_or(-1);
        tracing::debug!(
            status,
            stdout_bytes = output.stdout.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ssh finished"
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if status == 255
            && let Some(error) = classify_ssh_failure(&self.target, &stderr)
        {
            return Err(error);
        }
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr,
        })
    }
}

impl Transport for SshTransport {
    fn run(&self, script: &str, stdin: &[u8]) -> Result<Output, TransportError> {
        self.exec(script, stdin, false)
    }

    fn run_fresh(&self, script: &str) -> Result<Output, TransportError> {
        self.exec(script, &[], true)
    }

    fn describe(&self) -> String {
        match self.target.port {
            Some(port) => format!("{}:{port}", self.target.destination),
            None => self.target.destination.clone(),
        }
    }
}

/// Turn ssh's own failure (exit 255) into an error that says what to do. `None`
/// when stderr does not look like an ssh failure (a remote command may exit 255 too).
pub fn classify_ssh_failure(target: &SshTarget, stderr: &str) -> Option<TransportError> {
    let destination = match target.port {
        Some(port) => format!("{}:{port}", target.destination),
        None => target.destination.clone(),
    };
    let detail = last_meaningful_line(stderr);
    let has = |needle: &str| stderr.contains(needle);
    if has("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        return Some(TransportError::HostKeyChanged {
            destination,
            host: target.host().to_string(),
        });
    }
    if has("Host key verification failed") || has("No ED25519 host key is known") {
        return Some(TransportError::UnknownHostKey {
            destination: target.destination.clone(),
            port_flag: target.port.map(|p| format!("-p {p} ")).unwrap_or_default(),
        });
    }
    if has("Permission denied") || has("Too many authentication failures") {
        return Some(TransportError::AuthenticationFailed {
            destination,
            detail,
        });
    }
    let unreachable = [
        "Connection refused",
        "No route to host",
        "Connection timed out",
        "timed out",
        "Network is unreachable",
        "Could not resolve hostname",
        "Name or service not known",
        "Connection closed by",
        "Connection reset",
        "Timeout, server",
        "Broken pipe",
    ];
    if unreachable.iter().any(|needle| has(needle)) {
        return Some(TransportError::Unreachable {
            destination,
            detail,
        });
    }
    if stderr.trim().is_empty() {
        return None;
    }
    Some(TransportError::Ssh {
        destination,
        detail,
    })
}

fn last_meaningful_line(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty() && !line.starts_with("Warning: Permanently added"))
        .unwrap_or("ssh exited with status 255")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SshTarget {
        SshTarget::new("root@192.0.2.1").with_port(Some(2222))
    }

    #[test]
    fn ssh_failures_map_to_errors_that_say_what_to_do() {
        let refused = "ssh: connect to host 192.0.2.1 port 2222: Connection refused\r\n";
        assert!(matches!(
            classify_ssh_failure(&target(), refused),
            Some(TransportError::Unreachable { .. })
        ));
        let timeout = "ssh: connect to host 192.0.2.1 port 2222: Connection timed out\n";
        assert!(matches!(
            classify_ssh_failure(&target(), timeout),
            Some(TransportError::Unreachable { .. })
        ));
        let denied = "root@192.0.2.1: Permission denied (publickey).\n";
        let error = classify_ssh_failure(&target(), denied).unwrap();
        assert!(matches!(error, TransportError::AuthenticationFailed { .. }));
        assert!(error.to_string().contains("authorized_keys"));
        let unknown = "No ED25519 host key is known for [192.0.2.1]:2222 and you have requested strict checking.\nHost key verification failed.\n";
        let error = classify_ssh_failure(&target(), unknown).unwrap();
        assert!(matches!(error, TransportError::UnknownHostKey { .. }));
        assert!(error.to_string().contains("ssh -p 2222 root@192.0.2.1"));
        let changed = "@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n";
        let error = classify_ssh_failure(&target(), changed).unwrap();
        assert!(error.to_string().contains("ssh-keygen -R 192.0.2.1"));
    }

    #[test]
    fn a_remote_exit_255_without_ssh_chatter_is_not_an_ssh_failure() {
        assert_eq!(classify_ssh_failure(&target(), ""), None);
    }

    #[test]
    fn args_never_weaken_host_key_checking_and_fresh_sessions_skip_multiplexing() {
        let transport = SshTransport::new(target());
        let args = transport.args("echo hi", true).join(" ");
        assert!(args.contains("BatchMode=yes"));
        assert!(!args.contains("StrictHostKeyChecking"));
        assert!(args.contains("ControlPath=none"));
        assert!(args.ends_with("-- root@192.0.2.1 sh -c 'echo hi'"));
        assert!(
            !transport
                .args("echo hi", false)
                .join(" ")
                .contains("ControlPath")
        );
    }
}
