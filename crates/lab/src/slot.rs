//! At most two labs at once per host: each lab's daemons want a core, and the
//! machines this runs on have two. Tests take a slot before building a lab.

use std::fs::{self, File};
use std::path::PathBuf;
use std::time::Duration;

/// How many labs may run at once.
pub const SLOTS: usize = 2;

/// A held slot; released when dropped (the lock goes with the file handle, also
/// when the process dies).
pub struct Slot {
    _file: File,
}

/// Block until one of the [`SLOTS`] slots is free, and take it.
pub fn acquire() -> std::io::Result<Slot> {
    let dir = PathBuf::from(crate::lab::STATE_ROOT);
    fs::create_dir_all(&dir)?;
    let files: Vec<File> = (0..SLOTS)
        .map(|i| {
            fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(format!(".slot-{i}.lock")))
        })
        .collect::<Result<_, _>>()?;
    loop {
        for file in &files {
            if file.try_lock().is_ok() {
                return Ok(Slot {
                    _file: file.try_clone()?,
                });
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
