//! The AI server layer of sovereign: Ollama as a supervised service bound to the
//! server's LAN address.
//!
//! - [`render`]: pure renderers for the launchd plists (agent and daemon), the
//!   newsyslog rule and the systemd unit/drop-in.
//! - [`power`]: the always-on `pmset` policy and what FileVault implies.
//! - [`Backend`] ([`macos::Launchd`], [`daemon::SystemLaunchd`], [`linux::Systemd`]):
//!   conflicts, install and uninstall [`Plan`]s, state and listening sockets, all
//!   through [`CommandRunner`] and [`Filesystem`] so tests replay recorded outputs.
//! - [`status::evaluate`]: what runs versus what the deployment says.
//! - [`warm::warm`]: pull and keep models resident, with progress.

pub mod daemon;
pub mod error;
pub mod fs;
pub mod linux;
pub mod macos;
pub mod manifest;
pub mod parse;
pub mod plan;
pub mod power;
pub mod render;
pub mod runner;
pub mod service;
pub mod spec;
pub mod static_ip;
pub mod status;
pub mod warm;

pub use error::Error;
pub use fs::{Filesystem, RootedFs};
pub use manifest::{InstallKind, InstallManifest};
pub use plan::{Action, Execution, Plan, execute};
pub use runner::{Command, CommandRunner, Output, ScriptedRunner, SystemRunner};
pub use service::{
    Backend, Conflict, ConflictKind, Control, InstallPlan, ServiceState, UninstallPlan,
};
/// The Ollama client this crate drives, re-exported for the binary.
pub use sovereign_ollama as ollama;
pub use spec::{LAUNCHD_LABEL, SYSTEMD_UNIT, ServiceSpec};
