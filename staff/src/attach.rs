//! `staff attach`: the files a manual source holds of the person, checked here first (present, a
//! plain file name, a size and a type the staff API takes), uploaded with the presigned PUTs the
//! API hands out, then named in the task's answer. Nothing is sent until every file passes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value;

use crate::api::{api_call, uploads_call};
use crate::cli::{AttachArgs, Command};
use crate::{Client, Error};

/// The largest file the staff API takes.
pub const MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;
const MAX_NAME_CHARS: usize = 120;
/// The most files one answer holds (put more into a zip).
pub const MAX_FILES: usize = 10;

/// What a file is attached as, by its extension: the types the staff API allows.
const TYPES: [(&str, &str); 9] = [
    ("csv", "text/csv"),
    ("json", "application/json"),
    ("pdf", "application/pdf"),
    ("txt", "text/plain"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("zip", "application/zip"),
    ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
];

/// A file to attach, as read from the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub path: PathBuf,
    /// Its name in the export (the path's last part).
    pub name: String,
    pub size: u64,
    pub content_type: &'static str,
}

/// The content type for a path's extension, if the staff API takes it.
pub fn content_type_for(path: &Path) -> Option<&'static str> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    TYPES.iter().find(|(e, _)| *e == extension).map(|(_, t)| *t)
}

fn refused(path: &Path, why: impl Into<String>) -> Error {
    Error::File { path: path.display().to_string(), why: why.into() }
}

/// Each file checked as the staff API will check it, before anything is sent.
pub fn check_files(paths: &[PathBuf]) -> Result<Vec<LocalFile>, Error> {
    if paths.len() > MAX_FILES {
        return Err(Error::File {
            path: format!("{} files", paths.len()),
            why: format!(
                "are too many: a source is answered once, with at most {MAX_FILES}; put them in a zip"
            ),
        });
    }
    let mut names = HashSet::new();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::FileNotFound(path.display().to_string()),
            _ => refused(path, format!("cannot be read: {e}")),
        })?;
        if !metadata.is_file() {
            return Err(refused(path, "is not a file"));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| refused(path, "has a name that is not UTF-8"))?
            .to_string();
        let bad_name = name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
            || name.starts_with('.')
            || name.ends_with('.')
            || name.contains("..")
            || name.contains('\\')
            || name != name.trim();
        if bad_name {
            return Err(refused(
                path,
                "has a name the export cannot take (at most 120 characters, not starting or ending with \
                 a dot, no `..`, `\\`, control characters or surrounding spaces); rename it",
            ));
        }
        if !names.insert(name.clone()) {
            return Err(refused(path, "has the name of another file given; rename one"));
        }
        let size = metadata.len();
        if size == 0 {
            return Err(refused(path, "is empty"));
        }
        if size > MAX_FILE_BYTES {
            return Err(refused(
                path,
                format!("is {size} bytes; at most 50 MiB ({MAX_FILE_BYTES} bytes) can be attached"),
            ));
        }
        let content_type = content_type_for(path).ok_or_else(|| {
            let allowed: Vec<&str> = TYPES.iter().map(|(e, _)| *e).collect();
            refused(path, format!("is not a type that can be attached; allowed are {}", allowed.join(", ")))
        })?;
        files.push(LocalFile { path: path.clone(), name, size, content_type });
    }
    Ok(files)
}

/// Asks where to upload `files`, uploads each, then answers the task naming them; returns the
/// answer's JSON (the task).
pub async fn attach(client: &Client, args: &AttachArgs, files: &[LocalFile]) -> Result<Value, Error> {
    let answer = client.send(&uploads_call(args, files)).await?;
    let uploads = answer.get("uploads").and_then(Value::as_array).cloned().unwrap_or_default();
    if uploads.len() != files.len() {
        return Err(Error::UnexpectedResponse {
            status: 200,
            detail: format!("asked where to upload {} files, was told {}", files.len(), uploads.len()),
        });
    }
    for (file, upload) in files.iter().zip(&uploads) {
        let field = |name: &str| upload.get(name).and_then(Value::as_str);
        let (Some(url), Some("PUT")) = (field("url"), field("method")) else {
            return Err(Error::UnexpectedResponse { status: 200, detail: "an upload without a URL".into() });
        };
        if field("name") != Some(file.name.as_str()) {
            return Err(Error::UnexpectedResponse { status: 200, detail: "uploads out of order".into() });
        }
        let headers: Vec<(String, String)> = upload
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| h.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        // Blocking: the CLI does nothing else meanwhile, and a file is at most 50 MiB.
        let bytes =
            std::fs::read(&file.path).map_err(|e| refused(&file.path, format!("cannot be read: {e}")))?;
        if bytes.len() as u64 != file.size {
            return Err(refused(&file.path, "changed while it was being attached; run the command again"));
        }
        client.upload(url, &headers, Bytes::from(bytes)).await.map_err(|e| match e {
            Error::Upload { status, detail } => {
                Error::Upload { status, detail: format!("{}: {detail}", file.path.display()) }
            }
            other => other,
        })?;
    }
    client.send(&api_call(&Command::Attach(args.clone()))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_follows_the_extension_whatever_its_case() {
        assert_eq!(content_type_for(Path::new("visits.CSV")), Some("text/csv"));
        assert_eq!(content_type_for(Path::new("a/b/profile.jpeg")), Some("image/jpeg"));
        assert_eq!(content_type_for(Path::new("sheet.xlsx")), Some(TYPES[8].1));
        for bad in ["notes.docx", "page.html", "noextension", ".csv"] {
            assert_eq!(content_type_for(Path::new(bad)), None, "{bad}");
        }
    }
}
