//! The reachability matrix, measured: from every vantage point to every listener
//! the model's intent has a cell for, compared with the intent.
//!
//! A TCP port counts as open only after an application-level answer: through the
//! userspace tunnel a rejected connect() occasionally reports success and the
//! error only surfaces on the first read (research/lab-feasibility.md §6). The
//! WireGuard port counts as open when the router answers each client's handshake
//! from a fresh UDP port (a new flow). The control run repeats everything with the router's ruleset flushed:
//! every cell must then open, so no deny passes because a listener or route is missing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::Duration;

use serde::Serialize;
use sovereign_model::{Destination, Expect, Isolation, Source, intent};

use crate::differential::{self, StaticVerdict};
use crate::topology::{
    DNS_PORT, INTERNET_HOST, PEER_SERVICE_PORT, ROUTER_SERVICE_PORT, Role, Service, Topology,
    WEB_PORT, server_other_port,
};
use crate::{Lab, LabError, netns};

/// How long a probe waits for a connection or an answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// One concrete probe for one intent cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeSpec {
    pub source: Source,
    pub destination: Destination,
    pub expect: Expect,
    pub enforceable: bool,
    /// The node the probe runs from, and its address.
    pub from: String,
    pub src: Ipv4Addr,
    pub method: Method,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Method {
    /// Connect, send a request, and require an answer.
    Tcp {
        target: SocketAddrV4,
        service: Service,
    },
    /// Send a datagram and require the echo.
    Udp { target: SocketAddrV4 },
    /// A handshake from a fresh UDP port of the client (a new flow to the router's
    /// WireGuard port) was answered.
    Wireguard {
        client: String,
        interface: String,
        endpoint: SocketAddrV4,
    },
}

impl Method {
    pub fn describe(&self, src: Ipv4Addr) -> String {
        match self {
            Method::Tcp { target, .. } => format!("{src} -> {target}/tcp"),
            Method::Udp { target } => format!("{src} -> {target}/udp"),
            Method::Wireguard {
                endpoint,
                interface,
                ..
            } => format!(
                "{src} -> {endpoint}/udp (WireGuard handshake, {interface} from a new port)"
            ),
        }
    }
}

/// A cell of the intent that the lab cannot instantiate, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotProbed {
    pub source: Source,
    pub destination: Destination,
    pub reason: String,
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "detail")]
pub enum Observation {
    /// An application-level answer; the detail says what the far end saw.
    Open(String),
    /// TCP reset or ICMP port unreachable: the packet arrived, nothing listened.
    Refused,
    /// ICMP admin-prohibited (a firewall reject) or host unreachable.
    Prohibited,
    /// No answer within the timeout (a firewall drop).
    Timeout,
    NoRoute,
    /// The connection attempt was hung up without an error code: a reset or an ICMP
    /// error arrived, but the kernel kept no code for it. Seen only through the
    /// userspace tunnel, in the same race as the false connects (a rejected probe).
    HungUp,
    Error(String),
}

impl Observation {
    pub fn is_open(&self) -> bool {
        matches!(self, Observation::Open(_))
    }

    pub fn label(&self) -> String {
        match self {
            Observation::Open(seen) if seen.is_empty() => "OPEN".into(),
            Observation::Open(seen) => format!("OPEN ({seen})"),
            Observation::Refused => "REFUSED".into(),
            Observation::Prohibited => "PROHIBITED".into(),
            Observation::Timeout => "TIMEOUT".into(),
            Observation::NoRoute => "NOROUTE".into(),
            Observation::HungUp => "HUNG UP".into(),
            Observation::Error(e) => format!("ERROR {e}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
    /// A deny cell the router cannot enforce (shared L2 segment) was open: the
    /// leak the model predicts, detected.
    Leak,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    #[serde(flatten)]
    pub spec: ProbeSpec,
    pub probe: String,
    pub observed: Observation,
    pub verdict: Verdict,
    /// The static verifier's prediction for this probe, from the ruleset the router ran
    /// (enforced run only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verifier: Option<StaticVerdict>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub probes: usize,
    pub passed: usize,
    pub failed: usize,
    pub leaks: usize,
    pub control_probes: usize,
    pub control_open: usize,
    /// Probes the static verifier judged, and how many of them it predicted right.
    pub verifier_probes: usize,
    pub verifier_agree: usize,
    /// Why the static verifier could not judge the router's ruleset.
    pub verifier_error: Option<String>,
    /// WireGuard handshakes sent again (both runs) because the first went unanswered
    /// for a second: a handshake the firewall blocks, or one lost on a loaded machine.
    pub handshakes_resent: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    pub lab: String,
    pub isolation: Isolation,
    pub enforced: Vec<ProbeResult>,
    /// The same probes with the router's ruleset flushed; every one must open.
    pub control: Vec<ProbeResult>,
    pub not_probed: Vec<NotProbed>,
    pub summary: Summary,
}

impl ProbeReport {
    /// Every cell matched and the control opened everything.
    pub fn passed(&self) -> bool {
        self.summary.failed == 0
            && self.summary.leaks == 0
            && self.summary.control_open == self.summary.control_probes
            && self.summary.verifier_agree == self.summary.verifier_probes
    }
}

/// The probes for every intent cell this topology can instantiate. Pure.
pub fn plan(t: &Topology) -> (Vec<ProbeSpec>, Vec<NotProbed>) {
    let d = &t.deployment;
    let matrix = intent(d);
    let server = SocketAddrV4::new(d.server.address, 0);
    let clients: Vec<_> = t.clients().collect();
    let mut specs = Vec::new();
    let mut not_probed = Vec::new();
    for cell in &matrix.cells {
        let vantage: Vec<(&crate::Node, Ipv4Addr)> = match cell.source {
            Source::Internet => t
                .first(Role::Internet)
                .map(|n| vec![(n, INTERNET_HOST)])
                .unwrap_or_default(),
            Source::VpnPeer => clients
                .iter()
                .map(|c| (*c, c.tunnel.as_ref().expect("tunnel").address))
                .collect(),
            Source::Server => t
                .first(Role::Server)
                .map(|n| vec![(n, n.address)])
                .unwrap_or_default(),
            Source::LanDevice => t
                .first(Role::LanDevice)
                .map(|n| vec![(n, n.address)])
                .unwrap_or_default(),
            Source::LanAdmin => t
                .first(Role::LanAdmin)
                .map(|n| vec![(n, n.address)])
                .unwrap_or_default(),
        };
        if vantage.is_empty() {
            not_probed.push(NotProbed {
                source: cell.source,
                destination: cell.destination,
                reason: format!("the lab has no {} node", cell.source.label()),
            });
        }
        for (index, (node, src)) in vantage.into_iter().enumerate() {
            let router_address = match cell.source {
                Source::Internet => d.wan.address.addr(),
                Source::VpnPeer => d.wireguard.address,
                _ => d.lan.router_address,
            };
            let tcp = |ip: Ipv4Addr, port: u16, service| Method::Tcp {
                target: SocketAddrV4::new(ip, port),
                service,
            };
            let method = match cell.destination {
                Destination::RouterWireguard => {
                    for client in &clients {
                        let tunnel = client.tunnel.as_ref().expect("tunnel");
                        specs.push(ProbeSpec {
                            source: cell.source,
                            destination: cell.destination,
                            expect: cell.expect,
                            enforceable: cell.enforceable,
                            from: client.key.clone(),
                            src: client.address,
                            method: Method::Wireguard {
                                client: client.key.clone(),
                                interface: tunnel.interface.clone(),
                                endpoint: SocketAddrV4::new(
                                    d.wan.address.addr(),
                                    d.wireguard.listen_port,
                                ),
                            },
                        });
                    }
                    if clients.is_empty() {
                        not_probed.push(NotProbed {
                            source: cell.source,
                            destination: cell.destination,
                            reason: "the lab has no VPN client to complete a handshake".into(),
                        });
                    }
                    break;
                }
                Destination::RouterServices => {
                    tcp(router_address, ROUTER_SERVICE_PORT, Service::Http)
                }
                Destination::RouterDns => Method::Udp {
                    target: SocketAddrV4::new(router_address, DNS_PORT),
                },
                Destination::ServerApi => tcp(*server.ip(), d.server.api_port, Service::Api),
                Destination::ServerSsh => tcp(*server.ip(), d.server.ssh_port, Service::Http),
                Destination::ServerOther => tcp(*server.ip(), server_other_port(d), Service::Http),
                Destination::OtherLan => {
                    let target = match cell.source {
                        Source::LanDevice => t.first(Role::LanDevice2),
                        _ => t.first(Role::LanDevice),
                    };
                    tcp(
                        target.expect("LAN devices exist").address,
                        WEB_PORT,
                        Service::Http,
                    )
                }
                Destination::Internet => tcp(INTERNET_HOST, WEB_PORT, Service::Http),
                Destination::VpnPeer => {
                    let own = (cell.source == Source::VpnPeer).then_some(index);
                    let Some(other) = clients
                        .iter()
                        .enumerate()
                        .find(|(i, _)| Some(*i) != own)
                        .map(|(_, c)| c)
                    else {
                        not_probed.push(NotProbed {
                            source: cell.source,
                            destination: cell.destination,
                            reason: "needs a second VPN peer (run with --peers 2 or more)".into(),
                        });
                        continue;
                    };
                    tcp(
                        other.tunnel.as_ref().expect("tunnel").address,
                        PEER_SERVICE_PORT,
                        Service::Http,
                    )
                }
            };
            specs.push(ProbeSpec {
                source: cell.source,
                destination: cell.destination,
                expect: cell.expect,
                enforceable: cell.enforceable,
                from: node.key.clone(),
                src,
                method,
            });
        }
    }
    (specs, not_probed)
}

/// Probe the matrix, then (with `control`) again with the ruleset flushed. The
/// rendered ruleset is restored afterwards, also when the control run fails.
pub fn probe(lab: &Lab, control: bool) -> Result<ProbeReport, LabError> {
    let topology = lab.topology();
    let (specs, not_probed) = plan(topology);
    let round = observe(lab, &specs, None)?;
    // What the router runs now, read back, is what the static verifier judges.
    let verifier = lab
        .list_ruleset()
        .and_then(|json| {
            sovereign_verify::Ruleset::parse_json(&json)
                .map_err(|e| LabError::Render(format!("the verifier cannot read the ruleset: {e}")))
        })
        .map(|ruleset| {
            differential::predict(
                &ruleset,
                topology,
                &specs,
                &round.underlays,
                &round.source_ports,
            )
        });
    let (verdicts, verifier_error) = match verifier {
        Ok(verdicts) => (verdicts.into_iter().map(Some).collect(), None),
        Err(e) => (vec![None; specs.len()], Some(e.to_string())),
    };
    let enforced: Vec<ProbeResult> = specs
        .iter()
        .zip(round.observed)
        .zip(verdicts)
        .map(|((spec, observed), verifier)| {
            let verdict = judge(spec, &observed);
            ProbeResult {
                probe: spec.method.describe(spec.src),
                spec: spec.clone(),
                observed,
                verdict,
                verifier,
            }
        })
        .collect();
    let mut handshakes_resent = round.handshakes_resent;
    let mut control_results = Vec::new();
    if control {
        lab.flush_ruleset()?;
        let observed = observe(lab, &specs, None);
        let restored = lab.restore_ruleset();
        let control_round = observed?;
        restored?;
        handshakes_resent += control_round.handshakes_resent;
        let observed = control_round.observed;
        control_results = specs
            .iter()
            .zip(observed)
            .map(|(spec, observed)| ProbeResult {
                probe: spec.method.describe(spec.src),
                spec: spec.clone(),
                verdict: if observed.is_open() {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                },
                observed,
                verifier: None,
            })
            .collect();
    }
    let count =
        |results: &[ProbeResult], verdict| results.iter().filter(|r| r.verdict == verdict).count();
    let summary = Summary {
        probes: enforced.len(),
        passed: count(&enforced, Verdict::Pass),
        failed: count(&enforced, Verdict::Fail),
        leaks: count(&enforced, Verdict::Leak),
        control_probes: control_results.len(),
        control_open: count(&control_results, Verdict::Pass),
        verifier_probes: enforced.iter().filter(|r| r.verifier.is_some()).count(),
        verifier_agree: enforced
            .iter()
            .filter(|r| {
                r.verifier
                    .as_ref()
                    .is_some_and(|v| v.prediction.agrees_with(&r.observed))
            })
            .count(),
        verifier_error,
        handshakes_resent,
    };
    Ok(ProbeReport {
        lab: lab.name().to_string(),
        isolation: topology.deployment.server.isolation,
        enforced,
        control: control_results,
        not_probed,
        summary,
    })
}

fn judge(spec: &ProbeSpec, observed: &Observation) -> Verdict {
    match (spec.expect, observed.is_open()) {
        (Expect::Allow, true) | (Expect::Deny, false) => Verdict::Pass,
        (Expect::Deny, true) if !spec.enforceable => Verdict::Leak,
        _ => Verdict::Fail,
    }
}

/// What a round observed, and the flows it used (for the static verifier's packets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// One observation per probe spec, in order.
    pub observed: Vec<Observation>,
    /// Each VPN client's tunnel endpoint (underlay address and new UDP port), by node key.
    pub underlays: BTreeMap<String, SocketAddrV4>,
    /// Each probe's UDP source port (0: TCP, or picked by the kernel).
    pub source_ports: Vec<u16>,
    /// Handshakes sent again because the router had not answered the first in time.
    pub handshakes_resent: usize,
}

/// How long a round waits for every client's fresh handshake before sending it again.
const HANDSHAKE_WAIT: Duration = Duration::from_secs(1);
/// How many handshakes a client sends before its WireGuard probe counts as unanswered.
///
/// WireGuard itself sends a lost initiation again only after REKEY_TIMEOUT (5 s), so
/// one lost packet (seen once in CI, on a loaded machine) would leave the client's
/// tunnel down for the whole round and turn every probe through it into a timeout.
/// A handshake the router's firewall blocks stays blocked however often it is sent.
const HANDSHAKE_ATTEMPTS: usize = 3;

/// One round of probes, all at once, each from a thread inside its source namespace.
///
/// Every flow is new to the router, so its firewall decides each one afresh, the way
/// the intent (and the static verifier) describe first packets: TCP probes use
/// fresh connections, and before the round each VPN client restarts its tunnel on a
/// new UDP port with a fresh handshake ([`Lab::refresh_client_underlay`]). The
/// WireGuard probe is open when the router answered that handshake.
///
/// `first_port`: consecutive UDP ports from here, one per VPN client (its tunnel's new
/// port), then one per UDP probe (its source port), so no round can ever reuse a
/// conntrack entry of an earlier one; `None` lets the kernel pick.
pub fn observe(lab: &Lab, specs: &[ProbeSpec], first_port: Option<u16>) -> Result<Round, LabError> {
    let topology = lab.topology();
    let clients: Vec<String> = topology.clients().map(|c| c.key.clone()).collect();
    let port = |offset: usize| first_port.map_or(0, |p| p.wrapping_add(offset as u16));
    let mut underlays = Vec::new();
    for (index, client) in clients.iter().enumerate() {
        underlays.push(lab.refresh_client_underlay(client, port(index))?);
    }
    // Received bytes: the router answered the client's handshake from its new port.
    let answered = || -> Result<Vec<bool>, LabError> {
        clients
            .iter()
            .map(|c| lab.client_transfer(c).map(|(rx, _)| rx > 0))
            .collect()
    };
    // Probes towards a VPN client need its tunnel up; a blocked one stays down.
    let mut handshakes_resent = 0;
    for attempt in 1..=HANDSHAKE_ATTEMPTS {
        let deadline = std::time::Instant::now() + HANDSHAKE_WAIT;
        let mut status = answered()?;
        while !status.iter().all(|a| *a) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            status = answered()?;
        }
        if status.iter().all(|a| *a) || attempt == HANDSHAKE_ATTEMPTS {
            break;
        }
        // The same port again: still a new flow to the router's firewall, since
        // it has seen no answer on it, and the round's port plan stays intact.
        for (index, client) in clients.iter().enumerate() {
            if !status[index] {
                handshakes_resent += 1;
                underlays[index] = lab.refresh_client_underlay(client, underlays[index].port())?;
            }
        }
    }
    let mut udp_index = clients.len();
    let mut source_ports = Vec::new();
    let handles: Vec<_> = specs
        .iter()
        .map(|spec| {
            let netns = topology
                .node(&spec.from)
                .expect("probe sources are nodes")
                .netns
                .clone();
            let method = spec.method.clone();
            let src = spec.src;
            let source_port = match method {
                Method::Udp { .. } => {
                    udp_index += 1;
                    port(udp_index - 1)
                }
                _ => 0,
            };
            source_ports.push(source_port);
            netns::spawn_in(&netns, move || match method {
                Method::Tcp { target, service } => probe_tcp(src, target, service),
                Method::Udp { target } => probe_udp(target, source_port),
                Method::Wireguard { .. } => Observation::Timeout,
            })
        })
        .collect();
    let mut observed = Vec::new();
    for handle in handles {
        observed.push(netns::join(handle)?);
    }
    let answered = answered()?;
    for (spec, observation) in specs.iter().zip(observed.iter_mut()) {
        if let Method::Wireguard { client, .. } = &spec.method {
            let i = clients
                .iter()
                .position(|c| c == client)
                .expect("client exists");
            *observation = if answered[i] {
                Observation::Open(format!("handshake from {}", underlays[i]))
            } else {
                Observation::Timeout
            };
        }
    }
    Ok(Round {
        observed,
        underlays: clients.into_iter().zip(underlays).collect(),
        source_ports,
        handshakes_resent,
    })
}

fn probe_tcp(_src: Ipv4Addr, target: SocketAddrV4, service: Service) -> Observation {
    let mut stream = match TcpStream::connect_timeout(&target.into(), PROBE_TIMEOUT) {
        Ok(s) => s,
        Err(e) => return classify(&e),
    };
    let path = if service == Service::Api {
        "/api/version"
    } else {
        "/lab"
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    let answer = (|| -> io::Result<String> {
        stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
        stream.write_all(request.as_bytes())?;
        let mut buffer = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    })();
    match answer {
        Ok(text) if text.starts_with("HTTP/1.") => {
            let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            let seen = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| {
                    v.get("peer")
                        .and_then(|p| p.as_str())
                        .map(|p| format!("saw {p}"))
                })
                .unwrap_or_else(|| text.lines().next().unwrap_or("").to_string());
            Observation::Open(seen)
        }
        Ok(text) if text.is_empty() => Observation::Error("closed without an answer".into()),
        Ok(_) => Observation::Error("answer is not HTTP".into()),
        // The connect "succeeded" but the exchange failed: classify the late error.
        Err(e) => classify(&e),
    }
}

fn probe_udp(target: SocketAddrV4, source_port: u16) -> Observation {
    let attempt = || -> io::Result<String> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, source_port))?;
        socket.connect(target)?;
        socket.set_read_timeout(Some(PROBE_TIMEOUT))?;
        socket.send(b"PROBE")?;
        let mut buffer = [0u8; 512];
        let n = socket.recv(&mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer[..n]).into_owned())
    };
    match attempt() {
        Ok(text) => Observation::Open(
            text.rsplit(' ')
                .next()
                .map(|p| format!("saw {p}"))
                .unwrap_or_default(),
        ),
        Err(e) => classify(&e),
    }
}

fn classify(e: &io::Error) -> Observation {
    // std's connect_timeout reports a POLLHUP with no pending socket error this way;
    // there is no error code to match.
    if e.raw_os_error().is_none() && e.to_string().contains("after POLLHUP") {
        return Observation::HungUp;
    }
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => Observation::Refused,
        Some(libc::EHOSTUNREACH | libc::EACCES | libc::EPERM) => Observation::Prohibited,
        Some(libc::ENETUNREACH) => Observation::NoRoute,
        Some(libc::ETIMEDOUT | libc::EAGAIN) => Observation::Timeout,
        _ if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) =>
        {
            Observation::Timeout
        }
        _ => Observation::Error(e.to_string()),
    }
}

/// The report as text: one line per probe (expected vs observed, with the
/// concrete probe), the control run, and a summary.
pub fn render_text(report: &ProbeReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {}: reachability matrix (isolation: {})",
        report.lab, report.isolation
    );
    let table = |results: &[ProbeResult], control: bool| {
        let mut rows = vec![[
            "from".to_string(),
            "to".to_string(),
            "probe".to_string(),
            "expect".to_string(),
            "observed".to_string(),
            "result".to_string(),
            if control {
                String::new()
            } else {
                "static verifier".to_string()
            },
        ]];
        for r in results {
            let expect = if control {
                "open".to_string()
            } else {
                r.spec.expect.to_string()
            };
            let result = match r.verdict {
                Verdict::Pass => "ok",
                Verdict::Fail => "MISMATCH",
                Verdict::Leak => "LEAK (not enforceable: shared L2)",
            };
            rows.push([
                format!("{} [{}]", r.spec.source.label(), r.spec.from),
                r.spec.destination.label().to_string(),
                r.probe.clone(),
                expect,
                r.observed.label(),
                result.to_string(),
                verifier_label(r),
            ]);
        }
        aligned(&rows)
    };
    out.push_str(&table(&report.enforced, false));
    for n in &report.not_probed {
        let _ = writeln!(
            out,
            "  not probed: {} -> {}: {}",
            n.source.label(),
            n.destination.label(),
            n.reason
        );
    }
    if !report.control.is_empty() {
        let _ = writeln!(
            out,
            "\ncontrol run (router ruleset flushed, then restored): every probe must open"
        );
        out.push_str(&table(&report.control, true));
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "\nsummary: {} probes, {} as intended, {} mismatches, {} detected leaks; control: {} of {} open",
        s.probes, s.passed, s.failed, s.leaks, s.control_open, s.control_probes
    );
    match &s.verifier_error {
        Some(e) => {
            let _ = writeln!(out, "static verifier: not judged: {e}");
        }
        None => {
            let _ = writeln!(
                out,
                "static verifier agrees on {}/{} probes (the ruleset the router ran, read back with nft -j)",
                s.verifier_agree, s.verifier_probes
            );
        }
    }
    if s.handshakes_resent > 0 {
        let _ = writeln!(
            out,
            "WireGuard handshakes sent again after a second without an answer: {}",
            s.handshakes_resent
        );
    }
    if s.leaks > 0 {
        let _ = writeln!(
            out,
            "the server shares the LAN bridge (isolation = shared): traffic between it and LAN hosts never \
             crosses the router, so these denies cannot be enforced; use isolation = \"dedicated-port\""
        );
    }
    out
}

/// The report in at most [`COMPACT_WIDTH`] columns, for the demo: the destination
/// without the probe's notes, expectation and observation in one column, and the
/// control run as one line per vantage point unless something in it failed.
pub const COMPACT_WIDTH: usize = 100;

pub fn render_compact(report: &ProbeReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {}: reachability matrix (isolation: {})",
        report.lab, report.isolation
    );
    let mut rows = vec![[
        "from".to_string(),
        "to".to_string(),
        "destination".to_string(),
        "expected: seen".to_string(),
        "verifier".to_string(),
    ]];
    for r in &report.enforced {
        rows.push(compact_row(r, &r.spec.expect.to_string()));
    }
    out.push_str(&aligned(&rows));
    for n in &report.not_probed {
        let _ = writeln!(
            out,
            "  not probed: {} -> {}: {}",
            n.source.label(),
            n.destination.label(),
            n.reason
        );
    }
    if !report.control.is_empty() {
        let failed: Vec<&ProbeResult> = report
            .control
            .iter()
            .filter(|r| r.verdict != Verdict::Pass)
            .collect();
        // (vantage point, open, probes), in the order the probes ran.
        let mut vantage: Vec<(String, usize, usize)> = Vec::new();
        for r in &report.control {
            let i = match vantage.iter().position(|(v, _, _)| *v == r.spec.from) {
                Some(i) => i,
                None => {
                    vantage.push((r.spec.from.clone(), 0, 0));
                    vantage.len() - 1
                }
            };
            vantage[i].2 += 1;
            if r.verdict == Verdict::Pass {
                vantage[i].1 += 1;
            }
        }
        let counts: Vec<String> = vantage
            .iter()
            .map(|(v, open, all)| format!("{v} {open}/{all}"))
            .collect();
        let _ = writeln!(
            out,
            "\ncontrol run, firewall flushed (every probe must open): {}",
            counts.join(", ")
        );
        if !failed.is_empty() {
            let mut rows = vec![rows[0].clone()];
            rows.extend(failed.iter().map(|r| compact_row(r, "open")));
            out.push_str(&aligned(&rows));
        }
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "\n{} probes, {} as intended, {} mismatches, {} leaks; control: {} of {} open",
        s.probes, s.passed, s.failed, s.leaks, s.control_open, s.control_probes
    );
    let _ = match &s.verifier_error {
        Some(e) => writeln!(out, "static verifier: not judged: {e}"),
        None => writeln!(
            out,
            "static verifier agrees on {}/{} probes (the router's ruleset, read back)",
            s.verifier_agree, s.verifier_probes
        ),
    };
    out
}

fn compact_row(r: &ProbeResult, expect: &str) -> [String; 5] {
    // "10.10.10.2 -> 192.168.250.20:11434/tcp (notes)" -> "192.168.250.20:11434/tcp"
    let destination = r
        .probe
        .split(" -> ")
        .nth(1)
        .unwrap_or(&r.probe)
        .split(" (")
        .next()
        .unwrap_or("")
        .to_string();
    let seen = r.observed.label();
    let seen = seen.split(" (").next().unwrap_or("");
    let result = match r.verdict {
        Verdict::Pass => "ok",
        Verdict::Fail => "MISMATCH",
        Verdict::Leak => "LEAK",
    };
    let from = r.spec.source.label().replace(" (WAN)", "");
    [
        format!("{from} [{}]", r.spec.from),
        r.spec.destination.label().to_string(),
        destination,
        format!("{expect}: {seen} {result}"),
        verifier_label(r),
    ]
}

/// The static verifier's prediction, and whether the probe contradicted it.
fn verifier_label(r: &ProbeResult) -> String {
    match &r.verifier {
        Some(v) if v.prediction.agrees_with(&r.observed) => v.prediction.label(),
        Some(v) => format!("{} DISAGREES", v.prediction.label()),
        None => String::new(),
    }
}

/// Rows as left-aligned columns, two spaces apart, indented by two.
fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut text = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(text, "  {}", line.join("  ").trim_end());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LabName;
    use crate::topology::{lab_deployment, topology};
    use sovereign_model::Deployment;

    fn reference(peers: usize) -> Topology {
        let name = LabName::new("t1").unwrap();
        let keys: Vec<String> = (0..peers).map(|i| format!("{i:0>43}=")).collect();
        topology(
            &name,
            &lab_deployment(&Deployment::reference(), &name, &keys).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn every_reference_cell_is_probed_from_every_client() {
        let t = reference(2);
        let (specs, not_probed) = plan(&t);
        assert!(not_probed.is_empty(), "{not_probed:?}");
        let cells = intent(&t.deployment).cells.len();
        // Each VPN-peer cell runs from both clients; the WireGuard cell checks both tunnels.
        let vpn_cells = intent(&t.deployment)
            .cells
            .iter()
            .filter(|c| c.source == Source::VpnPeer)
            .count();
        assert_eq!(specs.len(), cells + vpn_cells + 1);
        let probe = |s: Source, d: Destination, from: &str| {
            specs
                .iter()
                .find(|p| p.source == s && p.destination == d && p.from == from)
                .map(|p| p.method.describe(p.src))
        };
        assert_eq!(
            probe(Source::VpnPeer, Destination::ServerApi, "v1").unwrap(),
            "10.10.10.2 -> 192.168.250.20:11434/tcp"
        );
        assert_eq!(
            probe(Source::VpnPeer, Destination::VpnPeer, "v2").unwrap(),
            "10.10.10.3 -> 10.10.10.2:8080/tcp"
        );
        assert_eq!(
            probe(Source::Internet, Destination::ServerApi, "net").unwrap(),
            "203.0.113.10 -> 192.168.250.20:11434/tcp"
        );
        assert_eq!(
            probe(Source::LanDevice, Destination::OtherLan, "dev").unwrap(),
            "192.168.250.30 -> 192.168.250.31:80/tcp"
        );
    }

    #[test]
    fn one_peer_cannot_probe_peer_to_peer_and_says_so() {
        let (_, not_probed) = plan(&reference(1));
        assert_eq!(not_probed.len(), 1);
        assert_eq!(
            (not_probed[0].source, not_probed[0].destination),
            (Source::VpnPeer, Destination::VpnPeer)
        );
    }

    #[test]
    fn an_open_unenforceable_deny_is_a_leak_and_an_enforceable_one_a_failure() {
        let (specs, _) = plan(&reference(1));
        let mut spec = specs
            .into_iter()
            .find(|s| s.expect == Expect::Deny)
            .unwrap();
        let open = Observation::Open(String::new());
        assert_eq!(judge(&spec, &open), Verdict::Fail);
        spec.enforceable = false;
        assert_eq!(judge(&spec, &open), Verdict::Leak);
        assert_eq!(judge(&spec, &Observation::Prohibited), Verdict::Pass);
    }
}
