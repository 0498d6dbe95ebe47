//! `sovereign check` against the in-process emulator: the happy path, version
//! gating, and the ways a check must fail.

use std::time::Duration;

use ollama_emulator::{Emulator, EmulatorConfig};
use sovereign_ollama::check::{self, CheckOptions, CheckReport, Outcome};

/// Every check the engine runs, in order. A new check must be added here on purpose.
const ALL_CHECKS: &[&str] = &[
    "health",
    "native.tags",
    "native.show",
    "native.generate",
    "native.generate.stream",
    "native.chat",
    "native.chat.stream",
    "native.ps",
    "native.context",
    "native.chat.schema",
    "native.embed",
    "native.embeddings",
    "openai.models",
    "openai.model",
    "openai.chat",
    "openai.chat.stream",
    "openai.chat.usage",
    "openai.chat.json",
    "openai.chat.tools",
    "openai.chat.schema",
    "openai.chat.tools.stream",
    "openai.chat.tools.result",
    "openai.completions.suffix",
    "openai.embeddings",
    "openai.responses",
    "openai.responses.stream",
    "openai.responses.tool_result",
    "anthropic.messages",
    "anthropic.messages.stream",
    "anthropic.system",
    "anthropic.tools",
    "anthropic.tools.stream",
    "anthropic.tools.result",
    "errors.unknown_model.native",
    "errors.unknown_model.openai",
    "errors.unknown_model.anthropic",
    "errors.malformed_json.native",
    "errors.malformed_json.openai",
    "errors.origin",
    "native.keep_alive",
];

/// A chat model and an embedding model: what a working server has.
fn with_embeddings() -> EmulatorConfig {
    EmulatorConfig {
        models: vec!["toy".into(), "nomic-embed-text".into()],
        ..EmulatorConfig::default()
    }
}

fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start("127.0.0.1:0", config).expect("emulator starts")
}

fn options(url: String) -> CheckOptions {
    CheckOptions {
        url,
        request_timeout: Duration::from_secs(20),
        overall_timeout: Duration::from_secs(120),
        ..CheckOptions::default()
    }
}

fn outcome<'r>(report: &'r CheckReport, id: &str) -> &'r Outcome {
    &report
        .checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#?}"))
        .outcome
}

fn failures(report: &CheckReport) -> Vec<String> {
    report
        .checks
        .iter()
        .filter_map(|c| match &c.outcome {
            Outcome::Fail { reason } => Some(format!("{}: {reason}", c.id)),
            _ => None,
        })
        .collect()
}

#[test]
fn every_check_passes_against_the_newest_emulated_release() {
    let emulator = start(with_embeddings());
    let report = check::run(&options(emulator.base_url()));
    let ids: Vec<&str> = report.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ALL_CHECKS);
    assert!(
        report.passed(),
        "failures: {:#?}\n{}",
        failures(&report),
        check::render_table(&report)
    );
    assert_eq!(
        report.summary.skipped,
        0,
        "{}",
        check::render_table(&report)
    );
    assert_eq!(
        report.server_version.as_deref(),
        Some(ollama_emulator::DEFAULT_VERSION)
    );
    assert_eq!(report.model.as_deref(), Some("toy:latest"));
    for streamed in [
        "native.generate.stream",
        "native.chat.stream",
        "openai.chat.stream",
        "openai.responses.stream",
        "anthropic.messages.stream",
    ] {
        let check = report.checks.iter().find(|c| c.id == streamed).unwrap();
        let stats = check
            .generation
            .as_ref()
            .unwrap_or_else(|| panic!("{streamed} has no generation stats"));
        assert!(stats.ttft_ms.is_some(), "{streamed} has no TTFT");
    }
}

#[test]
fn report_serializes_to_json_with_outcomes_flattened() {
    let emulator = start(EmulatorConfig::default());
    let report = check::run(&options(emulator.base_url()));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["checks"][0]["id"], "health");
    assert_eq!(json["checks"][0]["status"], "pass");
    assert_eq!(json["summary"]["failed"], 0);
    let back: CheckReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

#[test]
fn an_older_server_skips_what_it_lacks_instead_of_failing() {
    let emulator = start(EmulatorConfig {
        version: "0.13.0".into(),
        ..with_embeddings()
    });
    let report = check::run(&options(emulator.base_url()));
    assert!(report.passed(), "failures: {:#?}", failures(&report));
    for id in [
        "openai.responses",
        "openai.responses.stream",
        "openai.responses.tool_result",
        "anthropic.messages",
        "anthropic.messages.stream",
        "anthropic.system",
        "anthropic.tools",
        "anthropic.tools.stream",
        "anthropic.tools.result",
        "errors.unknown_model.anthropic",
    ] {
        match outcome(&report, id) {
            Outcome::Skip { reason } => {
                assert!(reason.contains("not available in 0.13.0"), "{id}: {reason}")
            }
            other => panic!("{id} should be skipped on 0.13.0, got {other:?}"),
        }
    }
    assert_eq!(outcome(&report, "openai.chat"), &Outcome::Pass);
}

#[test]
fn responses_open_at_0_13_3_while_messages_stay_closed() {
    let emulator = start(EmulatorConfig {
        version: "0.13.3".into(),
        ..EmulatorConfig::default()
    });
    let report = check::run(&options(emulator.base_url()));
    assert!(report.passed(), "failures: {:#?}", failures(&report));
    assert_eq!(outcome(&report, "openai.responses.stream"), &Outcome::Pass);
    assert!(matches!(
        outcome(&report, "anthropic.messages"),
        Outcome::Skip { .. }
    ));
}

#[test]
fn a_permissive_origin_policy_fails_the_origin_check() {
    let emulator = start(EmulatorConfig {
        extra_origins: vec!["*".into()],
        ..EmulatorConfig::default()
    });
    let report = check::run(&options(emulator.base_url()));
    assert!(!report.passed());
    match outcome(&report, "errors.origin") {
        Outcome::Fail { reason } => assert!(reason.contains("expected 403"), "{reason}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(failures(&report).len(), 1, "{:#?}", failures(&report));
}

#[test]
fn a_named_model_that_is_not_installed_fails() {
    let emulator = start(EmulatorConfig::default());
    let mut opts = options(emulator.base_url());
    opts.model = Some("llama3.2".into());
    let report = check::run(&opts);
    assert!(!report.passed());
    match outcome(&report, "native.tags") {
        Outcome::Fail { reason } => assert!(reason.contains("not installed"), "{reason}"),
        other => panic!("expected failure, got {other:?}"),
    }
    // The generations then run against the missing model and fail with Ollama's 404.
    match outcome(&report, "native.chat") {
        Outcome::Fail { reason } => assert!(reason.contains("404"), "{reason}"),
        other => panic!("expected failure, got {other:?}"),
    }
}

#[test]
fn a_server_without_models_fails_and_skips_generations() {
    let emulator = start(EmulatorConfig {
        models: vec![],
        ..EmulatorConfig::default()
    });
    let report = check::run(&options(emulator.base_url()));
    assert!(!report.passed());
    assert!(matches!(
        outcome(&report, "native.tags"),
        Outcome::Fail { .. }
    ));
    match outcome(&report, "openai.chat") {
        Outcome::Skip { reason } => assert!(reason.contains("no model"), "{reason}"),
        other => panic!("expected skip, got {other:?}"),
    }
    // Error behaviour does not need a model.
    assert_eq!(
        outcome(&report, "errors.unknown_model.native"),
        &Outcome::Pass
    );
}

#[test]
fn an_explicit_model_is_used_with_tag_shorthand() {
    let emulator = start(EmulatorConfig {
        models: vec!["alpha".into(), "beta:7b".into()],
        ..EmulatorConfig::default()
    });
    let mut opts = options(emulator.base_url());
    opts.model = Some("beta:7b".into());
    let report = check::run(&opts);
    assert!(report.passed(), "failures: {:#?}", failures(&report));
    assert_eq!(report.model.as_deref(), Some("beta:7b"));
}

#[test]
fn nothing_listening_fails_health_and_skips_the_rest() {
    // Bind then drop to get a port with nobody on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let report = check::run(&options(format!("http://127.0.0.1:{port}")));
    assert!(!report.passed());
    match outcome(&report, "health") {
        Outcome::Fail { reason } => assert!(reason.contains("cannot connect"), "{reason}"),
        other => panic!("expected failure, got {other:?}"),
    }
    assert_eq!(report.summary.failed, 1);
    assert_eq!(report.summary.skipped, ALL_CHECKS.len() - 1);
    match outcome(&report, "health") {
        Outcome::Fail { reason } => assert!(reason.contains("sovereign doctor"), "{reason}"),
        other => panic!("expected failure, got {other:?}"),
    }
}

#[test]
fn an_https_url_is_refused_with_a_clear_reason() {
    let report = check::run(&options("https://example.invalid".into()));
    assert!(!report.passed());
    match outcome(&report, "health") {
        Outcome::Fail { reason } => assert!(reason.contains("https is not supported"), "{reason}"),
        other => panic!("expected failure, got {other:?}"),
    }
}

/// Every kind of model a real server holds: the check must pick the chat model.
const MIXED_MODELS: &[&str] = &[
    "nomic-embed-text",
    "gpt-oss:120b-cloud",
    "qwen3:8b",
    "llama2",
    "llava",
    "toy",
];

/// Skips a version may have: features it does not have yet. Anything else is a bug.
fn only_version_skips(report: &CheckReport, extra_ok: &[&str]) {
    for check in &report.checks {
        if let Outcome::Skip { reason } = &check.outcome {
            assert!(
                reason.contains("not available in") || extra_ok.contains(&check.id.as_str()),
                "{} skipped: {reason}\n{}",
                check.id,
                check::render_table(report)
            );
        }
    }
}

#[test]
fn every_profile_passes_with_every_kind_of_model_installed() {
    for profile in ollama_emulator::PROFILES {
        for version in [profile.version, profile.through] {
            let emulator = start(EmulatorConfig {
                version: version.into(),
                models: MIXED_MODELS.iter().map(|m| m.to_string()).collect(),
                ..EmulatorConfig::default()
            });
            let report = check::run(&options(emulator.base_url()));
            assert!(
                report.passed(),
                "Ollama {version}: {:#?}\n{}",
                failures(&report),
                check::render_table(&report)
            );
            // qwen3 thinks by default and is the first local chat model with tools.
            assert_eq!(report.model.as_deref(), Some("qwen3:8b"), "{version}");
            // qwen3 has no `insert`, so fill-in-the-middle is skipped, not failed.
            only_version_skips(&report, &["openai.completions.suffix"]);
            assert_eq!(
                outcome(&report, "native.embed"),
                &Outcome::Pass,
                "{version}"
            );
            // think: false took effect: a thinking qwen3 would spend all 32 tokens
            // thinking and stop with "length".
            for id in ["native.chat", "native.generate"] {
                let check = report.checks.iter().find(|c| c.id == id).unwrap();
                assert_eq!(
                    check.detail.as_deref(),
                    Some("done_reason stop"),
                    "{id} at {version}"
                );
            }
        }
    }
}

#[test]
fn every_profile_passes_with_a_plain_chat_model() {
    for profile in ollama_emulator::PROFILES {
        let emulator = start(EmulatorConfig {
            version: profile.version.into(),
            ..with_embeddings()
        });
        let report = check::run(&options(emulator.base_url()));
        assert!(
            report.passed(),
            "Ollama {}: {:#?}",
            profile.version,
            failures(&report)
        );
        only_version_skips(&report, &[]);
    }
}

#[test]
fn a_model_without_tools_skips_the_tool_checks() {
    let emulator = start(EmulatorConfig {
        models: vec!["llama2".into()],
        ..EmulatorConfig::default()
    });
    let report = check::run(&options(emulator.base_url()));
    assert!(report.passed(), "{:#?}", failures(&report));
    for id in [
        "openai.chat.tools",
        "openai.chat.tools.stream",
        "anthropic.tools.stream",
        "openai.responses.tool_result",
    ] {
        match outcome(&report, id) {
            Outcome::Skip { reason } => assert!(reason.contains("tools"), "{id}: {reason}"),
            other => panic!("{id}: {other:?}"),
        }
    }
    match outcome(&report, "native.embed") {
        Outcome::Skip { reason } => assert!(reason.contains("no embedding model"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_embedding_and_cloud_models_fail_the_choice_but_embeddings_run() {
    let emulator = start(EmulatorConfig {
        models: vec!["gpt-oss:120b-cloud".into(), "nomic-embed-text".into()],
        ..EmulatorConfig::default()
    });
    let report = check::run(&options(emulator.base_url()));
    match outcome(&report, "native.tags") {
        Outcome::Fail { reason } => assert!(reason.contains("no local chat model"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome(&report, "native.embed"), &Outcome::Pass);
    assert_eq!(outcome(&report, "openai.embeddings"), &Outcome::Pass);
    assert!(matches!(
        outcome(&report, "openai.chat"),
        Outcome::Skip { .. }
    ));
    // Only the choice itself fails; nothing is sent to a model that cannot chat.
    assert_eq!(failures(&report).len(), 1, "{:#?}", failures(&report));
}

#[test]
fn a_namespaced_model_is_not_looked_up_under_v1_models() {
    let emulator = start(EmulatorConfig {
        models: vec!["me/toy:7b".into()],
        ..EmulatorConfig::default()
    });
    let report = check::run(&options(emulator.base_url()));
    assert!(report.passed(), "{:#?}", failures(&report));
    let check = report
        .checks
        .iter()
        .find(|c| c.id == "openai.model")
        .unwrap();
    assert!(
        check
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("one path segment"),
        "{check:?}"
    );
}

#[test]
fn no_models_is_data_null_and_not_a_decode_error() {
    let emulator = start(EmulatorConfig {
        models: vec![],
        ..EmulatorConfig::default()
    });
    let report = check::run(&options(emulator.base_url()));
    assert_eq!(outcome(&report, "openai.models"), &Outcome::Pass);
}

#[test]
fn a_short_context_fails_naming_the_setting() {
    let emulator = start(EmulatorConfig {
        context_length: 4096,
        ..with_embeddings()
    });
    let report = check::run(&options(emulator.base_url()));
    match outcome(&report, "native.context") {
        Outcome::Fail { reason } => {
            assert!(reason.contains("OLLAMA_CONTEXT_LENGTH=65536"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(failures(&report).len(), 1, "{:#?}", failures(&report));
}

#[test]
fn an_embedding_model_named_with_model_fails_once_and_still_embeds() {
    let emulator = start(with_embeddings());
    let mut opts = options(emulator.base_url());
    opts.model = Some("nomic-embed-text".into());
    let report = check::run(&opts);
    match outcome(&report, "native.show") {
        Outcome::Fail { reason } => assert!(reason.contains("cannot chat"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        outcome(&report, "native.chat"),
        Outcome::Skip { .. }
    ));
    assert_eq!(outcome(&report, "native.embed"), &Outcome::Pass);
    assert_eq!(failures(&report).len(), 1, "{:#?}", failures(&report));
}

#[test]
fn a_very_old_server_skips_embeddings_and_schemas_by_version() {
    let emulator = start(EmulatorConfig {
        version: "0.2.0".into(),
        ..with_embeddings()
    });
    let report = check::run(&options(emulator.base_url()));
    assert!(report.passed(), "{:#?}", failures(&report));
    for id in [
        "native.embed",
        "openai.embeddings",
        "native.chat.schema",
        "openai.chat.schema",
        "openai.completions.suffix",
        "native.context",
    ] {
        match outcome(&report, id) {
            Outcome::Skip { reason } => {
                assert!(reason.contains("not available in 0.2.0"), "{id}: {reason}")
            }
            other => panic!("{id}: {other:?}"),
        }
    }
}
