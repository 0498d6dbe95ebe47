//! Golden files for both targets and every reference configuration. Secrets are
//! the fixed fake ones of `RouterSecrets::for_tests`, redacted before snapshotting.

mod common;

use sovereign_model::RouterTarget;
use sovereign_router::{Rendering, render, render_at};

fn snapshot_text(rendering: &Rendering, secrets: &sovereign_wg::RouterSecrets) -> String {
    let mut out = String::new();
    out += &format!(
        "isolation: enforceable={} ({:?})\n  {}\n\n",
        rendering.isolation.enforceable, rendering.isolation.mode, rendering.isolation.reason
    );
    for file in &rendering.files {
        out += &format!(
            "===== {} (secret: {}) — {}\n",
            file.path, file.secret, file.purpose
        );
        if file.path == "nftables.json" {
            // One command per line keeps the golden file reviewable.
            let doc: serde_json::Value = serde_json::from_str(&file.contents).unwrap();
            for object in doc["nftables"].as_array().unwrap() {
                out += &serde_json::to_string(object).unwrap();
                out.push('\n');
            }
        } else {
            out += &file.contents;
        }
        out.push('\n');
    }
    out += "===== checklist\n";
    for item in &rendering.checklist {
        out += &format!("- {item}\n");
    }
    secrets.redact(&out)
}

#[test]
fn golden_files_for_every_variant_and_target() {
    for (name, d) in common::variants() {
        let secrets = common::secrets(&d);
        for (target, label) in [
            (RouterTarget::Linux, "linux"),
            (RouterTarget::Openwrt, "openwrt"),
        ] {
            let rendering = render_at(&d, &secrets, target, common::now()).unwrap();
            let text = snapshot_text(&rendering, &secrets);
            assert!(
                !text.contains(&secrets.private_key.to_base64()),
                "{label}/{name}: the router key leaked into the snapshot"
            );
            insta::assert_snapshot!(format!("{label}_{name}"), text);
        }
    }
}

/// A disabled peer leaves the router exactly as a revoked one does (absent, its
/// OpenWrt section deleted), and enabling it gives back the all-active rendering.
#[test]
fn disable_renders_as_absent_and_enable_restores_the_rendering() {
    let all = sovereign_testkit::deployments::with_peers(3);
    let mut disabled = all.clone();
    disabled.peers[1].status = sovereign_model::PeerStatus::Disabled;
    let mut revoked = all.clone();
    revoked.peers[1].status = sovereign_model::PeerStatus::Revoked;
    let secrets = common::secrets(&all);
    for target in [RouterTarget::Linux, RouterTarget::Openwrt] {
        let files = |d| render(d, &secrets, target).unwrap().files;
        assert_eq!(files(&disabled), files(&revoked), "{target:?}");
        assert_ne!(files(&disabled), files(&all), "{target:?}");
        let mut enabled = disabled.clone();
        enabled.peers[1].status = sovereign_model::PeerStatus::Active;
        assert_eq!(files(&enabled), files(&all), "{target:?}");
        let text = snapshot_text(&render(&disabled, &secrets, target).unwrap(), &secrets);
        assert!(!text.contains(&all.peers[1].public_key), "{target:?}");
    }
}

/// An expired peer leaves the router as a disabled one does, at the clock given;
/// before its expiry it is there.
#[test]
fn expiry_takes_effect_at_the_given_clock() {
    let mut d = sovereign_testkit::deployments::with_peers(3);
    d.peers[1].expires = Some("2026-05-31T23:59:59Z".into());
    let mut disabled = d.clone();
    disabled.peers[1].status = sovereign_model::PeerStatus::Disabled;
    let secrets = common::secrets(&d);
    let before = humantime::parse_rfc3339("2026-05-31T23:59:58Z").unwrap();
    let at = humantime::parse_rfc3339("2026-05-31T23:59:59Z").unwrap();
    for target in [RouterTarget::Linux, RouterTarget::Openwrt] {
        let files = |d, now| render_at(d, &secrets, target, now).unwrap().files;
        assert_eq!(files(&d, at), files(&disabled, at), "{target:?}");
        let mut all = d.clone();
        all.peers[1].expires = None;
        assert_eq!(files(&d, before), files(&all, before), "{target:?}");
    }
}

/// A name the router may still hold from an earlier apply (a renamed or purged
/// peer) gets its OpenWrt section deleted; the Linux config is replaced whole anyway.
#[test]
fn openwrt_deletes_the_sections_of_retired_peer_names() {
    let d = sovereign_testkit::deployments::with_peers(1);
    let mut secrets = common::secrets(&d);
    secrets.retired_peers = vec!["laptop".into(), "peer-1".into()];
    let batch = render(&d, &secrets, RouterTarget::Openwrt)
        .unwrap()
        .file("sovereign.uci")
        .unwrap()
        .contents
        .clone();
    assert!(
        batch.contains("delete network.sovereign_peer_laptop\n"),
        "{batch}"
    );
    // A retired name that is a peer again is left to the peer's own section.
    assert!(
        batch.contains("set network.sovereign_peer_peer_1.public_key"),
        "{batch}"
    );
    assert_eq!(
        batch
            .matches("delete network.sovereign_peer_peer_1\n")
            .count(),
        1
    );
}
