//! The Linux router's policy as one nftables table, `table inet sovereign`, built
//! from the typed schema of the `nftables` crate.
//!
//! The document is a command batch (`add table; delete table; add table; ...`), so
//! `nft -j -f` replaces the whole table in one transaction and loading it twice
//! gives the same ruleset. Its size depends on the policy switches, never on the
//! number of peers: peers are WireGuard configuration, pinned to their /32 by
//! WireGuard's AllowedIPs, and the firewall only sees the VPN subnet.

use std::borrow::Cow;

use nftables::expr::{
    CT, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, RT, RTKey,
    SetItem, TcpOption,
};
use nftables::schema::{
    Chain, NfCmd, NfListObject, NfObject, Nftables, Rule, Set, SetType, SetTypeValue, Table,
};
use nftables::stmt::{Counter, Mangle, Match, Operator, Reject, RejectType, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook, RejectCode};
use sovereign_model::{Deployment, Destination as D, Isolation, Source as S};

use crate::rule_key::{RuleKey, Verdict};

pub const TABLE: &str = "sovereign";
pub const ADMIN_SET: &str = "admin_hosts";

/// The whole table as an `nft -j -f` command batch.
pub fn ruleset(d: &Deployment) -> Nftables<'static> {
    let mut objects = vec![
        NfObject::CmdObject(NfCmd::Add(NfListObject::Table(table()))),
        NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(table()))),
        NfObject::CmdObject(NfCmd::Add(NfListObject::Table(table()))),
    ];
    let mut add = |object| objects.push(NfObject::CmdObject(NfCmd::Add(object)));
    if !d.policy.admin_hosts.is_empty() {
        add(NfListObject::Set(Box::new(Set {
            family: NfFamily::INet,
            table: TABLE.into(),
            name: ADMIN_SET.into(),
            handle: None,
            set_type: SetTypeValue::Single(SetType::Ipv4Addr),
            policy: None,
            flags: None,
            elem: Some(
                d.policy
                    .admin_hosts
                    .iter()
                    .map(|a| Expression::String(a.to_string().into()))
                    .collect::<Vec<_>>()
                    .into(),
            ),
            timeout: None,
            gc_interval: None,
            size: None,
            comment: None,
        })));
    }
    add(base_chain(
        "input",
        NfChainType::Filter,
        NfHook::Input,
        0,
        NfChainPolicy::Drop,
    ));
    add(base_chain(
        "forward",
        NfChainType::Filter,
        NfHook::Forward,
        0,
        NfChainPolicy::Drop,
    ));
    add(base_chain(
        "mangle_forward",
        NfChainType::Filter,
        NfHook::Forward,
        -150,
        NfChainPolicy::Accept,
    ));
    add(base_chain(
        "postrouting",
        NfChainType::NAT,
        NfHook::Postrouting,
        100,
        NfChainPolicy::Accept,
    ));
    let policy = Policy::new(d);
    for rule in policy
        .input()
        .into_iter()
        .chain(policy.forward())
        .chain(policy.mangle())
        .chain(policy.nat())
    {
        add(NfListObject::Rule(rule));
    }
    Nftables {
        objects: objects.into(),
    }
}

fn table() -> Table<'static> {
    Table {
        family: NfFamily::INet,
        name: TABLE.into(),
        handle: None,
    }
}

fn base_chain(
    name: &'static str,
    kind: NfChainType,
    hook: NfHook,
    prio: i32,
    policy: NfChainPolicy,
) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: name.into(),
        newname: None,
        handle: None,
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        dev: None,
        policy: Some(policy),
    })
}

/// Where the server's packets enter and leave, which differs by isolation mode.
struct Policy<'a> {
    d: &'a Deployment,
    wan: &'a str,
    lan: &'a str,
    wg: &'a str,
    /// `Some(port)` in dedicated-port mode.
    server_port: Option<&'a str>,
    server: String,
}

type Stmts = Vec<Statement<'static>>;

impl<'a> Policy<'a> {
    fn new(d: &'a Deployment) -> Self {
        Policy {
            d,
            wan: &d.wan.interface,
            lan: &d.lan.interface,
            wg: &d.wireguard.interface,
            server_port: match d.server.isolation {
                Isolation::DedicatedPort => Some(&d.server.router_port),
                Isolation::Shared => None,
            },
            server: d.server.address.to_string(),
        }
    }

    /// Packets from the server: its own port, or its address on the LAN bridge.
    fn server_ingress(&self) -> Stmts {
        match self.server_port {
            Some(port) => vec![iifname(port)],
            None => vec![iifname(self.lan), ip("saddr", Operator::EQ, &self.server)],
        }
    }

    /// Packets to the server (always by address; in dedicated mode also by port).
    fn server_egress(&self) -> Stmts {
        match self.server_port {
            Some(port) => vec![oifname(port), ip("daddr", Operator::EQ, &self.server)],
            None => vec![ip("daddr", Operator::EQ, &self.server)],
        }
    }

    fn input(&self) -> Vec<Rule<'static>> {
        let chain = "input";
        let port = self.d.wireguard.listen_port;
        let mut rules = vec![
            plumbing(
                chain,
                "plumbing: loopback",
                vec![meta_eq(MetaKey::Iif, "lo"), accept()],
            ),
            plumbing(
                chain,
                "plumbing: established, related",
                vec![ct_state(&["established", "related"]), accept()],
            ),
            plumbing(
                chain,
                "plumbing: invalid",
                vec![ct_state(&["invalid"]), drop()],
            ),
            keyed(
                chain,
                RuleKey::new(&[S::Internet], &[D::RouterWireguard], Verdict::Allow),
                vec![iifname(self.wan), port_eq("udp", port)],
            ),
            keyed(
                chain,
                RuleKey::new(
                    &[S::Internet],
                    &[D::RouterServices, D::RouterDns],
                    Verdict::Drop,
                ),
                vec![iifname(self.wan)],
            ),
        ];
        let dns = [
            self.server_ingress(),
            vec![l4proto_set(&["tcp", "udp"]), port_eq("th", 53)],
        ]
        .concat();
        rules.push(keyed(
            chain,
            RuleKey::new(&[S::Server], &[D::RouterDns], Verdict::Allow),
            dns,
        ));
        let dhcp = [self.server_ingress(), vec![port_eq("udp", 67)]].concat();
        rules.push(keyed(
            chain,
            RuleKey::new(&[S::Server], &[D::RouterDns], Verdict::Allow).with_note("dhcp"),
            dhcp,
        ));
        rules.push(keyed(
            chain,
            RuleKey::new(&[S::Server], &[D::RouterServices], Verdict::Reject),
            self.server_ingress(),
        ));
        rules.push(keyed(
            chain,
            RuleKey::new(
                &[S::VpnPeer],
                &[D::RouterServices, D::RouterDns],
                Verdict::Reject,
            ),
            vec![iifname(self.wg)],
        ));
        if self.server_port.is_none() {
            // The server's IPv6 addresses are unknown on a shared segment, so
            // IPv6 from the LAN to the router is closed for every device.
            rules.push(keyed(
                chain,
                RuleKey::new(&[S::Server], &[D::RouterServices], Verdict::Reject).with_note("ipv6"),
                vec![iifname(self.lan), meta_eq(MetaKey::Nfproto, "ipv6")],
            ));
        }
        rules.push(keyed(
            chain,
            RuleKey::new(
                &[S::LanDevice, S::LanAdmin],
                &[D::RouterServices, D::RouterDns],
                Verdict::Allow,
            ),
            vec![iifname(self.lan)],
        ));
        rules
    }

    fn forward(&self) -> Vec<Rule<'static>> {
        let chain = "forward";
        let p = &self.d.policy;
        let api = self.d.server.api_port;
        let ssh = self.d.server.ssh_port;
        let vpn_subnet = self.d.wireguard.subnet;
        let mut rules = vec![
            plumbing(
                chain,
                "plumbing: established, related",
                vec![ct_state(&["established", "related"]), accept()],
            ),
            plumbing(
                chain,
                "plumbing: invalid",
                vec![ct_state(&["invalid"]), drop()],
            ),
            keyed(
                chain,
                RuleKey::new(
                    &[S::Internet],
                    &[
                        D::ServerApi,
                        D::ServerSsh,
                        D::ServerOther,
                        D::OtherLan,
                        D::VpnPeer,
                    ],
                    Verdict::Drop,
                ),
                vec![iifname(self.wan)],
            ),
        ];
        if let Some(port) = self.server_port {
            rules.push(counted(
                chain,
                "anti-spoof: the server port carries only the server's address",
                vec![
                    iifname(port),
                    ip("saddr", Operator::NEQ, &self.server),
                    counter(),
                    drop(),
                ],
            ));
        }
        rules.push(counted(
            chain,
            "anti-spoof: the tunnel carries only VPN addresses (WireGuard AllowedIPs pin each peer's /32)",
            vec![
                iifname(self.wg),
                ip_prefix("saddr", Operator::NEQ, vpn_subnet.network().to_string(), vpn_subnet.prefix_len()),
                counter(),
                drop(),
            ],
        ));
        let lan_lan = RuleKey::new(&[S::LanDevice, S::LanAdmin], &[D::OtherLan], Verdict::Allow);
        if self.server_port.is_some() {
            // Bridged LAN traffic only reaches this hook with br_netfilter; the
            // server is not on the bridge, so accepting it opens nothing.
            rules.push(keyed(
                chain,
                lan_lan.clone(),
                vec![iifname(self.lan), oifname(self.lan)],
            ));
        }
        rules.push(counted(
            chain,
            "ipv6: forwarding closed, sovereign routes IPv4 only",
            vec![meta_eq(MetaKey::Nfproto, "ipv6"), counter(), reject()],
        ));

        let from_vpn_to_server = [vec![iifname(self.wg)], self.server_egress()].concat();
        rules.push(keyed(
            chain,
            RuleKey::new(&[S::VpnPeer], &[D::ServerApi], Verdict::Allow),
            [from_vpn_to_server.clone(), vec![port_eq("tcp", api)]].concat(),
        ));
        if p.vpn_ssh {
            rules.push(keyed(
                chain,
                RuleKey::new(&[S::VpnPeer], &[D::ServerSsh], Verdict::Allow),
                [from_vpn_to_server, vec![port_eq("tcp", ssh)]].concat(),
            ));
        }
        let mut vpn_denied = vec![D::ServerOther, D::OtherLan, D::Internet, D::VpnPeer];
        if !p.vpn_ssh {
            vpn_denied.insert(0, D::ServerSsh);
        }
        rules.push(keyed(
            chain,
            RuleKey::new(&[S::VpnPeer], &vpn_denied, Verdict::Reject),
            vec![iifname(self.wg)],
        ));

        let mut server_denied = vec![D::OtherLan, D::VpnPeer];
        if p.server_internet {
            rules.push(keyed(
                chain,
                RuleKey::new(&[S::Server], &[D::Internet], Verdict::Allow),
                [self.server_ingress(), vec![oifname(self.wan)]].concat(),
            ));
        } else {
            server_denied.push(D::Internet);
        }
        rules.push(keyed(
            chain,
            RuleKey::new(&[S::Server], &server_denied, Verdict::Reject),
            self.server_ingress(),
        ));

        let from_lan_to_server = [vec![iifname(self.lan)], self.server_egress()].concat();
        if !p.admin_hosts.is_empty() {
            rules.push(keyed(
                chain,
                RuleKey::new(
                    &[S::LanAdmin],
                    &[D::ServerApi, D::ServerSsh, D::ServerOther],
                    Verdict::Allow,
                ),
                [
                    vec![
                        iifname(self.lan),
                        ip("saddr", Operator::EQ, &format!("@{ADMIN_SET}")),
                    ],
                    self.server_egress(),
                ]
                .concat(),
            ));
        }
        let mut lan_denied = vec![D::ServerSsh, D::ServerOther];
        if p.lan_api {
            rules.push(keyed(
                chain,
                RuleKey::new(&[S::LanDevice], &[D::ServerApi], Verdict::Allow),
                [from_lan_to_server.clone(), vec![port_eq("tcp", api)]].concat(),
            ));
        } else {
            lan_denied.insert(0, D::ServerApi);
        }
        rules.push(keyed(
            chain,
            RuleKey::new(&[S::LanDevice], &lan_denied, Verdict::Reject),
            from_lan_to_server,
        ));
        rules.push(keyed(
            chain,
            RuleKey::new(&[S::LanDevice, S::LanAdmin], &[D::VpnPeer], Verdict::Reject),
            vec![iifname(self.lan), oifname(self.wg)],
        ));
        rules.push(keyed(
            chain,
            RuleKey::new(&[S::LanDevice, S::LanAdmin], &[D::Internet], Verdict::Allow),
            vec![iifname(self.lan), oifname(self.wan)],
        ));
        if self.server_port.is_none() {
            rules.push(keyed(
                chain,
                lan_lan,
                vec![iifname(self.lan), oifname(self.lan)],
            ));
        }
        rules.push(counted(
            chain,
            "plumbing: everything else is rejected",
            vec![counter(), reject()],
        ));
        rules
    }

    fn mangle(&self) -> Vec<Rule<'static>> {
        let clamp = Statement::Mangle(Mangle {
            key: Expression::Named(NamedExpression::TcpOption(TcpOption {
                name: "maxseg".into(),
                field: Some("size".into()),
            })),
            value: Expression::Named(NamedExpression::RT(RT {
                key: RTKey::MTU,
                family: None,
            })),
        });
        vec![plumbing(
            "mangle_forward",
            "plumbing: clamp TCP MSS to the route MTU so streams do not stall in the tunnel",
            vec![
                Statement::Match(Match {
                    left: payload("tcp", "flags"),
                    right: Expression::String("syn".into()),
                    op: Operator::IN,
                }),
                clamp,
            ],
        )]
    }

    fn nat(&self) -> Vec<Rule<'static>> {
        let chain = "postrouting";
        let lan = self.d.lan.subnet;
        let mut rules = Vec::new();
        if self.d.policy.server_internet {
            rules.push(counted(
                chain,
                "nat: server -> internet",
                vec![
                    oifname(self.wan),
                    ip("saddr", Operator::EQ, &self.server),
                    counter(),
                    masquerade(),
                ],
            ));
        }
        rules.push(counted(
            chain,
            "nat: lan -> internet",
            vec![
                oifname(self.wan),
                ip_prefix(
                    "saddr",
                    Operator::EQ,
                    lan.network().to_string(),
                    lan.prefix_len(),
                ),
                ip("saddr", Operator::NEQ, &self.server),
                counter(),
                masquerade(),
            ],
        ));
        rules
    }
}

/// A rule implementing intent cells: matches, a counter, the verdict, the key as comment.
fn keyed(chain: &str, key: RuleKey, mut stmts: Stmts) -> Rule<'static> {
    stmts.push(counter());
    stmts.push(match key.verdict {
        Verdict::Allow => accept(),
        Verdict::Drop => drop(),
        Verdict::Reject => reject(),
    });
    rule(chain, key.to_string(), stmts)
}

fn counted(chain: &str, comment: &str, stmts: Stmts) -> Rule<'static> {
    rule(chain, comment.to_string(), stmts)
}

fn plumbing(chain: &str, comment: &str, stmts: Stmts) -> Rule<'static> {
    rule(chain, comment.to_string(), stmts)
}

fn rule(chain: &str, comment: String, stmts: Stmts) -> Rule<'static> {
    Rule {
        family: NfFamily::INet,
        table: TABLE.into(),
        chain: Cow::Owned(chain.to_string()),
        expr: stmts.into(),
        handle: None,
        index: None,
        comment: Some(comment.into()),
    }
}

fn meta_eq(key: MetaKey, value: &str) -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Meta(Meta { key })),
        right: Expression::String(value.to_string().into()),
        op: Operator::EQ,
    })
}

fn iifname(name: &str) -> Statement<'static> {
    meta_eq(MetaKey::Iifname, name)
}

fn oifname(name: &str) -> Statement<'static> {
    meta_eq(MetaKey::Oifname, name)
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn ip(field: &'static str, op: Operator, value: &str) -> Statement<'static> {
    Statement::Match(Match {
        left: payload("ip", field),
        right: Expression::String(value.to_string().into()),
        op,
    })
}

fn ip_prefix(field: &'static str, op: Operator, network: String, len: u8) -> Statement<'static> {
    Statement::Match(Match {
        left: payload("ip", field),
        right: Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(network.into())),
            len: len.into(),
        })),
        op,
    })
}

fn port_eq(protocol: &'static str, port: u16) -> Statement<'static> {
    Statement::Match(Match {
        left: payload(protocol, "dport"),
        right: Expression::Number(port.into()),
        op: Operator::EQ,
    })
}

fn l4proto_set(protocols: &[&'static str]) -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Meta(Meta {
            key: MetaKey::L4proto,
        })),
        right: Expression::Named(NamedExpression::Set(
            protocols
                .iter()
                .map(|p| SetItem::Element(Expression::String((*p).into())))
                .collect(),
        )),
        op: Operator::EQ,
    })
}

fn ct_state(states: &[&'static str]) -> Statement<'static> {
    let right = match states {
        [one] => Expression::String((*one).into()),
        many => Expression::List(
            many.iter()
                .map(|s| Expression::String((*s).into()))
                .collect(),
        ),
    };
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::CT(CT {
            key: "state".into(),
            family: None,
            dir: None,
        })),
        right,
        op: Operator::IN,
    })
}

fn counter() -> Statement<'static> {
    Statement::Counter(Counter::Anonymous(None))
}

fn accept() -> Statement<'static> {
    Statement::Accept(None)
}

fn drop() -> Statement<'static> {
    Statement::Drop(None)
}

fn reject() -> Statement<'static> {
    Statement::Reject(Some(Reject {
        _type: Some(RejectType::ICMPX),
        expr: Some(RejectCode::AdminProhibited),
    }))
}

fn masquerade() -> Statement<'static> {
    Statement::Masquerade(None)
}
