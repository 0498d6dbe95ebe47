//! `warm`: pull each model, then load it with a keep-alive so it stays resident.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use sovereign_ollama::Client;
use sovereign_ollama::types::native::{KeepAlive, PullProgress};

/// Receives `/api/pull` progress and the warm-up milestones.
pub trait WarmObserver {
    fn pulling(&mut self, model: &str, progress: &PullProgress);
    fn loading(&mut self, model: &str);
    fn finished(&mut self, outcome: &WarmOutcome);
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WarmOutcome {
    pub model: String,
    pub pulled: bool,
    pub loaded: bool,
    pub error: Option<String>,
}

/// `OLLAMA_KEEP_ALIVE` syntax: plain seconds or a Go duration.
pub fn keep_alive(value: &str) -> KeepAlive {
    match value.trim().parse::<i64>() {
        Ok(seconds) => KeepAlive::Seconds(seconds),
        Err(_) => KeepAlive::Duration(value.trim().to_string()),
    }
}

/// Pulls and loads every model; one failure does not stop the others.
pub fn warm(
    client: &Client,
    models: &[String],
    keep_alive_value: &str,
    observer: &mut dyn WarmObserver,
) -> Vec<WarmOutcome> {
    // Loading a large model from disk takes minutes; a pull's budget is per progress line.
    let loader = client.clone().with_timeout(Duration::from_secs(15 * 60));
    models
        .iter()
        .map(|model| {
            let mut outcome = WarmOutcome {
                model: model.clone(),
                pulled: false,
                loaded: false,
                error: None,
            };
            match client.pull(model, |progress| observer.pulling(model, progress)) {
                Ok(()) => outcome.pulled = true,
                Err(error) => outcome.error = Some(format!("pull failed: {error}")),
            }
            if outcome.pulled {
                observer.loading(model);
                match loader.warm(model, keep_alive(keep_alive_value)) {
                    Ok(_) => outcome.loaded = true,
                    Err(error) => outcome.error = Some(format!("load failed: {error}")),
                }
            }
            observer.finished(&outcome);
            outcome
        })
        .collect()
}

/// Progress bars on stderr, one per layer being downloaded. When stderr is not a
/// terminal indicatif draws nothing, so status lines are printed instead.
pub struct ProgressBars {
    multi: MultiProgress,
    layers: BTreeMap<String, ProgressBar>,
    status: Option<ProgressBar>,
    plain: bool,
    last_line: String,
}

impl ProgressBars {
    pub fn new() -> ProgressBars {
        let target = ProgressDrawTarget::stderr();
        let plain = target.is_hidden();
        ProgressBars {
            multi: MultiProgress::with_draw_target(target),
            layers: BTreeMap::new(),
            status: None,
            plain,
            last_line: String::new(),
        }
    }

    fn status_line(&mut self, line: String) {
        if self.plain {
            if line != self.last_line {
                eprintln!("{line}");
                self.last_line = line;
            }
            return;
        }
        let bar = self.status.get_or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        bar.set_message(line);
    }
}

impl Default for ProgressBars {
    fn default() -> Self {
        ProgressBars::new()
    }
}

impl WarmObserver for ProgressBars {
    fn pulling(&mut self, model: &str, progress: &PullProgress) {
        let (Some(digest), Some(total)) = (&progress.digest, progress.total) else {
            self.status_line(format!("{model}: {}", progress.status));
            return;
        };
        if self.plain {
            return;
        }
        let short: String = digest
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        let multi = &self.multi;
        let bar = self.layers.entry(digest.clone()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{model} {short}"));
            bar
        });
        bar.set_length(total);
        bar.set_position(progress.completed.unwrap_or(0));
    }

    fn loading(&mut self, model: &str) {
        for bar in std::mem::take(&mut self.layers).into_values() {
            bar.finish();
        }
        self.status_line(format!("{model}: loading into memory"));
    }

    fn finished(&mut self, outcome: &WarmOutcome) {
        if let Some(bar) = self.status.take() {
            bar.finish_and_clear();
        }
        let line = match &outcome.error {
            None => format!("{}: ready (pulled and resident)", outcome.model),
            Some(error) => format!("{}: FAILED: {error}", outcome.model),
        };
        let _ = self.multi.println(&line);
        if self.plain {
            eprintln!("{line}");
        }
    }
}
