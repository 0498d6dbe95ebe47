//! sovereign's hands on the router: push a rendered configuration over ssh with an
//! armed automatic rollback ([`apply`]), compare the live router with the
//! deployment ([`audit`]), and show peers and firewall counters ([`status`]).
//!
//! Everything on the router is a POSIX `sh` script sent through a [`Transport`];
//! the real one is the system `ssh` client ([`SshTransport`]), so `~/.ssh/config`,
//! agents and `known_hosts` all apply and host keys are always checked. Parsing and
//! drift computation are pure functions over the scripts' output.

pub mod apply;
pub mod audit;
mod linux;
pub mod nftjson;
mod openwrt;
pub mod replay;
pub mod script;
pub mod status;
mod target;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;
pub mod wgconf;
pub mod wgdump;

pub use apply::{ApplyError, ApplyOptions, ApplyReport, Step, StepRecord, apply};
pub use audit::{AuditReport, Drift, DriftChange, DriftKind, Verification, audit};
pub use linux::TABLE as LINUX_TABLE;
pub use openwrt::{
    SYSCTL_FILE as OPENWRT_SYSCTL_FILE, redact_keys, sysctl_settings, touched_packages,
};
pub use status::{StatusReport, status};
pub use target::{LinuxConfig, OpenwrtConfig, RouterConfig, unified_diff};
pub use transport::{Output, SshTarget, SshTransport, Transport, TransportError};
