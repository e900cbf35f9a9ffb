//! libFuzzer entry point of [`gridlink_fuzz::photo`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gridlink_fuzz::photo(data));
