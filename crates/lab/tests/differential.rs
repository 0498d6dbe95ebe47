//! Issue 7's differential test: the static verifier's prediction equals what the
//! live lab observes, probe by probe, for the rendered ruleset and for many randomly
//! mutated ones loaded into the lab router. Needs root and the lab's tools: skipped
//! with a printed reason locally, a failure with CI=true.
//!
//! What "equal" means is in `sovereign_lab::differential`: open, rejected and dropped
//! must match exactly, except where the probe cannot tell rejected from dropped (the
//! WireGuard probe, and a TCP connection that opens but whose request is refused).
//! Two things that would make static and live differ for reasons outside the
//! ruleset are removed in the lab, not papered over here: ICMP rate limits are off in
//! the router namespace (a burst of rejects would otherwise turn into timeouts), and
//! a connect() that falsely succeeds through the userspace tunnel is not taken as
//! open (probes confirm at the application level).

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;
use sovereign_lab::differential::{self, Agreement, StaticVerdict, classify};
use sovereign_lab::mutate::{self, Kind, Palette, Rng};
use sovereign_lab::probe::{self, Observation, ProbeSpec};
use sovereign_lab::{Lab, prereq, slot};
use sovereign_model::{Deployment, Isolation};
use sovereign_verify::Ruleset;

/// At least this many mutants must load (issue 7 asks for 50).
const MUTANTS: usize = 50;
/// Give up drawing mutants after this many attempts (nft refuses some).
const ATTEMPTS: usize = 300;

fn with_admin_host() -> Deployment {
    let mut d = Deployment::reference();
    d.policy.admin_hosts = vec!["192.168.250.10".parse().unwrap()];
    d
}

struct Judged {
    observed: Vec<Observation>,
    verdicts: Vec<StaticVerdict>,
    agreement: Agreement,
}

/// One round of probes against what the router runs now, and the verifier's
/// predictions for it from `nft -j list ruleset` read back from the router.
/// `file`: the document that was loaded; the verifier must read it the same way.
fn judge(lab: &Lab, specs: &[ProbeSpec], first_port: u16, file: &str) -> Judged {
    let round = probe::observe(lab, specs, Some(first_port)).unwrap();
    let listed = lab.list_ruleset().unwrap();
    let predict = |json: &str| {
        let ruleset = Ruleset::parse_json(json).unwrap();
        differential::predict(
            &ruleset,
            lab.topology(),
            specs,
            &round.underlays,
            &round.source_ports,
        )
    };
    let verdicts = predict(&listed);
    let from_file = predict(file);
    let mut agreement = differential::compare(specs, &verdicts, &round.observed);
    for ((spec, listed), loaded) in specs.iter().zip(&verdicts).zip(&from_file) {
        if listed.prediction != loaded.prediction {
            agreement.disagreements.push(format!(
                "{}: the verifier reads the loaded file ({}) and nft's listing of it ({}) differently",
                spec.method.describe(spec.src),
                loaded.prediction.label(),
                listed.prediction.label()
            ));
        }
    }
    Judged {
        observed: round.observed,
        verdicts,
        agreement,
    }
}

fn first_port(round: usize) -> u16 {
    20000 + 16 * round as u16
}

fn seed() -> u64 {
    match std::env::var("SOVEREIGN_MUTATION_SEED") {
        Ok(text) => text.parse().expect("SOVEREIGN_MUTATION_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

#[test]
fn the_static_verifier_agrees_with_the_live_lab_on_rendered_and_mutated_rulesets() {
    if !prereq::available_or_skip("the_static_verifier_agrees_with_the_live_lab") {
        return;
    }
    let seed = seed();
    println!("mutation seed {seed} (rerun with SOVEREIGN_MUTATION_SEED={seed})");
    let _slot = slot::acquire().unwrap();
    let started = Instant::now();
    let lab = Lab::up(&with_admin_host(), common::options('d', 2)).unwrap();
    let (specs, _) = probe::plan(lab.topology());
    let rendered_text = std::fs::read_to_string(lab.router_dir().join("nftables.json")).unwrap();
    let rendered: Value = serde_json::from_str(&rendered_text).unwrap();

    // The control round: with the ruleset flushed every probe opens, so no later
    // "closed" comes from a missing listener or route (and neighbour caches are warm).
    lab.flush_ruleset().unwrap();
    let control = probe::observe(&lab, &specs, Some(first_port(0))).unwrap();
    lab.restore_ruleset().unwrap();
    for (spec, seen) in specs.iter().zip(&control.observed) {
        assert!(
            seen.is_open(),
            "control: {} {}",
            spec.method.describe(spec.src),
            seen.label()
        );
    }
    let baseline = judge(&lab, &specs, first_port(1), &rendered_text);
    assert!(
        baseline.agreement.disagreements.is_empty(),
        "rendered ruleset:\n{}",
        baseline.agreement.disagreements.join("\n")
    );
    // The baseline must hold every kind of answer, or the comparison is weak.
    let kinds: std::collections::BTreeSet<_> =
        baseline.observed.iter().filter_map(classify).collect();
    assert_eq!(kinds.len(), 3, "open, rejected and dropped: {kinds:?}");
    let baseline_classes: Vec<_> = baseline.observed.iter().map(classify).collect();

    let d = &lab.topology().deployment;
    let palette = Palette {
        ports: vec![22, 53, 80, 8080, d.server.api_port, d.wireguard.listen_port],
        interfaces: vec![
            d.wan.interface.clone(),
            d.lan.interface.clone(),
            d.server.router_port.clone(),
            d.wireguard.interface.clone(),
        ],
    };
    let mutant_file = lab.state_dir().join("mutant.json");
    let mut rng = Rng::new(seed);
    let mut loaded = 0;
    let mut refused: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut by_kind: BTreeMap<Kind, (usize, usize)> = BTreeMap::new();
    let mut probes = baseline.agreement.probes;
    let mut failures = Vec::new();
    for _ in 0..ATTEMPTS {
        if loaded == MUTANTS {
            break;
        }
        let Some(mutant) = mutate::mutate(&rendered, &mut rng, &palette) else {
            continue;
        };
        let text = serde_json::to_string(&mutant.document).unwrap();
        std::fs::write(&mutant_file, &text).unwrap();
        if lab.load_ruleset(&mutant_file).is_err() {
            *refused.entry(mutant.kind).or_default() += 1;
            continue;
        }
        loaded += 1;
        let judged = judge(&lab, &specs, first_port(loaded + 1), &text);
        probes += judged.agreement.probes;
        let changed = judged
            .observed
            .iter()
            .map(classify)
            .ne(baseline_classes.iter().copied());
        let counts = by_kind.entry(mutant.kind).or_default();
        counts.0 += 1;
        counts.1 += usize::from(changed);
        if !judged.agreement.disagreements.is_empty() {
            failures.push(format!(
                "mutant {loaded} ({:?}: {}):\n  {}",
                mutant.kind,
                mutant.description,
                judged.agreement.disagreements.join("\n  ")
            ));
        }
        assert_eq!(judged.verdicts.len(), specs.len());
    }
    lab.restore_ruleset().unwrap();
    let changed: usize = by_kind.values().map(|(_, c)| c).sum();
    let refused_total: usize = refused.values().sum();
    println!(
        "{loaded} mutants loaded ({refused_total} refused by nft: {refused:?}), {changed} changed at least one cell; \
         {probes} probes compared in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for (kind, (count, changed)) in &by_kind {
        println!("  {kind:?}: {count} loaded, {changed} changed a cell");
    }
    assert!(
        failures.is_empty(),
        "seed {seed}: the verifier and the lab disagree:\n{}",
        failures.join("\n")
    );
    assert_eq!(loaded, MUTANTS, "too few mutants loaded");
    assert!(
        changed * 4 >= loaded,
        "only {changed} of {loaded} mutants changed what the probes see: the test proves little"
    );
}

#[test]
fn the_static_verifier_agrees_with_the_live_lab_on_other_policies() {
    if !prereq::available_or_skip("the_static_verifier_agrees_on_other_policies") {
        return;
    }
    let mut shared = with_admin_host();
    shared.server.isolation = Isolation::Shared;
    let mut open = Deployment::reference();
    open.policy.lan_api = true;
    open.policy.vpn_ssh = true;
    for (label, d) in [("shared", shared), ("lan_api and vpn_ssh", open)] {
        let _slot = slot::acquire().unwrap();
        let lab = Lab::up(&d, common::options('d', 2)).unwrap();
        let (specs, _) = probe::plan(lab.topology());
        let rendered = std::fs::read_to_string(lab.router_dir().join("nftables.json")).unwrap();
        lab.flush_ruleset().unwrap();
        let control = probe::observe(&lab, &specs, Some(first_port(0))).unwrap();
        lab.restore_ruleset().unwrap();
        assert!(
            control.observed.iter().all(Observation::is_open),
            "{label}: control"
        );
        let judged = judge(&lab, &specs, first_port(1), &rendered);
        assert!(
            judged.agreement.disagreements.is_empty(),
            "{label}:\n{}",
            judged.agreement.disagreements.join("\n")
        );
        assert_eq!(judged.agreement.agree, specs.len(), "{label}");
    }
}
