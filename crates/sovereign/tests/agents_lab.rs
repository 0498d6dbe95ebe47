//! Real coding agents, set up by `sovereign client setup` and nothing else, talking to
//! the lab's AI server through the WireGuard tunnel: Claude Code over the
//! Anthropic-compatible API (base URL without /v1), Codex over the Responses API
//! (its `--profile sovereign`) and Aider over the native API (the env file's
//! OLLAMA_API_BASE and AIDER_MODEL). The agents are pinned in tests/agents (npm
//! packages, and a venv for Aider), installed by scripts/test. Needs root and the
//! lab's tools: skipped with a printed reason locally, a failure with CI=true.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sovereign_lab::{AgentCommand, ApiServer, Lab, LabName, LabOptions, prereq, slot};
use sovereign_model::Deployment;
use sovereign_wg::{ClientMaterial, Key};

const PROMPT: &str = "Say hello to the lab";

fn agents_bin() -> PathBuf {
    match std::env::var_os("SOVEREIGN_AGENTS_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/agents/node_modules/.bin"),
    }
}

fn aider_bin() -> PathBuf {
    match std::env::var_os("SOVEREIGN_AIDER") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/agents/.venv/bin/aider"),
    }
}

fn prerequisites(test: &str) -> bool {
    let mut missing = prereq::missing();
    for path in [
        agents_bin().join("claude"),
        agents_bin().join("codex"),
        aider_bin(),
    ] {
        if !path.exists() {
            missing.push(format!(
                "{}: install the agents as scripts/test does (setup_agents in scripts/lib/common.sh)",
                path.display()
            ));
        }
    }
    sovereign_testkit::skip_or_fail(test, &missing)
}

fn lab(tag: char) -> Lab {
    let name = LabName::new(&format!("g{tag}{}", std::process::id() % 100_000)).unwrap();
    let options = LabOptions {
        name,
        peers: 1,
        agent: AgentCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_sovereign")),
            args: vec!["lab".into(), "_serve".into()],
        },
        api_server: ApiServer::Emulator,
    };
    Lab::up(&Deployment::reference(), options).unwrap()
}

/// The bundle `sovereign peer export lab1` would write for the lab's VPN client.
fn write_bundle(lab: &Lab, path: &Path) {
    let keys = lab.state_dir().join("keys");
    let read = |file: &str| {
        let text = std::fs::read_to_string(keys.join(file)).unwrap();
        Key::from_base64(text.trim()).unwrap()
    };
    let deployment = lab.topology().deployment.clone();
    let peer = deployment.peers[0].clone();
    let material = ClientMaterial {
        private_key: Some(read(&format!("{}.key", peer.name))),
        preshared_key: Some(read(&format!("{}.psk", peer.name))),
        router_public_key: read("router.key").public_key(),
        deployment,
        peer,
    };
    std::fs::write(path, material.bundle().to_json()).unwrap();
}

/// A program inside the VPN client's namespace, as a user whose HOME is `home`. The
/// agents' own environment variables are removed: only the files setup wrote count.
fn in_client(lab: &Lab, home: &Path, program: &Path, args: &[&str]) -> Output {
    let netns = &lab.topology().node("v1").unwrap().netns;
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut command = Command::new("timeout");
    command
        .arg("120")
        .args(["ip", "netns", "exec", netns])
        .arg(program)
        .args(args)
        .current_dir(&work)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("SOVEREIGN_CONFIG")
        .env_remove("CODEX_HOME");
    for (name, _) in std::env::vars() {
        if name.starts_with("ANTHROPIC_")
            || name.starts_with("OPENAI_")
            || name.starts_with("CLAUDE_")
        {
            command.env_remove(name);
        }
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// An answer of the emulator's toy model: only its words, so it can only have come
/// from the lab's AI server.
fn is_toy_answer(answer: &str) -> bool {
    let words: Vec<String> = answer
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect();
    words.len() >= 3
        && words
            .iter()
            .all(|w| ollama_emulator::VOCABULARY.contains(&w.as_str()))
}

/// A VPN client the way a user leaves it after `sovereign client setup`, or `None`
/// when the test is skipped. The lab slot is held until the client is dropped.
struct SetUpClient {
    home: tempfile::TempDir,
    lab: Lab,
    _slot: slot::Slot,
}

fn set_up_client(test: &str, tag: char) -> Option<SetUpClient> {
    if !prerequisites(test) {
        return None;
    }
    let slot = slot::acquire().unwrap();
    let lab = lab(tag);
    let home = tempfile::tempdir().unwrap();
    run_setup(&lab, home.path());
    Some(SetUpClient {
        home,
        lab,
        _slot: slot,
    })
}

fn run_setup(lab: &Lab, home: &Path) {
    let bundle = home.join("lab1.peer.json");
    write_bundle(lab, &bundle);
    let wg_dir = home.join("wg");
    let setup = in_client(
        lab,
        home,
        Path::new(env!("CARGO_BIN_EXE_sovereign")),
        &[
            "client",
            "setup",
            "--bundle",
            &bundle.to_string_lossy(),
            "--tools",
            "claude-code,codex,aider",
            "--wg-dir",
            &wg_dir.to_string_lossy(),
        ],
    );
    assert!(setup.status.success(), "client setup: {}", text(&setup));
    // The default model came from the server, asked through the tunnel.
    assert!(
        String::from_utf8_lossy(&setup.stdout).contains("default model: toy:latest"),
        "{}",
        text(&setup)
    );
}

#[test]
fn claude_code_answers_from_the_ai_server_through_the_tunnel() {
    let Some(client) = set_up_client("claude_code_answers_through_the_tunnel", 'c') else {
        return;
    };
    let (lab, home) = (&client.lab, &client.home);

    // Tools off: the toy model would otherwise call one, and Claude Code would ask
    // for a permission nobody is there to give.
    let claude = agents_bin().join("claude");
    let output = in_client(lab, home.path(), &claude, &["-p", PROMPT, "--tools", ""]);
    assert!(output.status.success(), "{}", text(&output));
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(is_toy_answer(answer.trim()), "{}", text(&output));

    // The control: the same user without sovereign's settings gets no such answer.
    let bare = tempfile::tempdir().unwrap();
    let output = in_client(lab, bare.path(), &claude, &["-p", PROMPT, "--tools", ""]);
    assert!(
        !is_toy_answer(String::from_utf8_lossy(&output.stdout).trim()),
        "{}",
        text(&output)
    );
}

#[test]
fn codex_answers_from_the_ai_server_through_the_tunnel() {
    let Some(client) = set_up_client("codex_answers_through_the_tunnel", 'x') else {
        return;
    };
    let (lab, home) = (&client.lab, &client.home);

    let last = home.path().join("last-message.txt");
    let codex = agents_bin().join("codex");
    let output = in_client(
        lab,
        home.path(),
        &codex,
        &[
            "exec",
            "--profile",
            "sovereign",
            "--skip-git-repo-check",
            "--output-last-message",
            &last.to_string_lossy(),
            PROMPT,
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let answer = std::fs::read_to_string(&last).unwrap_or_default();
    assert!(
        is_toy_answer(answer.trim()),
        "{answer:?}\n{}",
        text(&output)
    );
}

#[test]
fn aider_answers_from_the_ai_server_through_the_tunnel() {
    let Some(client) = set_up_client("aider_answers_through_the_tunnel", 'a') else {
        return;
    };
    let (lab, home) = (&client.lab, &client.home);
    // As a user's new shell would: the env file setup wrote, then aider. Its
    // update check and analytics are off; its model-price download fails quickly
    // (no DNS in the namespace) and is not needed.
    let script = format!(
        ". \"$HOME/.config/sovereign/env\" && exec '{}' --message '{PROMPT}' --yes-always --no-git \
         --no-check-update --no-analytics --no-show-model-warnings",
        aider_bin().display()
    );
    let output = in_client(lab, home.path(), Path::new("/bin/sh"), &["-c", &script]);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.lines().any(|line| is_toy_answer(line.trim())),
        "{}",
        text(&output)
    );
    assert!(
        stdout.contains("ollama_chat/toy:latest"),
        "{}",
        text(&output)
    );
}
