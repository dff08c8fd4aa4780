//! The fuzz targets' checked-in corpus (fuzz/corpus/<target>/: seeds, and every crash kept as a
//! regression) replayed under stable through the very functions the targets call, so `make test`
//! catches a regression without nightly or cargo-fuzz.

#[path = "../../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

#[test]
fn every_file_of_every_fuzz_corpus_passes_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (target, run) in harness::TARGETS {
        let dir = corpus.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        assert!(files.len() >= 3, "{target}: a corpus of a few seeds at least, found {}", files.len());
        for file in files {
            // Shown with a failure: the file to rerun alone with `cargo fuzz run <target> <file>`.
            eprintln!("{target}: {}", file.display());
            run(&std::fs::read(&file).unwrap());
        }
    }
}

/// The corpus directories are exactly the targets: a new target without seeds, or seeds of a
/// target that is gone, is a mistake.
#[test]
fn the_corpus_has_a_directory_for_each_target_and_no_other() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut dirs: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut targets: Vec<String> = harness::TARGETS.iter().map(|(name, _)| (*name).to_owned()).collect();
    targets.sort();
    assert_eq!(dirs, targets);
}
