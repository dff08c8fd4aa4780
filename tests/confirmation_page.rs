//! The confirmation page in a real headless browser (Debian's chromium and chromium-driver).
