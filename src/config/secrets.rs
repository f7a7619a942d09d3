//! Secrets from files and the environment: read once, held in `secrecy` types, never printed.

use std::collections::BTreeMap;
use std::path::Path;

use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::kraken::sign::decode_secret;

/// The process environment, read once at start; the variables that may hold a secret themselves
/// ([`SECRET_VARIABLES`]: `KRAKEN_API_SECRET`, `KRAKEN_FUTURES_API_SECRET`) are then removed from the
/// process and their text overwritten, so they are neither inherited by children nor readable in
/// `/proc/<pid>/environ`. Each is decoded once, here, and kept only decoded (zeroed on drop): the map
/// holds a marker in its place, which reloads resolve to the decoded secret. Call before any thread
/// starts (the environment is not thread-safe).
pub fn take_environment() -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let mut decoded_secrets = BTreeMap::new();
    for variable in SECRET_VARIABLES {
        if let Some(mut base64) = env.remove(*variable) {
            let decoded = decode_secret(base64.trim())
                .map(SecretSlice::from)
                .map_err(|e| e.to_string());
            zeroize::Zeroize::zeroize(&mut base64);
            decoded_secrets.insert(*variable, decoded);
            env.insert(variable.to_string(), TAKEN_AT_START.to_string());
            scrub_variable(variable);
        }
    }
    let _ = ENVIRONMENT_SECRETS.set(decoded_secrets);
    env
}

/// What a secret variable holds in the map [`take_environment`] returns.
const TAKEN_AT_START: &str = "(decoded at start)";

/// Each secret variable as decoded at start, or why it could not be.
static ENVIRONMENT_SECRETS: std::sync::OnceLock<
    BTreeMap<&'static str, Result<SecretSlice<u8>, String>>,
> = std::sync::OnceLock::new();

/// The decoded secret of `variable`'s value `text`: decoded now, or, for the marker
/// [`take_environment`] left, the one decoded at start.
pub(super) fn environment_secret(variable: &str, text: &str) -> Result<SecretSlice<u8>, String> {
    if text == TAKEN_AT_START {
        return match ENVIRONMENT_SECRETS.get().and_then(|all| all.get(variable)) {
            Some(Ok(secret)) => Ok(SecretSlice::from(secret.expose_secret().to_vec())),
            Some(Err(why)) => Err(why.clone()),
            None => Err("it was not read at start".to_string()),
        };
    }
    decode_secret(text)
        .map(SecretSlice::from)
        .map_err(|e| e.to_string())
}

/// Makes the process non-dumpable: no core file (which would hold the decoded secret, the 2FA
/// password and the key) and no ptrace by other processes of the same user. Call first thing.
pub fn forbid_core_dumps() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes no pointers and only changes this process's flag.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// The environment variables that may hold an API secret themselves.
const SECRET_VARIABLES: &[&str] = &["KRAKEN_API_SECRET", "KRAKEN_FUTURES_API_SECRET"];

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn scrub_variable(name: &str) {
    let prefix = format!("{name}=");
    // SAFETY: called before any other thread exists (see `take_environment`), so nothing reads or
    // changes the environment meanwhile; `environ` is a null-terminated array of null-terminated
    // strings, and only the bytes of the value (up to its terminator) are overwritten in place.
    unsafe {
        let mut entry = libc::environ;
        while !entry.is_null() && !(*entry).is_null() {
            let text = std::ffi::CStr::from_ptr(*entry);
            if text.to_bytes().starts_with(prefix.as_bytes()) {
                let value = (*entry).add(prefix.len());
                let len = text.to_bytes().len() - prefix.len();
                std::ptr::write_bytes(value, 0, len);
            }
            entry = entry.add(1);
        }
    }
    std::env::remove_var(name);
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn scrub_variable(name: &str) {
    std::env::remove_var(name);
}

/// Reads and decodes a secret file (`key` names it in errors: `api_secret_file`); warns when group
/// or others can read it.
pub fn read_secret_file(path: &Path, key: &str) -> Result<SecretSlice<u8>, String> {
    let text = read_small_secret(path, key, "the key's base64 private key")?;
    let decoded = decode_secret(secrecy::ExposeSecret::expose_secret(&text))
        .map_err(|e| format!("{key} {}: {e}", path.display()))?;
    Ok(SecretSlice::from(decoded))
}

/// The length a Kraken API private key decodes to.
pub const PRIVATE_KEY_BYTES: usize = 64;

/// A spot key's private key decodes to [`PRIVATE_KEY_BYTES`]; anything else is a cut or wrong copy
/// that Kraken would only answer with `EAPI:Invalid signature` (`source` names where it came from).
pub(super) fn check_private_key_length(
    secret: &SecretSlice<u8>,
    source: &str,
) -> Result<(), String> {
    let length = secret.expose_secret().len();
    if length == PRIVATE_KEY_BYTES {
        return Ok(());
    }
    Err(format!(
        "{source} decodes to {length} bytes, but a Kraken API private key decodes to {PRIVATE_KEY_BYTES} (88 base64 characters); copy the whole Private Key shown when the key was created"
    ))
}

/// Reads a 2FA password file (`api_otp_file`): its content without surrounding whitespace, never
/// empty; warns when group or others can read it.
pub fn read_otp_file(path: &Path) -> Result<SecretString, String> {
    let text = read_small_secret(path, "api_otp_file", "the key's 2FA password")?;
    let trimmed = secrecy::ExposeSecret::expose_secret(&text).trim();
    if trimmed.is_empty() {
        return Err(format!(
            "api_otp_file {} is empty; put the key's 2FA password in it, or remove api_otp_file if the key has none",
            path.display()
        ));
    }
    Ok(SecretString::from(trimmed.to_string()))
}

/// Reads a file that holds one secret, at most [`MAX_SECRET_FILE_BYTES`]: a larger file, or a device
/// such as /dev/zero, is a mistake that must not stall the start or take the memory.
fn read_small_secret(path: &Path, key: &str, holds: &str) -> Result<SecretString, String> {
    let cannot = |e: &dyn std::fmt::Display| {
        format!(
            "cannot read {key} {}: {e}; check the path and that the exporter's user may read it",
            path.display()
        )
    };
    let bytes = secrecy::SecretSlice::from(
        crate::files::read_bounded(path, MAX_SECRET_FILE_BYTES)
            .map_err(|e| format!("{key} {}: {e}; it should hold only {holds}", path.display()))?,
    );
    let text = std::str::from_utf8(secrecy::ExposeSecret::expose_secret(&bytes))
        .map(|text| SecretString::from(text.to_string()))
        .map_err(|e| cannot(&e))?;
    warn_if_readable_by_others(path);
    Ok(text)
}

/// The largest secret file read (a Kraken private key is 88 base64 characters).
const MAX_SECRET_FILE_BYTES: u64 = 4096;

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        // Any bit for group or others: a writable file can be swapped for another key as well.
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "a secret file (API secret or 2FA password) is readable or writable by group or others; restrict it with chmod 600"
            );
        }
    }
    let directory = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(meta) = directory.and_then(|d| std::fs::metadata(d).ok()) {
        let mode = meta.permissions().mode();
        // Without the sticky bit, whoever may write the directory may replace the file in it.
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            tracing::warn!(
                directory = %directory.unwrap_or(path).display(),
                mode = format!("{:o}", mode & 0o7777),
                "a secret file's directory is writable by group or others, who could replace the file; restrict it with chmod go-w"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}
