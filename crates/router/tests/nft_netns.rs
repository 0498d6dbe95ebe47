//! Root tests: the rendered ruleset loads into a real nftables (fresh network
//! namespaces), `nft -c` accepts it, loading it twice changes nothing, and the
//! JSON and the text form produce the same ruleset, which proves the text
//! printer faithful. Without root or nft they skip with a reason, except under
//! CI=true, where a missing prerequisite fails.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use sovereign_model::RouterTarget;
use sovereign_router::render;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace this test created, deleted on drop (also on panic).
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        // `sr<pid><n>` is unique per process and short enough for the 15-char limit.
        let name = format!(
            "sr{}n{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]).expect("ip netns add");
        Netns(name)
    }

    fn nft(&self, args: &[&str]) -> Result<String, String> {
        let mut full = vec!["netns", "exec", &self.0, "nft"];
        full.extend_from_slice(args);
        run("ip", &full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

/// A scratch file removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str, contents: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!(
            "sovereign-router-{}-{}-{label}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        Scratch(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `nft -j list ruleset` without what differs between loads (handles, metainfo).
fn listed(ns: &Netns) -> serde_json::Value {
    let text = ns.nft(&["-j", "list", "ruleset"]).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    strip_handles(&mut value);
    let objects = value["nftables"].as_array_mut().unwrap();
    objects.retain(|o| o.get("metainfo").is_none());
    value
}

fn strip_handles(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("handle");
            map.values_mut().for_each(strip_handles);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_handles),
        _ => {}
    }
}

#[test]
fn json_and_text_load_to_the_same_ruleset_and_reload_idempotently() {
    if !sovereign_testkit::require("nft_netns", &["nft", "ip"], true) {
        return;
    }
    for (name, d) in common::variants() {
        let rendering = render(&d, &common::secrets(&d), RouterTarget::Linux).unwrap();
        let json = Scratch::new(
            "ruleset.json",
            &rendering.file("nftables.json").unwrap().contents,
        );
        let text = Scratch::new(
            "ruleset.nft",
            &rendering.file("nftables.nft").unwrap().contents,
        );

        let check = Netns::new();
        check
            .nft(&["-c", "-f", text.path()])
            .unwrap_or_else(|e| panic!("{name}: nft -c -f: {e}"));
        check
            .nft(&["-c", "-j", "-f", json.path()])
            .unwrap_or_else(|e| panic!("{name}: nft -c -j -f: {e}"));

        let from_json = Netns::new();
        from_json
            .nft(&["-j", "-f", json.path()])
            .unwrap_or_else(|e| panic!("{name}: nft -j -f: {e}"));
        let first = listed(&from_json);
        from_json
            .nft(&["-j", "-f", json.path()])
            .unwrap_or_else(|e| panic!("{name}: second load: {e}"));
        assert_eq!(
            first,
            listed(&from_json),
            "{name}: loading twice changed the ruleset"
        );

        let from_text = Netns::new();
        from_text
            .nft(&["-f", text.path()])
            .unwrap_or_else(|e| panic!("{name}: nft -f: {e}"));
        from_text
            .nft(&["-f", text.path()])
            .unwrap_or_else(|e| panic!("{name}: second text load: {e}"));
        assert_eq!(
            first,
            listed(&from_text),
            "{name}: the text form differs from the JSON form"
        );

        let rules = first["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o.get("rule").is_some())
            .count();
        assert!(rules > 20, "{name}: only {rules} rules loaded");
    }
}

#[test]
fn the_comparison_notices_a_different_ruleset() {
    if !sovereign_testkit::require("nft_netns", &["nft", "ip"], true) {
        return;
    }
    let d = common::with_peers(1);
    let mut other = d.clone();
    other.policy.vpn_ssh = true;
    let load = |d: &sovereign_model::Deployment| {
        let rendering = render(d, &common::secrets(d), RouterTarget::Linux).unwrap();
        let json = Scratch::new(
            "cmp.json",
            &rendering.file("nftables.json").unwrap().contents,
        );
        let ns = Netns::new();
        ns.nft(&["-j", "-f", json.path()]).unwrap();
        listed(&ns)
    };
    assert_ne!(load(&d), load(&other));
}
