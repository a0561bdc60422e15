//! Small file helpers shared by the CA directory, the token file and the
//! issued log: atomic replacement (so a reader never sees half a key or
//! certificate), size-limited reads (so a path pointing at a device cannot
//! exhaust memory), and JSON-lines append/read (so `usher ca token` and a
//! running `usher ca serve` can write the same file at the same time).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls_pki_types::pem;

use crate::error::CaError;

/// Largest PEM file the CA reads.
const MAX_PEM_FILE: u64 = 1024 * 1024;
/// Largest JSON-lines file (token file, issued log) the CA reads.
const MAX_JSONL_FILE: u64 = 256 * 1024 * 1024;

/// Reads a whole PEM file, refusing anything implausibly large (such as a
/// path that points at a device) instead of exhausting memory.
pub(crate) fn read_limited(file: File) -> io::Result<Vec<u8>> {
    read_at_most(
        file,
        MAX_PEM_FILE,
        "file is larger than 1 MiB; expected a small PEM file",
    )
}

fn read_at_most(file: File, max: u64, too_big: &'static str) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, too_big));
    }
    Ok(bytes)
}

/// Reads the PEM file at `path`, or `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, CaError> {
    match File::open(path).and_then(read_limited) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(CaError::Read {
            path: path.to_owned(),
            error,
        }),
    }
}

/// Reads the PEM file at `path`; a missing file is [`CaError::Missing`].
pub(crate) fn read_required(path: &Path) -> Result<Vec<u8>, CaError> {
    File::open(path)
        .and_then(read_limited)
        .map_err(|error| read_error(path, error))
}

pub(crate) fn read_error(path: &Path, error: io::Error) -> CaError {
    if error.kind() == io::ErrorKind::NotFound {
        CaError::Missing {
            path: path.to_owned(),
        }
    } else {
        CaError::Read {
            path: path.to_owned(),
            error,
        }
    }
}

pub(crate) fn not_pem(path: &Path, expected: &'static str, e: &pem::Error) -> CaError {
    let reason = match e {
        pem::Error::NoItemsFound => format!("no {expected} block found"),
        other => other.to_string(),
    };
    CaError::NotPem {
        path: path.to_owned(),
        expected,
        reason,
    }
}

/// Fails with [`CaError::AlreadyExists`] naming the first of `paths` that
/// exists (as anything, including a dangling symlink).
pub(crate) fn refuse_existing(paths: &[&Path]) -> Result<(), CaError> {
    for path in paths {
        match fs::symlink_metadata(path) {
            Ok(_) => {
                return Err(CaError::AlreadyExists {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(CaError::Read {
                    path: path.to_path_buf(),
                    error,
                })
            }
        }
    }
    Ok(())
}

/// Removes `path` if it exists.
pub(crate) fn remove_if_exists(path: &Path) -> Result<(), CaError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(CaError::Write {
            path: path.to_owned(),
            error,
        }),
    }
}

/// Creates `dir` (and parents) with mode 0700 if missing; an existing
/// directory is left as it is.
pub(crate) fn create_dir(dir: &Path) -> Result<(), CaError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|error| CaError::CreateDir {
            path: dir.to_owned(),
            error,
        })
}

/// Writes `contents` to `path` atomically: a temporary file in the same
/// directory, created with `mode` (so a key is never readable by others, not
/// even briefly), flushed to disk, then renamed over `path`.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let write_error = |error| CaError::Write {
        path: path.to_owned(),
        error,
    };
    let dir = parent_dir(path);
    let file_name = path
        .file_name()
        .ok_or_else(|| write_error(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp_path = dir.join(tmp_name);

    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp_path)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp_path, path)
    })();
    if let Err(error) = result {
        // Best effort: the temporary file may not even exist.
        let _ = fs::remove_file(&tmp_path);
        return Err(write_error(error));
    }
    sync_dir(dir);
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename or file creation durable. Best effort: some filesystems
/// refuse to fsync a directory, and the data is already safely in place.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Appends `line` (one JSON document, no newline) to the JSON-lines file at
/// `path`, creating it with mode 0600 if missing, and flushes it to disk.
///
/// The file is opened with `O_APPEND` and the line is written with a single
/// `write`, so two processes appending at once (`usher ca token` while the
/// server records a used token) do not interleave. If an earlier writer
/// crashed mid-line, a newline is written first so that the partial line
/// stays on its own (and is skipped by [`read_jsonl`]).
pub(crate) fn append_jsonl(path: &Path, line: &str) -> Result<(), CaError> {
    let write_error = |error| CaError::Write {
        path: path.to_owned(),
        error,
    };
    let created = !path.exists();
    let mut file = OpenOptions::new()
        .append(true)
        .read(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(write_error)?;
    let len = file.metadata().map_err(write_error)?.len();
    let mut buf = String::with_capacity(line.len() + 2);
    if len > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::End(-1))
            .and_then(|_| file.read_exact(&mut last))
            .map_err(write_error)?;
        if last[0] != b'\n' {
            buf.push('\n');
        }
    }
    buf.push_str(line);
    buf.push('\n');
    file.write_all(buf.as_bytes()).map_err(write_error)?;
    file.sync_data().map_err(write_error)?;
    if created {
        sync_dir(parent_dir(path));
    }
    Ok(())
}

/// Reads the JSON-lines file at `path` (a missing file is empty) and returns
/// its non-blank lines with their 1-based line numbers. A final line without
/// its newline is a write still in progress (or a crashed one) and is left
/// out.
pub(crate) fn read_jsonl(path: &Path) -> Result<Vec<(usize, String)>, CaError> {
    let bytes = match File::open(path) {
        Ok(file) => read_at_most(
            file,
            MAX_JSONL_FILE,
            "file is larger than 256 MiB; expected a JSON-lines log",
        )
        .map_err(|error| CaError::Read {
            path: path.to_owned(),
            error,
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(CaError::Read {
                path: path.to_owned(),
                error,
            })
        }
    };
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => &bytes[..=i],
        None => &[][..],
    };
    let text = std::str::from_utf8(complete).map_err(|e| {
        let line = complete[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        CaError::CorruptLog {
            path: path.to_owned(),
            line,
            reason: "not valid UTF-8; expected one JSON object per line".to_owned(),
        }
    })?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.to_owned()))
        .collect())
}

#[cfg(test)]
mod tests;
