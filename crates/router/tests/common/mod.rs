//! Deployments and secrets shared by the router tests.
#![allow(dead_code)]

// Each test binary uses a different subset of these.
#[allow(unused_imports)]
pub use sovereign_testkit::deployments::{now, peer, variants, with_peers};

use sovereign_model::Deployment;
use sovereign_wg::RouterSecrets;

pub fn secrets(d: &Deployment) -> RouterSecrets {
    RouterSecrets::for_tests(d.peers.iter().map(|p| p.name.as_str()))
}
