//! The `certadns-ddns` binary: parse the command line, run it, map failure to an exit code.
//! All logic lives in the library; start reading at `certadns_ddns::cli`.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = certadns_ddns::cli::Args::parse();
    match certadns_ddns::cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
