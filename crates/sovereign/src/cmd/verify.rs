//! `sovereign verify` (issue #7).

use crate::context::{Context, Outcome};

pub type VerifyArgs = super::NotBuiltArgs;

pub fn run(_context: &Context, _args: VerifyArgs) -> anyhow::Result<Outcome> {
    super::not_built("verify", 7)
}
