//! The `certadns-ddns` binary: parse the command line, run it, map failure to an exit code.
//! All logic lives in the library; start reading at `certadns_ddns::cli`.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = certadns_ddns::cli::Args::parse();
    match certadns_ddns::cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the error, then each cause its message does not already include.
            let mut message = error.to_string();
            for cause in error.chain().skip(1).map(ToString::to_string) {
                if !message.contains(&cause) {
                    message = format!("{message}: {cause}");
                }
            }
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
