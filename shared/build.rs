//! Compiles every mail template under `templates/mail/` into the library, named by its path
//! there ("completed/nl.txt"), so a new message or language is a new file and nothing else.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/mail");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut out = String::from("&[\n");
    for file in &files {
        let name = file.strip_prefix(&root).expect("under the root").to_str().expect("UTF-8 path");
        let name = name.replace(std::path::MAIN_SEPARATOR, "/");
        writeln!(out, "    ({name:?}, include_str!({:?})),", file.display().to_string()).unwrap();
    }
    out.push(']');
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("mail_files.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("templates/mail is readable") {
        let path = entry.expect("a readable entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(path);
        }
    }
}
