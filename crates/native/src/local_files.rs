//! Reading files a person points the binary at (`connect`'s client configurations, the
//! `--api-key-file`): only regular files, only up to a bound, and never blocking.
//!
//! The files may sit in a folder someone else controls (a cloned repository, a shared
//! directory). A FIFO planted there would block a plain `read` forever, and a link to
//! `/dev/zero` would read until memory runs out; both are refused before a byte is read.

use std::fs;
use std::io::Read as _;
use std::path::Path;

/// Why a file could not be read as text.
#[derive(Debug, thiserror::Error)]
pub enum LocalFileError {
    #[error("{path} is not a regular file ({kind}); move it away, then run again")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path} is {len} bytes, more than the {max} a file of this kind may have")]
    TooLarge { path: String, len: u64, max: u64 },
    #[error("{path} is not UTF-8 text")]
    NotUtf8 { path: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The text of the regular file at `path` (links followed), `None` when nothing is there.
/// A FIFO, socket, device or directory is refused without being opened for reading, and
/// the file is checked again once open, so a swap between the two checks changes nothing.
pub fn read_text(path: &Path, max_bytes: u64) -> Result<Option<String>, LocalFileError> {
    let label = || path.display().to_string();
    let io = |source| LocalFileError::Io {
        path: label(),
        source,
    };
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io(err)),
    };
    check_regular(path, &metadata, max_bytes)?;
    let file = open_nonblocking(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    check_regular(path, &metadata, max_bytes)?;
    let mut bytes = Vec::new();
    // One byte past the bound tells a file that grew since it was checked.
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(LocalFileError::TooLarge {
            path: label(),
            len: bytes.len() as u64,
            max: max_bytes,
        });
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| LocalFileError::NotUtf8 { path: label() })
}

fn check_regular(path: &Path, metadata: &fs::Metadata, max: u64) -> Result<(), LocalFileError> {
    if !metadata.is_file() {
        return Err(LocalFileError::NotRegular {
            path: path.display().to_string(),
            kind: file_kind(metadata),
        });
    }
    if metadata.len() > max {
        return Err(LocalFileError::TooLarge {
            path: path.display().to_string(),
            len: metadata.len(),
            max,
        });
    }
    Ok(())
}

/// A name for what a non-regular file is, for messages.
pub fn file_kind(metadata: &fs::Metadata) -> &'static str {
    let file_type = metadata.file_type();
    if file_type.is_symlink() {
        return "a symbolic link";
    }
    if file_type.is_dir() {
        return "a directory";
    }
    if file_type.is_file() {
        return "a regular file";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
    }
    "not a regular file"
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // Opening a FIFO for reading blocks until a writer appears, unless non-blocking.
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<fs::File> {
    fs::File::open(path)
}

/// The permission bits of a file that other users can read (group or others), if any.
#[cfg(unix)]
pub fn readable_by_others(metadata: &fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

#[cfg(not(unix))]
pub fn readable_by_others(_metadata: &fs::Metadata) -> Option<u32> {
    // Windows: files under the user's profile inherit its ACL, which is the user's.
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sampling2api-local-files-{name}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_regular_files_within_the_bound_and_nothing_else() {
        let dir = scratch("read");
        let file = dir.join("f.json");
        assert!(read_text(&file, 10).unwrap().is_none());
        fs::write(&file, "0123456789").unwrap();
        assert_eq!(read_text(&file, 10).unwrap().as_deref(), Some("0123456789"));
        assert!(matches!(
            read_text(&file, 9),
            Err(LocalFileError::TooLarge {
                len: 10,
                max: 9,
                ..
            })
        ));
        fs::write(&file, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_text(&file, 10),
            Err(LocalFileError::NotUtf8 { .. })
        ));
        assert!(matches!(
            read_text(&dir, 10),
            Err(LocalFileError::NotRegular {
                kind: "a directory",
                ..
            })
        ));
        fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_or_a_device_is_refused_without_blocking() {
        let dir = scratch("fifo");
        let fifo = dir.join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(matches!(
            read_text(&fifo, 10),
            Err(LocalFileError::NotRegular { kind: "a FIFO", .. })
        ));
        let zero = dir.join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(matches!(
            read_text(&zero, 10),
            Err(LocalFileError::NotRegular {
                kind: "a device",
                ..
            })
        ));
        fs::remove_dir_all(dir).unwrap();
    }
}
