//! Client machine setup for sovereign: from the peer bundle that `sovereign peer
//! export` wrote to a working tunnel, env file, shell profiles and coding-agent
//! configs, and back again.
//!
//! Renderers and merges are pure ([`render`], [`tools`]); [`setup`] and
//! [`uninstall`] run over explicit filesystem roots ([`ClientPaths`]) and reach
//! processes and the server only through [`CommandRunner`] and [`ServerProbe`].

pub mod doctor;
mod error;
mod fsutil;
pub mod manifest;
mod paths;
pub mod render;
mod setup;
mod status;
mod system;
pub mod tools;
mod uninstall;

pub use error::ClientError;
pub use manifest::{MANIFEST_FORMAT, Manifest};
pub use paths::{ClientPaths, DEFAULT_INTERFACE, Platform, check_interface};
pub use render::Shell;
pub use setup::{BACKUP_SUFFIX, Change, ChangeKind, SetupOptions, SetupReport, setup};
pub use status::{ClientStatus, ServerStatus, TunnelState, TunnelStatus, evaluate_tunnel, status};
pub use system::{CommandOutput, CommandRunner, OllamaProbe, ServerProbe, SystemRunner};
pub use tools::{CODING_AGENT_MIN_CONTEXT, Tool, parse_tools};
pub use uninstall::{Undo, UndoKind, UninstallReport, uninstall};

/// The conformance check `client test` runs through the tunnel.
pub use sovereign_ollama::check;
pub use sovereign_wg::Key;

use std::path::Path;

use sovereign_wg::PeerBundle;

/// Read and check a bundle file.
pub fn load_bundle(path: &Path) -> Result<PeerBundle, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClientError::BundleRead {
        path: path.to_path_buf(),
        source,
    })?;
    PeerBundle::parse(&text).map_err(|source| ClientError::Bundle {
        path: path.to_path_buf(),
        source,
    })
}

/// The manifest of this machine's setup, if there is one.
pub fn load_manifest(paths: &ClientPaths) -> Result<Option<Manifest>, ClientError> {
    let path = paths.manifest();
    match std::fs::read_to_string(&path) {
        Ok(text) => Manifest::parse(&text, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ClientError::Io { path, source }),
    }
}
