//! Reading the operator's files (configuration, web configuration, secrets) with bounds: at most a
//! given size, and only regular files, opened without blocking, so `/dev/zero`, a FIFO or a device
//! named by mistake is refused at once instead of filling memory or hanging the start or a reload.
//! (A file on a mount that hangs can still block its read: reloads read in a thread of their own,
//! with a deadline, see `reload`.)

use std::io::Read;
use std::path::Path;

/// The largest configuration or web configuration file read.
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// The contents of the regular file at `path`, at most `max_bytes`; the error says what is wrong in
/// words an operator acts on (the caller adds which option named the file).
pub fn read_bounded(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let mut options = std::fs::File::options();
    options.read(true);
    #[cfg(unix)]
    {
        // A FIFO would block the open until a writer comes; non-blocking, it opens and is refused.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options
        .open(path)
        .map_err(|e| format!("cannot open it: {e}; check the path and its permissions"))?;
    let kind = file
        .metadata()
        .map_err(|e| format!("cannot read what it is: {e}"))?
        .file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        return Err(format!("it is {what}; name a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!(
            "it is larger than {max_bytes} bytes, more than such a file ever needs"
        ));
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_text_bounded(path: &Path, max_bytes: u64) -> Result<String, String> {
    String::from_utf8(read_bounded(path, max_bytes)?)
        .map_err(|_| "it is not UTF-8 text".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_directories_and_large_files_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_bounded(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid, null-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let started = std::time::Instant::now();
        let err = read_bounded(&fifo, 1024).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(read_bounded(dir.path(), 1024)
            .unwrap_err()
            .contains("directory"));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 2049]).unwrap();
        assert!(read_bounded(&big, 2048)
            .unwrap_err()
            .contains("larger than 2048"));
        std::fs::write(&big, b"ok").unwrap();
        assert_eq!(read_bounded(&big, 2048).unwrap(), b"ok");
        assert!(read_bounded(&dir.path().join("missing"), 10)
            .unwrap_err()
            .contains("cannot open"));
    }
}
