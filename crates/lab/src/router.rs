//! The lab router runs exactly what `sovereign-router` renders for the Linux
//! target: this module only picks the files out of the rendering.

use sovereign_model::{Deployment, RouterTarget};
use sovereign_wg::RouterSecrets;

use crate::LabError;

/// The rendered router configuration the lab applies, file by file.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Every rendered file by path (`nftables.json`, `nftables.nft`, `<wg>.conf`,
    /// `setup.sh`, `sysctl.conf`), written into the router's private state
    /// directory before `setup.sh` runs there.
    pub files: Vec<(String, String)>,
    /// The setup script (firewall, WireGuard, addresses, routes, sysctls).
    pub setup: String,
}

pub fn render_router(d: &Deployment, secrets: &RouterSecrets) -> Result<RouterConfig, LabError> {
    let rendering = sovereign_router::render(d, secrets, RouterTarget::Linux)
        .map_err(|e| LabError::Render(e.to_string()))?;
    let file = |path: &str| {
        rendering
            .file(path)
            .map(|f| f.contents.clone())
            .ok_or_else(|| LabError::Render(format!("the Linux rendering has no {path}")))
    };
    // setup.sh reads the WireGuard file by this name.
    file(&format!("{}.conf", d.wireguard.interface))?;
    Ok(RouterConfig {
        setup: file("setup.sh")?,
        files: rendering
            .files
            .iter()
            .map(|f| (f.path.clone(), f.contents.clone()))
            .collect(),
    })
}
