//! `sovereign client` (issue #9).

use crate::context::{Context, Outcome};

pub type ClientArgs = super::NotBuiltArgs;

pub fn run(_context: &Context, _args: ClientArgs) -> anyhow::Result<Outcome> {
    super::not_built("client", 9)
}
