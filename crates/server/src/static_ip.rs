//! `static-ip`: pin the server's LAN address so the bind never fails.

use serde::Serialize;
use sovereign_model::Deployment;

use crate::error::Error;
use crate::parse::{self, NetworkService};
use crate::render::{StaticAddress, linux_static_advice, macos_static_commands};
use crate::runner::{Command, CommandRunner};

pub fn target(deployment: &Deployment) -> StaticAddress {
    StaticAddress {
        address: deployment.server.address,
        subnet: deployment.lan.subnet,
        router: deployment.lan.router_address,
        dns: deployment.lan.router_address,
    }
}

/// The macOS network service to configure and the commands for it.
#[derive(Debug, Clone, Serialize)]
pub struct MacStaticPlan {
    pub service: NetworkService,
    /// Other wired services, in service order, for `--service`.
    pub alternatives: Vec<NetworkService>,
    pub commands: Vec<Command>,
}

/// Resolves the *service* name of the wired port: `networksetup` wants "USB
/// 10/100/1000 LAN", not the device en7 (the bash original passed the device).
pub fn macos_plan(
    runner: &dyn CommandRunner,
    target: &StaticAddress,
    wanted: Option<&str>,
) -> Result<MacStaticPlan, Error> {
    let ports_command = Command::new("networksetup", ["-listallhardwareports"]);
    let ports = parse::hardware_ports(&checked(runner, &ports_command)?);
    let order_command = Command::new("networksetup", ["-listnetworkserviceorder"]);
    let services = parse::network_service_order(&checked(runner, &order_command)?);
    if let Some(name) = wanted {
        let service = services
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| Error::Parse {
                command: order_command.to_string(),
                reason: format!(
                    "there is no network service named {name:?}; the services are: {}",
                    services
                        .iter()
                        .map(|s| format!("{:?}", s.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        return Ok(MacStaticPlan {
            commands: macos_static_commands(&service.name, target),
            service,
            alternatives: Vec::new(),
        });
    }
    let wired_devices: Vec<&str> = ports
        .iter()
        .filter(|p| parse::is_wired_port(&p.port))
        .map(|p| p.device.as_str())
        .collect();
    let mut wired: Vec<NetworkService> = services
        .into_iter()
        .filter(|s| wired_devices.contains(&s.device.as_str()))
        .collect();
    // Prefer enabled services; service order already ranks the rest.
    wired.sort_by_key(|s| !s.enabled);
    if wired.is_empty() {
        return Err(Error::Parse {
            command: ports_command.to_string(),
            reason: "no wired (Ethernet) network service found; plug in the Ethernet cable or \
                     adapter, or name the service with --service"
                .into(),
        });
    }
    let service = wired.remove(0);
    Ok(MacStaticPlan {
        commands: macos_static_commands(&service.name, target),
        service,
        alternatives: wired,
    })
}

/// The Linux interface that holds the default route, as a best guess for the LAN side.
pub fn linux_interface(runner: &dyn CommandRunner) -> Option<String> {
    let output = runner
        .run(&Command::new(
            "ip",
            ["-o", "-4", "route", "show", "default"],
        ))
        .ok()?;
    let fields: Vec<&str> = output.stdout.split_whitespace().collect();
    fields
        .iter()
        .position(|f| *f == "dev")
        .and_then(|i| fields.get(i + 1))
        .map(|dev| dev.to_string())
}

pub fn linux_advice(interface: &str, target: &StaticAddress) -> String {
    linux_static_advice(interface, target)
}

fn checked(runner: &dyn CommandRunner, command: &Command) -> Result<String, Error> {
    let output = runner.run(command)?;
    if !output.success() {
        return Err(Error::CommandFailed {
            command: command.to_string(),
            status: output.status,
            stderr: output.stderr.trim().to_string(),
        });
    }
    Ok(output.stdout)
}
