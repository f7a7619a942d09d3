//! The ledger book's file in `state_dir`: `ledger-<account>.json`, written atomically (a temporary
//! file beside it, synced, renamed over it, the directory synced) so a crash leaves the old book or
//! the new one, never half of one. A missing file starts fresh; one that cannot be read or belongs to
//! another account starts fresh with a warning naming it, and is kept aside as `<file>.corrupt`.
//!
//! The account name is written into the file name with every character but `A-Z a-z 0-9 _ -` as
//! `%XX` (its UTF-8 bytes), so two accounts never share a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::book::{Book, LOOKED_UP};

/// The file's format version; another version starts fresh.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    account: String,
    book: Book,
}

/// Where an account's book is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(dir: &Path, account: &str) -> Self {
        let mut name = String::from("ledger-");
        for byte in account.bytes() {
            if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
                name.push(char::from(byte));
            } else {
                name.push_str(&format!("%{byte:02X}"));
            }
        }
        name.push_str(".json");
        Self {
            path: dir.join(name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The account's book, or a fresh one (with a warning when the file was there but unusable).
    pub fn load(&self, account: &str) -> Book {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(account, file = %self.path.display(), "no ledger state yet: counting ledger entries from now");
                return Book::default();
            }
            Err(err) => {
                // Kept aside like a corrupt one, so the next save does not write over it.
                let aside = self.path.with_extension("json.corrupt");
                let kept = std::fs::rename(&self.path, &aside).is_ok();
                tracing::warn!(account, file = %self.path.display(), error = %err, kept_aside = kept, "cannot read the ledger state; counting ledger entries from now (the counters start at 0)");
                return Book::default();
            }
        };
        let why = match serde_json::from_slice::<Saved>(&text) {
            Ok(saved) if saved.version != VERSION => {
                format!("version {} is not {VERSION}", saved.version)
            }
            Ok(saved) if saved.account != account => {
                format!("it is account {:?}'s", saved.account)
            }
            Ok(mut saved) => {
                saved
                    .book
                    .lookups
                    .retain(|kind| LOOKED_UP.contains(&kind.as_str()));
                return saved.book;
            }
            Err(err) => err.to_string(),
        };
        let aside = self.path.with_extension("json.corrupt");
        let kept = std::fs::rename(&self.path, &aside).is_ok();
        tracing::warn!(
            account,
            file = %self.path.display(),
            problem = %why,
            kept_as = %if kept { aside.display().to_string() } else { "not kept".to_string() },
            "the ledger state file is unusable; counting ledger entries from now (the counters start at 0; Prometheus' increase() handles the reset)"
        );
        Book::default()
    }

    /// Writes the book atomically.
    pub fn save(&self, account: &str, book: &Book) -> std::io::Result<()> {
        let saved = Saved {
            version: VERSION,
            account: account.to_string(),
            book: book.clone(),
        };
        let bytes = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
        let temporary = self.path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, &self.path)?;
        if let Some(dir) = self.path.parent() {
            // The rename itself is durable once the directory is synced (not possible everywhere).
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_book_comes_back_and_a_corrupt_or_foreign_one_starts_fresh_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path(), "desk a/b");
        assert!(file.path().ends_with("ledger-desk%20a%2Fb.json"));
        assert_eq!(file.load("desk a/b"), Book::default());
        let book = Book {
            started: true,
            next_start: Some(42),
            ..Book::default()
        };
        file.save("desk a/b", &book).unwrap();
        assert_eq!(file.load("desk a/b"), book);
        assert_eq!(file.load("other"), Book::default());
        assert!(dir.path().join("ledger-desk%20a%2Fb.json.corrupt").exists());
        std::fs::write(file.path(), b"{\"version\":1,\"acc").unwrap();
        assert_eq!(file.load("desk a/b"), Book::default());
        assert!(!file.path().exists());
    }
}
