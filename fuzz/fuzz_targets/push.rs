//! libFuzzer entry point of [`gridlink_fuzz::push`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gridlink_fuzz::push(data));
