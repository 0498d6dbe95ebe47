//! Shell completions and the man page, generated from the clap definitions.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::context::Outcome;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<Outcome> {
    let mut command = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "sovereign",
        &mut std::io::stdout(),
    );
    Ok(Outcome::Success)
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sovereign man | man -l -                  # read the overview page\n  \
    sovereign man --out /usr/local/share/man/man1   # sovereign.1 and sovereign-COMMAND.1 for every command")]
pub struct ManArgs {
    /// Write sovereign.1 and one sovereign-COMMAND.1 per command (the pages the
    /// overview's SEE ALSO names) into DIR, instead of printing the overview.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

pub fn man(args: ManArgs) -> anyhow::Result<Outcome> {
    use anyhow::Context as _;
    match args.out {
        None => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?,
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
            println!("wrote the man pages into {}", dir.display());
        }
    }
    Ok(Outcome::Success)
}
