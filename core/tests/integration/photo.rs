//! Photo processing: orientation, metadata stripping, size, hashing, and bad input.

use gridlink_core::photo::{self, Orientation, PhotoConfig, PhotoError, ProcessedPhoto};
use gridlink_fixtures::photos::{CORNERS, CameraPhoto};

fn committed(name: &str) -> Vec<u8> {
    std::fs::read(gridlink_fixtures::committed_photos_dir().join(name)).unwrap()
}

/// Decodes a JPEG to RGB with an independent decoder.
fn decode(jpeg: &[u8]) -> (Vec<u8>, u32, u32) {
    let mut d = jpeg_decoder::Decoder::new(jpeg);
    let pixels = d.decode().unwrap();
    let info = d.info().unwrap();
    assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
    (pixels, u32::from(info.width), u32::from(info.height))
}

fn pixel(rgb: &[u8], w: u32, x: u32, y: u32) -> [u8; 3] {
    let i = (y * w + x) as usize * 3;
    [rgb[i], rgb[i + 1], rgb[i + 2]]
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 40)
}

/// Samples each corner block a few pixels in and checks its colour.
fn assert_upright(out: &ProcessedPhoto, label: &str) {
    let (rgb, w, h) = decode(&out.jpeg);
    assert_eq!((w, h), (out.width, out.height), "{label}");
    let inset = (w.min(h) / 32).max(2);
    let samples = [
        (inset, inset),
        (w - 1 - inset, inset),
        (inset, h - 1 - inset),
        (w - 1 - inset, h - 1 - inset),
    ];
    for ((x, y), want) in samples.into_iter().zip(CORNERS) {
        let got = pixel(&rgb, w, x, y);
        assert!(
            close(got, want),
            "{label}: corner ({x},{y}) is {got:?}, want {want:?}"
        );
    }
}

/// Every marker segment of a JPEG up to the scan: (marker, payload).
fn segments(jpeg: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        out.push((marker, jpeg[i + 4..i + 2 + len].to_vec()));
        if marker == 0xDA {
            break;
        }
        i += 2 + len;
    }
    out
}

fn assert_no_metadata(jpeg: &[u8]) {
    for (marker, payload) in segments(jpeg) {
        // APP0 (JFIF) is the only application segment allowed; no APP1 (EXIF/XMP), no
        // maker notes in APP2–APP15, no comments.
        assert!(
            !(0xE1..=0xEF).contains(&marker) && marker != 0xFE,
            "metadata segment {marker:#x} ({} bytes) in the output",
            payload.len()
        );
        if marker == 0xE0 {
            assert!(payload.starts_with(b"JFIF\0"), "APP0 that is not JFIF");
        }
    }
    assert!(
        exif::Reader::new()
            .read_from_container(&mut std::io::Cursor::new(jpeg))
            .is_err(),
        "EXIF readable from the output"
    );
    for needle in [&b"Exif"[..], b"GPS", b"GridPhone", b"xap", b"2026:03:14"] {
        assert!(
            !jpeg.windows(needle.len()).any(|w| w == needle),
            "{:?} found in the output",
            String::from_utf8_lossy(needle)
        );
    }
}

#[test]
fn committed_photos_carry_orientation_and_gps_and_come_out_upright_and_clean() {
    for (name, orientation) in gridlink_fixtures::photos::COMMITTED {
        let input = committed(name);
        // The fixture really carries what a phone writes.
        let exif = exif::Reader::new()
            .read_from_container(&mut std::io::Cursor::new(&input))
            .unwrap();
        let o = exif
            .get_field(exif::Tag::Orientation, exif::In::PRIMARY)
            .unwrap();
        assert_eq!(o.value.get_uint(0), Some(u32::from(orientation)), "{name}");
        assert!(
            exif.get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY)
                .is_some(),
            "{name}"
        );
        assert!(
            exif.get_field(exif::Tag::GPSLongitude, exif::In::PRIMARY)
                .is_some(),
            "{name}"
        );

        let out = photo::process(&input, &PhotoConfig::default()).unwrap();
        assert_eq!(out.orientation.value(), u32::from(orientation), "{name}");
        // Smaller than the long edge: not enlarged, only turned upright.
        assert_eq!((out.width, out.height), (600, 400), "{name}");
        assert_upright(&out, name);
        assert_no_metadata(&out.jpeg);
        assert_no_metadata(&out.thumbnail);
        let (_, tw, th) = decode(&out.thumbnail);
        assert_eq!((tw, th), (256, 171), "{name} thumbnail");
        // Named by content, and the same input gives the same name.
        assert_eq!(out.hash, photo::sha256_hex(&out.jpeg));
        assert_eq!(out.thumbnail_hash, photo::sha256_hex(&out.thumbnail));
        let again = photo::process(&input, &PhotoConfig::default()).unwrap();
        assert_eq!(again.hash, out.hash, "{name}: hash not stable");
        assert_eq!(again.jpeg, out.jpeg);
    }
}

#[test]
fn a_large_sideways_photo_is_scaled_to_the_long_edge_and_turned_upright() {
    let input = CameraPhoto {
        width: 3600,
        height: 2400,
        noise: 6,
        quality: 88,
        ..CameraPhoto::small(6)
    }
    .jpeg();
    let config = PhotoConfig::default();
    let out = photo::process(&input, &config).unwrap();
    assert_eq!((out.source_width, out.source_height), (2400, 3600));
    assert_eq!((out.width, out.height), (1600, 1067));
    assert_eq!(out.orientation, Orientation::Rotate90);
    assert_upright(&out, "3600x2400 orientation 6");
    assert_no_metadata(&out.jpeg);
    assert!(out.jpeg.len() < 300_000, "{} bytes", out.jpeg.len());

    // Configurable long edge and quality.
    let small = photo::process(
        &input,
        &PhotoConfig {
            long_edge: 800,
            quality: 60,
            ..config
        },
    )
    .unwrap();
    assert_eq!((small.width, small.height), (800, 533));
    assert!(small.jpeg.len() < out.jpeg.len());
    // Never larger than a server accepts: what it made passes the upload limits, and a
    // larger target is refused before anything is decoded.
    photo::probe(&out.jpeg, &photo::PhotoLimits::uploaded_photo()).unwrap();
    photo::probe(&out.thumbnail, &photo::PhotoLimits::uploaded_thumbnail()).unwrap();
    for config in [
        PhotoConfig {
            long_edge: photo::PHOTO_LONG_EDGE + 1,
            ..config
        },
        PhotoConfig {
            thumbnail_edge: photo::THUMBNAIL_EDGE + 1,
            ..config
        },
    ] {
        assert!(matches!(
            photo::process(&input, &config),
            Err(PhotoError::Encode(_))
        ));
    }
}

#[test]
fn png_input_is_accepted_and_transparency_lands_on_white() {
    let mut img = image::RgbaImage::new(40, 20);
    for (x, _, p) in img.enumerate_pixels_mut() {
        *p = if x < 20 {
            image::Rgba([0, 0, 255, 255])
        } else {
            image::Rgba([0, 0, 0, 0])
        };
    }
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let out = photo::process(&png, &PhotoConfig::default()).unwrap();
    assert_eq!((out.width, out.height), (40, 20));
    let (rgb, w, _) = decode(&out.jpeg);
    assert!(close(pixel(&rgb, w, 5, 10), [0, 0, 255]));
    assert!(close(pixel(&rgb, w, 35, 10), [255, 255, 255]));
}

#[test]
fn bad_input_gets_a_typed_error() {
    let config = PhotoConfig::default();
    let good = committed("orientation-1.jpg");
    type Expect = fn(&PhotoError) -> bool;
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("zero bytes", Vec::new(), |e| matches!(e, PhotoError::Empty)),
        (
            "text named .jpg",
            b"hello, this is not a photo\n".to_vec(),
            |e| matches!(e, PhotoError::NotAnImage),
        ),
        ("truncated JPEG", good[..good.len() / 2].to_vec(), |e| {
            matches!(e, PhotoError::Corrupt(_))
        }),
        ("JPEG header only", good[..200].to_vec(), |e| {
            matches!(e, PhotoError::Corrupt(_))
        }),
        (
            "30000 x 30000 JPEG",
            gridlink_fixtures::photos::with_frame_size(&good, 30_000, 30_000),
            |e| {
                matches!(
                    e,
                    PhotoError::TooLarge {
                        width: 30_000,
                        height: 30_000
                    }
                )
            },
        ),
        (
            "HEIC",
            b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec(),
            |e| matches!(e, PhotoError::Unsupported(f) if f == "HEIC"),
        ),
        (
            "bogus EXIF orientation",
            CameraPhoto::small(9).jpeg(),
            |e| matches!(e, PhotoError::BadExif(_)),
        ),
        (
            "garbage after the magic",
            {
                let mut v = vec![0xFF, 0xD8, 0xFF];
                v.extend(gridlink_fixtures::photos::noise_bytes(7, 5000));
                v
            },
            |e| matches!(e, PhotoError::Corrupt(_)),
        ),
    ];
    for (label, bytes, want) in cases {
        match photo::process(&bytes, &config) {
            Err(e) => {
                assert!(want(&e), "{label}: unexpected error {e:?}");
                // Every error reads in Chinese first.
                assert!(!e.to_string().is_ascii(), "{label}: {e}");
            }
            Ok(_) => panic!("{label}: accepted"),
        }
    }
    // The server-side probe refuses the same way without decoding pixels.
    assert!(matches!(
        photo::probe(
            &gridlink_fixtures::photos::with_frame_size(&good, 30_000, 30_000),
            &config.limits
        ),
        Err(PhotoError::TooLarge { .. })
    ));
    assert_eq!(
        photo::probe(&good, &config.limits).map(|p| (p.width, p.height)),
        Ok((600, 400))
    );
}
