//! UTF-16 files (Excel's "Unicode Text" export) read as UTF-8, and their reports written back
//! as UTF-16: the parser and the mapping only ever see UTF-8.

use std::io::{self, Write};

use bytes::Bytes;
use encoding_rs::{Decoder, UTF_16BE, UTF_16LE};
use tokio::io::AsyncReadExt;
use tokio_util::io::StreamReader;

use super::reader::BoxRead;

/// Raw bytes decoded per step; the UTF-8 out of them is at most 1.5 times as long.
const STEP: usize = 64 * 1024;

/// `stream` (UTF-16, its BOM first) as a UTF-8 byte stream without the BOM. A lone surrogate
/// becomes U+FFFD, as every UTF-16 reader does.
pub fn utf16_to_utf8(stream: BoxRead, big_endian: bool) -> BoxRead {
    let encoding = if big_endian { UTF_16BE } else { UTF_16LE };
    let state = Some((stream, encoding.new_decoder_with_bom_removal(), vec![0u8; STEP]));
    let chunks = futures::stream::unfold(state, |state| async move {
        let (mut raw, mut decoder, mut buf) = state?;
        let n = match raw.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => return Some((Err(e), None)),
        };
        let last = n == 0;
        let text = decode(&mut decoder, &buf[..n], last);
        let next = if last { None } else { Some((raw, decoder, buf)) };
        Some((Ok(Bytes::from(text)), next))
    });
    Box::pin(StreamReader::new(chunks))
}

fn decode(decoder: &mut Decoder, input: &[u8], last: bool) -> Vec<u8> {
    let room = decoder.max_utf8_buffer_length(input.len()).unwrap_or(input.len() * 3 + 16);
    let mut out = vec![0u8; room];
    let (_, _, written, _) = decoder.decode_to_utf8(input, &mut out, last);
    out.truncate(written);
    out
}

/// A UTF-16 reader (its BOM first, or none) read as UTF-8, for reading a report back.
pub struct Utf16Reader<R: std::io::Read> {
    inner: R,
    decoder: Decoder,
    raw: Vec<u8>,
    out: Vec<u8>,
    at: usize,
    done: bool,
}

impl<R: std::io::Read> Utf16Reader<R> {
    pub fn new(inner: R, big_endian: bool) -> Self {
        let encoding = if big_endian { UTF_16BE } else { UTF_16LE };
        let decoder = encoding.new_decoder_with_bom_removal();
        Self { inner, decoder, raw: vec![0; STEP], out: Vec::new(), at: 0, done: false }
    }
}

impl<R: std::io::Read> std::io::Read for Utf16Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.out.len() && !self.done {
            let n = self.inner.read(&mut self.raw)?;
            self.done = n == 0;
            self.out = decode(&mut self.decoder, &self.raw[..n], self.done);
            self.at = 0;
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Writes the UTF-8 it is given to `inner` as UTF-16 (no BOM: the report writes its own).
/// A character split between two writes waits for its end.
pub struct Utf16Writer<W: Write> {
    inner: W,
    big_endian: bool,
    pending: Vec<u8>,
}

impl<W: Write> Utf16Writer<W> {
    pub fn new(inner: W, big_endian: bool) -> Self {
        Self { inner, big_endian, pending: Vec::new() }
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn into_inner(self) -> W {
        self.inner
    }

    fn put(&mut self, text: &str) -> io::Result<()> {
        let mut out = Vec::with_capacity(text.len() * 2);
        for unit in text.encode_utf16() {
            let bytes = if self.big_endian { unit.to_be_bytes() } else { unit.to_le_bytes() };
            out.extend_from_slice(&bytes);
        }
        self.inner.write_all(&out)
    }
}

impl<W: Write> Write for Utf16Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        let mut rest = std::mem::take(&mut self.pending);
        let mut start = 0;
        loop {
            match std::str::from_utf8(&rest[start..]) {
                Ok(text) => {
                    let text = text.to_string();
                    self.put(&text)?;
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    let text = String::from_utf8_lossy(&rest[start..valid]).into_owned();
                    self.put(&text)?;
                    match e.error_len() {
                        // An invalid byte (never in text that was UTF-16): U+FFFD for it.
                        Some(len) => {
                            self.put("\u{FFFD}")?;
                            start = valid + len;
                        }
                        // The start of a character whose end comes with the next write.
                        None => {
                            rest.drain(..valid);
                            self.pending = rest;
                            break;
                        }
                    }
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Utf16Writer::new(&mut out, big_endian);
        w.write_all(text.as_bytes()).unwrap();
        drop(w);
        out
    }

    #[tokio::test]
    async fn utf16_reads_as_utf8_in_both_byte_orders() {
        for be in [false, true] {
            let mut bytes = if be { vec![0xFE, 0xFF] } else { vec![0xFF, 0xFE] };
            bytes.extend(utf16("Név\tVille\r\nZoë 🙂\tCaen\r\n", be));
            let stream: BoxRead = Box::pin(std::io::Cursor::new(bytes));
            let mut text = String::new();
            utf16_to_utf8(stream, be).read_to_string(&mut text).await.unwrap();
            assert_eq!(text, "Név\tVille\r\nZoë 🙂\tCaen\r\n");
        }
    }

    #[test]
    fn a_utf16_report_reads_back() {
        use std::io::Read;
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(utf16("a,é\r\n", false));
        let mut text = String::new();
        Utf16Reader::new(&bytes[..], false).read_to_string(&mut text).unwrap();
        assert_eq!(text, "a,é\r\n");
    }

    #[test]
    fn a_character_split_between_writes_is_written_whole() {
        let mut out = Vec::new();
        let mut w = Utf16Writer::new(&mut out, false);
        let bytes = "é🙂".as_bytes();
        for b in bytes {
            w.write_all(std::slice::from_ref(b)).unwrap();
        }
        drop(w);
        assert_eq!(out, utf16("é🙂", false));
        assert_eq!(utf16("A", true), vec![0, b'A']);
    }

    proptest::proptest! {
        #[test]
        fn any_text_round_trips_through_utf16(text in "\\PC{0,200}", cut in 0usize..400) {
            let encoded = utf16(&text, false);
            let mut bom = vec![0xFF, 0xFE];
            bom.extend(&encoded);
            let mut decoder = UTF_16LE.new_decoder_with_bom_removal();
            let cut = cut.min(bom.len());
            let mut back = decode(&mut decoder, &bom[..cut], false);
            back.extend(decode(&mut decoder, &bom[cut..], true));
            proptest::prop_assert_eq!(String::from_utf8(back).unwrap(), text);
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let mut decoder = UTF_16BE.new_decoder_with_bom_removal();
            let out = decode(&mut decoder, &bytes, true);
            proptest::prop_assert!(std::str::from_utf8(&out).is_ok());
        }
    }
}
