//! Running code inside one of the lab's network namespaces.
//!
//! A helper thread enters the namespace with `setns(CLONE_NEWNET)`; a socket stays
//! in the namespace where it was created, so everything the closure opens lives
//! there. The calling thread never changes namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::thread::JoinHandle;

use crate::LabError;

/// Where `ip netns add` keeps the namespace handles.
pub const NETNS_DIR: &str = "/var/run/netns";

pub fn netns_path(netns: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(netns)
}

/// Start `work` on a new thread inside `netns`.
pub fn spawn_in<T, F>(netns: &str, work: F) -> JoinHandle<Result<T, LabError>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let netns = netns.to_string();
    std::thread::spawn(move || {
        enter(&netns)?;
        Ok(work())
    })
}

/// Run `work` inside `netns` and wait for it.
pub fn run_in<T, F>(netns: &str, work: F) -> Result<T, LabError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    join(spawn_in(netns, work))
}

pub fn join<T>(handle: JoinHandle<Result<T, LabError>>) -> Result<T, LabError> {
    match handle.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn enter(netns: &str) -> Result<(), LabError> {
    let fail = |source| LabError::Netns {
        netns: netns.to_string(),
        source,
    };
    let handle = File::open(netns_path(netns)).map_err(fail)?;
    // SAFETY: setns on a valid namespace fd changes only this thread's namespace.
    let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    Ok(())
}
