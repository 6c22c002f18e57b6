// dockgate patch (vendor/README.md): tokio's `BufWriter`, except that its buffer is
// allocated by the first write that needs it and freed by the flush that empties it,
// so a keep-alive connection waiting for its next request holds no write buffer.

use std::fmt;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{self, AsyncRead, AsyncWrite, ReadBuf};

pub(crate) struct LazyBufWriter<W> {
    inner: W,
    /// The buffer's size while it exists; 0 writes straight through.
    cap: usize,
    buf: Vec<u8>,
    /// How much of `buf` the inner writer has taken.
    written: usize,
}

impl<W> LazyBufWriter<W> {
    pub(crate) fn with_capacity(cap: usize, inner: W) -> Self {
        LazyBufWriter {
            inner,
            cap,
            buf: Vec::new(),
            written: 0,
        }
    }

    pub(crate) fn get_ref(&self) -> &W {
        &self.inner
    }

    pub(crate) fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The inner writer. Anything still buffered is lost, as with `BufWriter`.
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }

    /// Bytes the buffer holds now (0 when it is not allocated).
    #[cfg(test)]
    fn allocated(&self) -> usize {
        self.buf.capacity()
    }
}

impl<W: AsyncWrite + Unpin> LazyBufWriter<W> {
    /// Writes out what is buffered; keeps the allocation for the write that follows.
    fn poll_write_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "failed to write the buffered data",
                )));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Writes out what is buffered and frees the buffer.
    fn poll_empty(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_buf(cx))?;
        self.buf = Vec::new();
        Poll::Ready(Ok(()))
    }

    fn buffer<'a>(&mut self, data: impl IntoIterator<Item = &'a [u8]>) {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.cap);
        }
        for d in data {
            self.buf.extend_from_slice(d);
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for LazyBufWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if me.buf.len() + data.len() > me.cap {
            ready!(me.poll_write_buf(cx))?;
        }
        if data.len() >= me.cap {
            Pin::new(&mut me.inner).poll_write(cx, data)
        } else {
            me.buffer([data]);
            Poll::Ready(Ok(data.len()))
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let total = bufs.iter().fold(0usize, |n, b| n.saturating_add(b.len()));
        if me.buf.len().saturating_add(total) > me.cap {
            ready!(me.poll_write_buf(cx))?;
        }
        if total < me.cap {
            me.buffer(bufs.iter().map(|b| &b[..]));
            return Poll::Ready(Ok(total));
        }
        if me.inner.is_write_vectored() {
            return Pin::new(&mut me.inner).poll_write_vectored(cx, bufs);
        }
        // A partial write is allowed: the first non-empty slice.
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        Pin::new(&mut me.inner).poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_empty(cx))?;
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_empty(cx))?;
        Pin::new(&mut me.inner).poll_shutdown(cx)
    }
}

impl<W: AsyncRead + Unpin> AsyncRead for LazyBufWriter<W> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<W: fmt::Debug> fmt::Debug for LazyBufWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyBufWriter")
            .field("inner", &self.inner)
            .field("buffer", &format_args!("{}/{}", self.buf.len(), self.cap))
            .field("written", &self.written)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn buffers_until_flush_then_frees() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut w = LazyBufWriter::with_capacity(16, a);
        assert_eq!(w.allocated(), 0);
        w.write_all(b"head").await.unwrap();
        w.write_all(b"body").await.unwrap();
        assert_eq!(w.allocated(), 16);
        w.flush().await.unwrap();
        assert_eq!(w.allocated(), 0, "an idle writer holds no buffer");
        let mut got = [0u8; 8];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"headbody");
        // Larger than the buffer: straight through, nothing allocated.
        w.write_all(&[7u8; 40]).await.unwrap();
        assert_eq!(w.allocated(), 0);
        w.write_all(b"x").await.unwrap();
        w.write_all(&[9u8; 20]).await.unwrap();
        w.shutdown().await.unwrap();
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.unwrap();
        let mut want = vec![7u8; 40];
        want.push(b'x');
        want.extend([9u8; 20]);
        assert_eq!(rest, want, "order kept across buffered and direct writes");
    }

    #[tokio::test]
    async fn zero_capacity_writes_through() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut w = LazyBufWriter::with_capacity(0, a);
        w.write_all(b"abc").await.unwrap();
        assert_eq!(w.allocated(), 0);
        let mut got = [0u8; 3];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abc", "readable before any flush");
    }

    /// A slow reader: every write path, partial writes and back-pressure.
    #[tokio::test]
    async fn order_holds_under_back_pressure() {
        let (a, mut b) = tokio::io::duplex(3);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            b.read_to_end(&mut all).await.unwrap();
            all
        });
        let mut w = LazyBufWriter::with_capacity(8, a);
        let mut want = Vec::new();
        for (i, n) in [1usize, 5, 3, 9, 2, 20, 7].into_iter().enumerate() {
            let chunk = vec![b'a' + i as u8; n];
            if i % 2 == 0 {
                w.write_all(&chunk).await.unwrap();
            } else {
                let (x, y) = chunk.split_at(n / 2);
                let mut bufs = [IoSlice::new(x), IoSlice::new(y)];
                let mut left: &mut [IoSlice<'_>] = &mut bufs;
                while !left.is_empty() {
                    let k = w.write_vectored(left).await.unwrap();
                    IoSlice::advance_slices(&mut left, k);
                }
            }
            want.extend(chunk);
        }
        w.shutdown().await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), want);
    }
}
