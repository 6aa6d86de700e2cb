//! The `lubdub` command: `server`, `client` and `swarm`.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
