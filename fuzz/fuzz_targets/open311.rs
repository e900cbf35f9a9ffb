//! libFuzzer entry point of [`gridlink_fuzz::open311`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gridlink_fuzz::open311(data));
