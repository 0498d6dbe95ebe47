//! `sovereign server` (issue #8).

use crate::context::{Context, Outcome};

pub type ServerArgs = super::NotBuiltArgs;

pub fn run(_context: &Context, _args: ServerArgs) -> anyhow::Result<Outcome> {
    super::not_built("server", 8)
}
