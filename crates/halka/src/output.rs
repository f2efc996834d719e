//! Writing a command's output to standard output.
//!
//! `halka bench | head` closes the pipe after ten lines; `print!` would then panic. A
//! closed pipe means the reader has all it wants, so the command ends quietly instead.

use std::io::Write as _;

/// Writes `bytes` to standard output and flushes it. A reader that went away is not an
/// error.
///
/// # Errors
/// Any other write failure (a full disk behind a redirect, say).
pub fn emit(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
