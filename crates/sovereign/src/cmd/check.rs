//! `sovereign check` (issue #6).

use crate::context::{Context, Outcome};

pub type CheckArgs = super::NotBuiltArgs;

pub fn run(_context: &Context, _args: CheckArgs) -> anyhow::Result<Outcome> {
    super::not_built("check", 6)
}
