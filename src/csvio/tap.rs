//! A reader that shows every slice it reads to a callback: how the byte count for progress and
//! the newline index for line numbers watch a stream without owning it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Passes bytes through, calling `see` with each newly read slice.
pub struct Tap<R, F> {
    inner: R,
    see: F,
}

impl<R, F> Tap<R, F> {
    pub fn new(inner: R, see: F) -> Self {
        Self { inner, see }
    }
}

impl<R: AsyncRead + Unpin, F: FnMut(&[u8]) + Unpin> AsyncRead for Tap<R, F> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            (self.see)(&buf.filled()[before..]);
        }
        res
    }
}
