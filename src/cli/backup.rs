//! `certadns-ddns backup PATH`: a consistent copy of the database, also while `serve` runs
//! (see `store::backup`). Restoring is stopping the service, putting the copy in place of the
//! database (without the old `-wal` and `-shm` files) and starting it again: README, "Backup
//! and restore".

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::print_line;
use crate::config::Config;
use crate::store::backup::backup;

/// Arguments of `backup`.
#[derive(Debug, clap::Args)]
pub(super) struct BackupArgs {
    /// Where to write the copy; must not exist.
    path: PathBuf,
}

/// Runs `backup` on the database of `config`.
pub(super) fn run(config: &Config, args: &BackupArgs) -> anyhow::Result<()> {
    let source: &Path = &config.store.database;
    let report = backup(source, &args.path, config.store.busy_timeout).with_context(|| {
        format!(
            "cannot back up {} to {}",
            source.display(),
            args.path.display()
        )
    })?;
    print_line(&format!(
        "wrote {} ({} bytes, {} ms)",
        args.path.display(),
        report.bytes,
        report.elapsed.as_millis()
    ))
}
