//! The OpenWrt path against recorded command transcripts: a fake transport
//! replays each expected script -> output exchange and fails on any command it
//! did not expect. Outputs are what OpenWrt's tools print (fw4 check's success
//! line is from /sbin/fw4; see research/anchors.md §B.1).
//!
//! To re-record after an intended change to the scripts, run with
//! SOVEREIGN_RECORD_TRANSCRIPTS=1, then read every changed transcript.

use std::cell::RefCell;
use std::path::PathBuf;

use sovereign_remote::replay::{Exchange, ReplayTransport, format_transcript, parse_transcript};
use sovereign_remote::{
    ApplyError, ApplyOptions, OPENWRT_SYSCTL_FILE, OpenwrtConfig, Output, RouterConfig, Step,
    Transport, TransportError, apply,
};

const STAGING: &str = "/tmp/sovereign-apply.Q7xK2p";

const SYSCTL_CONF: &str = "# Rendered by `sovereign router render`: proxy ARP for the server's own port.\n\
                           net.ipv4.conf.lan4.proxy_arp=1\n\
                           net.ipv4.conf.br-lan.proxy_arp=1\n";

/// Dedicated-port isolation: the batch plus the proxy-ARP sysctl file.
fn config() -> RouterConfig {
    let RouterConfig::Openwrt(shared) = shared_config() else {
        unreachable!()
    };
    RouterConfig::Openwrt(OpenwrtConfig {
        sysctl_conf: Some(SYSCTL_CONF.into()),
        ..shared
    })
}

/// Shared isolation renders no sysctl file. Obviously fake keys: this batch never
/// leaves the test.
fn shared_config() -> RouterConfig {
    RouterConfig::Openwrt(OpenwrtConfig {
        uci_batch: "set network.wg0=interface\n\
                    set network.wg0.proto='wireguard'\n\
                    set network.wg0.private_key='AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE='\n\
                    set network.wg0.listen_port='51820'\n\
                    set network.sovereign_peer_laptop=wireguard_wg0\n\
                    set network.sovereign_peer_laptop.public_key='AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='\n\
                    set network.sovereign_peer_laptop.allowed_ips='10.10.10.2/32'\n\
                    set firewall.sovereign_vpn=zone\n\
                    set firewall.sovereign_vpn.name='vpn'\n\
                    set dhcp.sovereign_server=host\n"
            .into(),
        wg_interface: "wg0".into(),
        sysctl_conf: None,
        wire_script: "#!/bin/sh\n# sovereign-wire.sh (stand-in)\n".into(),
    })
}

fn ok(stdout: &str) -> Output {
    Output {
        status: 0,
        stdout: stdout.into(),
        stderr: String::new(),
    }
}

fn failed(stdout: &str) -> Output {
    Output {
        status: 1,
        stdout: stdout.into(),
        stderr: String::new(),
    }
}

/// What an OpenWrt 23.05 router answers, by the script's `# sovereign:` line.
fn openwrt_answer(step: &str, overrides: &[(&str, Output)]) -> Output {
    if let Some((_, output)) = overrides.iter().find(|(s, _)| step.starts_with(s)) {
        return output.clone();
    }
    match step {
        s if s.starts_with("prepare") => ok(&format!("staging={STAGING}\n")),
        s if s.starts_with("validate") => ok("Ruleset passes nftables check.\n"),
        s if s.starts_with("snapshot") => ok(&format!(
            "snapshot: /etc/config/{{dhcp,firewall,network}}, {OPENWRT_SYSCTL_FILE} and the live values of its keys\n"
        )),
        s if s.starts_with("arm rollback") => ok("timer=4242\narmed=yes\n"),
        s if s.starts_with("apply") => ok(&format!(
            "applied: committed dhcp firewall network; reloaded netifd, wg0 peers and fw4; installed and loaded {OPENWRT_SYSCTL_FILE}\n"
        )),
        s if s.starts_with("reconnect") => ok("applied\n"),
        s if s.starts_with("confirm") => ok("confirmed=yes\n"),
        _ => ok(""),
    }
}

/// Answers like a router and records every exchange (recording mode only).
struct Recorder<'a> {
    overrides: &'a [(&'a str, Output)],
    exchanges: RefCell<Vec<Exchange>>,
}

impl Recorder<'_> {
    fn answer(&self, script: &str, stdin: &[u8], fresh: bool) -> Output {
        let step = script
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# sovereign: "))
            .unwrap_or("")
            .to_string();
        let output = openwrt_answer(&step, self.overrides);
        self.exchanges.borrow_mut().push(Exchange {
            label: step,
            script: script.into(),
            fresh,
            stdin_bytes: stdin.len(),
            output: output.clone(),
        });
        output
    }
}

impl Transport for Recorder<'_> {
    fn run(&self, script: &str, stdin: &[u8]) -> Result<Output, TransportError> {
        Ok(self.answer(script, stdin, false))
    }
    fn run_fresh(&self, script: &str) -> Result<Output, TransportError> {
        Ok(self.answer(script, &[], true))
    }
    fn describe(&self) -> String {
        "root@openwrt.test".into()
    }
}

fn transcript_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/transcripts")
        .join(format!("{name}.txt"))
}

/// Run `apply` against the recorded transcript `name` (or record it).
fn replay(
    name: &str,
    options: &ApplyOptions,
    overrides: &[(&str, Output)],
) -> (
    Result<sovereign_remote::ApplyReport, ApplyError>,
    Vec<Vec<u8>>,
) {
    replay_config(name, &config(), options, overrides)
}

/// [`replay`] with another config.
fn replay_config(
    name: &str,
    config: &RouterConfig,
    options: &ApplyOptions,
    overrides: &[(&str, Output)],
) -> (
    Result<sovereign_remote::ApplyReport, ApplyError>,
    Vec<Vec<u8>>,
) {
    let path = transcript_path(name);
    if std::env::var("SOVEREIGN_RECORD_TRANSCRIPTS").is_ok_and(|v| v == "1") {
        let recorder = Recorder {
            overrides,
            exchanges: RefCell::new(Vec::new()),
        };
        let _ = apply(&recorder, config, options);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format_transcript(&recorder.exchanges.borrow())).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (record with SOVEREIGN_RECORD_TRANSCRIPTS=1)",
            path.display()
        )
    });
    let transport = ReplayTransport::new(parse_transcript(&text).unwrap());
    let result = apply(&transport, config, options);
    if let Err(ApplyError::Transport { source, .. }) = &result {
        panic!("the engine left the transcript: {source}");
    }
    assert_eq!(
        transport.remaining(),
        0,
        "exchanges in {name} were never replayed"
    );
    let uploads = transport.uploads.borrow().clone();
    (result, uploads)
}

fn options() -> ApplyOptions {
    ApplyOptions::default()
}

/// The script of the first exchange in transcript `name` whose label starts with `label`.
fn script(name: &str, label: &str) -> String {
    let text = std::fs::read_to_string(transcript_path(name)).unwrap();
    parse_transcript(&text)
        .unwrap()
        .into_iter()
        .find(|e| e.label.starts_with(label))
        .unwrap_or_else(|| panic!("{name} has no {label} exchange"))
        .script
}

/// Byte offset of `needle` in `haystack`, failing the test when it is absent.
fn at(haystack: &str, needle: &str) -> usize {
    haystack
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in:\n{haystack}"))
}

#[test]
fn a_successful_apply_runs_every_step_in_order() {
    let (result, uploads) = replay("openwrt-apply", &options(), &[]);
    let report = result.expect("apply");
    let steps: Vec<Step> = report.steps.iter().map(|s| s.step).collect();
    assert_eq!(
        steps,
        [
            Step::Prepare,
            Step::Upload,
            Step::Snapshot,
            Step::Validate,
            Step::ArmRollback,
            Step::Apply,
            Step::Reconnect,
            Step::Confirm
        ]
    );
    let RouterConfig::Openwrt(c) = config() else {
        unreachable!()
    };
    assert!(
        uploads.iter().any(|u| u == c.uci_batch.as_bytes()),
        "the batch was uploaded verbatim"
    );
    assert!(
        uploads.iter().any(|u| u == SYSCTL_CONF.as_bytes()),
        "the sysctl file was uploaded verbatim"
    );
    assert!(report.steps[5].detail.contains(OPENWRT_SYSCTL_FILE));

    // The snapshot keeps the live file (or notes its absence) and the live values of
    // the keys either file sets.
    let snapshot = script("openwrt-apply", "snapshot");
    at(&snapshot, &format!("cp -p {OPENWRT_SYSCTL_FILE} "));
    at(&snapshot, "snapshot/sysctl.conf.absent");
    at(&snapshot, "sysctl -n \"$k\"");
    // Installed atomically after the commit and before the reload (hotplug applies
    // it to devices the reload creates), loaded after the reload.
    let apply_sh = script("openwrt-apply", "apply");
    let commit = at(&apply_sh, "uci commit");
    let install = at(
        &apply_sh,
        &format!("mv -f /etc/sysctl.d/.90-sovereign.conf.sovereign {OPENWRT_SYSCTL_FILE}\n"),
    );
    let reload = at(&apply_sh, "ubus call network reload");
    let firewall = at(&apply_sh, "fw4 reload");
    let load = at(&apply_sh, &format!("sysctl -p {OPENWRT_SYSCTL_FILE}"));
    assert!(commit < install && install < reload && firewall < load);
    assert!(!apply_sh.contains(&format!("rm -f {OPENWRT_SYSCTL_FILE}")));
}

#[test]
fn switching_to_shared_isolation_removes_the_sysctl_file_and_resets_its_keys() {
    let removed = ok(&format!(
        "applied: committed dhcp firewall network; reloaded netifd, wg0 peers and fw4; removed {OPENWRT_SYSCTL_FILE} and reset its keys to the defaults\n"
    ));
    let (result, uploads) = replay_config(
        "openwrt-switch-to-shared",
        &shared_config(),
        &options(),
        &[("apply", removed)],
    );
    let report = result.expect("apply");
    assert!(report.steps[5].detail.contains("removed"));
    assert!(
        !uploads.iter().any(|u| u == SYSCTL_CONF.as_bytes()),
        "nothing to install"
    );
    // The keys of the live file that the new config drops get the interface default.
    let snapshot = script("openwrt-switch-to-shared", "snapshot");
    at(&snapshot, "sysctl_default_key \"$k\"");
    at(&snapshot, "/sysctl.stale");
    let apply_sh = script("openwrt-switch-to-shared", "apply");
    let remove = at(&apply_sh, &format!("rm -f {OPENWRT_SYSCTL_FILE}"));
    let reload = at(&apply_sh, "ubus call network reload");
    let reset = at(
        &apply_sh,
        "sysctl -e -p /tmp/sovereign-apply.Q7xK2p/sysctl.stale",
    );
    assert!(remove < reload && reload < reset);
    assert!(!apply_sh.contains(&format!("sysctl -p {OPENWRT_SYSCTL_FILE}")));
}

#[test]
fn a_dry_run_shows_the_sysctl_file_diff_and_changes_nothing() {
    let preview = ok("### live network\n\
         config interface 'wg0'\n\toption proto 'wireguard'\n\
         ### staged network\n\
         config interface 'wg0'\n\toption proto 'wireguard'\n\
         ### live sysctl absent\n");
    let dry = ApplyOptions {
        dry_run: true,
        ..options()
    };
    let (result, _) = replay("openwrt-dry-run", &dry, &[("preview", preview)]);
    let diff = result.expect("dry run").diff.expect("a diff");
    assert_eq!(
        diff,
        format!(
            "--- {OPENWRT_SYSCTL_FILE} (absent)\n\
             +++ rendered etc/sysctl.d/90-sovereign.conf\n\
             @@ -0,0 +1,3 @@\n\
             +# Rendered by `sovereign router render`: proxy ARP for the server's own port.\n\
             +net.ipv4.conf.lan4.proxy_arp=1\n\
             +net.ipv4.conf.br-lan.proxy_arp=1\n"
        )
    );
    let text = std::fs::read_to_string(transcript_path("openwrt-dry-run")).unwrap();
    for exchange in parse_transcript(&text).unwrap() {
        assert!(
            !exchange.script.contains("uci commit \"$c\"")
                && !exchange.script.contains("mv -f /etc/sysctl.d"),
            "{} changes the router",
            exchange.label
        );
    }
}

#[test]
fn fw4_check_failure_reverts_the_staged_changes_and_changes_nothing() {
    let rejected = failed(
        "fw4 check rejected the firewall:\n/dev/stdin:212:3-18: Error: Could not process rule: No such file or directory\n",
    );
    let (result, _) = replay(
        "openwrt-fw4-check-fails",
        &options(),
        &[("validate", rejected)],
    );
    let error = result.unwrap_err();
    assert!(
        matches!(error, ApplyError::ValidationFailed { .. }),
        "{error}"
    );
    assert!(!error.rollback_armed());
    assert!(error.to_string().contains("Could not process rule"));
    // The transcript ends with the abort that reverts the uci deltas and unlocks.
    let text = std::fs::read_to_string(transcript_path("openwrt-fw4-check-fails")).unwrap();
    let last = parse_transcript(&text).unwrap().pop().unwrap();
    assert_eq!(last.label, "abort");
    assert!(last.script.contains("uci revert"));
    assert!(last.script.contains("rm -rf /tmp/sovereign-apply.lock"));
    // Staged into the private dir, but nothing touched /etc/sysctl.d or the kernel.
    let exchanges = parse_transcript(&text).unwrap();
    assert!(exchanges.iter().any(|e| e.label == "upload sysctl.conf"));
    for exchange in exchanges {
        if exchange.label.starts_with("snapshot") {
            // The snapshot (taken before validation) only reads them.
            for write in ["sysctl -p", "sysctl -w", "mv ", "rm ", "> /etc"] {
                assert!(
                    !exchange.script.contains(write),
                    "the snapshot runs `{write}`"
                );
            }
            continue;
        }
        assert!(
            !exchange.script.contains("/etc/sysctl.d") && !exchange.script.contains("sysctl -"),
            "{} touches sysctl",
            exchange.label
        );
    }
}

#[test]
fn a_lost_confirmation_leaves_the_rollback_armed_and_the_rollback_restores_everything() {
    let lost = ApplyOptions {
        simulate_lost_connection: true,
        ..options()
    };
    let (result, uploads) = replay("openwrt-rollback", &lost, &[]);
    let error = result.unwrap_err();
    assert!(error.rollback_armed(), "{error}");
    assert!(error.to_string().contains("within 60 s"));

    let rollback = uploads
        .iter()
        .map(|u| String::from_utf8_lossy(u).into_owned())
        .find(|u| u.contains("restore the OpenWrt config"))
        .expect("rollback.sh was uploaded");
    // The file comes back (or goes, if it was absent) before the reload, so hotplug
    // cannot re-apply the new one; the previous values come back after it.
    let restore = at(
        &rollback,
        &format!("mv -f /etc/sysctl.d/.90-sovereign.conf.sovereign {OPENWRT_SYSCTL_FILE}"),
    );
    let absent = at(&rollback, &format!("rm -f {OPENWRT_SYSCTL_FILE}"));
    let reload = at(&rollback, "ubus call network reload");
    let values = at(
        &rollback,
        "sysctl -e -p /tmp/sovereign-apply.Q7xK2p/snapshot/sysctl.previous",
    );
    assert!(restore < reload && absent < reload && reload < values);
    insta::assert_snapshot!("openwrt_rollback_sh", rollback);
    let timer = uploads
        .iter()
        .map(|u| String::from_utf8_lossy(u).into_owned())
        .find(|u| u.contains("rollback timer"))
        .expect("timer.sh was uploaded");
    insta::assert_snapshot!("rollback_timer_sh", timer);
}

#[test]
fn a_confirmation_after_the_timer_fired_reports_the_rollback() {
    let (result, _) = replay(
        "openwrt-confirm-too-late",
        &options(),
        &[("confirm", ok("confirmed=too-late\n"))],
    );
    let error = result.unwrap_err();
    assert!(
        matches!(
            error,
            ApplyError::RollbackArmed {
                step: Step::Confirm,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("--confirm-timeout"));
}

#[test]
fn a_router_without_fw4_is_refused_before_anything_is_staged() {
    let (result, _) = replay(
        "openwrt-missing-tools",
        &options(),
        &[("prepare", ok("missing=fw4 wg\n"))],
    );
    let error = result.unwrap_err();
    assert!(
        matches!(&error, ApplyError::MissingTools { missing, .. } if missing == &["fw4", "wg"]),
        "{error}"
    );
    assert!(error.to_string().contains("nothing was changed"));
}

#[test]
fn uncommitted_uci_changes_are_never_committed_for_someone_else() {
    let pending = ok(
        "problem=the router has uncommitted UCI changes in: firewall (from LuCI or uci set); commit them (uci commit) or drop them (uci revert CONFIG) first, so sovereign never commits someone else's edits\n",
    );
    let (result, _) = replay(
        "openwrt-pending-changes",
        &options(),
        &[("prepare", pending)],
    );
    let error = result.unwrap_err();
    assert!(matches!(error, ApplyError::Precondition(_)), "{error}");
    assert!(error.to_string().contains("uncommitted UCI changes"));
}
