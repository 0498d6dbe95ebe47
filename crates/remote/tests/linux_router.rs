//! apply, audit and status against a real Linux "router": a network namespace
//! with Debian's sshd, nftables and a userspace WireGuard interface, reached over
//! ssh with a lab-only key and a pinned host key. Root only: skipped locally with
//! a printed reason when prerequisites are missing, failed under CI=true.

use std::time::{Duration, Instant};

use sovereign_model::{Deployment, Peer, PeerStatus, RouterTarget};
use sovereign_remote::testing::{SshRouterFixture, skip_reason};
use sovereign_remote::{
    ApplyError, ApplyOptions, DriftChange, DriftKind, LinuxConfig, RouterConfig, SshTransport,
    Step, Transport, TransportError, apply, audit, status,
};
use sovereign_wg::Key;

macro_rules! fixture_or_skip {
    () => {{
        if let Some(reason) = skip_reason() {
            eprintln!("SKIPPED: {reason}");
            return;
        }
        SshRouterFixture::start(51820).expect("start the ssh router fixture")
    }};
}

struct Lab {
    router: SshRouterFixture,
    router_key: Key,
    peers: Vec<(String, Key, Key)>,
}

impl Lab {
    fn new(router: SshRouterFixture) -> Self {
        let peers = ["laptop", "phone", "agent"]
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    Key::generate_private().unwrap().public_key(),
                    Key::generate_preshared().unwrap(),
                )
            })
            .collect();
        Lab {
            router,
            router_key: Key::generate_private().unwrap(),
            peers,
        }
    }

    fn transport(&self) -> SshTransport {
        self.router.transport()
    }

    /// The deployment with the first `n` peers active.
    fn deployment(&self, n: usize) -> Deployment {
        let mut d = Deployment::reference();
        d.router.target = RouterTarget::Linux;
        d.wireguard.interface = self.router.wg_interface.clone();
        d.peers = self.peers[..n]
            .iter()
            .enumerate()
            .map(|(i, (name, public, _))| Peer {
                name: name.clone(),
                address: format!("10.10.10.{}", i + 2).parse().unwrap(),
                public_key: public.to_base64(),
                created: String::new(),
                status: PeerStatus::Active,
                preshared_key: true,
                changed: String::new(),
                expires: None,
            })
            .collect();
        d
    }

    /// A config shaped like the Linux renderer's: one table replaced atomically.
    fn config(&self, n: usize, api_port: u16) -> RouterConfig {
        let d = self.deployment(n);
        let mut wg = format!(
            "[Interface]\nPrivateKey = {}\nListenPort = 51820\n",
            self.router_key.to_base64()
        );
        for (peer, (_, _, psk)) in d.peers.iter().zip(&self.peers) {
            wg.push_str(&format!(
                "\n[Peer]\nPublicKey = {}\nPresharedKey = {}\nAllowedIPs = {}/32\n",
                peer.public_key,
                psk.to_base64(),
                peer.address
            ));
        }
        RouterConfig::Linux(LinuxConfig {
            nft_ruleset: ruleset(api_port),
            wg_interface: self.router.wg_interface.clone(),
            wg_config: wg,
        })
    }

    /// The live table without counters, and the live peers with their allowed IPs.
    fn live_state(&self) -> (String, String) {
        let table = self
            .router
            .exec(&["nft", "-s", "list", "table", "inet", "sovereign"])
            .unwrap_or_else(|_| "(no table)".into());
        let peers = self
            .router
            .exec(&["wg", "show", &self.router.wg_interface, "allowed-ips"])
            .unwrap();
        let mut peers: Vec<&str> = peers.lines().collect();
        peers.sort_unstable();
        (table, peers.join("\n"))
    }

    /// A script's output over the lab's ssh session (the router's private /tmp).
    fn remote(&self, script: &str) -> String {
        self.transport().run(script, &[]).unwrap().stdout
    }
}

fn ruleset(api_port: u16) -> String {
    format!(
        "table inet sovereign\n\
         delete table inet sovereign\n\
         table inet sovereign {{\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter; policy accept;\n\
         \t\tudp dport 51820 counter accept comment \"wan -> router-wg: allow\"\n\
         \t}}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy drop;\n\
         \t\tiifname \"wg*\" ip daddr 192.168.250.20 tcp dport {api_port} counter accept comment \"vpn-peer -> server-api: allow\"\n\
         \t}}\n\
         }}\n"
    )
}

fn quick() -> ApplyOptions {
    ApplyOptions {
        confirm_timeout_secs: 30,
        ..ApplyOptions::default()
    }
}

#[test]
fn apply_makes_ruleset_and_peers_live_then_audit_catches_hand_made_drift_and_status_reports() {
    let lab = Lab::new(fixture_or_skip!());
    let before = lab.live_state();
    let started = Instant::now();
    let report = apply(&lab.transport(), &lab.config(2, 11434), &quick()).expect("apply");
    // Reported, never asserted: how long the eight steps take over ssh.
    eprintln!(
        "apply over ssh (8 steps, {} ssh sessions): {:?}",
        11,
        started.elapsed()
    );
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
    let (table, peers) = lab.live_state();
    assert_ne!((table.clone(), peers.clone()), before);
    assert!(
        table.contains("comment \"vpn-peer -> server-api: allow\""),
        "{table}"
    );
    for (_, public, _) in &lab.peers[..2] {
        assert!(peers.contains(&public.to_base64()), "{peers}");
    }
    assert!(!peers.contains(&lab.peers[2].1.to_base64()));
    // Confirmed: no lock, no staging dir, no timer left behind.
    assert_eq!(
        lab.remote("ls -d /tmp/sovereign-apply* 2>/dev/null; true"),
        ""
    );

    let d = lab.deployment(2);
    let started = Instant::now();
    let clean = audit(&lab.transport(), &d, &lab.config(2, 11434), None).expect("audit");
    eprintln!("audit over ssh: {:?}", started.elapsed());
    assert!(clean.passed(), "{:#?}", clean.drift);

    let wg = lab.router.wg_interface.clone();
    lab.router
        .exec(&[
            "nft",
            "add",
            "rule",
            "inet",
            "sovereign",
            "input",
            "tcp",
            "dport",
            "9999",
            "accept",
            "comment",
            "\"by hand\"",
        ])
        .unwrap();
    lab.router
        .exec(&[
            "wg",
            "set",
            &wg,
            "peer",
            &lab.peers[0].1.to_base64(),
            "remove",
        ])
        .unwrap();
    let drifted = audit(&lab.transport(), &d, &lab.config(2, 11434), None).expect("audit");
    assert!(!drifted.passed());
    let found: Vec<(DriftKind, DriftChange, Option<&str>)> = drifted
        .drift
        .iter()
        .map(|d| (d.kind, d.change, d.name.as_deref()))
        .collect();
    assert!(
        found.contains(&(DriftKind::Peer, DriftChange::Missing, Some("laptop"))),
        "{found:?}"
    );
    assert!(
        drifted.drift.iter().any(|d| d.kind == DriftKind::Rule
            && d.change == DriftChange::Extra
            && d.key.contains("by hand")),
        "{:#?}",
        drifted.drift
    );
    assert_eq!(drifted.drift.len(), 2, "{:#?}", drifted.drift);

    // A changed API rule shows as changed, by its comment.
    let changed = audit(&lab.transport(), &d, &lab.config(2, 8080), None).expect("audit");
    assert!(
        changed
            .drift
            .iter()
            .any(|d| d.change == DriftChange::Changed && d.key.contains("server-api")),
        "{:#?}",
        changed.drift
    );

    let report = status(&lab.transport(), &d).expect("status");
    assert!(report.interface_up);
    assert_eq!(report.listen_port, Some(51820));
    let names: Vec<Option<&str>> = report.peers.iter().map(|p| p.name.as_deref()).collect();
    assert_eq!(names, [Some("phone")], "laptop was removed by hand");
    assert!(report.peers[0].handshake_age_secs.is_none());
    let roles: Vec<_> = report
        .counters
        .iter()
        .map(|c| (c.role, c.comment.as_str()))
        .collect();
    assert!(
        roles.contains(&(
            sovereign_remote::status::RuleRole::Api,
            "vpn-peer -> server-api: allow"
        )),
        "{roles:?}"
    );
    assert!(
        roles.contains(&(
            sovereign_remote::status::RuleRole::Wireguard,
            "wan -> router-wg: allow"
        )),
        "{roles:?}"
    );
    assert!(report.counters.iter().all(|c| c.packets.is_some()));
}

#[test]
fn a_ruleset_the_router_rejects_changes_nothing() {
    let lab = Lab::new(fixture_or_skip!());
    apply(&lab.transport(), &lab.config(1, 11434), &quick()).expect("first apply");
    let before = lab.live_state();

    let RouterConfig::Linux(mut bad) = lab.config(3, 11434) else {
        unreachable!()
    };
    bad.nft_ruleset = bad.nft_ruleset.replace(
        "counter accept comment \"vpn",
        "counter acept comment \"vpn",
    );
    let error = apply(&lab.transport(), &RouterConfig::Linux(bad), &quick()).unwrap_err();
    assert!(
        matches!(error, ApplyError::ValidationFailed { .. }),
        "{error}"
    );
    assert!(!error.rollback_armed());
    assert!(
        error.to_string().contains("acept"),
        "the router's own message: {error}"
    );
    assert_eq!(lab.live_state(), before);
    assert_eq!(
        lab.remote("ls -d /tmp/sovereign-apply* 2>/dev/null; true"),
        ""
    );

    // A missing WireGuard interface is refused before anything is staged.
    let RouterConfig::Linux(mut elsewhere) = lab.config(3, 11434) else {
        unreachable!()
    };
    elsewhere.wg_interface = "nosuchwg0".into();
    let error = apply(&lab.transport(), &RouterConfig::Linux(elsewhere), &quick()).unwrap_err();
    assert!(
        error.to_string().contains("nosuchwg0 does not exist"),
        "{error}"
    );
    assert_eq!(lab.live_state(), before);

    // The lock was released both times: a good apply still goes through.
    apply(&lab.transport(), &lab.config(3, 11434), &quick()).expect("apply after the failures");
}

#[test]
fn an_apply_that_is_never_confirmed_is_rolled_back_to_the_previous_ruleset_and_peers() {
    let lab = Lab::new(fixture_or_skip!());
    apply(&lab.transport(), &lab.config(1, 11434), &quick()).expect("first apply");
    let before = lab.live_state();

    let options = ApplyOptions {
        confirm_timeout_secs: 4,
        simulate_lost_connection: true,
        ..ApplyOptions::default()
    };
    let error = apply(&lab.transport(), &lab.config(3, 8080), &options).unwrap_err();
    assert!(error.rollback_armed(), "{error}");
    assert!(matches!(
        error,
        ApplyError::RollbackArmed {
            step: Step::Reconnect,
            ..
        }
    ));
    assert!(
        error
            .to_string()
            .contains("restores the previous config by itself")
    );
    // Unless the timer already fired (a very slow machine), the new config is live now;
    // the timer claims `decided` before it restores anything.
    let during = lab.live_state();
    if lab
        .remote("ls -d /tmp/sovereign-apply.*/decided 2>/dev/null; true")
        .is_empty()
    {
        assert_ne!(during, before, "the unconfirmed apply did go live");
        assert!(during.1.contains(&lab.peers[2].1.to_base64()));
    }

    // The timer fires on the router by itself; wait for its log.
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = lab.remote("cat /tmp/sovereign-rollback.log 2>/dev/null; true");
        if !log.is_empty() || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(log.contains("restored"), "rollback log: {log}");
    assert_eq!(lab.live_state(), before);
    assert_eq!(
        lab.remote("ls -d /tmp/sovereign-apply* 2>/dev/null; true"),
        ""
    );
}

#[test]
fn dry_run_shows_the_diff_and_changes_nothing() {
    let lab = Lab::new(fixture_or_skip!());
    apply(&lab.transport(), &lab.config(1, 11434), &quick()).expect("first apply");
    let before = lab.live_state();
    let options = ApplyOptions {
        dry_run: true,
        ..quick()
    };
    let report = apply(&lab.transport(), &lab.config(2, 8080), &options).expect("dry run");
    let diff = report.diff.expect("a diff");
    assert!(
        diff.contains("-\t\tiifname \"wg*\" ip daddr 192.168.250.20 tcp dport 11434"),
        "{diff}"
    );
    assert!(
        diff.contains("+\t\tiifname \"wg*\" ip daddr 192.168.250.20 tcp dport 8080"),
        "{diff}"
    );
    assert!(
        diff.contains(&format!("+peer {}", lab.peers[1].1.to_base64())),
        "{diff}"
    );
    assert!(!diff.contains(&lab.router_key.to_base64()));
    assert_eq!(lab.live_state(), before);
    assert_eq!(
        lab.remote("ls -d /tmp/sovereign-apply* 2>/dev/null; true"),
        ""
    );

    let same = apply(&lab.transport(), &lab.config(1, 11434), &options).expect("dry run");
    assert_eq!(
        same.diff.as_deref(),
        Some(""),
        "an applied config previews as no change"
    );
}

#[test]
fn ssh_failures_are_named() {
    let lab = Lab::new(fixture_or_skip!());
    let unknown = SshTransport::new(lab.router.target_with_unknown_host_key());
    let error = apply(&unknown, &lab.config(1, 11434), &quick()).unwrap_err();
    assert!(
        matches!(
            error,
            ApplyError::Transport {
                source: TransportError::UnknownHostKey { .. },
                ..
            }
        ),
        "{error}"
    );

    let mut wrong_key = lab.router.target();
    let stranger = lab.router.path("stranger_key");
    std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            &stranger.display().to_string(),
        ])
        .status()
        .unwrap();
    for arg in &mut wrong_key.extra_args {
        if arg.ends_with("client_key") {
            *arg = stranger.display().to_string();
        }
    }
    let error = SshTransport::new(wrong_key).run("true", &[]).unwrap_err();
    assert!(
        matches!(error, TransportError::AuthenticationFailed { .. }),
        "{error}"
    );

    let closed = lab.router.target().with_port(Some(2222));
    let error = SshTransport::new(closed).run("true", &[]).unwrap_err();
    assert!(
        matches!(error, TransportError::Unreachable { .. }),
        "{error}"
    );
}
