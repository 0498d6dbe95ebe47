//! `sovereign lab` (issue #5).

use crate::context::{Context, Outcome};

pub type LabArgs = super::NotBuiltArgs;

pub fn run(_context: &Context, _args: LabArgs) -> anyhow::Result<Outcome> {
    super::not_built("lab", 5)
}
