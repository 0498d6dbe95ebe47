//! `sovereign router` (issue #10).

use crate::context::{Context, Outcome};

pub type RouterArgs = super::NotBuiltArgs;

pub fn run(_context: &Context, _args: RouterArgs) -> anyhow::Result<Outcome> {
    super::not_built("router", 10)
}
