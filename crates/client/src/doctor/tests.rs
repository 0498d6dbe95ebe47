//! Every fault of issue 18 as a row: the facts it leaves behind, the layer that
//! must fail, and the cause doctor must name.

use super::*;

const ROUTER_KEY: &str = "ROUTERKEY=";

fn healthy() -> Facts {
    Facts {
        interface: "sovereign".into(),
        config_path: "/etc/wireguard/sovereign.conf".into(),
        env_path: "/home/a/.config/sovereign/env".into(),
        url: "http://192.168.250.10:11434".into(),
        tunnel: Ok(TunnelConfig {
            addresses: vec!["10.10.10.2/32".parse().unwrap()],
            allowed_ips: vec!["192.168.250.0/24".parse().unwrap()],
            endpoint: Some("192.168.2.90:51820".into()),
            router_public_key: Some(ROUTER_KEY.into()),
            mtu: Some(1420),
        }),
        env_url: Some(Ok("http://192.168.250.10:11434".into())),
        bundle: None,
        link: Seen::Yes(LinkFacts {
            exists: true,
            up: true,
            mtu: Some(1420),
            addresses: vec!["10.10.10.2/32".parse().unwrap()],
        }),
        wg: Seen::Yes(WgFacts {
            peers: vec![ROUTER_KEY.into()],
            endpoint: Some("192.168.2.90:51820".into()),
            handshake_age_secs: Some(5),
            rx_bytes: 1000,
            tx_bytes: 1000,
        }),
        route: Seen::Yes(RouteFacts {
            device: "sovereign".into(),
            via: None,
        }),
        connect: Some(Connect::Connected),
        version: Some(Ok("0.14.0".into())),
        models: Some(Ok(vec![ModelFacts {
            name: "toy:latest".into(),
            capabilities: vec!["completion".into()],
            context_length: Some(4096),
        }])),
        mtu: Some(Ok(())),
        router: None,
        server: None,
        required_context: None,
    }
}

fn router_view() -> RouterView {
    RouterView {
        router: "root@192.168.250.1".into(),
        interface_found: true,
        router_public_key: Some(ROUTER_KEY.into()),
        peer_present: true,
        peer_handshake_age_secs: Some(5),
        addresses: vec![
            "192.168.2.90/24".parse().unwrap(),
            "192.168.250.1/24".parse().unwrap(),
        ],
        wireguard_packets: Some((10, 14)),
        api_packets: Some((3, 5)),
        openwrt: false,
    }
}

/// A handshake that never came, after doctor sent traffic.
fn silent(f: &mut Facts) {
    if let Seen::Yes(wg) = &mut f.wg {
        wg.handshake_age_secs = None;
        wg.rx_bytes = 0;
    }
    f.connect = None;
    f.version = None;
    f.models = None;
    f.mtu = None;
}

fn with_router(f: &mut Facts, change: impl FnOnce(&mut RouterView)) {
    let mut view = router_view();
    change(&mut view);
    f.router = Some(Ok(view));
}

fn assert_fails(f: &Facts, layer: Layer, cause: &str, row: &str) {
    let d = diagnose(f);
    assert_eq!(d.first_failure, Some(layer), "{row}: {d:#?}");
    let failing: Vec<_> = d
        .layers
        .iter()
        .filter(|l| l.status == Status::Fail)
        .collect();
    assert_eq!(failing.len(), 1, "{row}: only one layer fails: {d:#?}");
    assert_eq!(failing[0].cause.as_deref(), Some(cause), "{row}: {d:#?}");
    assert!(
        failing[0].fix.is_some() && failing[0].evidence.is_some(),
        "{row}"
    );
    let after: Vec<_> = d
        .layers
        .iter()
        .skip_while(|l| l.layer != layer)
        .skip(1)
        .collect();
    assert!(
        after.iter().all(|l| l.status == Status::Skipped),
        "{row}: {d:#?}"
    );
    assert!(!d.ok);
}

#[test]
fn a_healthy_path_passes_every_layer() {
    let d = diagnose(&healthy());
    assert!(d.ok, "{d:#?}");
    assert_eq!(d.first_failure, None);
    assert_eq!(d.layers.len(), 9);
    assert!(d.layers.iter().all(|l| l.status == Status::Pass), "{d:#?}");
    let mut f = healthy();
    f.router = Some(Ok(router_view()));
    assert!(diagnose(&f).ok);
}

#[test]
fn each_fault_of_the_issue_fails_in_its_layer() {
    type Row = (&'static str, Layer, &'static str, fn(&mut Facts));
    let rows: &[Row] = &[
        ("1 emulator stopped", Layer::Server, "refused", |f| {
            f.connect = Some(Connect::Refused);
            f.version = None;
            f.models = None;
            f.mtu = None;
        }),
        (
            "1 emulator stopped, seen on the server",
            Layer::Server,
            "server-down",
            |f| {
                f.connect = Some(Connect::Refused);
                f.server = Some(Ok(ServerView { bound: vec![] }));
            },
        ),
        (
            "2 bound to 127.0.0.1, seen on the server",
            Layer::Server,
            "wrong-bind",
            |f| {
                f.connect = Some(Connect::Refused);
                f.server = Some(Ok(ServerView {
                    bound: vec![Ipv4Addr::LOCALHOST],
                }));
            },
        ),
        (
            "3 WAN port dropped",
            Layer::Handshake,
            "wan-port-blocked",
            |f| {
                silent(f);
                with_router(f, |r| r.wireguard_packets = Some((10, 10)));
            },
        ),
        (
            "3..6 without the router's view",
            Layer::Handshake,
            "silence",
            silent,
        ),
        (
            "4 peer removed",
            Layer::Handshake,
            "peer-not-on-router",
            |f| {
                silent(f);
                with_router(f, |r| r.peer_present = false);
            },
        ),
        (
            "4 peer removed while a session lives",
            Layer::Handshake,
            "peer-not-on-router",
            |f| {
                f.connect = Some(Connect::Silence);
                with_router(f, |r| r.peer_present = false);
            },
        ),
        (
            "5 router rekeyed",
            Layer::Handshake,
            "router-key-changed",
            |f| {
                silent(f);
                with_router(f, |r| r.router_public_key = Some("NEWKEY=".into()));
            },
        ),
        (
            "6 wrong endpoint (config and interface)",
            Layer::Handshake,
            "wrong-endpoint",
            |f| {
                silent(f);
                if let (Ok(t), Seen::Yes(wg)) = (&mut f.tunnel, &mut f.wg) {
                    t.endpoint = Some("192.168.2.99:51820".into());
                    wg.endpoint = Some("192.168.2.99:51820".into());
                }
                with_router(f, |r| r.wireguard_packets = Some((10, 10)));
            },
        ),
        (
            "6 a public endpoint, the router behind an ISP box: cannot compare",
            Layer::Handshake,
            "wan-port-blocked",
            |f| {
                silent(f);
                if let (Ok(t), Seen::Yes(wg)) = (&mut f.tunnel, &mut f.wg) {
                    t.endpoint = Some("198.51.100.7:51820".into());
                    wg.endpoint = Some("198.51.100.7:51820".into());
                }
                with_router(f, |r| r.wireguard_packets = Some((10, 10)));
            },
        ),
        (
            "6 interface endpoint differs from the config",
            Layer::Handshake,
            "wrong-endpoint",
            |f| {
                silent(f);
                if let Seen::Yes(wg) = &mut f.wg {
                    wg.endpoint = Some("203.0.113.99:51820".into());
                }
            },
        ),
        (
            "7 API rule deleted (silence)",
            Layer::Firewall,
            "dropped-by-router",
            |f| {
                f.connect = Some(Connect::Silence);
                with_router(f, |r| r.api_packets = None);
            },
        ),
        (
            "7 API rule deleted, client only",
            Layer::Firewall,
            "silence",
            |f| {
                f.connect = Some(Connect::Silence);
            },
        ),
        (
            "7 API rule replaced by a reject",
            Layer::Firewall,
            "rejected",
            |f| {
                f.connect = Some(Connect::Unreachable("No route to host".into()));
            },
        ),
        (
            "7 fw4 rejects TCP with a reset",
            Layer::Firewall,
            "rejected",
            |f| {
                f.connect = Some(Connect::Refused);
                with_router(f, |r| {
                    r.openwrt = true;
                    r.api_packets = Some((3, 3));
                });
            },
        ),
        ("8 MTU black hole", Layer::Mtu, "mtu-black-hole", |f| {
            f.mtu = Some(Err("stalled".into()));
        }),
        (
            "9 route removed",
            Layer::Route,
            "route-not-through-tunnel",
            |f| {
                f.route = Seen::Yes(RouteFacts {
                    device: "eth0".into(),
                    via: Some("192.168.2.1".parse().unwrap()),
                });
            },
        ),
        ("10 no chat model", Layer::Model, "no-chat-model", |f| {
            f.models = Some(Ok(vec![ModelFacts {
                name: "nomic-embed-text:latest".into(),
                capabilities: vec!["embedding".into()],
                context_length: Some(8192),
            }]));
        }),
        (
            "coding agents need more context",
            Layer::Model,
            "context-too-small",
            |f| {
                f.required_context = Some(65536);
            },
        ),
    ];
    for &(row, layer, cause, inject) in rows {
        let mut f = healthy();
        inject(&mut f);
        assert_fails(&f, layer, cause, row);
    }
}

#[test]
fn config_and_interface_faults() {
    let mut f = healthy();
    f.tunnel = Err("No such file or directory".into());
    assert_fails(&f, Layer::Config, "tunnel-config-unreadable", "no config");
    let mut f = healthy();
    f.env_url = Some(Ok("http://192.168.250.99:11434".into()));
    assert_fails(&f, Layer::Config, "env-disagrees", "env elsewhere");
    let mut f = healthy();
    f.bundle = Some(BundleFacts {
        path: "laptop.peer.json".into(),
        endpoint: "192.168.2.90:51820".into(),
        router_public_key: "OTHER=".into(),
        ollama_url: f.url.clone(),
    });
    assert_fails(&f, Layer::Config, "bundle-disagrees", "bundle");
    let mut f = healthy();
    f.link = Seen::Yes(LinkFacts {
        exists: false,
        up: false,
        mtu: None,
        addresses: vec![],
    });
    assert_fails(&f, Layer::Interface, "no-interface", "no interface");
}

#[test]
fn missing_access_is_a_note_and_the_next_layer_decides() {
    let mut f = healthy();
    f.wg = Seen::NoAccess("no rights to read WireGuard state".into());
    let d = diagnose(&f);
    assert!(d.ok, "{d:#?}");
    assert_eq!(d.layers[2].status, Status::Unknown);
    assert!(d.notes.iter().any(|n| n.contains("no rights")), "{d:#?}");
    f.router = Some(Err("ssh: connection refused".into()));
    f.connect = Some(Connect::Refused);
    let d = diagnose(&f);
    assert_eq!(d.first_failure, Some(Layer::Server));
    assert!(
        d.notes.iter().any(|n| n.contains("router's view")),
        "{d:#?}"
    );
}

#[test]
fn parsers_read_what_the_tools_print() {
    let link = parse_link(
        "7: sovereign: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc fq_codel state UNKNOWN mode DEFAULT",
        "7: sovereign    inet 10.10.10.2/32 scope global sovereign\\       valid_lft forever",
    );
    assert!(link.up && link.mtu == Some(1420), "{link:?}");
    assert_eq!(
        link.addresses,
        ["10.10.10.2/32".parse::<Ipv4Net>().unwrap()]
    );
    assert!(!parse_link("7: x: <POINTOPOINT,NOARP> mtu 1420", "").up);
    let route =
        parse_route("192.168.250.10 via 192.168.2.1 dev eth0 src 192.168.2.50 uid 0\n    cache\n")
            .unwrap();
    assert_eq!(route.device, "eth0");
    assert_eq!(route.via, Some("192.168.2.1".parse().unwrap()));
    let dump = "PRIV\tPUB\t41000\toff\nROUTERKEY=\t(none)\t203.0.113.2:51820\t192.168.250.0/24\t1000\t500\t600\t25\n";
    let wg = parse_wg_dump(dump, Some("ROUTERKEY="), 1010);
    assert_eq!(wg.handshake_age_secs, Some(10));
    assert_eq!(wg.endpoint.as_deref(), Some("203.0.113.2:51820"));
    assert_eq!((wg.rx_bytes, wg.tx_bytes), (500, 600));
    let never = parse_wg_dump(&dump.replace("\t1000\t", "\t0\t"), None, 1010);
    assert_eq!(never.handshake_age_secs, None);
    assert_eq!(
        env_ollama_host("# x\nexport OLLAMA_HOST=\"http://a:1\"\n").as_deref(),
        Some("http://a:1")
    );
    assert_eq!(
        env_ollama_host("set -gx OLLAMA_HOST 'http://a:1'\n").as_deref(),
        Some("http://a:1")
    );
    assert_eq!(
        server_address("http://192.168.250.10:11434/")
            .unwrap()
            .port(),
        11434
    );
}
