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
