//! The whole sovereign system on one Linux machine, for real.
//!
//! Every node (the internet, the router, the AI server, LAN hosts and one VPN
//! client per peer) is a network namespace. The router runs exactly what
//! `sovereign-router` renders for the Linux target: its nftables ruleset, its
//! WireGuard config on a userspace WireGuard (`wireguard-go`), and its addresses,
//! routes and sysctls. The VPN clients run their rendered wg-quick configs. The AI
//! server runs the Ollama API emulator (or a real `ollama serve`).
//!
//! [`Lab::up`] builds it, [`probe::probe`] measures the reachability matrix against
//! the model's intent (plus a flushed-ruleset control run), [`bench::bench`]
//! measures the tunnel against the direct path, and dropping the [`Lab`] removes
//! everything it created.

mod error;
mod names;
mod netns;
mod router;
mod system;

pub mod agent;
pub mod bench;
pub mod differential;
pub mod http;
pub mod lab;
pub mod mutate;
pub mod prereq;
pub mod probe;
pub mod slot;
pub mod topology;

pub use error::LabError;
pub use lab::{AgentCommand, ApiServer, DownReport, Lab, LabOptions, LabState, SetupTimings, down};
pub use names::LabName;
pub use netns::{run_in as run_in_netns, spawn_in as spawn_in_netns};
pub use topology::{Node, Role, Topology};
