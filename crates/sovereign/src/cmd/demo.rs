//! `sovereign demo`: the main job in one command. Build the lab from the
//! deployment (or the reference one), prove the reachability matrix, make one API
//! call through the tunnel, tear down (issue #5).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use sovereign_lab::{Lab, LabName, prereq, probe};

use super::lab::{ApiServerArg, IsolationArg, deployment, lab_options, print_up};
use crate::context::{ConfigSource, Context, Outcome};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  sudo sovereign demo\n  sudo sovereign demo --isolation shared\n\n\
    Needs Linux and root. Missing tools (nftables, wireguard-tools, wireguard-go, iproute2) are installed \
    with apt-get when running as root."
)]
pub struct DemoArgs {
    /// Override server.isolation (`shared` shows the L2 leak the router cannot stop).
    #[arg(long, value_enum)]
    pub isolation: Option<IsolationArg>,
    /// Do not install missing packages; report them instead.
    #[arg(long)]
    pub no_install: bool,
}

pub fn run(context: &Context, args: DemoArgs) -> anyhow::Result<Outcome> {
    ensure_prerequisites(args.no_install)?;
    let (deployment, source) = deployment(context, args.isolation)?;
    match &source {
        ConfigSource::File(path) => println!("sovereign demo for {}", path.display()),
        ConfigSource::Reference => println!(
            "sovereign demo: no {} here, so the built-in reference deployment runs.",
            context.config_path().display()
        ),
    }
    let name = LabName::new(&format!("dm{}", std::process::id() % 100_000))?;
    let options = lab_options(name, 2, ApiServerArg::Auto)?;
    println!(
        "\n1. Building the lab: every node is a network namespace; the router runs the rendered Linux config.\n"
    );
    // Dropping `lab` tears everything down, also when a step below fails.
    let lab = Lab::up(&deployment, options).context("the lab could not be built")?;
    print_up(&lab);

    println!(
        "2. Probing every cell of the intended reachability matrix, then a control run without the firewall.\n"
    );
    let report = probe::probe(&lab, true)?;
    print!("{}", probe::render_compact(&report));
    println!(
        "(`sovereign plan` judges every cell statically, IPv6 included; the lab probes the IPv4 cells\n \
         once per vantage point, so the VPN cells count once per client. `sovereign lab probe` shows\n \
         each probe in full.)"
    );

    println!(
        "\n3. One API call through the tunnel: an OpenAI-style chat completion from VPN client v1.\n"
    );
    let call = api_call(&lab);
    match &call {
        Ok(text) => println!("{text}"),
        Err(e) => println!("the API call failed: {e:#}"),
    }

    println!("\n4. Tearing down.");
    let started = Instant::now();
    lab.down()?;
    println!(
        "   removed every namespace, process and WireGuard socket in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let passed = report.passed() && call.is_ok();
    println!(
        "\n{}",
        if passed {
            "Demo passed: the perimeter does exactly what the intent says, and the API answers through\n\
             the tunnel. Next: `sovereign init --endpoint vpn.example.com:51820` writes your own\n\
             sovereign.toml, and `sovereign plan` shows what it turns into."
        } else {
            "Demo FAILED: see the mismatches above."
        }
    );
    Ok(Outcome::from_passed(passed))
}

fn api_call(lab: &Lab) -> anyhow::Result<String> {
    let d = &lab.topology().deployment;
    let client = lab
        .topology()
        .clients()
        .next()
        .context("the lab has no VPN client")?;
    let target = std::net::SocketAddrV4::new(d.server.address, d.server.api_port);
    let tunnel = client.tunnel.as_ref().context("the client has no tunnel")?;
    let body = serde_json::json!({
        "model": "toy",
        "messages": [{"role": "user", "content": "Hello from the VPN."}],
    })
    .to_string();
    let request_body = body.clone();
    let response = sovereign_lab::run_in_netns(&client.netns, move || {
        let tags = sovereign_lab::http::get(target, "/api/tags", Duration::from_secs(5))?;
        let model = serde_json::from_str::<serde_json::Value>(&tags.body)
            .ok()
            .and_then(|v| v["models"][0]["name"].as_str().map(str::to_string))
            .unwrap_or_else(|| "toy".into());
        let mut body: serde_json::Value =
            serde_json::from_str(&request_body).map_err(std::io::Error::other)?;
        body["model"] = model.into();
        let sent = body.to_string();
        sovereign_lab::http::post_json(
            target,
            "/v1/chat/completions",
            &sent,
            Duration::from_secs(30),
        )
        .map(|response| (response, sent))
    })??;
    let (response, body) = response;
    let value: serde_json::Value = serde_json::from_str(&response.body)
        .with_context(|| format!("HTTP {}: the answer is not JSON", response.status))?;
    let reply = value["choices"][0]["message"]["content"]
        .as_str()
        .with_context(|| {
            format!(
                "HTTP {}: no choices[0].message.content in {}",
                response.status, response.body
            )
        })?;
    Ok(format!(
        "   from {} (tunnel {} via {}):\n   $ curl http://{target}/v1/chat/completions \\\n       -d '{body}'\n   HTTP {}, model {}:\n{}",
        client.key,
        tunnel.address,
        tunnel.interface,
        response.status,
        value["model"].as_str().unwrap_or("?"),
        wrap(reply, "   ", probe::COMPACT_WIDTH),
    ))
}

/// `text` in lines of at most `width` columns, each starting with `indent`.
fn wrap(text: &str, indent: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(format!("{indent}{word}")),
        }
    }
    lines.join("\n")
}

/// Install what is missing when root, else say exactly what is missing.
fn ensure_prerequisites(no_install: bool) -> anyhow::Result<()> {
    if !cfg!(target_os = "linux") {
        anyhow::bail!("the lab needs Linux network namespaces; this is not Linux");
    }
    let programs = prereq::missing_programs();
    if !programs.is_empty() && prereq::is_root() && !no_install {
        println!(
            "Installing missing tools ({}) with apt-get.",
            programs.join(", ")
        );
        let apt = |args: &[&str]| -> anyhow::Result<()> {
            let status = std::process::Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .context("cannot run apt-get (is this Debian or Ubuntu?)")?;
            anyhow::ensure!(
                status.success(),
                "apt-get {} failed ({status})",
                args.join(" ")
            );
            Ok(())
        };
        apt(&["update"])?;
        let mut install = vec!["install", "-y", "--no-install-recommends"];
        install.extend(prereq::DEBIAN_PACKAGES);
        apt(&install)?;
    }
    let missing = prereq::missing();
    if !missing.is_empty() {
        anyhow::bail!("the demo cannot run: {}", missing.join("; "));
    }
    Ok(())
}
