//! The fuzz targets: everything the server and the phones read from a peer they do not
//! trust, as functions of one byte string.
//!
//! Each target must return for every input, without panicking, and with bounded work: a
//! panic is a crash the fuzzer keeps. Some targets also state what must hold of what they
//! accept (an oracle), and panic when it does not:
//!
//! - [`sync_body`]: the sync and enrolment bodies decode or fail with a typed error.
//! - [`push`]: changes made from a real case document by a program the input spells (or the
//!   input itself as changes) go through the push validator as the server runs it; a push it
//!   accepts must keep every recorded event, and an event a phone recorded concurrently must
//!   survive the merge.
//! - [`photo`]: the photo sniffer, probe and pipeline refuse or process within their limits;
//!   what they produce is within the pipeline's output limits.
//! - [`open311`]: the Open311 file name, query and form parsers; an accepted form's text
//!   renders to XML with no character XML cannot carry.
//!
//! `cargo xtask fuzz <target> --seconds T` runs one under libFuzzer; every crash is written to
//! `fuzz/regressions/<target>/`, and `tests/regressions.rs` replays those files and the seed
//! inputs in `fuzz/seeds/<target>/` in every test run.

mod push;

pub use push::{comment_survives_unjudged, push, push_program};

use gridlink_core::photo::{self, PhotoConfig, PhotoLimits};
use gridlink_core::sync::wire::{self, EnrollRequest, SyncRequest};
use gridlink_server::open311::{self, Format, Node, Scalar};
use gridlink_server::store::ApiKey;

/// A fuzz target: takes any bytes, returns or panics.
pub type Target = fn(&[u8]);

/// The targets by name, as `cargo xtask fuzz` and the regression test know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("sync_body", sync_body),
    ("push", push),
    ("photo", photo),
    ("open311", open311),
];

/// Inputs each target starts from (and replays in every test run): real messages, real
/// photos, real forms and programs for the push target.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "sync_body" => {
            let request = SyncRequest {
                protocol: wire::PROTOCOL_VERSION,
                request_id: "4a0f2e1c-9b7d-4c3e-8f21-6d5b3a9c7e10".into(),
                push: vec![wire::PushDoc {
                    doc_id: "3f2b9c1e-7a44-4d0b-9e61-2c5a8d7f0b13".into(),
                    changes: push::seed_changes(),
                }],
                cursor: wire::Cursor(
                    [("grid:320509001001-01".to_owned(), 42)]
                        .into_iter()
                        .collect(),
                ),
                max_pull_bytes: 1 << 20,
                history: None,
            };
            let enroll = EnrollRequest {
                protocol: wire::PROTOCOL_VERSION,
                code: "K7Q2-9XPM".into(),
                device_id: "4a0f2e1c-9b7d-4c3e-8f21-6d5b3a9c7e11".into(),
                device_name: "张三的华为 P40".into(),
            };
            vec![wire::encode(&request), wire::encode(&enroll), Vec::new()]
        }
        "push" => push::seeds(),
        "photo" => photo_seeds(),
        "open311" => vec![
            b"requests.xml\nstart_date=2026-11-01T00:00:00%2B08:00&status=open,closed&service_code=fire_hazard\napi_key=k&service_code=fire_hazard&lat=31.16&long=120.64&description=%E6%A5%BC%E9%81%93%E5%A0%86%E7%89%A9%0A%E4%B8%89%E6%A5%BC&media_url=https%3A%2F%2Fmedia.example.cn%2Fa.jpg".to_vec(),
            b"services.json\n\napi_key=k&service_code=environment&lat=31.2&long=120.6&description=%EF%BF%BF".to_vec(),
            b"requests/abc.xml\nend_date=2026-11-01T00:00:00Z\n".to_vec(),
        ],
        _ => Vec::new(),
    }
}

/// A small JPEG and a small PNG, as a camera and a screenshot would give.
fn photo_seeds() -> Vec<Vec<u8>> {
    let (w, h) = (96u16, 64u16);
    let pixels: Vec<u8> = (0..u32::from(w) * u32::from(h))
        .flat_map(|i| {
            let (x, y) = (i % u32::from(w), i / u32::from(w));
            [(x * 2) as u8, (y * 3) as u8, ((x + y) % 256) as u8]
        })
        .collect();
    let mut jpeg = Vec::new();
    if jpeg_encoder::Encoder::new(&mut jpeg, 85)
        .encode(&pixels, w, h, jpeg_encoder::ColorType::Rgb)
        .is_err()
    {
        jpeg.clear();
    }
    let mut png = std::io::Cursor::new(Vec::new());
    let image = image::RgbImage::from_raw(u32::from(w), u32::from(h), pixels);
    if let Some(image) = image {
        let _ = image.write_to(&mut png, image::ImageFormat::Png);
    }
    vec![jpeg, png.into_inner()]
}

/// A sync request body (and, from the same bytes, an enrolment and a citizen report), decoded
/// under the server's limits.
pub fn sync_body(data: &[u8]) {
    // Random bytes rarely get past zlib's header: half the inputs are compressed here first,
    // so the fuzzer works on the CBOR the decoder reads.
    let compressed;
    let data = match data.split_first() {
        Some((flag, rest)) if flag % 2 == 1 => {
            use std::io::Write;
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = z.write_all(rest);
            compressed = z.finish().unwrap_or_default();
            compressed.as_slice()
        }
        _ => data,
    };
    if let Ok(request) = wire::decode::<SyncRequest>(data, wire::MAX_SYNC_REQUEST_BYTES) {
        let _ = wire::check_protocol(request.protocol);
        // What decoded encodes again and reads back the same.
        let again = wire::decode::<SyncRequest>(&wire::encode(&request), usize::MAX)
            .unwrap_or_else(|e| panic!("a decoded request does not read back: {e}"));
        assert_eq!(again.push.len(), request.push.len());
        assert_eq!(again.cursor, request.cursor);
    }
    let _ = wire::decode::<EnrollRequest>(data, 64 << 10);
    let _ = wire::decode::<wire::CitizenReport>(data, 64 << 10);
}

/// Limits small enough that one run stays fast, in the shape of the server's own.
const FUZZ_LIMITS: PhotoLimits = PhotoLimits {
    max_input_bytes: 1 << 20,
    max_side: 2_048,
    max_pixels: 1_000_000,
    max_alloc_bytes: 16 << 20,
};

/// A photo: sniffed, probed against the server's limits for uploads and media, and run through
/// the pipeline under small limits.
pub fn photo(data: &[u8]) {
    let _ = photo::sniff(data);
    for limits in [
        PhotoLimits::uploaded_photo(),
        PhotoLimits::uploaded_thumbnail(),
        PhotoLimits::remote(),
    ] {
        if let Ok(probe) = photo::probe(data, &limits) {
            assert!(
                u64::from(probe.width) * u64::from(probe.height) <= limits.max_pixels,
                "a probe passed an image over the pixel limit"
            );
        }
    }
    let config = PhotoConfig {
        limits: FUZZ_LIMITS,
        ..PhotoConfig::default()
    };
    if let Ok(processed) = photo::process(data, &config) {
        // What the pipeline makes is what a server takes as an upload.
        photo::probe(&processed.jpeg, &PhotoLimits::uploaded_photo())
            .unwrap_or_else(|e| panic!("the pipeline's photo is refused as an upload: {e}"));
        photo::probe(&processed.thumbnail, &PhotoLimits::uploaded_thumbnail())
            .unwrap_or_else(|e| panic!("the pipeline's thumbnail is refused as an upload: {e}"));
    }
}

/// An Open311 request: the first line is the file name (`requests.xml`), the second the
/// query string of a `GET`, the rest the form body of a `POST`.
pub fn open311(data: &[u8]) {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let file = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let query = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let _ = open311::split_format(&file);
    let key = ApiKey {
        name: "fuzz".into(),
        scope: gridlink_core::sync::scope::ScopeKey::District,
        created_at: 0,
        revoked: false,
    };
    if let Ok(params) = open311::form_params(query) {
        let _ = open311::request_query(&params, &key, 1_795_910_400_000);
    }
    let Ok(params) = open311::form_params(body) else {
        return;
    };
    let Ok(form) = open311::request_form(&params) else {
        return;
    };
    if let Some(url) = &form.media_url {
        let _ = gridlink_server::media::checked_url(url, &["media.example.cn".to_owned()]);
    }
    let node = Node::Object(
        "request",
        vec![
            Node::Leaf("description", Scalar::Str(form.description.clone())),
            Node::Leaf("title", Scalar::Str(form.title.clone())),
            Node::Leaf(
                "address_id",
                form.address_id.clone().map_or(Scalar::Null, Scalar::Str),
            ),
        ],
    );
    let xml = node.render(Format::Xml);
    if let Some(c) = xml.chars().find(|&c| !xml_char(c)) {
        panic!("an accepted form renders U+{:04X} into XML", u32::from(c));
    }
    let json = node.render(Format::Json);
    serde_json::from_str::<serde_json::Value>(&json)
        .unwrap_or_else(|e| panic!("an accepted form renders invalid JSON: {e}"));
}

/// XML 1.0's `Char` production.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}
