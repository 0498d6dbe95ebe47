//! `sovereign demo` end to end (root, the lab's tools): it passes, fits 100 columns,
//! groups the control run, and ends with the next step.

use std::process::Command;

#[test]
fn the_demo_passes_fits_100_columns_and_says_what_next() {
    if !sovereign_lab::prereq::available_or_skip("the_demo_fits_100_columns") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sovereign"))
        .args(["demo", "--no-install"])
        .current_dir(dir.path())
        .env_remove("SOVEREIGN_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let wide: Vec<&str> = text.lines().filter(|l| l.chars().count() > 100).collect();
    assert!(wide.is_empty(), "lines over 100 columns: {wide:#?}");
    assert!(text.contains("control run, firewall flushed"), "{text}");
    assert!(text.contains("Next: `sovereign init --endpoint"), "{text}");
    assert!(text.lines().count() < 100, "{} lines", text.lines().count());
}
