//! Files and directories only the service's own user may read. The data directory holds the
//! users' sealing keys (in the log database), token hashes and the checkpoint signing key, so
//! everything the service creates there is created private — directories 0700, files 0600.
//! A data directory that others may enter (as `mkdir` or a service manager makes it) is made
//! private on open; a key-holding file that others can read is refused rather than used: its
//! secrets may already have been read, and the operator has to know.
//!
//! The binary and the drivers' state files use the same helpers, so that the rule has one home.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// A key-holding file or the data directory that other users can read or enter.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path} can be read by other users (mode {mode:03o}); it holds keys or token hashes: run `chmod {wanted:03o} {path}` and start again"
)]
pub struct NotPrivate {
    /// The file or directory.
    pub path: PathBuf,
    /// Its permission bits.
    pub mode: u32,
    /// The mode it should have.
    pub wanted: u32,
}

/// Creates `path` and its missing parents as directories only the owner can enter.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Options that create a file only the owner can read and write; the caller adds the access
/// mode (`write`, `append`, `create_new`, …).
pub fn file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Creates (or truncates) a file only the owner can read and write.
pub fn create_file(path: &Path) -> io::Result<File> {
    file_options().write(true).create(true).truncate(true).open(path)
}

/// Checks that a key-holding file, if it exists, is readable by its owner only.
pub fn check_file(path: &Path) -> Result<(), NotPrivate> {
    check(path, 0o600)
}

/// Makes the data directory open to its owner only, if others may enter it; fails if it
/// cannot (the service does not own it).
pub fn make_dir_private(path: &Path) -> Result<(), NotPrivate> {
    let Err(not_private) = check(path, 0o700) else {
        return Ok(());
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).is_ok() {
            tracing::info!(path = %path.display(), was = format!("{:03o}", not_private.mode), "made the data directory private (mode 700)");
            return Ok(());
        }
    }
    Err(not_private)
}

#[cfg(unix)]
fn check(path: &Path, wanted: u32) -> Result<(), NotPrivate> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = std::fs::metadata(path) else {
        return Ok(());
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    Err(NotPrivate {
        path: path.to_owned(),
        mode,
        wanted,
    })
}

#[cfg(not(unix))]
fn check(_path: &Path, _wanted: u32) -> Result<(), NotPrivate> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn what_is_created_is_private_and_what_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_dir_all(&nested).unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        let file = nested.join("key");
        create_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        check_file(&file).unwrap();
        check_file(&nested.join("absent")).unwrap();

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = check_file(&file).unwrap_err();
        assert_eq!(refused.mode, 0o644);
        assert!(refused.to_string().contains("chmod 600"), "{refused}");
        std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(0o755)).unwrap();
        make_dir_private(&nested).unwrap();
        assert_eq!(mode(&nested), 0o700, "a directory others could enter is made private");
    }
}
