//! uniffi's bindings generator, built apart from the library so the library's build never
//! compiles it. `cargo xtask bindings` runs it in library mode.

fn main() {
    uniffi::uniffi_bindgen_main()
}
