//! The installation's secrets stay with the user signet runs as: the data directory and the
//! spool are 0700, the database (argon2id hashes of connector passwords, sealed keys) and its
//! `-wal` and `-shm` files 0600, as the master key is. signet makes them so, and refuses to
//! start when one of them is open to other users, naming the file and the `chmod` that fixes it
//! (the master key's check, [`crate::config::Config::master_key`], does the same).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::Config;

/// Checks every private file and directory of the installation that exists.
pub fn check(config: &Config) -> Result<()> {
    for (path, what) in private_paths(config) {
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {what} {}", path.display()));
            }
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let fix = if meta.is_dir() { "700" } else { "600" };
            bail!(
                "{what} {} is readable by other users (mode {mode:o}); run `chmod {fix} {}`",
                path.display(),
                path.display()
            );
        }
    }
    Ok(())
}

fn private_paths(config: &Config) -> Vec<(PathBuf, &'static str)> {
    let database = config.database_path();
    let beside = |suffix: &str| {
        let mut name = database.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    vec![
        (config.data_dir.clone(), "the data directory"),
        (database.clone(), "the database"),
        (beside("-wal"), "the database journal"),
        (beside("-shm"), "the database journal"),
        (config.data_dir.join("spool"), "the spool"),
    ]
}

/// Makes `dir` (and any missing parent) a private directory: created 0700, or tightened to 0700
/// when it exists and is open to others (`signet init` in an empty directory made by hand).
pub fn make_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let mode = fs::metadata(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_open_to_others_is_named_with_its_fix() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        make_private_dir(&data).unwrap();
        let config = crate::config::init(&data, &"dkim.example.net".parse().unwrap(), &[]).unwrap();
        check(&config).unwrap();
        let database = config.database_path();
        fs::write(&database, b"").unwrap();
        for (path, mode, message) in [
            (&database, 0o644, "the database"),
            (&data, 0o755, "the data directory"),
        ] {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
            let error = check(&config).unwrap_err().to_string();
            let fix = if path.is_dir() { "700" } else { "600" };
            assert_eq!(
                error,
                format!(
                    "{message} {} is readable by other users (mode {mode:o}); run `chmod {fix} {}`",
                    path.display(),
                    path.display()
                )
            );
            fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o700)).unwrap();
        }
        check(&config).unwrap();
    }

    #[test]
    fn an_existing_directory_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        make_private_dir(dir.path()).unwrap();
        let mode = fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
