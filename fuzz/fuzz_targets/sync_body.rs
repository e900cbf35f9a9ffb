//! libFuzzer entry point of [`gridlink_fuzz::sync_body`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gridlink_fuzz::sync_body(data));
