//! One module per top-level subcommand. Each owns its clap arguments and its `run`.

pub mod backup;
pub mod check;
pub mod client;
pub mod config;
pub mod demo;
pub mod docs;
pub mod doctor;
pub mod init;
pub mod lab;
pub mod peer;
pub mod plan;
pub mod router;
pub mod server;
pub mod verify;
