//! The Prometheus text format, rendered by hand for the families with thousands of series.
//!
//! Balance series change only when a poll of their account succeeds, so each account's lines of each
//! family are rendered (and gzipped) once then, as a chunk; publishing joins the chunks, and a scrape
//! serves the joined bytes. Rendering from our own exact values instead of through the `prometheus`
//! crate's registry keeps memory small (no per-series metric objects) and costs one account's work per
//! poll, whatever the number of accounts. Gzip bodies are gzip members back to back, which RFC 1952
//! allows and every gzip reader (Prometheus's included) decodes as one text.

use std::convert::Infallible;
use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use rust_decimal::Decimal;
use std::str::FromStr;

/// One text, plain and (compressed on first use, then kept) gzip. Clones share both.
#[derive(Debug, Default, Clone)]
pub struct Encoded {
    inner: Arc<EncodedInner>,
}

#[derive(Debug, Default)]
struct EncodedInner {
    plain: Bytes,
    /// Compressed by the first caller; then possibly the same bytes inside a buffer that joins
    /// several members ([`Encoded::share_gzip`]).
    gzip: Mutex<Option<Bytes>>,
}

impl Encoded {
    /// Wraps `plain`; it is compressed (as one gzip member) when first asked for.
    pub fn of(plain: impl Into<Vec<u8>>) -> Self {
        Self {
            inner: Arc::new(EncodedInner {
                plain: kept(plain.into()),
                gzip: Mutex::new(None),
            }),
        }
    }

    pub fn plain(&self) -> &Bytes {
        &self.inner.plain
    }

    /// The gzip member, compressed by the first caller: once per text, however many scrapes ask.
    pub fn gzip(&self) -> Bytes {
        let mut member = crate::sync::lock(&self.inner.gzip);
        member
            .get_or_insert_with(|| {
                if self.inner.plain.is_empty() {
                    Bytes::new()
                } else {
                    gzip(&self.inner.plain)
                }
            })
            .clone()
    }

    /// Keeps `member`, the same bytes as the gzip member (a slice of a buffer that joins several
    /// members), instead of the member's own copy: the compressed text is then in memory once.
    pub fn share_gzip(&self, member: Bytes) {
        let mut kept = crate::sync::lock(&self.inner.gzip);
        debug_assert!(kept.as_ref().is_none_or(|own| *own == member));
        *kept = Some(member);
    }

    pub fn is_empty(&self) -> bool {
        self.inner.plain.is_empty()
    }
}

/// `text` as shared bytes that hold no more memory than it needs. Texts are rendered into buffers
/// sized by an estimate and grown by doubling, and `Bytes` keeps a buffer's whole capacity for as
/// long as the text is published: with 1,000 accounts that was tens of MB of spare capacity. One
/// copy of a text already in cache costs less than keeping it.
pub(crate) fn kept(mut text: Vec<u8>) -> Bytes {
    if text.capacity() - text.len() > text.len() / 16 {
        text.shrink_to_fit();
    }
    Bytes::from(text)
}

/// The header of a gzip member as `flate2` writes it: deflate, no flags, no time, unknown system.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// `plain` as one gzip member (RFC 1952), compressed by the calling thread's deflate state. A
/// deflate state is some 300 KB of tables: made and dropped for each text (as a new encoder does),
/// that cost four times the compression itself for the few-KB texts of one account's balances
/// (the first gzip scrape of 1,000 accounts compresses 3,000 of them). Reset, it is reused.
fn gzip(plain: &[u8]) -> Bytes {
    thread_local! {
        static DEFLATE: std::cell::RefCell<flate2::Compress> = std::cell::RefCell::new(
            flate2::Compress::new(flate2::Compression::default(), false),
        );
    }
    let member = DEFLATE.with_borrow_mut(|deflate| {
        deflate.reset();
        let mut member = Vec::with_capacity(GZIP_HEADER.len() + plain.len() / 4 + 64);
        member.extend_from_slice(&GZIP_HEADER);
        loop {
            let read = usize::try_from(deflate.total_in()).ok()?;
            let input = plain.get(read..)?;
            match deflate.compress_vec(input, &mut member, flate2::FlushCompress::Finish) {
                Ok(flate2::Status::StreamEnd) => break,
                // The output is full: room for more.
                Ok(_) => member.reserve(member.capacity() / 2 + 64),
                Err(_) => return None,
            }
        }
        let mut crc = flate2::Crc::new();
        crc.update(plain);
        member.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE: the length modulo 2^32.
        member.extend_from_slice(&(plain.len() as u32).to_le_bytes());
        Some(member)
    });
    // A deflate state that refuses its input is a bug in the compressor: a new encoder then.
    kept(member.unwrap_or_else(|| gzip_alone(plain)))
}

/// `plain` as one gzip member, by an encoder of its own.
fn gzip_alone(plain: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(plain.len() / 4),
        flate2::Compression::default(),
    );
    encoder
        .write_all(plain)
        .expect("writing into a Vec cannot fail");
    encoder.finish().expect("finishing into a Vec cannot fail")
}

/// A gauge family rendered by hand.
#[derive(Debug, Clone, Copy)]
pub struct GaugeFamily {
    pub name: &'static str,
    pub help: &'static str,
}

impl GaugeFamily {
    /// The `# HELP` and `# TYPE` lines.
    pub fn header(&self) -> Encoded {
        Encoded::of(format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n",
            name = self.name,
            help = self.help
        ))
    }

    /// The sample lines `name{labels} value`, one per row; `labels` is already rendered.
    pub fn render<'a>(&self, rows: impl Iterator<Item = (&'a str, f64)>) -> Encoded {
        let rows = rows.into_iter();
        // About one line per row: name, labels (~60 bytes) and value; one allocation, no regrowth.
        let mut text = String::with_capacity(rows.size_hint().0 * (self.name.len() + 90));
        for (labels, value) in rows {
            text.push_str(self.name);
            text.push('{');
            text.push_str(labels);
            text.push_str("} ");
            write_value(value, &mut text);
            text.push('\n');
        }
        Encoded::of(text)
    }
}

/// Renders `name="value",...` with the text format's escaping of `\`, `"` and newlines.
pub fn render_labels(pairs: &[(&str, &str)]) -> String {
    let length: usize = pairs.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    let mut out = String::with_capacity(length);
    render_labels_into(pairs, &mut out);
    out
}

/// [`render_labels`] appended to `out` (no text of its own to allocate).
pub fn render_labels_into(pairs: &[(&str, &str)], out: &mut String) {
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        if !value.contains(['\\', '"', '\n']) {
            out.push_str(value);
            out.push('"');
            continue;
        }
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// A sample value: a whole number as an integer (`3`), otherwise the shortest text that reads back as
/// the same `f64` (ryu: `17185.45`, `1e-10`), or `NaN`, `+Inf`, `-Inf`. ryu is several times faster than `Display` for floats, which
/// matters with thousands of series rendered per poll.
pub(crate) fn write_value(value: f64, out: &mut String) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        // Whole numbers as the Prometheus clients write them: `1`, not `1.0`.
        out.push_str(itoa::Buffer::new().format(value as i64));
    } else {
        out.push_str(ryu::Buffer::new().format_finite(value));
    }
}

/// A response body made of shared byte chunks, sent without copying them into one buffer.
pub struct ChunkedBytes {
    chunks: std::collections::VecDeque<Bytes>,
}

impl ChunkedBytes {
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        Self {
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
        }
    }
}

impl Body for ChunkedBytes {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.chunks.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
    }
}

/// The nearest `f64` to an exact decimal.
///
/// A decimal is `mantissa / 10^scale`. When both are exact in `f64` (mantissa up to 2^53, scale up to
/// 22: every Kraken amount), one IEEE division gives the correctly rounded result; otherwise the decimal
/// text goes through Rust's correctly rounded parser. Either way the result is the nearest `f64`.
pub fn to_f64(value: Decimal) -> f64 {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let mantissa = value.mantissa();
    let scale = value.scale() as usize;
    if mantissa.unsigned_abs() <= 1u128 << 53 && scale < POW10.len() {
        return mantissa as f64 / POW10[scale];
    }
    f64::from_str(&value.to_string()).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            render_labels(&[("account", "a\"b\\c\nd"), ("asset", "XBT")]),
            r#"account="a\"b\\c\nd",asset="XBT""#
        );
    }

    #[test]
    fn values_render_as_prometheus_reads_them() {
        let family = GaugeFamily {
            name: "m",
            help: "h",
        };
        let rows = [
            ("a=\"1\"", 17185.45),
            ("a=\"2\"", 1e-10),
            ("a=\"3\"", f64::NAN),
            ("a=\"4\"", f64::INFINITY),
            ("a=\"5\"", 3.0),
        ];
        let text = family.render(rows.into_iter());
        let text = std::str::from_utf8(text.plain()).unwrap();
        let values: Vec<&str> = text
            .lines()
            .map(|l| l.rsplit_once(' ').unwrap().1)
            .collect();
        assert_eq!(values[0], "17185.45");
        assert_eq!(values[1].parse::<f64>().unwrap(), 1e-10);
        assert_eq!(&values[2..4], ["NaN", "+Inf"]);
        // Whole numbers as integers (scripts grep `kraken_up{...} 1`), negatives and large ones too.
        assert_eq!(values[4], "3");
        let whole =
            family.render([("a=\"6\"", -2.0), ("a=\"7\"", 1e20), ("a=\"8\"", 0.5)].into_iter());
        let whole = std::str::from_utf8(whole.plain()).unwrap();
        assert!(
            whole.contains("m{a=\"6\"} -2\n") && whole.contains("m{a=\"8\"} 0.5\n"),
            "{whole}"
        );
        assert_eq!(
            whole
                .lines()
                .nth(1)
                .unwrap()
                .rsplit_once(' ')
                .unwrap()
                .1
                .parse::<f64>()
                .unwrap(),
            1e20
        );
    }

    #[test]
    fn joined_gzip_members_decode_to_the_joined_text() {
        let parts = [
            Encoded::of("first\n"),
            Encoded::of(""),
            Encoded::of("second\n"),
        ];
        let gzip: Vec<u8> = parts.iter().flat_map(|p| p.gzip().to_vec()).collect();
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&gzip[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "first\nsecond\n");
    }

    #[test]
    fn texts_compressed_one_after_another_are_each_a_whole_gzip_member() {
        // Incompressible bytes outgrow the first guess of the output's size; a short text after a
        // long one must not carry anything of it.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        let texts: [&[u8]; 4] = [&noise, b"kraken_up 1\n", &[], &noise[..1000]];
        for text in texts {
            let member = gzip(text);
            let mut decoder = flate2::read::GzDecoder::new(&member[..]);
            let mut decoded = Vec::new();
            decoder.read_to_end(&mut decoded).unwrap();
            assert_eq!(decoded, text);
            // One member, nothing after it: the decoder read it all.
            assert!(decoder.into_inner().is_empty());
            assert_eq!(&member[..10], &gzip_alone(text)[..10]);
        }
    }

    #[test]
    fn gzip_is_computed_once_and_shared_by_clones() {
        let text = Encoded::of("kraken_up 1\n");
        let clone = text.clone();
        assert_eq!(clone.gzip().as_ptr(), text.gzip().as_ptr());
    }

    #[test]
    fn decimals_convert_to_the_nearest_f64() {
        use rust_decimal::Decimal;
        assert_eq!(to_f64(Decimal::from_str("17185.45").unwrap()), 17185.45);
        assert_eq!(to_f64(Decimal::from_str("0.0000000001").unwrap()), 1e-10);
        assert_eq!(
            to_f64(Decimal::from_str("101.1234567890").unwrap()),
            101.123456789
        );
    }
}
