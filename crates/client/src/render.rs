//! Pure renderers: the env files and the marked profile blocks that source them.
//! No I/O here; the engine in `setup.rs` decides where the text goes.

use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// First line of the block sovereign owns in a shell profile.
pub const BLOCK_START: &str = "# >>> sovereign >>>";
/// Last line of that block.
pub const BLOCK_END: &str = "# <<< sovereign <<<";

/// What the env file exports, derived from the bundle (and the chosen tools).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientEnv {
    pub peer: String,
    pub interface: String,
    /// Ollama's own API, without a path: `http://server:11434`.
    pub ollama_url: String,
    /// OpenAI-compatible base: `.../v1`.
    pub openai_url: String,
    /// Anthropic-compatible base: no `/v1`, because the SDKs append it.
    pub anthropic_url: String,
    /// Aider's settings, present only when Aider is configured.
    pub aider: Option<AiderEnv>,
    /// Export the OpenAI and Anthropic variables in every shell (`--global-env`),
    /// instead of only where `sovereign_shell` is run.
    pub global: bool,
}

/// The shell function that turns on the OpenAI and Anthropic variables for one shell.
pub const SESSION_FUNCTION: &str = "sovereign_shell";

/// Whether `name` would stand in for a real cloud key or endpoint in every program
/// that reads it (the OpenAI and Anthropic SDKs and CLIs): those are scoped to
/// [`SESSION_FUNCTION`] unless the user asks for them everywhere.
fn is_session_variable(name: &str) -> bool {
    name.starts_with("OPENAI_") || name.starts_with("ANTHROPIC_")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiderEnv {
    /// `ollama_chat/<model>`, when a model is known.
    pub model: Option<String>,
}

/// A shell whose profile can source the env file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    /// The shell named by a `$SHELL` value such as `/usr/bin/zsh`.
    pub fn from_path(path: &str) -> Option<Shell> {
        match path.rsplit('/').next()? {
            "bash" => Some(Shell::Bash),
            "zsh" => Some(Shell::Zsh),
            "fish" => Some(Shell::Fish),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
            Shell::Fish => "fish",
        }
    }
}

impl ClientEnv {
    /// The variables in the order the file lists them, each with an optional comment line.
    pub fn variables(&self) -> Vec<(&'static str, String, Option<&'static str>)> {
        let mut vars = vec![
            (
                "OLLAMA_HOST",
                self.ollama_url.clone(),
                Some("Ollama's CLI and native clients."),
            ),
            (
                "OPENAI_BASE_URL",
                self.openai_url.clone(),
                Some("OpenAI SDKs and OpenAI-compatible tools: the base ends in /v1."),
            ),
            ("OPENAI_API_BASE", self.openai_url.clone(), None),
            ("OPENAI_API_KEY", "ollama".into(), None),
            (
                "ANTHROPIC_BASE_URL",
                self.anthropic_url.clone(),
                Some(
                    "Anthropic SDKs and Claude Code append /v1 themselves: adding it here gives 404s.",
                ),
            ),
            ("ANTHROPIC_AUTH_TOKEN", "ollama".into(), None),
            ("ANTHROPIC_API_KEY", String::new(), None),
        ];
        if let Some(aider) = &self.aider {
            vars.push((
                "OLLAMA_API_BASE",
                self.ollama_url.clone(),
                Some("Aider (LiteLLM's ollama_chat/ models)."),
            ));
            if let Some(model) = &aider.model {
                vars.push(("AIDER_MODEL", format!("ollama_chat/{model}"), None));
            }
        }
        vars
    }
}

/// The env file for POSIX shells (bash, zsh, sh).
pub fn render_env_sh(env: &ClientEnv) -> String {
    render_env(
        env,
        |name, value| format!("export {name}={}\n", quote_sh(value)),
        (&format!("{SESSION_FUNCTION}() {{\n"), "}\n"),
    )
}

/// The env file for fish.
pub fn render_env_fish(env: &ClientEnv) -> String {
    render_env(
        env,
        |name, value| format!("set -gx {name} {}\n", quote_fish(value)),
        (&format!("function {SESSION_FUNCTION}\n"), "end\n"),
    )
}

/// The file: the variables every shell may have, then a function that sets the
/// OpenAI and Anthropic ones for the shell that runs it (at the top level too when
/// `env.global`).
fn render_env(
    env: &ClientEnv,
    line: impl Fn(&str, &str) -> String,
    function: (&str, &str),
) -> String {
    let mut out = format!(
        "# Written by `sovereign client setup` for peer {}; `sovereign client uninstall` removes it.\n\
         # The AI server is reached through the WireGuard tunnel `{}`.\n",
        env.peer, env.interface
    );
    let (session, everywhere): (Vec<_>, Vec<_>) = env
        .variables()
        .into_iter()
        .partition(|(name, _, _)| is_session_variable(name));
    let lines = |vars: &[(&str, String, Option<&str>)], indent: &str| -> String {
        let mut text = String::new();
        for (name, value, comment) in vars {
            if let Some(comment) = comment {
                text.push_str(&format!("{indent}# {comment}\n"));
            }
            text.push_str(&format!("{indent}{}", line(name, value)));
        }
        text
    };
    out.push_str(&lines(&everywhere, ""));
    if env.global {
        out.push_str("# Exported in every shell (client setup --global-env).\n");
        out.push_str(&lines(&session, ""));
    }
    out.push_str(&format!(
        "# The OpenAI and Anthropic variables replace your real cloud keys and endpoints in\n\
         # every program that reads them, so they are set only where you run `{SESSION_FUNCTION}`.\n"
    ));
    out.push_str(function.0);
    out.push_str(&lines(&session, "\t"));
    out.push_str(function.1);
    out
}

/// The marked block that makes `shell` source the env file at `env_path`.
pub fn profile_block(shell: Shell, env_path: &str) -> String {
    let source = match shell {
        Shell::Bash | Shell::Zsh => {
            let path = quote_sh(env_path);
            format!("if [ -f {path} ]; then . {path}; fi")
        }
        Shell::Fish => {
            let path = quote_fish(env_path);
            format!("if test -f {path}; source {path}; end")
        }
    };
    format!(
        "{BLOCK_START}\n\
         # Managed by `sovereign client setup`; `sovereign client uninstall` removes this block.\n\
         {source}\n\
         {BLOCK_END}\n"
    )
}

/// A profile with `block` in it, and the separator added before an appended block
/// (so that removing the block can give back the original bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEdit {
    pub text: String,
    /// Text inserted before the block when it was appended; empty when it replaced an old block.
    pub separator: String,
}

/// Put `block` into `profile`: replace an existing sovereign block in place (so a
/// re-run fixes a stale block and never duplicates it), or append one.
pub fn insert_block(profile: &str, block: &str, file: &str) -> Result<BlockEdit, ClientError> {
    if let Some((start, end)) = find_block(profile, file)? {
        let text = format!("{}{block}{}", &profile[..start], &profile[end..]);
        return Ok(BlockEdit {
            text,
            separator: String::new(),
        });
    }
    let separator = match profile {
        "" => "",
        p if p.ends_with('\n') => "\n",
        _ => "\n\n",
    };
    Ok(BlockEdit {
        text: format!("{profile}{separator}{block}"),
        separator: separator.to_string(),
    })
}

/// Remove the sovereign block and the separator that was added in front of it.
/// A profile without a block comes back unchanged.
pub fn remove_block(profile: &str, separator: &str, file: &str) -> Result<String, ClientError> {
    let Some((start, end)) = find_block(profile, file)? else {
        return Ok(profile.to_string());
    };
    let before = &profile[..start];
    let after = &profile[end..];
    let before = before.strip_suffix(separator).unwrap_or(before);
    // Lines the user added after the block must not join the last line before it.
    let joint = if !after.is_empty() && !before.is_empty() && !before.ends_with('\n') {
        "\n"
    } else {
        ""
    };
    Ok(format!("{before}{joint}{after}"))
}

/// Byte range of the block, from the start of its first line to just after its last
/// line's newline. Half a block is an error: guessing could eat the user's lines.
fn find_block(profile: &str, file: &str) -> Result<Option<(usize, usize)>, ClientError> {
    let mut start = None;
    let mut offset = 0;
    for line in profile.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        if content == BLOCK_START {
            if start.is_some() {
                return Err(broken_block(file, "two start markers in a row"));
            }
            start = Some(offset);
        } else if content == BLOCK_END {
            let Some(begin) = start else {
                return Err(broken_block(file, "an end marker without a start marker"));
            };
            let end = offset + line.len();
            let rest = &profile[end..];
            if rest.lines().any(|l| l == BLOCK_START || l == BLOCK_END) {
                return Err(broken_block(file, "more than one sovereign block"));
            }
            return Ok(Some((begin, end)));
        }
        offset += line.len();
    }
    match start {
        Some(_) => Err(broken_block(file, "a start marker without an end marker")),
        None => Ok(None),
    }
}

fn broken_block(file: &str, what: &str) -> ClientError {
    ClientError::BrokenProfileBlock {
        file: file.to_string(),
        problem: what.to_string(),
    }
}

/// Single-quote for POSIX shells.
pub fn quote_sh(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Single-quote for fish, where only `\` and `'` are special inside quotes.
pub fn quote_fish(value: &str) -> String {
    format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample_env(aider_model: Option<&str>) -> ClientEnv {
        ClientEnv {
            peer: "laptop".into(),
            interface: "sovereign".into(),
            ollama_url: "http://192.168.250.20:11434".into(),
            openai_url: "http://192.168.250.20:11434/v1".into(),
            anthropic_url: "http://192.168.250.20:11434".into(),
            aider: aider_model.map(|m| AiderEnv {
                model: Some(m.into()),
            }),
            global: false,
        }
    }

    #[test]
    fn env_sh_golden() {
        insta::assert_snapshot!(render_env_sh(&sample_env(None)));
    }

    #[test]
    fn env_fish_golden() {
        insta::assert_snapshot!(render_env_fish(&sample_env(None)));
    }

    #[test]
    fn env_with_aider_golden() {
        insta::assert_snapshot!(render_env_sh(&sample_env(Some("qwen3-coder:30b"))));
    }

    #[test]
    fn anthropic_base_has_no_v1_and_openai_base_has_it() {
        let text = render_env_sh(&sample_env(None));
        assert!(text.contains("export ANTHROPIC_BASE_URL='http://192.168.250.20:11434'\n"));
        assert!(text.contains("export OPENAI_BASE_URL='http://192.168.250.20:11434/v1'\n"));
        assert!(text.contains("export ANTHROPIC_API_KEY=''\n"));
    }

    /// Sourced in a real shell: the Ollama variables are set, the OpenAI and
    /// Anthropic ones only after `sovereign_shell` (or everywhere with global).
    #[test]
    fn cloud_keys_are_scoped_to_sovereign_shell() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        let run = |env: &ClientEnv, then: &str| {
            std::fs::write(&file, render_env_sh(env)).unwrap();
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    ". {}; {then} echo \"$OLLAMA_HOST|${{OPENAI_API_KEY-unset}}|${{ANTHROPIC_BASE_URL-unset}}\"",
                    file.display()
                ))
                .env_remove("OPENAI_API_KEY")
                .env_remove("ANTHROPIC_BASE_URL")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let env = sample_env(None);
        assert_eq!(run(&env, ""), "http://192.168.250.20:11434|unset|unset");
        assert_eq!(
            run(&env, &format!("{SESSION_FUNCTION};")),
            "http://192.168.250.20:11434|ollama|http://192.168.250.20:11434"
        );
        let global = ClientEnv {
            global: true,
            ..env
        };
        assert_eq!(
            run(&global, ""),
            "http://192.168.250.20:11434|ollama|http://192.168.250.20:11434"
        );
    }

    #[test]
    fn profile_blocks_golden() {
        insta::assert_snapshot!(
            "block_bash",
            profile_block(Shell::Bash, "/home/alice/.config/sovereign/env")
        );
        insta::assert_snapshot!(
            "block_fish",
            profile_block(Shell::Fish, "/home/alice/.config/sovereign/env.fish")
        );
    }

    #[test]
    fn inserting_twice_never_duplicates_and_replaces_a_stale_block() {
        let old = profile_block(Shell::Bash, "/old/env");
        let new = profile_block(Shell::Bash, "/new/env");
        let first = insert_block("alias ll='ls -l'\n", &old, "p").unwrap();
        let second = insert_block(&first.text, &new, "p").unwrap();
        assert_eq!(second.text.matches(BLOCK_START).count(), 1);
        assert!(second.text.contains("/new/env") && !second.text.contains("/old/env"));
        assert_eq!(
            remove_block(&second.text, &first.separator, "p").unwrap(),
            "alias ll='ls -l'\n"
        );
    }

    #[test]
    fn half_a_block_is_refused() {
        let err = insert_block("# >>> sovereign >>>\nexport A=1\n", "x", "~/.bashrc").unwrap_err();
        assert!(err.to_string().contains("~/.bashrc"), "{err}");
        assert!(remove_block("# <<< sovereign <<<\n", "", "f").is_err());
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote_sh("it's"), r"'it'\''s'");
        assert_eq!(quote_fish(r"a\b'c"), r"'a\\b\'c'");
    }

    proptest! {
        // Whatever the profile holds, setup then uninstall gives back the same bytes.
        #[test]
        fn insert_then_remove_is_identity(profile in "(([a-z =#'\"]{0,12})\n?){0,6}") {
            prop_assume!(!profile.contains("sovereign"));
            let block = profile_block(Shell::Zsh, "/h/.config/sovereign/env");
            let edit = insert_block(&profile, &block, "p").unwrap();
            prop_assert_eq!(edit.text.matches(BLOCK_START).count(), 1);
            let again = insert_block(&edit.text, &block, "p").unwrap();
            prop_assert_eq!(&again.text, &edit.text);
            prop_assert_eq!(remove_block(&edit.text, &edit.separator, "p").unwrap(), profile);
        }
    }
}
