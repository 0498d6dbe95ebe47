//! `client uninstall`: undo exactly what the manifest records. Files that still hold
//! what setup wrote get their original bytes back; files the user changed since lose
//! only sovereign's part. Every error is collected; one failure does not stop the rest.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::ClientError;
use crate::fsutil::{DirLock, mode_of, read_optional, remove_file, write_atomic};
use crate::manifest::{FileEdit, FileRecord, Manifest, content_hash};
use crate::paths::ClientPaths;
use crate::render::remove_block;
use crate::system::CommandRunner;
use crate::tools::{json_is_empty, unmerge_codex_config, unmerge_json};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UndoKind {
    /// Deleted (sovereign created it).
    Delete,
    /// Original bytes put back from the backup.
    Restore,
    /// Changed since setup: only sovereign's part was taken out.
    EditOut,
    /// Already gone.
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Undo {
    pub path: PathBuf,
    pub action: UndoKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UninstallReport {
    pub dry_run: bool,
    pub peer: String,
    pub interface: String,
    pub commands: Vec<Vec<String>>,
    pub files: Vec<Undo>,
    pub removed_dirs: Vec<PathBuf>,
    pub errors: Vec<String>,
    pub reminders: Vec<String>,
}

/// Undo the setup recorded under `paths`; `Ok(None)` when nothing is set up.
pub fn uninstall(
    paths: &ClientPaths,
    runner: &dyn CommandRunner,
    dry_run: bool,
) -> Result<Option<UninstallReport>, ClientError> {
    let manifest_path = paths.manifest();
    let Some(text) = read_optional(&manifest_path)? else {
        return Ok(None);
    };
    let manifest = Manifest::parse(&text, &manifest_path)?;
    let mut report = UninstallReport {
        dry_run,
        peer: manifest.peer.clone(),
        interface: manifest.interface.clone(),
        commands: manifest.undo_commands.clone(),
        files: Vec::new(),
        removed_dirs: Vec::new(),
        errors: Vec::new(),
        reminders: vec![format!(
            "on the router side, revoke the peer: sovereign peer revoke {}",
            manifest.peer
        )],
    };
    let _lock = if dry_run {
        None
    } else {
        Some(DirLock::acquire(&paths.lock_file())?)
    };

    for command in &manifest.undo_commands {
        if dry_run {
            continue;
        }
        match runner.run(command) {
            Ok(out) if out.success => {}
            Ok(out) => report.errors.push(format!(
                "`{}` failed: {}",
                command.join(" "),
                out.stderr.trim()
            )),
            Err(e) => report
                .errors
                .push(format!("cannot run `{}`: {e}", command.join(" "))),
        }
    }
    for record in manifest.files.iter().rev() {
        match undo_file(record, dry_run) {
            Ok(action) => report.files.push(Undo {
                path: record.path.clone(),
                action,
            }),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    if dry_run {
        report.removed_dirs = manifest.created_dirs.iter().rev().cloned().collect();
        return Ok(Some(report));
    }
    for path in [manifest_path, paths.lock_file()] {
        if let Err(e) = remove_file(&path) {
            report.errors.push(e.to_string());
        }
    }
    for dir in manifest.created_dirs.iter().rev() {
        // Only empty directories go: anything the user put there since stays.
        match fs::remove_dir(dir) {
            Ok(()) => report.removed_dirs.push(dir.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => report
                .reminders
                .push(format!("kept {}: it is not empty", dir.display())),
        }
    }
    Ok(Some(report))
}

fn undo_file(record: &FileRecord, dry_run: bool) -> Result<UndoKind, ClientError> {
    let current = match read_optional(&record.path) {
        Ok(current) => current,
        // A file that is no longer text is not sovereign's to judge.
        Err(ClientError::UnparsableConfig { .. }) => Some(String::new()),
        Err(e) => return Err(e),
    };
    let Some(current) = current else {
        if !dry_run && let Some(backup) = &record.backup {
            remove_file(backup)?;
        }
        return Ok(UndoKind::Missing);
    };
    let untouched = content_hash(current.as_bytes()) == record.written_hash;
    let action = match (&record.backup, untouched) {
        (Some(_), true) => UndoKind::Restore,
        (None, true) => UndoKind::Delete,
        (_, false) => match edit_out(record, &current)? {
            None => UndoKind::Delete,
            Some(_) => UndoKind::EditOut,
        },
    };
    if dry_run {
        return Ok(action);
    }
    match action {
        UndoKind::Restore => {
            let backup = record.backup.as_ref().expect("a restore has a backup");
            let original = fs::read(backup).map_err(crate::error::io_error(backup))?;
            write_atomic(
                &record.path,
                &original,
                mode_of(&record.path).unwrap_or(0o600),
            )?;
        }
        UndoKind::Delete => remove_file(&record.path)?,
        UndoKind::EditOut => {
            let text = edit_out(record, &current)?.expect("an edit-out has text");
            write_atomic(
                &record.path,
                text.as_bytes(),
                mode_of(&record.path).unwrap_or(0o600),
            )?;
        }
        UndoKind::Missing => {}
    }
    if let Some(backup) = &record.backup {
        remove_file(backup)?;
    }
    Ok(action)
}

/// The file without sovereign's part; `None` when nothing of the user's would remain
/// in a file sovereign created.
fn edit_out(record: &FileRecord, current: &str) -> Result<Option<String>, ClientError> {
    let path: &Path = &record.path;
    let (text, empty) = match &record.edit {
        FileEdit::Owned => return Ok(None),
        FileEdit::ProfileBlock { separator } => {
            let text = remove_block(current, separator, &path.to_string_lossy())?;
            let empty = text.is_empty();
            (text, empty)
        }
        FileEdit::Json {
            edits,
            created_objects,
        } => {
            let text = unmerge_json(current, path, edits, created_objects)?;
            let empty = json_is_empty(&text);
            (text, empty)
        }
        FileEdit::CodexConfig { created_parent } => {
            let text = unmerge_codex_config(current, path, *created_parent)?;
            let empty = text.trim().is_empty();
            (text, empty)
        }
    };
    Ok(if record.created && empty {
        None
    } else {
        Some(text)
    })
}
