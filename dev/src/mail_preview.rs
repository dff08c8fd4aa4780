//! Writes every message the system sends, in every language, as its reader gets it: HTML, plain
//! text and subject per message, and an index linking them, for translators and reviewers.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use privacy_shared::domain::Language;
use privacy_shared::mail::OutgoingEmail;
use privacy_shared::mail::catalogue::{english_only, every_message};
use privacy_shared::mail::templates::escape_attribute;

/// One written message: where its HTML is, and what it is.
pub struct Written {
    pub name: String,
    pub language: Language,
    pub html: PathBuf,
    pub email: OutgoingEmail,
}

/// A file name from a message's name ("completed deletion, nothing found" → "completed-deletion-nothing-found").
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// Writes every message under `dir` (`<lang>/<message>.html`, `.txt`) and `dir/index.html`.
pub fn write_all(dir: &Path) -> Result<Vec<Written>> {
    let mut written = Vec::new();
    let mut all: Vec<(Language, String, OutgoingEmail)> = Vec::new();
    for language in [Language::En, Language::Nl] {
        all.extend(every_message(language).into_iter().map(|(n, m)| (language, n, m)));
    }
    all.extend(english_only().into_iter().map(|(n, m)| (Language::En, n, m)));
    let mut index = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Every message</title></head><body><h1>Every message</h1><ul>\n",
    );
    for (language, name, email) in all {
        let folder = dir.join(language.as_str());
        std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
        let base = slug(&name);
        let html = folder.join(format!("{base}.html"));
        std::fs::write(&html, &email.html)?;
        std::fs::write(
            folder.join(format!("{base}.txt")),
            format!("Subject: {}\n\n{}", email.subject, email.text),
        )?;
        writeln!(
            index,
            "<li><a href=\"{}/{base}.html\">{} ({})</a>: {}</li>",
            language.as_str(),
            escape_attribute(&name),
            language.as_str(),
            escape_attribute(&email.subject)
        )?;
        written.push(Written { name, language, html, email });
    }
    index.push_str("</ul></body></html>\n");
    std::fs::write(dir.join("index.html"), index)?;
    Ok(written)
}
