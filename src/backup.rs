//! `callhook backup <file>`: a consistent copy of the embedded SQLite store, taken while the
//! server runs. PostgreSQL stores are backed up with PostgreSQL's own tools.

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// Where the copy goes: a new file (an existing one is never overwritten).
    pub target: PathBuf,
    /// The data dir of the node (its store is `<data dir>/callhook.db` unless
    /// `CALLHOOK_DATABASE_URL` names another).
    #[arg(long, env = "CALLHOOK_DATA_DIR", default_value = "./callhook-data")]
    pub data_dir: PathBuf,
    #[arg(long, env = "CALLHOOK_DATABASE_URL")]
    pub database_url: Option<String>,
}

/// Takes the backup; the error says what to do instead.
pub fn run(args: &BackupArgs) -> anyhow::Result<()> {
    let db = match &args.database_url {
        None => args.data_dir.join("callhook.db"),
        Some(url) => match url.strip_prefix("sqlite://") {
            Some(path) => PathBuf::from(path),
            None => anyhow::bail!(
                "`callhook backup` copies the embedded SQLite store; back up PostgreSQL with pg_dump (or your provider's snapshots)"
            ),
        },
    };
    crate::store::sqlite::backup(&db, &args.target).map_err(|e| match e {
        crate::store::StoreError::NotFound => {
            anyhow::anyhow!(
                "no store at {} (set --data-dir or CALLHOOK_DATA_DIR)",
                db.display()
            )
        }
        other => anyhow::anyhow!("backup of {} failed: {other}", db.display()),
    })?;
    println!(
        "backed up {} to {} (keep the sealing key with it: {} or CALLHOOK_SEAL_KEY)",
        db.display(),
        args.target.display(),
        args.data_dir.join("seal.key").display()
    );
    Ok(())
}
