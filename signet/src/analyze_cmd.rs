//! `signet analyze`: explains the authentication headers a message already carries, like
//! Microsoft's Message Header Analyzer. No DNS.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The message file (or just its headers); `-` reads standard input.
    pub message: PathBuf,
    /// Print a JSON object instead of the explanation.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &AnalyzeArgs) -> Result<()> {
    let raw = crate::verify_cmd::read_message(&args.message)?;
    let analysis = signet_verifier::analyze(&raw);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &analysis)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", analysis.render())?;
    }
    Ok(())
}
