//! A small Redis-protocol client for the `halka get|put|del|status` commands.

use crate::resp::frame::{Frame, parse_reply};
use anyhow::{Context, bail};
use bytes::{BufMut, BytesMut};
use std::io::Cursor;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct RespClient {
    stream: TcpStream,
    buf: BytesMut,
    timeout: Duration,
}

impl RespClient {
    /// Connects to a node's Redis-protocol address.
    ///
    /// # Errors
    /// The node is unreachable.
    pub async fn connect(addr: &str, timeout: Duration) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr}: timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        Ok(Self { stream, buf: BytesMut::new(), timeout })
    }

    /// Logs in as `user` with `password` (`AUTH`).
    ///
    /// # Errors
    /// The node refused the credentials (its error says so), or the call failed.
    pub async fn log_in(&mut self, user: &str, password: &str) -> anyhow::Result<()> {
        match self.call(&[b"AUTH", user.as_bytes(), password.as_bytes()]).await? {
            Frame::Simple(_) => Ok(()),
            Frame::Error(e) => bail!("logging in as {user}: {e}"),
            other => bail!("logging in as {user}: unexpected reply {other:?}"),
        }
    }

    /// Sends one command and returns its reply (error replies are returned, not raised).
    ///
    /// # Errors
    /// I/O failure, timeout or an unparsable reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> anyhow::Result<Frame> {
        let mut out = BytesMut::new();
        out.put_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.put_slice(format!("${}\r\n", a.len()).as_bytes());
            out.put_slice(a);
            out.put_slice(b"\r\n");
        }
        self.stream.write_all(&out).await?;
        tokio::time::timeout(self.timeout, self.read_reply())
            .await
            .context("timed out waiting for a reply")?
    }

    async fn read_reply(&mut self) -> anyhow::Result<Frame> {
        loop {
            let mut cursor = Cursor::new(&self.buf[..]);
            if let Some(frame) = parse_reply(&mut cursor)? {
                let used = cursor.position() as usize;
                let _ = self.buf.split_to(used);
                return Ok(frame);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                bail!("connection closed by the server");
            }
        }
    }
}
