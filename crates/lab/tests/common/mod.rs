//! Helpers shared by the lab's integration tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use sovereign_lab::{AgentCommand, ApiServer, LabName, LabOptions};

/// A lab name unique to this test process and call. Each test binary passes its
/// own `prefix`, so two binaries whose PIDs agree modulo 100,000 still differ.
pub fn unique_name(prefix: char) -> LabName {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    LabName::new(&format!("{prefix}{}x{n}", std::process::id() % 100_000)).unwrap()
}

/// Lab options with `peers` VPN clients, the emulator as the API server and the
/// test agent binary.
pub fn options(prefix: char, peers: usize) -> LabOptions {
    LabOptions {
        name: unique_name(prefix),
        peers,
        agent: AgentCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_sovereign-lab-agent")),
            args: Vec::new(),
        },
        api_server: ApiServer::Emulator,
    }
}
