//! One file reloader for everything read from files at run time (certificate and key, client CA).
//!
//! A TLS handshake only reads the value in memory ([`Reloading::current`]): no file is opened on an
//! async worker, so a slow or hung mount can never stall the server. At most once per
//! [`CHECK_INTERVAL`], `current` asks a thread of its own to compare the files' stamps
//! (modification time, size and a SHA-256 of the content, so a file copied in with its old
//! modification time still counts as changed) with those of the last attempt and to load again
//! when they changed; one check at a time, so a hung file holds one thread, not one per handshake. A
//! rotated certificate or CA is therefore in use within about a second. A load that fails is
//! logged once per change and the previous value is kept; the next attempt waits for the files to
//! change again, so a broken file costs one warning, not one per TLS handshake. With
//! [`OnMissing::Forget`], a deleted file, or one that no longer loads, drops the value instead
//! (trust material that the operator removed or broke must stop being trusted).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use crate::sync::lock;

/// How often the files are looked at, at most.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

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
    watched: Arc<Watched<T>>,
}

struct Watched<T> {
    what: &'static str,
    files: Vec<PathBuf>,
    on_missing: OnMissing,
    load: Load<T>,
    state: Mutex<State<T>>,
    /// A check runs now (on its own thread).
    checking: AtomicBool,
    /// When the last check started.
    checked_at: Mutex<Instant>,
}

struct State<T> {
    /// The stamps seen at the last attempt, successful or not.
    stamps: Vec<Option<Stamp>>,
    value: Option<T>,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.watched.what)
            .field("files", &self.watched.files)
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + 'static> Reloading<T> {
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
            watched: Arc::new(Watched {
                what,
                files,
                on_missing,
                load,
                state: Mutex::new(State {
                    stamps,
                    value: Some(value),
                }),
                checking: AtomicBool::new(false),
                checked_at: Mutex::new(Instant::now()),
            }),
        })
    }

    /// The value in memory; once [`CHECK_INTERVAL`] has passed since the last check, a check of the
    /// files starts on its own thread (its outcome is for the next callers).
    pub(super) fn current(&self) -> Option<T> {
        let due = {
            let mut checked_at = lock(&self.watched.checked_at);
            let due = checked_at.elapsed() >= CHECK_INTERVAL;
            if due {
                *checked_at = Instant::now();
            }
            due
        };
        if due && !self.watched.checking.swap(true, Ordering::SeqCst) {
            let watched = Arc::clone(&self.watched);
            let spawned = std::thread::Builder::new()
                .name("file-check".to_string())
                .spawn(move || {
                    watched.check();
                    watched.checking.store(false, Ordering::SeqCst);
                });
            if spawned.is_err() {
                self.watched.checking.store(false, Ordering::SeqCst);
            }
        }
        lock(&self.watched.state).value.clone()
    }

    /// Compares the files with the last attempt and loads them again if they changed, here and now.
    #[cfg(test)]
    fn check_now(&self) -> Option<T> {
        self.watched.check();
        lock(&self.watched.state).value.clone()
    }
}

impl<T> Watched<T> {
    /// Reads the files (without holding the state, so a handshake never waits on a file) and
    /// updates the value if they changed since the last attempt.
    fn check(&self) {
        let now = stamps(&self.files);
        if now == lock(&self.state).stamps {
            return;
        }
        let files = self
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let removed = self.on_missing == OnMissing::Forget && now.iter().any(Option::is_none);
        let loaded = (!removed).then(|| (self.load)());
        let mut state = lock(&self.state);
        state.stamps = now;
        match loaded {
            None => {
                tracing::warn!(
                    what = self.what,
                    files,
                    "file removed; nothing is trusted from it until it is back"
                );
                state.value = None;
            }
            Some(Ok(value)) => {
                tracing::info!(what = self.what, files, "reloaded");
                state.value = Some(value);
            }
            Some(Err(error)) if self.on_missing == OnMissing::Forget => {
                tracing::warn!(what = self.what, %error, "changed but cannot be loaded; nothing is trusted from it until it loads again");
                state.value = None;
            }
            Some(Err(error)) => {
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
    use std::sync::atomic::AtomicUsize;

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

    /// `path` watched with `on_missing`, read by [`reader`], each load counted in `loads`.
    fn watching(
        path: &std::path::Path,
        on_missing: OnMissing,
        loads: Arc<AtomicUsize>,
    ) -> Reloading<String> {
        Reloading::new(
            "test",
            vec![path.to_path_buf()],
            on_missing,
            reader(path.to_path_buf(), loads),
        )
        .unwrap()
    }

    #[test]
    fn a_broken_file_is_tried_once_per_change_and_the_previous_value_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        touch(&path, "one", Duration::from_secs(30));
        let loads = Arc::new(AtomicUsize::new(0));
        let watched = watching(&path, OnMissing::Keep, Arc::clone(&loads));
        assert_eq!(watched.check_now().as_deref(), Some("one"));
        touch(&path, "bad", Duration::from_secs(20));
        for _ in 0..5 {
            assert_eq!(watched.check_now().as_deref(), Some("one"));
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            2,
            "one initial load, one try after the change"
        );
        touch(&path, "two", Duration::from_secs(10));
        assert_eq!(watched.check_now().as_deref(), Some("two"));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            watched.check_now().as_deref(),
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
        let watched = watching(&path, OnMissing::Forget, loads);
        assert_eq!(watched.check_now().as_deref(), Some("ca"));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(watched.check_now(), None);
        touch(&path, "ca2", Duration::from_secs(5));
        assert_eq!(watched.check_now().as_deref(), Some("ca2"));
    }

    #[test]
    fn new_content_under_the_old_modification_time_is_loaded_and_a_broken_ca_trusts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca");
        touch(&path, "ca1", Duration::from_secs(30));
        let stamp = std::fs::metadata(&path).unwrap().modified().unwrap();
        let loads = Arc::new(AtomicUsize::new(0));
        let watched = watching(&path, OnMissing::Forget, loads);
        assert_eq!(watched.check_now().as_deref(), Some("ca1"));
        // A new CA copied in with the old file's modification time (cp -p, some sync tools).
        let same_time = |text: &str| write_modified_at(&path, text, stamp);
        same_time("ca2");
        assert_eq!(watched.check_now().as_deref(), Some("ca2"));
        same_time("bad");
        assert_eq!(
            watched.check_now(),
            None,
            "a CA that no longer parses trusts nobody"
        );
        same_time("ca3");
        assert_eq!(watched.check_now().as_deref(), Some("ca3"));
    }

    /// A handshake reads memory only: a change is taken by a check on its own thread, at most once
    /// per CHECK_INTERVAL, and `current` returns at once meanwhile.
    #[test]
    fn current_reads_memory_and_a_change_is_taken_by_a_check_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert");
        touch(&path, "one", Duration::from_secs(30));
        let loads = Arc::new(AtomicUsize::new(0));
        let watched = watching(&path, OnMissing::Keep, Arc::clone(&loads));
        touch(&path, "two", Duration::from_secs(10));
        // Within the interval nothing is read: the value in memory, however often it is asked.
        for _ in 0..100 {
            assert_eq!(watched.current().as_deref(), Some("one"));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while watched.current().as_deref() != Some("two") {
            assert!(
                Instant::now() < deadline,
                "the change is taken within seconds"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }
}
