//! The deployment model of sovereign: the `sovereign.toml` schema with its defaults,
//! validation whose errors name file, line and field, and the intended
//! reachability matrix that every verifier compares against.
//!
//! Everything here is pure: no I/O beyond [`load`] reading the one file.

mod config;
mod edit;
mod intent;
mod load;
mod template;
mod validate;

pub use config::{
    ApiUrls, BindMode, DEFAULT_SERVICE_ACCOUNT, Deployment, Endpoint, Isolation, Lan, MacAddr,
    MacService, Ollama, Peer, PeerStatus, Platform, Policy, Router, RouterTarget, Server, Wan,
    WireGuard,
};
pub use edit::{EditError, remove_peer, rename_peer, upsert_peer};
pub use intent::{Cell, Destination, Expect, IntentMatrix, Source, intent};
pub use load::{
    ConfigError, ConfigErrors, LoadError, load, parse, read_error_is_usage, read_error_message,
};
pub use template::{InitOptions, render_template};
pub use validate::{
    PEER_NAME_HINT, Warning, is_peer_name, is_service_account, is_wireguard_key, warnings,
};

/// The file name `sovereign` looks for by default.
pub const DEFAULT_CONFIG_FILE: &str = "sovereign.toml";

/// The state directory (keys) that belongs to a config file: `<stem>.state` beside it.
pub fn state_dir_for(config: &std::path::Path) -> std::path::PathBuf {
    let stem = config
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("sovereign");
    config.with_file_name(format!("{stem}.state"))
}
