//! The lab's lifecycle: `up` builds it, `down` removes exactly what it built, and
//! a [`Lab`] value tears its lab down when dropped (also during a panic) unless it
//! was detached for a later `sovereign lab down`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddrV4;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sovereign_model::{Deployment, PeerStatus};
use sovereign_wg::{Key, RouterSecrets};

use crate::netns;
use crate::router::{RouterConfig, render_router};
pub use crate::system::find_program;
use crate::system::{self, Daemon, Running};
use crate::topology::{self, Node, Role, Service, Topology, Tunnel};
use crate::{LabError, LabName, agent};
use sovereign_wg::quick;

/// Where every lab keeps its state: `<root>/<name>/state.json`, keys, logs.
pub const STATE_ROOT: &str = "/run/sovereign-lab";
/// The userspace WireGuard control sockets, shared by every namespace.
pub const WIREGUARD_SOCKET_DIR: &str = "/var/run/wireguard";

/// How the lab runs its listeners: the program and the arguments before the
/// listener list, e.g. `sovereign lab _serve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// What answers on the AI server's API port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ApiServer {
    /// The Ollama API emulator (a test double), hosted by the lab's listener agent.
    Emulator,
    /// A real `ollama serve`, with `OLLAMA_HOST` set to the server's API address.
    Ollama { program: PathBuf },
}

#[derive(Debug, Clone)]
pub struct LabOptions {
    pub name: LabName,
    /// How many ephemeral VPN peers (and client namespaces) to create.
    pub peers: usize,
    pub agent: AgentCommand,
    pub api_server: ApiServer,
}

/// How long each phase of `up` took, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SetupTimings {
    pub wiring_ms: u64,
    pub wireguard_ms: u64,
    pub router_ms: u64,
    pub listeners_ms: u64,
    pub tunnels_ms: u64,
    pub total_ms: u64,
}

/// Everything another process needs to probe, bench or tear down the lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    pub name: LabName,
    pub topology: Topology,
    pub api_server: ApiServer,
    pub agent: AgentCommand,
    pub daemons: Vec<Daemon>,
    /// WireGuard interfaces whose control sockets this lab created.
    pub wireguard_sockets: Vec<String>,
    /// The process that ran `up`.
    pub created_by: u32,
    pub setup: SetupTimings,
}

/// A lab that exists. Dropping an owned lab tears it down.
pub struct Lab {
    state: LabState,
    dir: PathBuf,
    running: Vec<Running>,
    owned: bool,
}

impl Lab {
    /// Build the lab for `user`'s deployment. On any failure, everything built so
    /// far is removed again before the error is returned.
    pub fn up(user: &Deployment, options: LabOptions) -> Result<Lab, LabError> {
        let missing = crate::prereq::missing();
        if !missing.is_empty() {
            return Err(LabError::Prerequisites(missing));
        }
        let started = Instant::now();
        let name = options.name.clone();
        let dir = state_dir(&name);
        if dir.exists() || namespaces_of(&name).next().is_some() {
            return Err(LabError::AlreadyUp(name.to_string()));
        }
        fs::create_dir_all(STATE_ROOT).map_err(|e| LabError::io(STATE_ROOT, e))?;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| LabError::io(&dir, e))?;

        let client_keys: Vec<Key> = (0..options.peers)
            .map(|_| Key::generate_private())
            .collect::<Result<_, _>>()?;
        let public: Vec<String> = client_keys
            .iter()
            .map(|k| k.public_key().to_base64())
            .collect();
        let deployment = match topology::lab_deployment(user, &name, &public) {
            Ok(d) => d,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let topology = match topology::topology(&name, &deployment) {
            Ok(t) => t,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let state = LabState {
            name: name.clone(),
            wireguard_sockets: Vec::new(),
            topology,
            api_server: options.api_server.clone(),
            agent: options.agent.clone(),
            daemons: Vec::new(),
            created_by: std::process::id(),
            setup: SetupTimings::default(),
        };
        let mut lab = Lab {
            state,
            dir,
            running: Vec::new(),
            owned: true,
        };
        // From here on, a failure drops `lab`, which tears down what exists.
        lab.save()?;
        let mut secrets = RouterSecrets {
            private_key: Key::generate_private()?,
            preshared_keys: BTreeMap::new(),
            retired_peers: Vec::new(),
        };
        for peer in &lab.state.topology.deployment.peers {
            secrets
                .preshared_keys
                .insert(peer.name.clone(), Key::generate_preshared()?);
        }
        lab.save_secrets(&secrets, &client_keys)?;
        lab.build(&secrets, &client_keys, started)?;
        Ok(lab)
    }

    /// The lab `name` as recorded by the process that built it. The returned value
    /// does not own the lab: dropping it leaves the lab running.
    pub fn attach(name: &LabName) -> Result<Lab, LabError> {
        let dir = state_dir(name);
        let path = dir.join("state.json");
        let text = fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LabError::NotUp(name.to_string()),
            _ => LabError::io(&path, e),
        })?;
        let state: LabState = serde_json::from_str(&text).map_err(|e| LabError::State {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let running = state
            .daemons
            .iter()
            .map(|d| Running {
                daemon: d.clone(),
                child: None,
            })
            .collect();
        Ok(Lab {
            state,
            dir,
            running,
            owned: false,
        })
    }

    /// Leave the lab running after this value is dropped (`sovereign lab up`).
    pub fn detach(mut self) {
        self.owned = false;
    }

    /// Tear the lab down now and report everything that went wrong.
    pub fn down(mut self) -> Result<(), LabError> {
        self.owned = false;
        self.teardown()
    }

    pub fn state(&self) -> &LabState {
        &self.state
    }

    pub fn topology(&self) -> &Topology {
        &self.state.topology
    }

    pub fn name(&self) -> &LabName {
        &self.state.name
    }

    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// The rendered router configuration files the lab applied.
    pub fn router_dir(&self) -> PathBuf {
        self.dir.join("router")
    }

    /// Revoke a lab peer the way `sovereign peer revoke` does: mark it revoked in the
    /// lab's deployment, render the router again and apply the new rendering.
    pub fn revoke_peer(&mut self, peer_name: &str) -> Result<(), LabError> {
        let peer = self
            .state
            .topology
            .deployment
            .peers
            .iter_mut()
            .find(|p| p.name == peer_name)
            .ok_or_else(|| {
                LabError::Unsupported(format!("the lab has no peer named {peer_name}"))
            })?;
        peer.status = PeerStatus::Revoked;
        let (secrets, _) = self.load_secrets()?;
        let config = render_router(&self.state.topology.deployment, &secrets)?;
        self.apply_router(&config)?;
        self.save()
    }

    /// Stop the API server (e.g. to put a throughput sink on its port).
    pub fn stop_api(&mut self) -> Result<(), LabError> {
        let (mut api, rest): (Vec<Running>, Vec<Running>) = self
            .running
            .drain(..)
            .partition(|r| r.daemon.name == API_DAEMON);
        self.running = rest;
        let problems = system::stop_all(&mut api, Duration::from_secs(2));
        self.state.daemons.retain(|d| d.name != API_DAEMON);
        self.save()?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::Teardown(problems))
        }
    }

    /// Start the API server again after [`Lab::stop_api`].
    pub fn start_api(&mut self) -> Result<(), LabError> {
        let started = self.spawn_api()?;
        self.wait_ready(started)?;
        self.wait_for_api()?;
        self.save()
    }

    /// A VPN client node and its tunnel, or an error naming what `client_key` is not.
    fn vpn_client(&self, client_key: &str) -> Result<(&Node, &Tunnel), LabError> {
        let node = self
            .state
            .topology
            .node(client_key)
            .ok_or_else(|| LabError::Unsupported(format!("no node {client_key}")))?;
        let tunnel = node
            .tunnel
            .as_ref()
            .ok_or_else(|| LabError::Unsupported(format!("{client_key} is not a VPN client")))?;
        Ok((node, tunnel))
    }

    /// Apply a VPN client's WireGuard config again (`wg setconf`): its peer is
    /// removed and re-added, so sessions and transfer counters start from zero and
    /// the next packet needs a fresh handshake.
    pub fn reset_client(&self, client_key: &str) -> Result<(), LabError> {
        let (node, tunnel) = self.vpn_client(client_key)?;
        let conf = self.dir.join(format!("{}.conf", tunnel.interface));
        system::run_in(
            &node.netns,
            "wg",
            &["setconf", &tunnel.interface, &conf.to_string_lossy()],
            None,
        )?;
        Ok(())
    }

    /// `wg show <if> transfer` of a VPN client: bytes received and sent.
    pub fn client_transfer(&self, client_key: &str) -> Result<(u64, u64), LabError> {
        let (node, tunnel) = self.vpn_client(client_key)?;
        let output = system::run_in(
            &node.netns,
            "wg",
            &["show", &tunnel.interface, "transfer"],
            None,
        )?;
        Ok(output
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace().skip(1);
                Some((
                    fields.next()?.parse::<u64>().ok()?,
                    fields.next()?.parse::<u64>().ok()?,
                ))
            })
            .fold((0, 0), |(rx, tx), (r, t)| (rx + r, tx + t)))
    }

    /// The public keys of the router's WireGuard peers (`wg show <if> peers`).
    pub fn router_peers(&self) -> Result<Vec<String>, LabError> {
        let d = &self.state.topology.deployment;
        let output = system::run_in(
            &self.state.topology.router().netns,
            "wg",
            &["show", &d.wireguard.interface, "peers"],
            None,
        )?;
        Ok(output.lines().map(str::to_string).collect())
    }

    /// Restart a VPN client's tunnel on a new UDP port (`0`: one wireguard-go picks)
    /// with a fresh handshake, so the router sees a *new* flow to its WireGuard port:
    /// the handshake initiation is its first packet, which the router's firewall
    /// decides afresh, and once the router answered, every later packet of the flow
    /// is `established`. Without this, the tunnel's conntrack entry from `up` keeps it
    /// working whatever the ruleset now says about new flows.
    ///
    /// The peer is set up again without a keepalive (so no packet leaves from the old
    /// port), then the rendered keepalive is turned on, which makes wireguard-go send
    /// at once: a handshake, since the new peer has no session. The transfer counters
    /// restart at zero, so received bytes mean the router answered the handshake.
    /// Returns the client's new underlay endpoint.
    pub fn refresh_client_underlay(
        &self,
        client_key: &str,
        port: u16,
    ) -> Result<SocketAddrV4, LabError> {
        let (node, tunnel) = self.vpn_client(client_key)?;
        let base_path = self.dir.join(format!("{}.conf", tunnel.interface));
        let base = fs::read_to_string(&base_path).map_err(|e| LabError::io(&base_path, e))?;
        let router_public = quick::value(&base, "PublicKey").ok_or_else(|| LabError::State {
            path: base_path.clone(),
            detail: "the client config has no [Peer] PublicKey".into(),
        })?;
        let keepalive = quick::value(&base, "PersistentKeepalive");
        let round_path = self.dir.join(format!("{}.round.conf", tunnel.interface));
        write_private(&round_path, &quick::with_listen_port(&base, port))?;
        let wg = |args: &[&str]| system::run_in(&node.netns, "wg", args, None);
        wg(&["setconf", &tunnel.interface, &round_path.to_string_lossy()])?;
        let on = keepalive.clone().unwrap_or_else(|| "1".into());
        let peer = ["set", &tunnel.interface, "peer", &router_public];
        wg(&[&peer[..], &["persistent-keepalive", &on]].concat())?;
        if keepalive.is_none() {
            wg(&[&peer[..], &["persistent-keepalive", "off"]].concat())?;
        }
        let listening = wg(&["show", &tunnel.interface, "listen-port"])?;
        let port = listening
            .trim()
            .parse::<u16>()
            .map_err(|_| LabError::Command {
                command: format!("wg show {} listen-port", tunnel.interface),
                detail: format!("unexpected output {listening:?}"),
            })?;
        Ok(SocketAddrV4::new(node.address, port))
    }

    fn build(
        &mut self,
        secrets: &RouterSecrets,
        client_keys: &[Key],
        started: Instant,
    ) -> Result<(), LabError> {
        let mut timings = SetupTimings::default();
        let mark = |t: &mut Instant| {
            let ms = t.elapsed().as_millis() as u64;
            *t = Instant::now();
            ms
        };
        let mut phase = Instant::now();
        let topology = self.state.topology.clone();
        let d = &topology.deployment;
        self.claim_wireguard_names()?;
        // Namespaces are recorded before they exist, so a failure half-way through
        // still removes the ones that were made.
        self.save()?;
        system::execute(&topology.wiring())?;
        timings.wiring_ms = mark(&mut phase);

        // The userspace WireGuard daemons create their tun devices first, so the
        // router's setup script finds its WireGuard link in place.
        let wireguard_go = system::find_program("wireguard-go")
            .ok_or_else(|| LabError::Prerequisites(vec!["wireguard-go".into()]))?;
        let mut sockets = Vec::new();
        let mut pending = vec![(
            topology.router().netns.clone(),
            d.wireguard.interface.clone(),
        )];
        for client in topology.clients() {
            let tunnel = client.tunnel.as_ref().expect("clients have tunnels");
            pending.push((client.netns.clone(), tunnel.interface.clone()));
        }
        for (netns, interface) in &pending {
            let log = self.dir.join(format!("wireguard-{interface}.log"));
            let running = system::spawn_daemon(
                &format!("wireguard-go {interface}"),
                netns,
                &wireguard_go,
                std::slice::from_ref(interface),
                &[("WG_PROCESS_FOREGROUND", "1")],
                &log,
                false,
            )?;
            self.add_running(running);
            sockets.push(socket_path(interface));
        }
        self.save()?;
        for socket in &sockets {
            system::wait_for_path(socket, Duration::from_secs(5))?;
        }
        timings.wireguard_ms = mark(&mut phase);

        let config = render_router(d, secrets)?;
        self.apply_router(&config)?;
        system::execute(&topology.router_environment())?;
        timings.router_ms = mark(&mut phase);

        let router_public = secrets.private_key.public_key();
        for (client, key) in topology.clients().zip(client_keys) {
            let tunnel = client.tunnel.as_ref().expect("clients have tunnels");
            let peer = d.peer(&tunnel.peer_name).expect("lab peers exist");
            let text = sovereign_wg::render_client_config(
                d,
                peer,
                Some(key),
                secrets.preshared_keys.get(&peer.name),
                &router_public,
            );
            self.configure_client(&client.netns, &tunnel.interface, &text)?;
        }
        timings.wireguard_ms += mark(&mut phase);

        let mut starting = Vec::new();
        for node in &topology.nodes {
            let plain: Vec<_> = node
                .listeners
                .iter()
                .filter(|l| l.service != Service::Api)
                .copied()
                .collect();
            if plain.is_empty() {
                continue;
            }
            starting.push(self.spawn_agent(
                &format!("listeners {}", node.key),
                &node.netns,
                &node.key,
                &plain,
            )?);
        }
        starting.push(self.spawn_api()?);
        self.save()?;
        for index in starting {
            self.wait_ready(index)?;
        }
        timings.listeners_ms = mark(&mut phase);

        self.wait_for_api()?;
        timings.tunnels_ms = mark(&mut phase);
        timings.total_ms = started.elapsed().as_millis() as u64;
        self.state.setup = timings;
        self.save()
    }

    /// Apply the rendered router configuration: the rendered files, applied by the
    /// rendered setup script (firewall, WireGuard, addresses, routes, sysctls).
    fn apply_router(&self, config: &RouterConfig) -> Result<(), LabError> {
        let dir = self.router_dir();
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&dir)
            .map_err(|e| LabError::io(&dir, e))?;
        for (name, text) in &config.files {
            write_private(&dir.join(name), text)?;
        }
        let rtr = &self.state.topology.router().netns;
        if !config.setup.contains("wg setconf") && !config.setup.contains("wg syncconf") {
            return Err(LabError::Render(
                "setup.sh does not configure WireGuard".into(),
            ));
        }
        let setup = dir.join("setup.sh").to_string_lossy().into_owned();
        system::run_in(rtr, "sh", &[&setup], Some(&dir))?;
        Ok(())
    }

    /// Re-apply the rendered ruleset (after a control run flushed it), the way
    /// setup.sh loads it.
    pub fn restore_ruleset(&self) -> Result<(), LabError> {
        let json = self.router_dir().join("nftables.json");
        system::run_in(
            &self.state.topology.router().netns,
            "nft",
            &["-j", "-f", &json.to_string_lossy()],
            None,
        )?;
        Ok(())
    }

    /// Load an nftables JSON document into the router (`nft -j -f FILE`), e.g. a
    /// mutant of the rendered ruleset; nft applies it atomically or not at all.
    pub fn load_ruleset(&self, file: &Path) -> Result<(), LabError> {
        system::run_in(
            &self.state.topology.router().netns,
            "nft",
            &["-j", "-f", &file.to_string_lossy()],
            None,
        )?;
        Ok(())
    }

    /// What the router runs: `nft -j list ruleset`.
    pub fn list_ruleset(&self) -> Result<String, LabError> {
        system::run_in(
            &self.state.topology.router().netns,
            "nft",
            &["-j", "list", "ruleset"],
            None,
        )
    }

    /// Remove every rule from the router (the control run).
    pub fn flush_ruleset(&self) -> Result<(), LabError> {
        system::run_in(
            &self.state.topology.router().netns,
            "nft",
            &["flush", "ruleset"],
            None,
        )?;
        Ok(())
    }

    /// Set up a VPN client from its rendered wg-quick config, as wg-quick would:
    /// `wg setconf` with the wg-quick-only keys removed, then addresses, MTU and routes.
    fn configure_client(
        &self,
        netns: &str,
        interface: &str,
        wg_quick: &str,
    ) -> Result<(), LabError> {
        let setup =
            quick::split(wg_quick).map_err(|e| LabError::Render(format!("client config: {e}")))?;
        let conf = self.dir.join(format!("{interface}.conf"));
        write_private(&conf, &setup.setconf)?;
        system::run_in(
            netns,
            "wg",
            &["setconf", interface, &conf.to_string_lossy()],
            None,
        )?;
        let mut batch = Vec::new();
        for address in &setup.addresses {
            batch.push(format!("addr add {address} dev {interface}"));
        }
        let mtu = setup
            .mtu
            .unwrap_or(self.state.topology.deployment.wireguard.mtu);
        batch.push(format!("link set {interface} mtu {mtu} up"));
        for route in &setup.routes {
            batch.push(format!("route add {route} dev {interface}"));
        }
        system::run(
            "ip",
            &["-n", netns, "-batch", "-"],
            Some(&(batch.join("\n") + "\n")),
            None,
        )?;
        Ok(())
    }

    fn spawn_agent(
        &mut self,
        name: &str,
        netns: &str,
        node: &str,
        listeners: &[topology::Listener],
    ) -> Result<usize, LabError> {
        let mut args = self.state.agent.args.clone();
        args.extend(["--node".to_string(), node.to_string()]);
        for listener in listeners {
            args.extend(["--listen".to_string(), agent::format_listener(listener)]);
        }
        let log = self.dir.join(format!("{}.log", name.replace(' ', "-")));
        let running = system::spawn_daemon(
            name,
            netns,
            &self.state.agent.program,
            &args,
            &[],
            &log,
            true,
        )?;
        Ok(self.add_running(running))
    }

    fn spawn_api(&mut self) -> Result<usize, LabError> {
        let server = self
            .state
            .topology
            .first(Role::Server)
            .expect("server node")
            .clone();
        let api = *server
            .listeners
            .iter()
            .find(|l| l.service == Service::Api)
            .expect("the server has an API listener");
        match self.state.api_server.clone() {
            ApiServer::Emulator => self.spawn_agent(API_DAEMON, &server.netns, "srv", &[api]),
            ApiServer::Ollama { program } => {
                let host = api.address.to_string();
                let log = self.dir.join("ollama.log");
                let running = system::spawn_daemon(
                    API_DAEMON,
                    &server.netns,
                    &program,
                    &["serve".to_string()],
                    &[("OLLAMA_HOST", host.as_str())],
                    &log,
                    false,
                )?;
                Ok(self.add_running(running))
            }
        }
    }

    fn add_running(&mut self, running: Running) -> usize {
        self.state.daemons.push(running.daemon.clone());
        self.running.push(running);
        self.running.len() - 1
    }

    /// Wait for an agent's `ready` line (its listeners are bound). Other daemons
    /// (a real ollama) are checked by [`Lab::wait_for_api`] instead.
    fn wait_ready(&mut self, index: usize) -> Result<(), LabError> {
        let running = &mut self.running[index];
        let name = running.daemon.name.clone();
        let Some(stdout) = running.child.as_mut().and_then(|c| c.stdout.take()) else {
            return Ok(());
        };
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        match receiver.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.trim() == "ready" => Ok(()),
            Ok(_) => {
                let log = self.dir.join(format!("{}.log", name.replace(' ', "-")));
                let detail = fs::read_to_string(&log).unwrap_or_default();
                Err(LabError::Command {
                    command: name,
                    detail: format!("exited before listening: {}", detail.trim()),
                })
            }
            Err(_) => Err(LabError::Timeout(format!("{name} did not report ready"))),
        }
    }

    /// Every VPN client completes an API request through its tunnel: the tunnels are
    /// up and the API answers. Retried, since the first handshake takes a moment.
    fn wait_for_api(&self) -> Result<(), LabError> {
        let d = &self.state.topology.deployment;
        let target = std::net::SocketAddrV4::new(d.server.address, d.server.api_port);
        let mut vantage: Vec<String> = self
            .state
            .topology
            .clients()
            .map(|c| c.netns.clone())
            .collect();
        if vantage.is_empty() {
            vantage.push(self.state.topology.router().netns.clone());
        }
        let handles: Vec<_> = vantage
            .into_iter()
            .map(|netns| {
                netns::spawn_in(&netns.clone(), move || {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    loop {
                        let answer =
                            crate::http::get(target, "/api/version", Duration::from_millis(500));
                        match answer {
                            Ok(response) if response.status == 200 => return Ok(()),
                            _ if Instant::now() < deadline => {
                                std::thread::sleep(Duration::from_millis(20))
                            }
                            other => {
                                let detail = match other {
                                    Ok(r) => format!("HTTP {}", r.status),
                                    Err(e) => e.to_string(),
                                };
                                return Err(LabError::Timeout(format!(
                                    "{netns}: the API at {target} did not answer: {detail}"
                                )));
                            }
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            netns::join(handle)??;
        }
        Ok(())
    }

    /// Refuse WireGuard names whose control socket is live (another lab or a real
    /// tunnel); remove stale sockets of those names.
    fn claim_wireguard_names(&mut self) -> Result<(), LabError> {
        for interface in self.state.topology.wireguard_interfaces() {
            let socket = socket_path(&interface);
            if socket.exists() {
                if UnixStream::connect(&socket).is_ok() {
                    return Err(LabError::InterfaceInUse(interface));
                }
                let _ = fs::remove_file(&socket);
            }
            self.state.wireguard_sockets.push(interface);
        }
        Ok(())
    }

    fn save(&self) -> Result<(), LabError> {
        let text = serde_json::to_string_pretty(&self.state).expect("the state serializes");
        write_private(&self.dir.join("state.json"), &text)
    }

    fn save_secrets(&self, secrets: &RouterSecrets, client_keys: &[Key]) -> Result<(), LabError> {
        let keys = self.dir.join("keys");
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&keys)
            .map_err(|e| LabError::io(&keys, e))?;
        write_private(&keys.join("router.key"), &secrets.private_key.to_base64())?;
        for (name, psk) in &secrets.preshared_keys {
            write_private(&keys.join(format!("{name}.psk")), &psk.to_base64())?;
        }
        for (peer, key) in self.state.topology.deployment.peers.iter().zip(client_keys) {
            write_private(&keys.join(format!("{}.key", peer.name)), &key.to_base64())?;
        }
        Ok(())
    }

    fn load_secrets(&self) -> Result<(RouterSecrets, Vec<Key>), LabError> {
        let keys = self.dir.join("keys");
        let read = |file: String| -> Result<Key, LabError> {
            let path = keys.join(&file);
            let text = fs::read_to_string(&path).map_err(|e| LabError::io(&path, e))?;
            Key::from_base64(&text).map_err(|e| LabError::State {
                path,
                detail: e.to_string(),
            })
        };
        let mut secrets = RouterSecrets {
            private_key: read("router.key".into())?,
            preshared_keys: BTreeMap::new(),
            retired_peers: Vec::new(),
        };
        let mut clients = Vec::new();
        for peer in &self.state.topology.deployment.peers {
            secrets
                .preshared_keys
                .insert(peer.name.clone(), read(format!("{}.psk", peer.name))?);
            clients.push(read(format!("{}.key", peer.name))?);
        }
        Ok((secrets, clients))
    }

    /// Kill exactly our processes and wait for them, kill what is still inside our
    /// namespaces, delete our namespaces and our control sockets, then the state.
    /// Every step runs even when an earlier one failed.
    fn teardown(&mut self) -> Result<(), LabError> {
        let mut problems = system::stop_all(&mut self.running, Duration::from_secs(2));
        self.running.clear();
        problems.extend(remove_namespaces(&self.state.topology.namespaces()));
        for interface in &self.state.wireguard_sockets {
            let socket = socket_path(interface);
            if socket.exists() && UnixStream::connect(&socket).is_err() {
                if let Err(e) = fs::remove_file(&socket) {
                    problems.push(format!("{}: {e}", socket.display()));
                }
            } else if socket.exists() {
                problems.push(format!("{} is still live", socket.display()));
            }
        }
        if problems.is_empty() {
            if let Err(e) = fs::remove_dir_all(&self.dir) {
                problems.push(format!("{}: {e}", self.dir.display()));
            }
            return Ok(());
        }
        Err(LabError::Teardown(problems))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        self.owned = false;
        if let Err(e) = self.teardown() {
            eprintln!("sovereign lab {}: {e}", self.state.name);
        }
    }
}

/// The daemon name of the API server; `stop_api`/`start_api` find it by this name.
const API_DAEMON: &str = "api srv";

/// Tear down the lab `name`, also when the process that built it died: from its
/// state file when there is one, else by sweeping the namespaces of its node names.
pub fn down(name: &LabName) -> Result<DownReport, LabError> {
    match Lab::attach(name) {
        Ok(lab) => {
            let namespaces = lab.state.topology.namespaces();
            let daemons = lab.state.daemons.len();
            lab_owned(lab).teardown()?;
            Ok(DownReport {
                namespaces,
                daemons,
            })
        }
        Err(LabError::NotUp(_)) | Err(LabError::State { .. }) => {
            let namespaces: Vec<String> = namespaces_of(name).collect();
            if namespaces.is_empty() && !state_dir(name).exists() {
                return Err(LabError::NotUp(name.to_string()));
            }
            let problems = remove_namespaces(&namespaces);
            if !problems.is_empty() {
                return Err(LabError::Teardown(problems));
            }
            let _ = fs::remove_dir_all(state_dir(name));
            Ok(DownReport {
                namespaces,
                daemons: 0,
            })
        }
        Err(e) => Err(e),
    }
}

fn lab_owned(mut lab: Lab) -> Lab {
    lab.owned = false;
    lab
}

/// What `down` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownReport {
    pub namespaces: Vec<String>,
    pub daemons: usize,
}

/// Names of labs with a state directory.
pub fn list() -> Vec<LabName> {
    let Ok(entries) = fs::read_dir(STATE_ROOT) else {
        return Vec::new();
    };
    let mut names: Vec<LabName> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| LabName::new(&e.file_name().to_string_lossy()).ok())
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names
}

pub fn state_dir(name: &LabName) -> PathBuf {
    Path::new(STATE_ROOT).join(name.as_str())
}

fn socket_path(interface: &str) -> PathBuf {
    Path::new(WIREGUARD_SOCKET_DIR).join(format!("{interface}.sock"))
}

/// Existing namespaces named like this lab's nodes (never a broader pattern).
fn namespaces_of(name: &LabName) -> impl Iterator<Item = String> {
    let mut keys: Vec<String> = ["net", "rtr", "srv", "dev", "dev2", "adm"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    keys.extend((1..=16).map(|i| format!("v{i}")));
    let name = name.clone();
    keys.into_iter()
        .map(move |key| name.netns(&key))
        .filter(|netns| netns::netns_path(netns).exists())
}

/// Kill whatever still runs inside these namespaces (a process keeps its
/// namespace alive after `ip netns del`), then delete them.
fn remove_namespaces(namespaces: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for netns in namespaces {
        if !netns::netns_path(netns).exists() {
            continue;
        }
        let pids = system::run("ip", &["netns", "pids", netns], None, None).unwrap_or_default();
        let leftovers: Vec<Daemon> = pids
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .filter_map(|pid| {
                Some(Daemon {
                    name: format!("leftover in {netns}"),
                    netns: netns.clone(),
                    pid,
                    start_time: system::start_time(pid)?,
                })
            })
            .collect();
        if !leftovers.is_empty() {
            let mut running: Vec<Running> = leftovers
                .into_iter()
                .map(|daemon| Running {
                    daemon,
                    child: None,
                })
                .collect();
            for r in &running {
                r.daemon.signal(libc::SIGKILL);
            }
            problems.extend(system::stop_all(&mut running, Duration::from_secs(2)));
        }
        if let Err(e) = system::run("ip", &["netns", "del", netns], None, None) {
            problems.push(e.to_string());
        }
    }
    problems
}

/// Write a file only its owner can read (keys, rendered configs, state).
fn write_private(path: &Path, text: &str) -> Result<(), LabError> {
    use std::io::Write as _;
    let temporary = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| LabError::io(&temporary, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| LabError::io(&temporary, e))?;
    fs::set_permissions(&temporary, fs::Permissions::from_mode(0o600))
        .map_err(|e| LabError::io(&temporary, e))?;
    fs::rename(&temporary, path).map_err(|e| LabError::io(path, e))
}
