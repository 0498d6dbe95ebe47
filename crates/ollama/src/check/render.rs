//! The human summary table for `sovereign check`.

use std::fmt::Write;

use super::{CheckReport, Outcome};

/// Renders the report as a plain-text table with a summary line.
pub fn render_table(report: &CheckReport) -> String {
    let id_width = report
        .checks
        .iter()
        .map(|c| c.id.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<id_width$}  {:<6}  {:>9}  {:>9}  {:>7}  DETAIL",
        "CHECK", "RESULT", "LATENCY", "TTFT", "TOK/S"
    );
    for check in &report.checks {
        let (result, detail) = match &check.outcome {
            Outcome::Pass => ("pass", check.detail.clone().unwrap_or_default()),
            Outcome::Fail { reason } => ("FAIL", reason.clone()),
            Outcome::Skip { reason } => ("skip", reason.clone()),
        };
        let generation = check.generation.as_ref();
        let _ = writeln!(
            out,
            "{:<id_width$}  {:<6}  {:>9}  {:>9}  {:>7}  {}",
            check.id,
            result,
            check.latency_ms.map(format_ms).unwrap_or_default(),
            generation
                .and_then(|g| g.ttft_ms)
                .map(format_ms)
                .unwrap_or_default(),
            generation
                .and_then(|g| g.tokens_per_second)
                .map(|t| format!("{t:.1}"))
                .unwrap_or_default(),
            detail
        );
    }
    let s = report.summary;
    let _ = write!(
        out,
        "\n{} checks: {} passed, {} failed, {} skipped in {}",
        s.passed + s.failed + s.skipped,
        s.passed,
        s.failed,
        s.skipped,
        format_ms(report.duration_ms)
    );
    let _ = write!(out, "; server {}", report.url);
    if let Some(version) = &report.server_version {
        let _ = write!(out, " (Ollama {version})");
    }
    if let Some(model) = &report.model {
        let _ = write!(out, ", model {model}");
    }
    out.push('\n');
    out
}

fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{ms:.1}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CheckResult, Family, GenerationStats, Summary};
    use super::*;

    #[test]
    fn table_shows_every_outcome_and_the_summary() {
        let check = |id: &str, outcome, gen_stats| CheckResult {
            id: id.into(),
            family: Family::Native,
            description: String::new(),
            outcome,
            latency_ms: Some(12.5),
            generation: gen_stats,
            detail: Some("fine".into()),
        };
        let report = CheckReport {
            url: "http://h:11434".into(),
            server_version: Some("0.14.0".into()),
            model: Some("toy:latest".into()),
            duration_ms: 1500.0,
            summary: Summary {
                passed: 1,
                failed: 1,
                skipped: 1,
            },
            checks: vec![
                check(
                    "a",
                    Outcome::Pass,
                    Some(GenerationStats {
                        ttft_ms: Some(3.0),
                        output_tokens: Some(4),
                        tokens_per_second: Some(50.0),
                    }),
                ),
                check(
                    "b.long.id",
                    Outcome::Fail {
                        reason: "broken".into(),
                    },
                    None,
                ),
                check(
                    "c",
                    Outcome::Skip {
                        reason: "old".into(),
                    },
                    None,
                ),
            ],
        };
        let table = render_table(&report);
        assert!(
            table.contains("a          pass       12.5ms      3.0ms     50.0  fine"),
            "{table}"
        );
        assert!(table.contains("b.long.id  FAIL"), "{table}");
        assert!(table.contains("broken"));
        assert!(table.contains("3 checks: 1 passed, 1 failed, 1 skipped in 1.50s; server http://h:11434 (Ollama 0.14.0), model toy:latest"));
    }
}
