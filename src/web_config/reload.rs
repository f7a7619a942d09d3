//! One file reloader for everything read from files at run time (certificate and key, client CA).
//!
//! [`Reloading::current`] compares the files' stamps (modification time, size and a SHA-256 of the
//! content, so a file copied in with its old modification time still counts as changed) with those
//! of the last attempt and loads again only when they changed. A load that fails is logged once per
//! change and the previous value is kept; the next attempt waits for the files to change again, so a
//! broken file costs one warning, not one per TLS handshake. With [`OnMissing::Forget`], a deleted
//! file, or one that no longer loads, drops the value instead (trust material that the operator
//! removed or broke must stop being trusted).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::sync::lock;

/// What to do when a watched file disappears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnMissing {
    /// Keep serving the last value (a certificate mid-rotation).
    Keep,
    /// Drop the value until the file is back and loads (a CA file that was removed or broken).
    Forget,
}

/// A loader of the value from the files.
pub(super) type Load<T> = Box<dyn Fn() -> Result<T, String> + Send + Sync>;

/// A value loaded from files and reloaded when they change.
pub(super) struct Reloading<T> {
    what: &'static str,
    files: Vec<PathBuf>,
    on_missing: OnMissing,
    load: Load<T>,
    state: Mutex<State<T>>,
}

struct State<T> {
    /// The stamps seen at the last attempt, successful or not.
    stamps: Vec<Option<Stamp>>,
    value: Option<T>,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.what)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl<T: Clone> Reloading<T> {
    /// Loads once now; an error here stops the start.
    pub(super) fn new(
        what: &'static str,
        files: Vec<PathBuf>,
        on_missing: OnMissing,
        load: Load<T>,
    ) -> Result<Self, String> {
        let stamps = stamps(&files);
        let value = load()?;
        Ok(Self {
            what,
            files,
            on_missing,
            load,
            state: Mutex::new(State {
                stamps,
                value: Some(value),
            }),
        })
    }

    /// The current value, reloaded first if a file changed since the last attempt.
    pub(super) fn current(&self) -> Option<T> {
        let mut state = lock(&self.state);
        let now = stamps(&self.files);
        if now != state.stamps {
            state.stamps.clone_from(&now);
            let files = self
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if self.on_missing == OnMissing::Forget && now.iter().any(Option::is_none) {
                tracing::warn!(
                    what = self.what,
                    files,
                    "file removed; nothing is trusted from it until it is back"
                );
                state.value = None;
            } else {
                match (self.load)() {
                    Ok(value) => {
                        tracing::info!(what = self.what, files, "reloaded");
                        state.value = Some(value);
                    }
                    Err(error) if self.on_missing == OnMissing::Forget => {
                        tracing::warn!(what = self.what, %error, "changed but cannot be loaded; nothing is trusted from it until it loads again");
                        state.value = None;
                    }
                    Err(error) => {
                        let kept = if state.value.is_some() {
                            "keeping the previous one"
                        } else {
                            "none in use"
                        };
                        tracing::warn!(what = self.what, %error, "changed but cannot be loaded; {kept} until the files change again");
                    }
                }
            }
        }
        state.value.clone()
    }
}

/// What tells one version of a file from another: modification time, size and content.
type Stamp = (SystemTime, u64, [u8; 32]);

fn stamps(files: &[PathBuf]) -> Vec<Option<Stamp>> {
    files
        .iter()
        .map(|path| {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
            // Certificates and keys are small; anything else is not one and fails to load anyway.
            let content = crate::files::read_bounded(path, crate::files::MAX_CONFIG_FILE_BYTES)
                .unwrap_or_default();
            Some((
                modified,
                content.len() as u64,
                Sha256::digest(&content).into(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    fn touch(path: &std::path::Path, text: &str, age: Duration) {
        write_modified_at(path, text, SystemTime::now() - age);
    }

    fn write_modified_at(path: &std::path::Path, text: &str, modified: SystemTime) {
        std::fs::write(path, text).unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(modified).unwrap();
    }

    fn reader(path: PathBuf, loads: Arc<AtomicUsize>) -> Load<String> {
        Box::new(move || {
            loads.fetch_add(1, Ordering::SeqCst);
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            if text == "bad" {
                return Err("bad content".to_string());
            }
            Ok(text)
        })
    }

    #[test]
    fn a_broken_file_is_tried_once_per_change_and_the_previous_value_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        touch(&path, "one", Duration::from_secs(30));
        let loads = Arc::new(AtomicUsize::new(0));
        let watched = Reloading::new(
            "test",
            vec![path.clone()],
            OnMissing::Keep,
            reader(path.clone(), Arc::clone(&loads)),
        )
        .unwrap();
        assert_eq!(watched.current().as_deref(), Some("one"));
        touch(&path, "bad", Duration::from_secs(20));
        for _ in 0..5 {
            assert_eq!(watched.current().as_deref(), Some("one"));
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            2,
            "one initial load, one try after the change"
        );
        touch(&path, "two", Duration::from_secs(10));
        assert_eq!(watched.current().as_deref(), Some("two"));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            watched.current().as_deref(),
            Some("two"),
            "Keep serves the last value"
        );
    }

    #[test]
    fn a_removed_file_is_forgotten_when_asked_and_trusted_again_when_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca");
        touch(&path, "ca", Duration::from_secs(30));
        let loads = Arc::new(AtomicUsize::new(0));
        let watched = Reloading::new(
            "test",
            vec![path.clone()],
            OnMissing::Forget,
            reader(path.clone(), loads),
        )
        .unwrap();
        assert_eq!(watched.current().as_deref(), Some("ca"));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(watched.current(), None);
        touch(&path, "ca2", Duration::from_secs(5));
        assert_eq!(watched.current().as_deref(), Some("ca2"));
    }

    #[test]
    fn new_content_under_the_old_modification_time_is_loaded_and_a_broken_ca_trusts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca");
        touch(&path, "ca1", Duration::from_secs(30));
        let stamp = std::fs::metadata(&path).unwrap().modified().unwrap();
        let loads = Arc::new(AtomicUsize::new(0));
        let watched = Reloading::new(
            "test",
            vec![path.clone()],
            OnMissing::Forget,
            reader(path.clone(), loads),
        )
        .unwrap();
        assert_eq!(watched.current().as_deref(), Some("ca1"));
        // A new CA copied in with the old file's modification time (cp -p, some sync tools).
        let same_time = |text: &str| write_modified_at(&path, text, stamp);
        same_time("ca2");
        assert_eq!(watched.current().as_deref(), Some("ca2"));
        same_time("bad");
        assert_eq!(
            watched.current(),
            None,
            "a CA that no longer parses trusts nobody"
        );
        same_time("ca3");
        assert_eq!(watched.current().as_deref(), Some("ca3"));
    }
}
