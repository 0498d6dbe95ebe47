use std::io;
use std::path::PathBuf;

/// Everything that can go wrong building, probing or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "`{0}` is not a valid lab name: use 1-10 lowercase letters or digits, starting with a letter"
    )]
    InvalidName(String),
    #[error("the lab cannot be built from this deployment: {0}")]
    Unsupported(String),
    #[error("missing prerequisites: {}", .0.join("; "))]
    Prerequisites(Vec<String>),
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("cannot start `{command}`: {source}")]
    Spawn { command: String, source: io::Error },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot enter network namespace {netns}: {source}")]
    Netns { netns: String, source: io::Error },
    #[error("lab `{0}` is already up; run `sovereign lab down --name {0}` first")]
    AlreadyUp(String),
    #[error(
        "lab `{0}` is not up (no state in /run/sovereign-lab/{0}); run `sovereign lab up` first"
    )]
    NotUp(String),
    #[error("the lab state {}: {detail}", path.display())]
    State { path: PathBuf, detail: String },
    #[error(
        "WireGuard interface {0} is in use by another process on this host (live socket /var/run/wireguard/{0}.sock); choose another --name"
    )]
    InterfaceInUse(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("key generation failed: {0}")]
    Key(#[from] sovereign_wg::KeyError),
    #[error("the router rendering is unusable: {0}")]
    Render(String),
    #[error("teardown was incomplete: {}", .0.join("; "))]
    Teardown(Vec<String>),
}

impl LabError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> LabError {
        LabError::Io {
            path: path.into(),
            source,
        }
    }
}
