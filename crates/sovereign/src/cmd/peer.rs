//! `sovereign peer` (issue #4).

use crate::context::{Context, Outcome};

pub type PeerArgs = super::NotBuiltArgs;

pub fn run(_context: &Context, _args: PeerArgs) -> anyhow::Result<Outcome> {
    super::not_built("peer", 4)
}
