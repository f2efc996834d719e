//! Small state files a node keeps as JSON (readable by an operator), replaced atomically:
//! written beside, fsynced, renamed over, and the directory fsynced.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Write as _;
use std::path::Path;

/// The value kept at `path`, or `None` when there is no file.
///
/// # Errors
/// The file cannot be read, or does not parse (the error names it).
pub(crate) fn load<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} does not parse: {e}", path.display()),
        )
    })
}

/// Replaces the value kept at `path`; durable when it returns.
///
/// # Errors
/// The file cannot be written.
pub(crate) fn save<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let aside = path.with_extension("new");
    let mut file = std::fs::File::create(&aside)?;
    file.write_all(&text)?;
    file.sync_all()?;
    std::fs::rename(&aside, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
