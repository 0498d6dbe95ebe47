//! `client setup`: plan every file from the bundle and what is on disk, then (unless
//! it is a dry run) write them, recording each step in the manifest as it goes.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use sovereign_wg::{Key, PRIVATE_KEY_PLACEHOLDER, PeerBundle, qr_terminal};

use crate::error::{ClientError, io_error};
use crate::fsutil::{DirLock, create_dirs, mode_of, read_optional, write_atomic};
use crate::manifest::{FileEdit, FileRecord, MANIFEST_FORMAT, Manifest, content_hash};
use crate::paths::{ClientPaths, Platform, check_interface};
use crate::render::{
    AiderEnv, ClientEnv, Shell, insert_block, profile_block, render_env_fish, render_env_sh,
};
use crate::system::{CommandRunner, ServerProbe};
use crate::tools::{
    Tool, ToolTarget, claude_settings_values, context_warnings, merge_codex_config, merge_json,
    opencode_values, render_codex_profile,
};

/// Suffix of the copy taken before sovereign first edits a file the user owns.
pub const BACKUP_SUFFIX: &str = ".sovereign-backup";

#[derive(Debug, Clone, PartialEq)]
pub struct SetupOptions {
    pub tools: Vec<Tool>,
    pub interface: String,
    pub platform: Platform,
    /// The login shell (`$SHELL`): its profile gets the block even if it does not exist yet.
    pub shell: Option<Shell>,
    /// The default model; `None` asks the server when `probe_models` is set.
    pub model: Option<String>,
    pub probe_models: bool,
    /// The device's own key, for bundles exported without one.
    pub private_key: Option<Key>,
    /// Start the tunnel (Linux).
    pub up: bool,
    /// Export the OpenAI and Anthropic variables in every shell, not only where
    /// `sovereign_shell` runs.
    pub global_env: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Create,
    Modify,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: PathBuf,
    pub change: ChangeKind,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetupReport {
    pub dry_run: bool,
    pub peer: String,
    pub interface: String,
    pub server_url: String,
    pub wg_config: PathBuf,
    pub tools: Vec<Tool>,
    pub model: Option<String>,
    pub models: Vec<String>,
    pub changes: Vec<Change>,
    /// Commands run (or, in a dry run, that would run).
    pub commands: Vec<Vec<String>>,
    pub warnings: Vec<String>,
    pub next_steps: Vec<String>,
    /// False when a command (`--up`) failed; the files are in place regardless.
    pub ok: bool,
    /// The tunnel config as a terminal QR code (macOS). It encodes the private key,
    /// so it never goes into JSON output.
    #[serde(skip)]
    pub qr: Option<String>,
}

/// One file setup wants to be in a given state.
struct Planned {
    path: PathBuf,
    current: Option<String>,
    text: String,
    edit: FileEdit,
    /// Mode for a file setup creates.
    new_mode: u32,
    what: String,
}

pub fn setup(
    bundle: &PeerBundle,
    options: &SetupOptions,
    paths: &ClientPaths,
    runner: &dyn CommandRunner,
    probe: &dyn ServerProbe,
    dry_run: bool,
) -> Result<SetupReport, ClientError> {
    check_interface(&options.interface)?;
    let wg_text = tunnel_config(bundle, options)?;
    let manifest_path = paths.manifest();
    let previous = match read_optional(&manifest_path)? {
        Some(text) => Some(Manifest::parse(&text, &manifest_path)?),
        None => None,
    };
    if let Some(m) = &previous
        && m.interface != options.interface
    {
        return Err(ClientError::Foreign {
            path: manifest_path,
            what: format!(
                "this machine is set up with interface `{}`; run `sovereign client uninstall` first to switch to `{}`",
                m.interface, options.interface
            ),
        });
    }

    let mut warnings = context_warnings(bundle.context_length, &options.tools);
    let models = match (&options.model, options.probe_models) {
        (_, false) => Vec::new(),
        (Some(_), true) if !options.tools.contains(&Tool::OpenCode) => Vec::new(),
        (_, true) => probe.models(&bundle.api.ollama).unwrap_or_else(|reason| {
            warnings.push(format!(
                "could not list the server's models ({reason}); tools get no default model — \
                 pass --model NAME, or re-run setup once the tunnel is up"
            ));
            Vec::new()
        }),
    };
    let model = options.model.clone().or_else(|| models.first().cloned());

    let env = ClientEnv {
        peer: bundle.peer.name.clone(),
        interface: options.interface.clone(),
        ollama_url: bundle.api.ollama.clone(),
        openai_url: bundle.api.openai.clone(),
        anthropic_url: bundle.api.anthropic.clone(),
        aider: options.tools.contains(&Tool::Aider).then(|| AiderEnv {
            model: model.clone(),
        }),
        global: options.global_env,
    };
    let target = ToolTarget {
        openai_url: bundle.api.openai.clone(),
        anthropic_url: bundle.api.anthropic.clone(),
        model: model.clone(),
        models: models.clone(),
        context_length: bundle.context_length,
    };
    let planned = plan_files(paths, options, previous.as_ref(), &wg_text, &env, &target)?;

    let wg_config = paths.wg_config(&options.interface);
    let mut report = SetupReport {
        dry_run,
        peer: bundle.peer.name.clone(),
        interface: options.interface.clone(),
        server_url: bundle.api.ollama.clone(),
        wg_config: wg_config.clone(),
        tools: options.tools.clone(),
        model,
        models,
        changes: planned.iter().map(describe).collect(),
        commands: Vec::new(),
        warnings,
        next_steps: Vec::new(),
        ok: true,
        qr: None,
    };
    let up_command = up_commands(options, paths, &wg_config);
    if let (true, Some((up, _))) = (options.up, &up_command) {
        report.commands.push(up.clone());
    }
    if options.up && options.platform == Platform::MacOs {
        report
            .warnings
            .push("--up does nothing on macOS: activate the tunnel in the WireGuard app".into());
    }
    report.next_steps = next_steps(options, paths, &wg_config, report.model.as_deref());
    if dry_run {
        return Ok(report);
    }

    let mut manifest = previous.unwrap_or_else(|| Manifest {
        format: MANIFEST_FORMAT.into(),
        peer: bundle.peer.name.clone(),
        interface: options.interface.clone(),
        platform: options.platform,
        server_url: bundle.api.ollama.clone(),
        wg_config: wg_config.clone(),
        tools: Vec::new(),
        created_dirs: Vec::new(),
        files: Vec::new(),
        undo_commands: Vec::new(),
    });
    manifest.peer = bundle.peer.name.clone();
    manifest.server_url = bundle.api.ollama.clone();
    for tool in &options.tools {
        if !manifest.tools.contains(tool) {
            manifest.tools.push(*tool);
        }
    }
    preflight_wg_dir(&paths.wg_dir)?;
    let sovereign_dir = paths.sovereign_dir();
    let created = create_dirs(&sovereign_dir, 0o700)?;
    remember_dirs(&mut manifest, created);
    let _lock = DirLock::acquire(&paths.lock_file())?;
    save_manifest(paths, &manifest)?;

    for file in planned {
        apply_file(&mut manifest, file, paths)?;
        save_manifest(paths, &manifest)?;
    }

    if let (true, Some((up, down))) = (options.up, up_command) {
        match runner.run(&up) {
            Ok(out) if out.success => {
                if !manifest.undo_commands.contains(&down) {
                    manifest.undo_commands.push(down);
                }
                save_manifest(paths, &manifest)?;
            }
            Ok(out) => {
                report.ok = false;
                report
                    .warnings
                    .push(format!("`{}` failed: {}", up.join(" "), out.stderr.trim()));
            }
            Err(e) => {
                report.ok = false;
                report
                    .warnings
                    .push(format!("cannot run `{}`: {e}", up.join(" ")));
            }
        }
    }
    if options.platform == Platform::MacOs {
        report.qr = qr_terminal(&wg_text).ok();
    }
    Ok(report)
}

fn tunnel_config(bundle: &PeerBundle, options: &SetupOptions) -> Result<String, ClientError> {
    let config = &bundle.wireguard.config;
    match (bundle.wireguard.private_key_included, &options.private_key) {
        (true, None) => Ok(config.clone()),
        (true, Some(_)) => Err(ClientError::PrivateKeyTwice),
        (false, None) => Err(ClientError::PrivateKeyNeeded {
            peer: bundle.peer.name.clone(),
        }),
        (false, Some(key)) => Ok(config.replace(PRIVATE_KEY_PLACEHOLDER, &key.to_base64())),
    }
}

fn plan_files(
    paths: &ClientPaths,
    options: &SetupOptions,
    manifest: Option<&Manifest>,
    wg_text: &str,
    env: &ClientEnv,
    target: &ToolTarget,
) -> Result<Vec<Planned>, ClientError> {
    let record = |path: &Path| manifest.and_then(|m| m.record(path));
    let mut planned = Vec::new();
    let owned =
        |path: PathBuf, text: String, mode: u32, what: &str| -> Result<Planned, ClientError> {
            let current = read_optional(&path)?;
            if current.is_some() && record(&path).is_none() {
                return Err(ClientError::Foreign {
                    path,
                    what: "it exists but sovereign did not write it".into(),
                });
            }
            Ok(Planned {
                path,
                current,
                text,
                edit: FileEdit::Owned,
                new_mode: mode,
                what: what.into(),
            })
        };
    // The tunnel first: if its directory is not writable, nothing else has changed yet.
    planned.push(owned(
        paths.wg_config(&options.interface),
        wg_text.to_string(),
        0o600,
        "WireGuard tunnel config (holds the private key)",
    )?);
    planned.push(owned(
        paths.env_sh(),
        render_env_sh(env),
        0o644,
        "env file for bash/zsh",
    )?);
    planned.push(owned(
        paths.env_fish(),
        render_env_fish(env),
        0o644,
        "env file for fish",
    )?);

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = paths.profile(shell, options.platform);
        let current = read_optional(&path)?;
        if current.is_none() && options.shell != Some(shell) {
            continue;
        }
        let env_path = if shell == Shell::Fish {
            paths.env_fish()
        } else {
            paths.env_sh()
        };
        let block = profile_block(shell, &env_path.to_string_lossy());
        let edit = insert_block(
            current.as_deref().unwrap_or(""),
            &block,
            &path.to_string_lossy(),
        )?;
        let separator = match record(&path).map(|r| &r.edit) {
            Some(FileEdit::ProfileBlock { separator }) => separator.clone(),
            _ => edit.separator,
        };
        planned.push(Planned {
            path,
            current,
            text: edit.text,
            edit: FileEdit::ProfileBlock { separator },
            new_mode: 0o644,
            what: format!("{} profile: sources the env file", shell.name()),
        });
    }

    for tool in &options.tools {
        match tool {
            // Aider reads OLLAMA_API_BASE and AIDER_MODEL from the env file.
            Tool::Aider => {}
            Tool::ClaudeCode => planned.push(json_file(
                paths.claude_settings(),
                record(&paths.claude_settings()),
                &[],
                &claude_settings_values(target),
                "Claude Code settings: env block (base URL without /v1)",
            )?),
            Tool::OpenCode => planned.push(json_file(
                paths.opencode_config(),
                record(&paths.opencode_config()),
                &[(
                    "$schema",
                    Value::String("https://opencode.ai/config.json".into()),
                )],
                &opencode_values(target),
                "OpenCode: provider `sovereign` (@ai-sdk/openai-compatible, /v1)",
            )?),
            Tool::Codex => {
                let path = paths.codex_config();
                let current = read_optional(&path)?;
                let earlier = record(&path);
                let merged =
                    merge_codex_config(current.as_deref(), &path, target, earlier.is_some())?;
                let created_parent = match earlier.map(|r| &r.edit) {
                    Some(FileEdit::CodexConfig { created_parent }) => *created_parent,
                    _ => merged.created_parent,
                };
                planned.push(Planned {
                    path,
                    current,
                    text: merged.text,
                    edit: FileEdit::CodexConfig { created_parent },
                    new_mode: 0o600,
                    what: "Codex: [model_providers.sovereign] (/v1, Responses API)".into(),
                });
                planned.push(owned(
                    paths.codex_profile(),
                    render_codex_profile(target),
                    0o600,
                    "Codex profile: `codex --profile sovereign`",
                )?);
            }
        }
    }
    Ok(planned)
}

fn json_file(
    path: PathBuf,
    earlier: Option<&FileRecord>,
    new_file_prefix: &[(&str, Value)],
    values: &[(Vec<String>, Value)],
    what: &str,
) -> Result<Planned, ClientError> {
    let current = read_optional(&path)?;
    let merged = merge_json(current.as_deref(), &path, new_file_prefix, values)?;
    // On a re-run the values found are sovereign's own; keep what the first run saw.
    let edit = match earlier.map(|r| &r.edit) {
        Some(FileEdit::Json {
            edits,
            created_objects,
        }) => {
            let mut kept = edits.clone();
            for edit in merged.edits {
                if !kept.iter().any(|k| k.path == edit.path) {
                    kept.push(edit);
                }
            }
            let mut objects = created_objects.clone();
            for object in merged.created_objects {
                if !objects.contains(&object) {
                    objects.push(object);
                }
            }
            FileEdit::Json {
                edits: kept,
                created_objects: objects,
            }
        }
        _ => FileEdit::Json {
            edits: merged.edits,
            created_objects: merged.created_objects,
        },
    };
    Ok(Planned {
        path,
        current,
        text: merged.text,
        edit,
        new_mode: 0o600,
        what: what.into(),
    })
}

fn describe(file: &Planned) -> Change {
    let change = match &file.current {
        None => ChangeKind::Create,
        Some(current) if *current == file.text => ChangeKind::Unchanged,
        Some(_) => ChangeKind::Modify,
    };
    Change {
        path: file.path.clone(),
        change,
        what: file.what.clone(),
    }
}

fn apply_file(
    manifest: &mut Manifest,
    file: Planned,
    paths: &ClientPaths,
) -> Result<(), ClientError> {
    let earlier = manifest.record(&file.path).cloned();
    let parent = file.path.parent().unwrap_or(Path::new("/"));
    let dir_mode = if parent == paths.wg_dir || parent == paths.sovereign_dir() {
        0o700
    } else {
        0o755
    };
    let created = create_dirs(parent, dir_mode)?;
    remember_dirs(manifest, created);

    let mut backup = earlier.as_ref().and_then(|r| r.backup.clone());
    if let (None, Some(current), false) = (
        &earlier,
        &file.current,
        matches!(file.edit, FileEdit::Owned),
    ) {
        let backup_path = PathBuf::from(format!("{}{BACKUP_SUFFIX}", file.path.display()));
        if backup_path.exists() {
            return Err(ClientError::Foreign {
                path: backup_path,
                what: "a backup from an earlier setup exists, but the manifest does not know it"
                    .into(),
            });
        }
        write_atomic(&backup_path, current.as_bytes(), 0o600)?;
        backup = Some(backup_path);
    }
    let mode = mode_of(&file.path).unwrap_or(file.new_mode);
    if file.current.as_deref() != Some(file.text.as_str()) {
        write_atomic(&file.path, file.text.as_bytes(), mode)?;
    }
    manifest.upsert(FileRecord {
        path: file.path,
        created: earlier
            .as_ref()
            .map_or(file.current.is_none(), |r| r.created),
        backup,
        written_hash: content_hash(file.text.as_bytes()),
        edit: file.edit,
    });
    Ok(())
}

fn remember_dirs(manifest: &mut Manifest, created: Vec<PathBuf>) {
    for dir in created {
        if !manifest.created_dirs.contains(&dir) {
            manifest.created_dirs.push(dir);
        }
    }
}

pub(crate) fn save_manifest(paths: &ClientPaths, manifest: &Manifest) -> Result<(), ClientError> {
    write_atomic(&paths.manifest(), manifest.to_json().as_bytes(), 0o600)
}

/// Fail before anything changes when the tunnel's directory cannot be written.
fn preflight_wg_dir(dir: &Path) -> Result<(), ClientError> {
    let existing = dir
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("/"));
    let probe = existing.join(".sovereign-write-test");
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => fs::remove_file(&probe).map_err(io_error(&probe)),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(ClientError::WgDirNotWritable {
            path: dir.to_path_buf(),
        }),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error(&probe)(e)),
    }
}

/// The command that brings the tunnel up with `--up`, and the one that undoes it.
fn up_commands(
    options: &SetupOptions,
    paths: &ClientPaths,
    wg_config: &Path,
) -> Option<(Vec<String>, Vec<String>)> {
    if options.platform != Platform::Linux {
        return None;
    }
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    if paths.wg_dir == Path::new("/etc/wireguard") {
        let unit = format!("wg-quick@{}", options.interface);
        Some((
            strings(&["systemctl", "enable", "--now", &unit]),
            strings(&["systemctl", "disable", "--now", &unit]),
        ))
    } else {
        let conf = wg_config.to_string_lossy();
        Some((
            strings(&["wg-quick", "up", &conf]),
            strings(&["wg-quick", "down", &conf]),
        ))
    }
}

fn next_steps(
    options: &SetupOptions,
    paths: &ClientPaths,
    wg_config: &Path,
    model: Option<&str>,
) -> Vec<String> {
    let mut steps = Vec::new();
    match options.platform {
        Platform::Linux if !options.up => {
            if paths.wg_dir == Path::new("/etc/wireguard") {
                steps.push(format!(
                    "start the tunnel now and at boot: sudo systemctl enable --now wg-quick@{}",
                    options.interface
                ));
            } else {
                steps.push(format!(
                    "start the tunnel: sudo wg-quick up {}",
                    wg_config.display()
                ));
            }
        }
        Platform::Linux => {}
        Platform::MacOs => {
            steps.push("install WireGuard from the App Store (https://apps.apple.com/app/wireguard/id1451685025)".into());
            steps.push(format!(
                "in WireGuard: \"Import Tunnel(s) from File…\", choose {}, then Activate \
                 (or scan the QR code above on an iPhone or iPad)",
                wg_config.display()
            ));
        }
    }
    let source = match options.shell {
        Some(Shell::Fish) => format!("source {}", paths.env_fish().display()),
        _ => format!(". {}", paths.env_sh().display()),
    };
    steps.push(format!("open a new terminal (or run `{source}`)"));
    steps.push(
        "check the tunnel and the server: sovereign client status, then sovereign client test"
            .into(),
    );
    let model = model.unwrap_or("MODEL");
    for tool in &options.tools {
        steps.push(match tool {
            Tool::ClaudeCode => format!("Claude Code: run `claude` (or `claude --model {model}`)"),
            Tool::Codex => "Codex: run `codex --profile sovereign`".into(),
            Tool::OpenCode => format!("OpenCode: run `opencode` and pick sovereign/{model}"),
            Tool::Aider => format!("Aider: run `aider` (or `aider --model ollama_chat/{model}`)"),
        });
    }
    steps
}
