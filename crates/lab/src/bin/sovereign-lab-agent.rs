//! The lab's listener agent as a standalone binary, for this crate's tests.
//! `sovereign lab _serve` runs the same code inside the `sovereign` binary.
//!
//! Usage: sovereign-lab-agent --node NAME --listen PROTO:SERVICE:IP:PORT ...

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut node = String::from("node");
    let mut listeners = Vec::new();
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--node", Some(v)) => node = v,
            ("--listen", Some(v)) => match sovereign_lab::agent::parse_listener(&v) {
                Ok(l) => listeners.push(l),
                Err(e) => {
                    eprintln!("sovereign-lab-agent: {e}");
                    return ExitCode::from(2);
                }
            },
            (other, _) => {
                eprintln!(
                    "sovereign-lab-agent: unexpected `{other}`; usage: --node NAME --listen PROTO:SERVICE:IP:PORT ..."
                );
                return ExitCode::from(2);
            }
        }
    }
    match sovereign_lab::agent::serve(&node, &listeners) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sovereign-lab-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
