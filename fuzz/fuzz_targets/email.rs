#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privacy_fuzz::email(data));
