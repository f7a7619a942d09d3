//! The signed private call every endpoint uses, and the guards on what comes back (no redirects, a cap
//! on the answer's size).
//!
//! The nonce is taken, the body signed, sent and answered under one lock per API key, so exactly one
//! request per key is in flight and nonces reach Kraken in the order they were issued.

use std::error::Error as _;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use tokio::sync::Mutex;

use super::error::{ErrorReason, PollError};
use super::nonce::NonceCounter;
use super::sign::api_sign;

/// The `rebase_multiplier` request field (rebasing tokens only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebaseMultiplier {
    Rebased,
    Base,
}

impl RebaseMultiplier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rebased => "rebased",
            Self::Base => "base",
        }
    }
}

/// What tells two answers apart without keeping them: the 64-bit SipHash of the answer's bytes
/// under keys drawn at random when the process starts (so no answer can be made to collide on
/// purpose; by chance, one changed answer in 2^64 would be taken for the last one: at a thousand
/// accounts polled every ten seconds, all answers changing, once in some five billion years). A
/// collector that keeps the fingerprint of the answer it last applied skips decoding and
/// re-rendering an answer that is byte for byte the same (a treasury account's balances, most polls).
/// One hash, not two: hashing a 5 KB answer was a twentieth of the instructions of a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64);

impl Fingerprint {
    pub fn of(bytes: &[u8]) -> Self {
        static KEYS: OnceLock<RandomState> = OnceLock::new();
        Self(KEYS.get_or_init(RandomState::new).hash_one(bytes))
    }
}

/// An API's base address (`api_url`, `futures_api_url`), parsed once: each request's address is a
/// copy with the path set, so the host is not parsed again on every call.
#[derive(Clone)]
pub(crate) struct ApiUrl {
    text: String,
    parsed: Result<reqwest::Url, String>,
}

impl ApiUrl {
    /// `api_url` without a trailing `/`; a prefix path (a proxy's) is kept before every path.
    pub(crate) fn new(api_url: &str) -> Self {
        let text = api_url.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&text).map_err(|err| err.to_string());
        Self { text, parsed }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The address of `path` (which starts with `/`) under this base.
    pub(crate) fn with_path(&self, path: &str) -> Result<reqwest::Url, PollError> {
        let base = self.parsed.as_ref().map_err(|why| {
            PollError::new(
                ErrorReason::Http,
                format!(
                    "{:?} is not a URL ({why}); correct the API address in the configuration",
                    self.text
                ),
            )
        })?;
        let mut url = base.clone();
        let prefix = base.path().trim_end_matches('/');
        if prefix.is_empty() {
            url.set_path(path);
        } else {
            url.set_path(&format!("{prefix}{path}"));
        }
        Ok(url)
    }
}

/// The client for one Kraken API key: signs and sends private calls. Each endpoint adds its method in
/// its own module (`balance_ex.rs`: [`KrakenClient::balance_ex`]).
pub struct KrakenClient {
    http: reqwest::Client,
    api_url: ApiUrl,
    api_key: SecretString,
    secret: SecretSlice<u8>,
    nonce: NonceSequence,
    /// The key's 2FA password, sent as `otp` in every signed body.
    otp: Option<SecretString>,
}

/// The nonce counter of one API key, shared by every client of that key (a reload builds new clients
/// for the key; its sequence goes on).
#[derive(Debug, Clone, Default)]
pub struct NonceSequence(Arc<Mutex<NonceCounter>>);

impl NonceSequence {
    /// The counter, held while a request of the key is signed, sent and answered.
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, NonceCounter> {
        self.0.lock().await
    }
}

impl std::fmt::Debug for KrakenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KrakenClient")
            .field("api_url", &self.api_url.as_str())
            .field("api_key", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// The largest answer read from Kraken. A BalanceEx answer of 3,000 assets is about 300 KiB and the
/// public `AssetPairs` list about 1 MiB; anything larger is not Kraken's API and is refused before it can
/// take the process's memory.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Builds the HTTP client shared by all accounts: rustls, a total request timeout, our User-Agent, and
/// no redirects: a redirect would re-send the signed request, `API-Key` and `API-Sign` included, to
/// wherever the `Location` points.
pub fn http_client(request_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("kraken_exporter/", env!("CARGO_PKG_VERSION")))
        .timeout(request_timeout)
        .connect_timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

impl KrakenClient {
    /// `api_url` without the path (`https://api.kraken.com`); `secret` already base64-decoded.
    pub fn new(
        http: reqwest::Client,
        api_url: &str,
        api_key: SecretString,
        secret: SecretSlice<u8>,
    ) -> Self {
        Self {
            http,
            api_url: ApiUrl::new(api_url),
            api_key,
            secret,
            nonce: NonceSequence::default(),
            otp: None,
        }
    }

    /// Continues the nonce sequence of an earlier client of the same key.
    pub fn continuing(mut self, nonce: NonceSequence) -> Self {
        self.nonce = nonce;
        self
    }

    /// Sends `otp` (the key's 2FA password) in every request.
    pub fn with_otp(mut self, otp: Option<SecretString>) -> Self {
        self.otp = otp;
        self
    }

    /// This client's nonce sequence, to hand to the next client of the same key.
    pub fn nonce_sequence(&self) -> NonceSequence {
        self.nonce.clone()
    }

    /// One signed `POST` of `path` with `nonce` and `fields` as a form body, decoded by `decode`.
    ///
    /// The nonce is taken, the body signed, sent and answered under one lock per API key, so one
    /// request per key is in flight and nonces reach Kraken in the order they were issued, whatever
    /// the endpoint.
    pub(crate) async fn call<T>(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        decode: impl FnOnce(&[u8]) -> Result<T, PollError>,
    ) -> Result<T, PollError> {
        let url = self.api_url.with_path(path)?;
        let mut nonce_counter = self.nonce.lock().await;
        let nonce = nonce_counter.next_now();
        let mut body = format!("nonce={nonce}");
        for (name, value) in fields {
            body.push('&');
            body.push_str(name);
            body.push('=');
            body.push_str(value);
        }
        let mut secrets = Vec::new();
        if let Some(otp) = &self.otp {
            body.push_str("&otp=");
            let start = body.len();
            form_encode(otp.expose_secret(), &mut body);
            secrets.push(SecretString::from(body[start..].to_string()));
            secrets.push(otp.clone());
        }
        let signature = api_sign(self.secret.expose_secret(), path, nonce, body.as_bytes());
        secrets.push(SecretString::from(signature.clone()));
        secrets.push(self.api_key.clone());
        let (api_key, api_sign) = sensitive_headers(&self.api_key, &signature, "API key")?;
        let request = self
            .http
            .post(url.clone())
            .header("API-Key", api_key)
            .header("API-Sign", api_sign)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        exchange(request, url.as_str(), nonce_counter, &secrets, decode).await
    }
}

/// The key and the signature as header values marked sensitive (never printed by the HTTP stack); a
/// key that cannot be sent in a header is an `invalid_key` error naming `what` it is.
pub(crate) fn sensitive_headers(
    api_key: &SecretString,
    signature: &str,
    what: &str,
) -> Result<(HeaderValue, HeaderValue), PollError> {
    let mut key = HeaderValue::from_str(api_key.expose_secret()).map_err(|_| {
        PollError::new(
            ErrorReason::InvalidKey,
            format!("the {what} contains characters that cannot be sent in a header"),
        )
    })?;
    key.set_sensitive(true);
    let mut signature =
        HeaderValue::from_str(signature).expect("a base64 signature is a valid header value");
    signature.set_sensitive(true);
    Ok((key, signature))
}

/// Sends a signed `request` to `url`, reads its answer within [`MAX_RESPONSE_BYTES`], lets go of
/// the key's nonce lock (`nonce_held`) once the answer is in, and decodes it. An upstream or proxy
/// that echoes the request (in an error page or error string) must not carry a secret into a log
/// line: every one of `secrets` is scrubbed from the error.
pub(crate) async fn exchange<T, Held>(
    request: reqwest::RequestBuilder,
    url: &str,
    nonce_held: Held,
    secrets: &[SecretString],
    decode: impl FnOnce(&[u8]) -> Result<T, PollError>,
) -> Result<T, PollError> {
    let answer = async {
        let response = request.send().await.map_err(transport_error)?;
        let (status, bytes) = read_capped(response, url).await?;
        drop(nonce_held);
        checked(status, url, &bytes, decode)
    };
    answer.await.map_err(|err| scrub(err, secrets))
}

/// `err` with every occurrence of `secrets` replaced by `[redacted]`.
fn scrub(mut err: PollError, secrets: &[SecretString]) -> PollError {
    for secret in secrets {
        let secret = secret.expose_secret();
        if !secret.is_empty() && err.message.contains(secret) {
            err.message = err.message.replace(secret, "[redacted]");
        }
    }
    // Bounded only once scrubbed, so a cut never leaves part of a secret the scrub would not match.
    err.message = bounded_message(&err.message);
    err
}

/// The most characters of an error message kept, logged and shown on the status page.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// `message` on one line (control characters such as newlines as spaces, so an upstream text can
/// never split a log line) and at most [`MAX_MESSAGE_CHARS`] characters, saying how much was cut.
pub fn bounded_message(message: &str) -> String {
    let total = message.chars().count();
    let mut bounded: String = message
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if total > MAX_MESSAGE_CHARS {
        bounded.push_str(&format!(
            "... ({} more characters; messages are cut at {MAX_MESSAGE_CHARS})",
            total - MAX_MESSAGE_CHARS
        ));
    }
    bounded
}

/// Appends `value` form-encoded (`application/x-www-form-urlencoded`): unreserved bytes as they are,
/// everything else as `%XX`.
fn form_encode(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// The status and body of an answer, refusing redirects and bodies over [`MAX_RESPONSE_BYTES`]
/// (checked against `Content-Length` first, then while reading, so memory stays bounded either way).
async fn read_capped(
    mut response: reqwest::Response,
    url: &str,
) -> Result<(reqwest::StatusCode, bytes::Bytes), PollError> {
    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| printable(&String::from_utf8_lossy(l.as_bytes())))
            .unwrap_or_else(|| "nowhere".to_string());
        return Err(PollError::new(
            ErrorReason::Http,
            format!(
                "HTTP {status} from {url} redirects to {location}; redirects are not followed (they would carry the signed request elsewhere): set api_url to the address that answers"
            ),
        ));
    }
    let too_big = || {
        PollError::new(
            ErrorReason::Decode,
            format!(
                "the answer from {url} is larger than {} MiB, which no Kraken answer is; refused unread",
                MAX_RESPONSE_BYTES / (1024 * 1024)
            ),
        )
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_RESPONSE_BYTES as u64)
    {
        return Err(too_big());
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body.freeze()))
}

/// At most 80 characters on one line, for log messages about what a server sent.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(80)
        .collect()
}

/// Decodes a 200 answer; for any other status, Kraken's error if the body is an error envelope,
/// otherwise an `http` error naming the status.
fn checked<T>(
    status: reqwest::StatusCode,
    url: &str,
    bytes: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<T, PollError>,
) -> Result<T, PollError> {
    let decoded = decode(bytes);
    if status.is_success() {
        return decoded;
    }
    match decoded {
        // A Kraken error envelope with an unusual status still says what went wrong.
        Err(err) if err.reason != ErrorReason::Decode => Err(err),
        _ => Err(PollError::new(
            ErrorReason::Http,
            format!(
                "HTTP {status} from {url}: {}",
                printable(&String::from_utf8_lossy(bytes))
            ),
        )),
    }
}

/// A transport failure as a poll error: timeouts apart, the rest (connect, DNS, TLS, reset) as `http`.
fn transport_error(err: reqwest::Error) -> PollError {
    let reason = if err.is_timeout() {
        ErrorReason::Timeout
    } else {
        ErrorReason::Http
    };
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    PollError::new(reason, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_address_is_the_base_and_the_path_with_a_proxy_prefix_kept() {
        let at = |base: &str, path: &str| ApiUrl::new(base).with_path(path).unwrap().to_string();
        assert_eq!(
            at("https://api.kraken.com", "/0/private/BalanceEx"),
            "https://api.kraken.com/0/private/BalanceEx"
        );
        assert_eq!(
            at("http://127.0.0.1:8080/", "/0/private/BalanceEx"),
            "http://127.0.0.1:8080/0/private/BalanceEx"
        );
        assert_eq!(
            at("https://proxy.example/kraken/", "/0/private/Ledgers"),
            "https://proxy.example/kraken/0/private/Ledgers"
        );
        let err = ApiUrl::new("not a url")
            .with_path("/0/private/BalanceEx")
            .unwrap_err();
        assert_eq!(err.reason, ErrorReason::Http);
        assert!(err.message.contains("\"not a url\" is not a URL"), "{err}");
    }

    #[test]
    fn messages_are_one_line_and_bounded_after_the_scrub() {
        let secret = SecretString::from("s3cret-signature".to_string());
        let long = format!(
            "line one\nline \"two\"\r{}{}",
            "x".repeat(400),
            "s3cret-signature"
        );
        let err = scrub(
            PollError::new(crate::kraken::ErrorReason::Decode, long),
            &[secret],
        );
        assert!(!err.message.contains('\n') && !err.message.contains('\r'));
        assert!(
            err.message.starts_with("line one line \"two\" xxx"),
            "{}",
            err.message
        );
        // 300 characters kept, the rest counted (the redaction happened before the cut).
        let total = "line one\nline \"two\"\r".len() + 400 + "[redacted]".len();
        assert!(
            err.message.ends_with(&format!(
                "... ({} more characters; messages are cut at 300)",
                total - 300
            )),
            "{}",
            err.message
        );
        assert_eq!(bounded_message("short"), "short");
    }
}
