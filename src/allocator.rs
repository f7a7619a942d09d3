//! The C allocator's settings for a long-running exporter (glibc only; elsewhere nothing).
//!
//! glibc gives threads that allocate at once arenas of their own (up to eight per core) and raises
//! its mmap threshold to the largest block freed, so the megabyte texts a scrape or the status page
//! of a thousand accounts makes and drops end up in arenas' heaps and stay resident. One arena and
//! a fixed 128 KiB threshold (large blocks are mapped, and unmapped when freed): with 1,000 accounts,
//! 98 MB resident after 16 clients loaded `/metrics` and `/` with glibc's defaults, 77 MB with these,
//! CPU per poll round the same (BENCHMARKS.md). An operator's own `MALLOC_ARENA_MAX` or
//! `MALLOC_MMAP_THRESHOLD_` is left to glibc.

/// Applies the settings; call before any thread starts.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
        // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
        unsafe {
            if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
                libc::mallopt(libc::M_ARENA_MAX, 1);
            }
            if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            }
        }
    }
}

/// Gives the pages of freed memory back to the system (glibc only), at most once a second whoever
/// asks: called after large texts were made and dropped (a scrape of a newer version, the status
/// page), so what a burst of work used is not kept resident until the next burst. A trim walks the
/// free lists: once a second it costs nothing a scrape would notice.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::time::{SystemTime, UNIX_EPOCH};
        static LAST_SECOND: AtomicU64 = AtomicU64::new(0);
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if LAST_SECOND.swap(second, Ordering::Relaxed) == second {
            return;
        }
        // SAFETY: malloc_trim takes no pointers; glibc serialises it with every other allocator call.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
