//! `lubdub server` (being written).

use clap::Args;

/// Flags of `lubdub server`.
#[derive(Args, Debug)]
pub struct ServerArgs {}

pub fn run(_args: ServerArgs) -> i32 {
    super::fail("server: not implemented yet")
}
