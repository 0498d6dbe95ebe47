//! `sovereign demo` (issue #5).

use crate::context::{Context, Outcome};

pub type DemoArgs = super::NotBuiltArgs;

pub fn run(_context: &Context, _args: DemoArgs) -> anyhow::Result<Outcome> {
    super::not_built("demo", 5)
}
