//! Lock helpers. Every value behind these locks is replaced whole, never left half-written, so a
//! thread that panicked while holding one leaves a consistent value: the poison is ignored.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks a mutex, recovering the data of a poisoned one.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Read-locks, recovering the data of a poisoned lock.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Write-locks, recovering the data of a poisoned lock.
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The one shared copy of `value` in `known`, made from it by `make` the first time. What a
/// set keeps stays for the process's life: for names of which there are few (assets, accounts)
/// repeated by thousands of rows.
pub(crate) fn intern<T: Ord + ?Sized>(
    known: &Mutex<BTreeSet<Arc<T>>>,
    value: &T,
    make: impl FnOnce(&T) -> Arc<T>,
) -> Arc<T> {
    let mut known = lock(known);
    if let Some(shared) = known.get(value) {
        return Arc::clone(shared);
    }
    let shared = make(value);
    known.insert(Arc::clone(&shared));
    shared
}
