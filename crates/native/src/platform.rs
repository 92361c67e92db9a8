//! What differs between operating systems and is not hidden by std or tokio, in one place.
//!
//! The rest of the bridge makes no platform assumption: it reads no files and no home
//! directory, its shutdown signal is `ctrl_c` (SIGINT on unix, Ctrl+C / Ctrl+Break on Windows;
//! SIGTERM keeps its default action everywhere it exists), the open-file limit is raised on unix
//! only (`server::raise_file_limit`), stdio lines may end in `\n` or `\r\n`
//! (`stdio_mode::message_of`), and stdio itself is polled as pipes on unix and read through
//! tokio's blocking stdin/stdout elsewhere (`stdio_mode::own_stdio`).

use std::path::PathBuf;

/// The program `--spawn` starts. On Windows a bare name is looked up in `PATH` with each
/// extension of `PATHEXT`, as a shell does: std's `Command` only tries `.exe`, so clients
/// installed as `.cmd` scripts (`code`, `npx`) would not be found. The current directory is not
/// searched. Elsewhere the name goes to `Command` as given.
#[cfg(windows)]
pub fn program_path(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH");
    let extensions = std::env::var("PATHEXT").unwrap_or_else(|_| ".COM;.EXE;.BAT;.CMD".into());
    find_in_path(program, path.as_deref(), &extensions, |candidate| {
        candidate.is_file()
    })
    .unwrap_or_else(|| PathBuf::from(program))
}

#[cfg(not(windows))]
pub fn program_path(program: &str) -> PathBuf {
    PathBuf::from(program)
}

/// The first `dir/program.ext` that `exists`, over the directories of `path` and the
/// `;`-separated `extensions`. `None` for a name that is a path or has an extension already:
/// that is the caller's exact choice.
#[cfg(any(windows, test))]
fn find_in_path(
    program: &str,
    path: Option<&std::ffi::OsStr>,
    extensions: &str,
    exists: impl Fn(&std::path::Path) -> bool,
) -> Option<PathBuf> {
    if program.contains(['/', '\\', ':']) || std::path::Path::new(program).extension().is_some() {
        return None;
    }
    std::env::split_paths(path?).find_map(|directory| {
        extensions
            .split(';')
            .filter(|extension| !extension.is_empty())
            .map(|extension| directory.join(format!("{program}{extension}")))
            .find(|candidate| exists(candidate))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn path_of(directories: &[&str]) -> std::ffi::OsString {
        std::env::join_paths(directories).unwrap()
    }

    #[test]
    fn a_bare_name_is_found_with_the_first_extension_in_the_first_directory_that_has_it() {
        let path = path_of(&["/a", "/b"]);
        let present = [Path::new("/b/code.CMD"), Path::new("/b/code.EXE")];
        let found = find_in_path("code", Some(&path), ".COM;.EXE;;.CMD", |candidate| {
            present.contains(&candidate)
        });
        assert_eq!(found, Some(PathBuf::from("/b/code.EXE")));
        let found = find_in_path("npx", Some(&path), ".EXE;.CMD", |candidate| {
            candidate == Path::new("/a/npx.CMD")
        });
        assert_eq!(found, Some(PathBuf::from("/a/npx.CMD")));
    }

    #[test]
    fn paths_names_with_an_extension_and_unknown_names_are_left_to_the_caller() {
        let path = path_of(&["/a"]);
        let anything = |_: &Path| true;
        assert_eq!(
            find_in_path("node.exe", Some(&path), ".EXE", anything),
            None
        );
        assert_eq!(
            find_in_path("bin/node", Some(&path), ".EXE", anything),
            None
        );
        assert_eq!(
            find_in_path("C:\\node", Some(&path), ".EXE", anything),
            None
        );
        assert_eq!(find_in_path("node", None, ".EXE", anything), None);
        assert_eq!(find_in_path("node", Some(&path), ".EXE", |_| false), None);
    }
}
