//! `sovereign backup` and `sovereign restore` (issue #21): the deployment file and
//! the whole state directory, keys included, in one age-encrypted archive. The
//! format and the checks are in `sovereign_wg::backup`; this module reads flags,
//! the passphrase or key files, and prints.

use std::path::PathBuf;

use anyhow::Context as _;
use sovereign_wg::backup::{self, BackupError, Protection, Unlock};

use crate::context::{Context, Outcome, usage};
use crate::output::print_json;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sovereign backup --out sovereign.backup --passphrase-file ~/.sovereign-pass\n  \
    sovereign backup --out sovereign.backup --recipient age1...   # to an age key (age-keygen)\n\n\
    The archive holds every private key of the deployment: keep it like one.")]
pub struct BackupArgs {
    /// Where to write the encrypted archive (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Read the passphrase from FILE (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "recipient")]
    pub passphrase_file: Option<PathBuf>,
    /// Encrypt to an age recipient (`age1...`) instead of a passphrase; repeatable.
    #[arg(long, value_name = "AGE1...")]
    pub recipient: Vec<String>,
    /// Replace an existing FILE.
    #[arg(long)]
    pub force: bool,
    /// The result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sovereign restore sovereign.backup --passphrase-file ~/.sovereign-pass\n  \
    sovereign restore sovereign.backup --identity key.txt --force   # replace the current state\n\n\
    Everything is checked before anything is written; a wrong passphrase, a damaged or foreign \
    file exits 2 and changes nothing.")]
pub struct RestoreArgs {
    /// The archive `sovereign backup` wrote.
    pub file: PathBuf,
    /// Read the passphrase from FILE (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "identity")]
    pub passphrase_file: Option<PathBuf>,
    /// An age identity file (`age-keygen -o FILE`) for an archive made with --recipient.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Replace an existing deployment file and state directory.
    #[arg(long)]
    pub force: bool,
    /// The result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct BackupResult {
    action: &'static str,
    file: String,
    config: String,
    state_dir: String,
    state_files: usize,
}

pub fn backup(context: &Context, args: BackupArgs) -> anyhow::Result<Outcome> {
    let protection = match (&args.passphrase_file, args.recipient.is_empty()) {
        (Some(path), _) => Protection::passphrase(read_passphrase(path)?),
        (None, false) => Protection::recipients(&args.recipient).map_err(backup_error)?,
        (None, true) => Protection::passphrase(ask_passphrase(
            true,
            "--passphrase-file FILE or --recipient AGE1...",
        )?),
    };
    let state = context.state_dir();
    // The same checks as every command that opens the state (modes included),
    // and the shared lock, so the archive never holds half of a change.
    let store = sovereign_wg::KeyStore::open(&state).map_err(store_error)?;
    let _reading = store.lock_shared().map_err(store_error)?;
    let entries = backup::collect(&sovereign_wg::OsFs, context.config_path(), &state)
        .map_err(backup_error)?;
    let sealed = backup::seal(&entries, &protection).map_err(backup_error)?;
    super::peer::write_private_file(&args.out, &sealed, args.force)?;
    let result = BackupResult {
        action: "backup",
        file: args.out.display().to_string(),
        config: context.config_path().display().to_string(),
        state_dir: state.display().to_string(),
        state_files: entries
            .iter()
            .filter(|e| e.path.starts_with("state/") && e.bytes.is_some())
            .count(),
    };
    if args.json {
        print_json(&result)?;
    } else {
        println!(
            "wrote {} (0600, age-encrypted): {} and {} ({} files)",
            result.file, result.config, result.state_dir, result.state_files
        );
        println!("  it holds every private key of the deployment: store it like one");
    }
    Ok(Outcome::Success)
}

pub fn restore(context: &Context, args: RestoreArgs) -> anyhow::Result<Outcome> {
    let unlock = match (&args.passphrase_file, &args.identity) {
        (Some(path), _) => Unlock::passphrase(read_passphrase(path)?),
        (None, Some(path)) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Unlock::identity_file(&bytes).map_err(backup_error)?
        }
        (None, None) => Unlock::passphrase(ask_passphrase(
            false,
            "--passphrase-file FILE or --identity FILE",
        )?),
    };
    let bytes = std::fs::read(&args.file)
        .map_err(|e| usage(format!("cannot read {}: {e}", args.file.display())))?;
    let archive = backup::open(&bytes, &unlock).map_err(backup_error)?;
    let state = context.state_dir();
    backup::install(
        &sovereign_wg::OsFs,
        &archive,
        context.config_path(),
        &state,
        args.force,
    )
    .map_err(backup_error)?;
    let result = BackupResult {
        action: "restore",
        file: args.file.display().to_string(),
        config: context.config_path().display().to_string(),
        state_dir: state.display().to_string(),
        state_files: archive.state_files(),
    };
    if args.json {
        print_json(&result)?;
    } else {
        println!(
            "restored {} and {} ({} files, 0600 in 0700 directories) from {}",
            result.config, result.state_dir, result.state_files, result.file
        );
        println!(
            "next: sovereign config validate   # then `sovereign router apply` if the router lost its config"
        );
    }
    Ok(Outcome::Success)
}

/// The first line of FILE, which must be private like any other secret.
fn read_passphrase(path: &std::path::Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(usage(format!(
            "{} is accessible to other users (mode {mode:04o}); a passphrase must be private: run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(usage(format!(
            "{} is empty; put the passphrase on its first line",
            path.display()
        )));
    }
    Ok(line)
}

/// Ask on the terminal, without echo (`twice` for a new passphrase, so a typo does
/// not lock the backup away). Without a terminal, `flags` are the way.
fn ask_passphrase(twice: bool, flags: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() {
        return Err(no_secret(flags));
    }
    let first = read_hidden("passphrase: ")?;
    if first.is_empty() {
        return Err(usage(
            "an empty passphrase protects nothing; nothing was written",
        ));
    }
    if twice && read_hidden("passphrase again: ")? != first {
        return Err(usage("the two passphrases differ; nothing was written"));
    }
    Ok(first)
}

/// One line from the terminal with echo off (`stty`, so no terminal library is
/// needed); echo comes back even when reading fails.
fn read_hidden(prompt: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
    };
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let hidden = stty("-echo").is_ok_and(|s| s.success());
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if hidden {
        let _ = stty("echo");
    }
    eprintln!();
    read.context("cannot read the passphrase")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn no_secret(flags: &str) -> anyhow::Error {
    usage(format!(
        "say how the archive is protected: pass {flags} (a passphrase is never taken from the command line, \
         where other users could read it)"
    ))
}

fn backup_error(error: BackupError) -> anyhow::Error {
    if error.is_usage() {
        usage(error.to_string())
    } else {
        anyhow::Error::new(error)
    }
}

fn store_error(error: sovereign_wg::StoreError) -> anyhow::Error {
    if error.is_usage() {
        usage(error.to_string())
    } else {
        anyhow::Error::new(error)
    }
}
