#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sovereign_model::Deployment;

pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn reference() -> Deployment {
    Deployment::reference()
}

/// Creates an executable file (a stand-in for `ollama`) below `root`.
pub fn fake_executable(root: &Path, path: &str) -> PathBuf {
    let real = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(&real, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
    real
}

pub fn write(root: &Path, path: &str, contents: &str) {
    let real = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(real, contents).unwrap();
}

pub fn exists(root: &Path, path: &str) -> bool {
    root.join(path.trim_start_matches('/')).exists()
}
