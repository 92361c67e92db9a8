//! Reading and replacing the files `connect` edits, in folders that may not be the person's
//! own: a repository they cloned, or a shared directory, decides what sits beside the file.
//!
//! - The file is read only if it is a regular file of at most [`MAX_CONFIG_BYTES`] (a FIFO
//!   would hang the read, a link to `/dev/zero` would exhaust memory).
//! - Inside a `--workspace` folder no symbolic link is followed out of the folder unless the
//!   person asks (`--follow-outside-links`): a `.vscode/mcp.json` linked to
//!   `~/.claude/settings.json` would otherwise get that file edited.
//! - A backup is created exclusively (`O_CREAT|O_EXCL`, which never follows a link) with the
//!   old content; a link, FIFO or anything else already at `FILE.bak` is left alone and the
//!   next name is used. (A link planted there once made `connect` create a file of the
//!   attacker's choosing, such as `~/.ssh/authorized_keys`, holding the old file's content.)
//! - The new content goes to a temporary file created the same way and renamed over the file.

use std::fs;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

use super::ConnectError;
use crate::local_files::{self, LocalFileError};

/// Largest client configuration read. VS Code's and Claude Code's settings are kilobytes.
pub const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// Backup names tried (`FILE.bak`, `FILE.bak.1`, …) before giving up.
const MAX_BACKUP_NAMES: u32 = 100;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ConnectError + '_ {
    move |source| ConnectError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where an edit of `path` lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The file read and replaced: `path` with every link on the way followed.
    pub target: PathBuf,
    /// Whether `path` itself is a symbolic link (then `target` is where it points).
    pub is_link: bool,
}

/// Follows the links on the way to `path`. With `confine`, a path that leaves that folder
/// through a link is refused unless `follow_outside`.
pub fn resolve(
    path: &Path,
    confine: Option<&Path>,
    follow_outside: bool,
) -> Result<Resolved, ConnectError> {
    let target = real_path(path)?;
    let is_link = fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink());
    if let Some(root) = confine
        && !follow_outside
    {
        let root_real = real_path(root)?;
        if !target.starts_with(&root_real) {
            let (link, points_to) =
                first_link(root, path).unwrap_or_else(|| (path.to_path_buf(), target.clone()));
            return Err(ConnectError::OutsideLink {
                link: link.display().to_string(),
                points_to: points_to.display().to_string(),
                target: target.display().to_string(),
                root: root.display().to_string(),
            });
        }
    }
    Ok(Resolved { target, is_link })
}

/// `path` with the links in its existing part resolved and the missing rest appended.
fn real_path(path: &Path) -> Result<PathBuf, ConnectError> {
    let mut existing = normalize(path);
    let mut missing = Vec::new();
    loop {
        match fs::symlink_metadata(&existing) {
            Ok(meta) => {
                if meta.file_type().is_symlink() && fs::metadata(&existing).is_err() {
                    let points_to = fs::read_link(&existing).unwrap_or_default();
                    return Err(ConnectError::DanglingLink {
                        link: existing.display().to_string(),
                        points_to: points_to.display().to_string(),
                    });
                }
                break;
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let (Some(name), Some(parent)) = (existing.file_name(), existing.parent()) else {
                    break;
                };
                missing.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            Err(err) => return Err(io_error(&existing)(err)),
        }
    }
    let mut real = if existing.as_os_str().is_empty() {
        std::env::current_dir().map_err(io_error(path))?
    } else {
        fs::canonicalize(&existing).map_err(io_error(&existing))?
    };
    for name in missing.iter().rev() {
        real.push(name);
    }
    Ok(real)
}

/// The first symbolic link below `root` on the way to `path`, and what it points to.
fn first_link(root: &Path, path: &Path) -> Option<(PathBuf, PathBuf)> {
    let relative = path.strip_prefix(root).ok()?;
    let mut current = root.to_path_buf();
    for component in relative.components() {
        current.push(component);
        if fs::symlink_metadata(&current).is_ok_and(|meta| meta.file_type().is_symlink()) {
            return Some((current.clone(), fs::read_link(&current).ok()?));
        }
    }
    None
}

/// `path` made absolute, with `.` and `..` taken out by their meaning on paper.
pub fn normalize(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The current text of a configuration file (`None`: there is none yet).
pub fn read_config(path: &Path) -> Result<Option<String>, ConnectError> {
    local_files::read_text(path, MAX_CONFIG_BYTES).map_err(|err| match err {
        LocalFileError::Io { path, source } => ConnectError::Io { path, source },
        other => ConnectError::Unreadable(other),
    })
}

/// The permission bits a replaced file gets: the old file's, without group and other bits
/// when it holds a key; a new file with a key is the owner's only.
#[cfg(unix)]
pub fn new_mode(existing: Option<&fs::Metadata>, secret: bool) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    match existing {
        Some(meta) => {
            let mode = meta.permissions().mode() & 0o7777;
            Some(if secret { mode & !0o077 } else { mode })
        }
        None => secret.then_some(0o600),
    }
}

#[cfg(not(unix))]
pub fn new_mode(_existing: Option<&fs::Metadata>, _secret: bool) -> Option<u32> {
    // Windows: a new file takes its folder's ACL, which under the user's profile is the user's.
    None
}

/// What replacing a file did besides replacing it.
#[derive(Debug, Default)]
pub struct Written {
    /// Where the previous version was kept.
    pub backup: Option<PathBuf>,
    /// Things found at backup names and left alone.
    pub skipped: Vec<String>,
}

/// Replaces `target` (already resolved: no link to follow) with `content`: the previous
/// version `old` is kept as a backup, the new one is written to a temporary file beside it
/// and renamed over it, so a crash leaves either the old file or the new one.
pub fn write_file(
    target: &Path,
    old: Option<&str>,
    content: &str,
    secret: bool,
) -> Result<Written, ConnectError> {
    let directory = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&directory).map_err(io_error(&directory))?;
    let existing = fs::metadata(target).ok();
    let mode = new_mode(existing.as_ref(), secret);
    let mut written = Written::default();
    if let Some(old) = old {
        written.backup = Some(backup(target, old, mode, &mut written.skipped)?);
    }
    let file_name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let temporary = directory.join(format!(
        ".{file_name}.sampling2api-{}-{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = create_exclusive(&temporary, content.as_bytes(), mode)
        .and_then(|()| fs::rename(&temporary, target).map_err(io_error(target)));
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result.map(|()| written)
}

/// Creates `path` with `content`, failing if anything (a file, a link, a FIFO) is there.
fn create_exclusive(path: &Path, content: &[u8], mode: Option<u32>) -> Result<(), ConnectError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::OpenOptionsExt;
        // Restrictive from the start: no moment at which others could open it.
        options.mode(mode & 0o777);
    }
    let mut file = options.open(path).map_err(io_error(path))?;
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        // Exactly this mode, whatever the umask took away.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_error(path))?;
    }
    #[cfg(not(unix))]
    let _ = mode; // Windows: the folder's ACL decides (see `new_mode`).
    file.write_all(content).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Keeps `old` beside `target` as `FILE.bak`, or `FILE.bak.N` when an earlier backup holds
/// something else; a backup that already holds `old` is reused, so nothing piles up.
fn backup(
    target: &Path,
    old: &str,
    mode: Option<u32>,
    skipped: &mut Vec<String>,
) -> Result<PathBuf, ConnectError> {
    let base = target.as_os_str().to_string_lossy().into_owned();
    for attempt in 0..MAX_BACKUP_NAMES {
        let candidate = if attempt == 0 {
            PathBuf::from(format!("{base}.bak"))
        } else {
            PathBuf::from(format!("{base}.bak.{attempt}"))
        };
        match fs::symlink_metadata(&candidate) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                match create_exclusive(&candidate, old.as_bytes(), mode) {
                    Ok(()) => return Ok(candidate),
                    // Appeared since the check: someone else's; try the next name.
                    Err(ConnectError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        continue;
                    }
                    Err(err) => return Err(err),
                }
            }
            Err(err) => return Err(io_error(&candidate)(err)),
            Ok(meta) if meta.is_file() => {
                if let Ok(Some(existing)) = local_files::read_text(&candidate, MAX_CONFIG_BYTES)
                    && existing == old
                {
                    restrict(&candidate, &meta, mode);
                    return Ok(candidate);
                }
            }
            Ok(meta) => skipped.push(format!(
                "{} is {}, not a backup of ours: left alone",
                candidate.display(),
                local_files::file_kind(&meta)
            )),
        }
    }
    Err(ConnectError::Usage(format!(
        "no free backup name beside {base} ({MAX_BACKUP_NAMES} tried)"
    )))
}

/// A reused backup of a file that holds a key gets the same private mode as the file.
fn restrict(path: &Path, meta: &fs::Metadata, mode: Option<u32>) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Some(mode) = mode
            && meta.permissions().mode() & 0o777 & !mode != 0
        {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, meta, mode);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sampling2api-connect-{name}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        fs::create_dir_all(&dir).unwrap();
        fs::canonicalize(dir).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_creates_directories_and_keeps_one_backup_per_content() {
        let dir = scratch("write");
        let path = dir.join("a/b/settings.json");
        assert!(
            write_file(&path, None, "one", true)
                .unwrap()
                .backup
                .is_none()
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let backup = write_file(&path, Some("one"), "two", true)
            .unwrap()
            .backup
            .unwrap();
        assert_eq!(backup, dir.join("a/b/settings.json.bak"));
        assert_eq!(fs::read_to_string(&backup).unwrap(), "one");
        // A backup that already holds the content being replaced is reused.
        assert_eq!(
            write_file(&path, Some("one"), "two", true).unwrap().backup,
            Some(backup.clone())
        );
        // A later change with different content keeps the first backup and adds another.
        let second = write_file(&path, Some("two"), "three", true)
            .unwrap()
            .backup
            .unwrap();
        assert_eq!(second, dir.join("a/b/settings.json.bak.1"));
        assert_eq!(fs::read_to_string(&backup).unwrap(), "one");
        assert_eq!(fs::read_to_string(&second).unwrap(), "two");
        // No temporary file is left behind.
        assert_eq!(names(&dir.join("a/b")).len(), 3);
        fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn permissions_are_kept_or_made_private_for_a_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("modes");
        let path = dir.join("settings.json");
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_file(&path, Some("old"), "new", false).unwrap();
        assert_eq!(mode(&path), 0o640);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let written = write_file(&path, Some("new"), "with key", true).unwrap();
        assert_eq!(mode(&path), 0o600);
        // The backup holds what was there, so it is as private as the new file.
        assert_eq!(mode(&written.backup.unwrap()), 0o600);
        fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn whatever_sits_at_a_backup_name_is_left_alone() {
        use std::os::unix::fs::symlink;
        let dir = scratch("planted");
        let victim_dir = scratch("victim");
        let path = dir.join("mcp.json");
        fs::write(&path, "old").unwrap();
        // A dangling link: following it would create the victim file.
        let victim = victim_dir.join("authorized_keys");
        symlink(&victim, dir.join("mcp.json.bak")).unwrap();
        // A FIFO: reading it would block forever.
        let status = std::process::Command::new("mkfifo")
            .arg(dir.join("mcp.json.bak.1"))
            .status()
            .unwrap();
        assert!(status.success());
        // A link to an existing file with the same content is not "our backup" either.
        let same = victim_dir.join("same");
        fs::write(&same, "old").unwrap();
        symlink(&same, dir.join("mcp.json.bak.2")).unwrap();
        let written = write_file(&path, Some("old"), "new", false).unwrap();
        assert_eq!(written.backup, Some(dir.join("mcp.json.bak.3")));
        assert_eq!(written.skipped.len(), 3, "{:?}", written.skipped);
        assert!(written.skipped[0].contains("a symbolic link"));
        assert!(written.skipped[1].contains("a FIFO"));
        assert!(!victim.exists());
        assert_eq!(fs::read_to_string(&same).unwrap(), "old");
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        fs::remove_dir_all(dir).unwrap();
        fs::remove_dir_all(victim_dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn links_out_of_a_confined_folder_are_refused_unless_allowed() {
        use std::os::unix::fs::symlink;
        let root = scratch("root");
        let home = scratch("home");
        let outside = home.join("settings.json");
        fs::write(&outside, "{}").unwrap();
        fs::create_dir_all(root.join(".vscode")).unwrap();
        let file = root.join(".vscode/mcp.json");
        symlink(&outside, &file).unwrap();
        let err = resolve(&file, Some(&root), false).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(&err, ConnectError::OutsideLink { link, .. } if link == &file.display().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&outside.display().to_string()),
            "{message}"
        );
        assert!(message.contains("--follow-outside-links"), "{message}");
        let allowed = resolve(&file, Some(&root), true).unwrap();
        assert_eq!(allowed.target, outside);
        assert!(allowed.is_link);
        // Without confinement (the person's own files) links are followed.
        assert_eq!(resolve(&file, None, false).unwrap().target, outside);

        // The folder itself a link out: the same.
        fs::remove_dir_all(root.join(".vscode")).unwrap();
        symlink(&home, root.join(".vscode")).unwrap();
        assert!(matches!(
            resolve(&root.join(".vscode/settings.json"), Some(&root), false),
            Err(ConnectError::OutsideLink { .. })
        ));
        // A link that stays inside is fine; a missing file resolves to where it will be.
        fs::remove_file(root.join(".vscode")).unwrap();
        fs::create_dir_all(root.join("real")).unwrap();
        symlink(root.join("real"), root.join(".vscode")).unwrap();
        assert_eq!(
            resolve(&root.join(".vscode/mcp.json"), Some(&root), false)
                .unwrap()
                .target,
            root.join("real/mcp.json")
        );
        // A dangling link is named, not followed.
        fs::remove_file(root.join(".vscode")).unwrap();
        fs::create_dir_all(root.join(".vscode")).unwrap();
        symlink(home.join("missing"), root.join(".vscode/mcp.json")).unwrap();
        assert!(matches!(
            resolve(&root.join(".vscode/mcp.json"), Some(&root), true),
            Err(ConnectError::DanglingLink { .. })
        ));
        fs::remove_dir_all(root).unwrap();
        fs::remove_dir_all(home).unwrap();
    }

    #[test]
    fn normalize_takes_dots_out() {
        let base = std::env::current_dir().unwrap();
        assert_eq!(normalize(Path::new(".")), normalize(&base));
        assert_eq!(normalize(Path::new("a/./b/../c")), base.join("a/c"));
    }
}
