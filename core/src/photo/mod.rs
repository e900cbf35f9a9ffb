//! Photo processing (随手拍 and patrol evidence): camera bytes in, a small clean JPEG out.
//!
//! [`process`] decodes with explicit limits (input size, per-side size, pixel count, decoder
//! allocation) checked against the header before any pixel is decoded, decodes JPEGs at a
//! reduced DCT scale when the target is smaller, applies the EXIF orientation, resizes with a
//! SIMD resizer to a long edge (1600 px by default), re-encodes as JPEG, makes a 256 px
//! thumbnail, and names both by their SHA-256. The output carries no metadata at all: no
//! EXIF, GPS, XMP or maker notes are copied; where and when a photo was taken is case data
//! (the event's stamp), never part of the image.
//!
//! Hostile input (truncated files, decompression bombs, 30,000 × 30,000 headers, text named
//! `.jpg`, bogus EXIF) gets a typed [`PhotoError`] within milliseconds; a panic inside a
//! decoder is caught and reported as a corrupt image.

mod orient;

pub use orient::Orientation;

use fast_image_resize::{self as fr, images::Image as FrImage};
use sha2::{Digest, Sha256};
use std::io::Cursor;
use std::path::Path;

/// Hard limits on what is decoded. The defaults admit every phone camera in use (up to
/// 64 MP, as 48/50 MP sensors deliver) and refuse anything that would need more memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoLimits {
    /// Largest input file, bytes.
    pub max_input_bytes: u64,
    /// Longest side of the source image, pixels.
    pub max_side: u32,
    /// Most pixels of the source image.
    pub max_pixels: u64,
    /// Most bytes a decoder may allocate for one image.
    pub max_alloc_bytes: u64,
}

impl Default for PhotoLimits {
    fn default() -> Self {
        PhotoLimits {
            max_input_bytes: 40 << 20,
            max_side: 12_000,
            max_pixels: 64_000_000,
            max_alloc_bytes: 256 << 20,
        }
    }
}

/// Long side of the photo the phone's pipeline uploads, pixels: the most a server stores.
pub const PHOTO_LONG_EDGE: u32 = 1600;
/// Long side of the thumbnail it uploads with the photo.
pub const THUMBNAIL_EDGE: u32 = 256;
/// Most bytes of an uploaded photo (a processed photo is ~200–400 KB; 1600² of noise at
/// quality 100 stays under this).
pub const MAX_PHOTO_BYTES: u64 = 8 << 20;
/// Most bytes of an uploaded thumbnail.
pub const MAX_THUMBNAIL_BYTES: u64 = 256 << 10;

impl PhotoLimits {
    /// What a server accepts as an uploaded photo: no more than the pipeline produces.
    pub const fn uploaded_photo() -> Self {
        Self::output(PHOTO_LONG_EDGE, MAX_PHOTO_BYTES)
    }

    /// What a server accepts as an uploaded thumbnail.
    pub const fn uploaded_thumbnail() -> Self {
        Self::output(THUMBNAIL_EDGE, MAX_THUMBNAIL_BYTES)
    }

    const fn output(side: u32, bytes: u64) -> Self {
        let pixels = side as u64 * side as u64;
        PhotoLimits {
            max_input_bytes: bytes,
            max_side: side,
            max_pixels: pixels,
            max_alloc_bytes: pixels * 4,
        }
    }

    /// Limits for photos a server takes from elsewhere (an Open311 `media_url`): lower than a
    /// phone camera needs, because many can arrive at once and the server decodes them for
    /// everyone. 24 MP (6000×4000) and a 96 MiB decoding budget admit what hotline systems
    /// forward; an 8000×8000 progressive JPEG or a 6000×6000 PNG is refused from its header.
    pub const fn remote() -> Self {
        PhotoLimits {
            max_input_bytes: 16 << 20,
            max_side: 8_192,
            max_pixels: 24_000_000,
            max_alloc_bytes: 96 << 20,
        }
    }
}

/// How photos are processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoConfig {
    /// Long edge of the processed photo, pixels (smaller photos are not enlarged).
    pub long_edge: u32,
    /// JPEG quality of the processed photo, 1–100.
    pub quality: u8,
    /// Long edge of the thumbnail, pixels.
    pub thumbnail_edge: u32,
    /// JPEG quality of the thumbnail.
    pub thumbnail_quality: u8,
    /// Decoding limits.
    pub limits: PhotoLimits,
}

impl Default for PhotoConfig {
    fn default() -> Self {
        PhotoConfig {
            long_edge: PHOTO_LONG_EDGE,
            quality: 80,
            thumbnail_edge: THUMBNAIL_EDGE,
            thumbnail_quality: 70,
            limits: PhotoLimits::default(),
        }
    }
}

/// A processed photo: the JPEG that is uploaded and its thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedPhoto {
    /// SHA-256 (lower-case hex) of [`jpeg`](Self::jpeg): the photo's name everywhere.
    pub hash: String,
    /// The re-encoded JPEG, without metadata.
    pub jpeg: Vec<u8>,
    /// Its size, pixels, after orientation.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// SHA-256 of the thumbnail.
    pub thumbnail_hash: String,
    /// The thumbnail JPEG.
    pub thumbnail: Vec<u8>,
    /// The source's size as stored (before orientation).
    pub source_width: u32,
    /// Height.
    pub source_height: u32,
    /// The orientation that was applied.
    pub orientation: Orientation,
}

/// What is wrong with an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoError {
    /// Empty input.
    #[error("照片为空 / the photo is empty")]
    Empty,
    /// Not an image at all (a text file named `.jpg`).
    #[error("不是图片文件 / not an image file")]
    NotAnImage,
    /// An image format this app does not read.
    #[error(
        "不支持的图片格式 {0}，请使用 JPEG 或 PNG / unsupported image format {0}: use JPEG or PNG"
    )]
    Unsupported(String),
    /// The file is larger than allowed.
    #[error(
        "照片文件过大（{size} 字节，上限 {max}）/ the photo file is too large ({size} bytes, limit {max})"
    )]
    FileTooLarge {
        /// Found.
        size: u64,
        /// Limit.
        max: u64,
    },
    /// The image is larger than allowed (a decompression bomb, or a panorama beyond limits).
    #[error("图片尺寸过大（{width}×{height}）/ the image is too large ({width}×{height} pixels)")]
    TooLarge {
        /// Width in the header.
        width: u32,
        /// Height in the header.
        height: u32,
    },
    /// The image data is damaged or truncated.
    #[error("图片已损坏 / the image is damaged: {0}")]
    Corrupt(String),
    /// The EXIF block is unreadable or holds an impossible orientation.
    #[error("照片的 EXIF 信息无效 / the photo's EXIF data is invalid: {0}")]
    BadExif(String),
    /// Encoding the output failed.
    #[error("照片编码失败 / encoding the photo failed: {0}")]
    Encode(String),
    /// The file could not be read.
    #[error("无法读取照片文件 / cannot read the photo file: {0}")]
    Io(String),
}

/// The container format of an input, from its first bytes (never from a file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// PNG.
    Png,
}

/// Identifies the format from magic bytes.
pub fn sniff(bytes: &[u8]) -> Result<Format, PhotoError> {
    if bytes.is_empty() {
        return Err(PhotoError::Empty);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Format::Jpeg);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(Format::Png);
    }
    let named = |name: &str| Err(PhotoError::Unsupported(name.to_owned()));
    match bytes {
        [_, _, _, _, b'f', b't', b'y', b'p', brand @ ..]
            if brand.starts_with(b"hei")
                || brand.starts_with(b"mif1")
                || brand.starts_with(b"heix") =>
        {
            named("HEIC")
        }
        [_, _, _, _, b'f', b't', b'y', b'p', brand @ ..] if brand.starts_with(b"avif") => {
            named("AVIF")
        }
        [b'G', b'I', b'F', b'8', ..] => named("GIF"),
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => named("WebP"),
        [b'B', b'M', ..] => named("BMP"),
        [b'I', b'I', 42, 0, ..] | [b'M', b'M', 0, 42, ..] => named("TIFF"),
        _ => Err(PhotoError::NotAnImage),
    }
}

/// What the header says, read without decoding pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Format.
    pub format: Format,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
}

/// Reads the header and checks it against the limits (what the server does with an upload).
pub fn probe(bytes: &[u8], limits: &PhotoLimits) -> Result<Probe, PhotoError> {
    check_input_size(bytes.len() as u64, limits)?;
    let format = sniff(bytes)?;
    let (width, height) = guard(|| match format {
        Format::Jpeg => jpeg_header(&mut jpeg_decoder_for(bytes, limits)),
        Format::Png => {
            let decoder = png_decoder_for(bytes, limits)?;
            Ok(image::ImageDecoder::dimensions(&decoder))
        }
    })?;
    check_dimensions(width, height, limits)?;
    Ok(Probe {
        format,
        width,
        height,
    })
}

/// Reads a file (bounded by the input limit) and processes it.
pub fn process_file(path: &Path, config: &PhotoConfig) -> Result<ProcessedPhoto, PhotoError> {
    let size = std::fs::metadata(path)
        .map_err(|e| PhotoError::Io(format!("{}: {e}", path.display())))?
        .len();
    check_input_size(size, &config.limits)?;
    let bytes =
        std::fs::read(path).map_err(|e| PhotoError::Io(format!("{}: {e}", path.display())))?;
    process(&bytes, config)
}

/// Processes camera bytes: see the module docs.
pub fn process(bytes: &[u8], config: &PhotoConfig) -> Result<ProcessedPhoto, PhotoError> {
    if !(1..=100).contains(&config.quality) || !(1..=100).contains(&config.thumbnail_quality) {
        return Err(PhotoError::Encode(
            "JPEG 质量须在 1–100 / quality must be 1–100".into(),
        ));
    }
    if config.long_edge < 16 || config.thumbnail_edge < 16 {
        return Err(PhotoError::Encode(
            "目标尺寸过小 / target size below 16 px".into(),
        ));
    }
    if config.long_edge > PHOTO_LONG_EDGE || config.thumbnail_edge > THUMBNAIL_EDGE {
        return Err(PhotoError::Encode(format!(
            "目标尺寸超过服务器接受的 {PHOTO_LONG_EDGE}/{THUMBNAIL_EDGE} 像素 / target size above the {PHOTO_LONG_EDGE}/{THUMBNAIL_EDGE} px a server accepts"
        )));
    }
    let limits = &config.limits;
    check_input_size(bytes.len() as u64, limits)?;
    let decoded = guard(|| match sniff(bytes)? {
        Format::Jpeg => decode_jpeg(bytes, config),
        Format::Png => decode_png(bytes, limits),
    })?;
    let Decoded {
        rgb,
        width: source_width,
        height: source_height,
        decoded_width,
        decoded_height,
        orientation,
    } = decoded;
    let (w, h) = fit(decoded_width, decoded_height, config.long_edge);
    let resized = resize(rgb, decoded_width, decoded_height, w, h)?;
    let (rgb, width, height) = orientation.apply(resized, w, h)?;
    let jpeg = encode(&rgb, width, height, config.quality)?;
    let (tw, th) = fit(width, height, config.thumbnail_edge);
    let thumb = resize(rgb, width, height, tw, th)?;
    let thumbnail = encode(&thumb, tw, th, config.thumbnail_quality)?;
    Ok(ProcessedPhoto {
        hash: sha256_hex(&jpeg),
        jpeg,
        width,
        height,
        thumbnail_hash: sha256_hex(&thumbnail),
        thumbnail,
        source_width,
        source_height,
        orientation,
    })
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for byte in digest {
        use std::fmt::Write;
        let _ = write!(out, "{byte:02x}");
    }
    out
}

struct Decoded {
    rgb: Vec<u8>,
    /// Source size in the header.
    width: u32,
    height: u32,
    /// Size of `rgb` (smaller when DCT-scaled).
    decoded_width: u32,
    decoded_height: u32,
    orientation: Orientation,
}

fn check_input_size(size: u64, limits: &PhotoLimits) -> Result<(), PhotoError> {
    if size == 0 {
        return Err(PhotoError::Empty);
    }
    if size > limits.max_input_bytes {
        return Err(PhotoError::FileTooLarge {
            size,
            max: limits.max_input_bytes,
        });
    }
    Ok(())
}

fn check_dimensions(width: u32, height: u32, limits: &PhotoLimits) -> Result<(), PhotoError> {
    let too_large = width.max(height) > limits.max_side
        || u64::from(width) * u64::from(height) > limits.max_pixels
        // Three bytes per decoded pixel must fit the allocation cap.
        || u64::from(width) * u64::from(height) * 3 > limits.max_alloc_bytes;
    if width == 0 || height == 0 {
        return Err(PhotoError::Corrupt(format!(
            "图片尺寸为零 / zero-sized image ({width}×{height})"
        )));
    }
    if too_large {
        return Err(PhotoError::TooLarge { width, height });
    }
    Ok(())
}

/// Runs a decoder step, turning a panic inside a third-party decoder into `Corrupt`.
fn guard<T>(f: impl FnOnce() -> Result<T, PhotoError>) -> Result<T, PhotoError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(PhotoError::Corrupt(
            "解码器无法处理该文件 / the decoder could not handle this file".into(),
        ))
    })
}

fn jpeg_decoder_for<'a>(
    bytes: &'a [u8],
    limits: &PhotoLimits,
) -> jpeg_decoder::Decoder<Cursor<&'a [u8]>> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.set_max_decoding_buffer_size(
        usize::try_from(limits.max_alloc_bytes).unwrap_or(usize::MAX),
    );
    decoder
}

/// Reads a JPEG's markers up to the frame header; returns its size.
fn jpeg_header(
    decoder: &mut jpeg_decoder::Decoder<Cursor<&[u8]>>,
) -> Result<(u32, u32), PhotoError> {
    decoder
        .read_info()
        .map_err(|e| PhotoError::Corrupt(e.to_string()))?;
    let info = decoder
        .info()
        .ok_or_else(|| PhotoError::Corrupt("no frame header".into()))?;
    Ok((u32::from(info.width), u32::from(info.height)))
}

fn png_decoder_for<'a>(
    bytes: &'a [u8],
    limits: &PhotoLimits,
) -> Result<image::codecs::png::PngDecoder<Cursor<&'a [u8]>>, PhotoError> {
    // Dimensions are checked by `check_dimensions` (which names them in the error); the
    // decoder enforces the allocation cap on every path it allocates.
    let mut l = image::Limits::no_limits();
    l.max_alloc = Some(limits.max_alloc_bytes);
    image::codecs::png::PngDecoder::with_limits(Cursor::new(bytes), l).map_err(image_error)
}

fn image_error(e: image::ImageError) -> PhotoError {
    match e {
        image::ImageError::Limits(_) => {
            PhotoError::Corrupt(format!("超出解码限制 / over the decoding limits: {e}"))
        }
        image::ImageError::Unsupported(_) => PhotoError::Unsupported(e.to_string()),
        other => PhotoError::Corrupt(other.to_string()),
    }
}

fn decode_jpeg(bytes: &[u8], config: &PhotoConfig) -> Result<Decoded, PhotoError> {
    let limits = &config.limits;
    let mut decoder = jpeg_decoder_for(bytes, limits);
    let (width, height) = jpeg_header(&mut decoder)?;
    check_dimensions(width, height, limits)?;
    // Decode at the smallest DCT scale (1, 1/2, 1/4, 1/8) that still covers the target.
    let (tw, th) = fit(width, height, config.long_edge);
    let (dw, dh) = decoder
        .scale(
            u16::try_from(tw).unwrap_or(u16::MAX),
            u16::try_from(th).unwrap_or(u16::MAX),
        )
        .map_err(|e| PhotoError::Corrupt(e.to_string()))?;
    let pixels = decoder
        .decode()
        .map_err(|e| PhotoError::Corrupt(e.to_string()))?;
    let (dw, dh) = (u32::from(dw), u32::from(dh));
    let expected = |channels: usize| dw as usize * dh as usize * channels;
    let info = decoder
        .info()
        .ok_or_else(|| PhotoError::Corrupt("no frame header".into()))?;
    let rgb = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 if pixels.len() == expected(3) => pixels,
        jpeg_decoder::PixelFormat::L8 if pixels.len() == expected(1) => {
            pixels.iter().flat_map(|&l| [l, l, l]).collect()
        }
        jpeg_decoder::PixelFormat::CMYK32 if pixels.len() == expected(4) => pixels
            .chunks_exact(4)
            .flat_map(|p| {
                let k = u16::from(p[3]);
                let ch = |c: u8| ((u16::from(c) * k) / 255) as u8;
                [ch(p[0]), ch(p[1]), ch(p[2])]
            })
            .collect(),
        jpeg_decoder::PixelFormat::L16 => {
            return Err(PhotoError::Unsupported("16-bit JPEG".into()));
        }
        _ => {
            return Err(PhotoError::Corrupt(
                "解码结果与图片头不符 / decoded data does not match the header".into(),
            ));
        }
    };
    let orientation = match decoder.exif_data() {
        Some(exif) => Orientation::from_exif(exif)?,
        None => Orientation::Normal,
    };
    Ok(Decoded {
        rgb,
        width,
        height,
        decoded_width: dw,
        decoded_height: dh,
        orientation,
    })
}

fn decode_png(bytes: &[u8], limits: &PhotoLimits) -> Result<Decoded, PhotoError> {
    use image::ImageDecoder;
    let mut decoder = png_decoder_for(bytes, limits)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    // The decoded buffer and the RGB copy must both fit the allocation cap.
    let needed = decoder
        .total_bytes()
        .saturating_add(u64::from(width) * u64::from(height) * 3);
    if needed > limits.max_alloc_bytes {
        return Err(PhotoError::TooLarge { width, height });
    }
    let orientation = match decoder.exif_metadata().map_err(image_error)? {
        Some(exif) => Orientation::from_exif(&exif)?,
        None => Orientation::Normal,
    };
    let image = image::DynamicImage::from_decoder(decoder).map_err(image_error)?;
    // Transparent pixels are composed onto white, as a viewer would show them.
    let rgb: Vec<u8> = match image {
        image::DynamicImage::ImageRgb8(rgb) => rgb.into_raw(),
        image::DynamicImage::ImageRgba8(rgba) => rgba
            .as_raw()
            .chunks_exact(4)
            .flat_map(|p| {
                let a = u16::from(p[3]);
                let over = |c: u8| ((u16::from(c) * a + 255 * (255 - a)) / 255) as u8;
                [over(p[0]), over(p[1]), over(p[2])]
            })
            .collect(),
        other => other.to_rgb8().into_raw(),
    };
    Ok(Decoded {
        rgb,
        width,
        height,
        decoded_width: width,
        decoded_height: height,
        orientation,
    })
}

/// The size that fits `long_edge`, keeping the aspect ratio; never enlarges.
fn fit(width: u32, height: u32, long_edge: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= long_edge {
        return (width, height);
    }
    let scale = |side: u32| {
        ((u64::from(side) * u64::from(long_edge) + u64::from(long) / 2) / u64::from(long)).max(1)
            as u32
    };
    (scale(width), scale(height))
}

fn resize(rgb: Vec<u8>, w: u32, h: u32, tw: u32, th: u32) -> Result<Vec<u8>, PhotoError> {
    if (w, h) == (tw, th) {
        return Ok(rgb);
    }
    let src = FrImage::from_vec_u8(w, h, rgb, fr::PixelType::U8x3)
        .map_err(|e| PhotoError::Encode(e.to_string()))?;
    let mut dst = FrImage::new(tw, th, fr::PixelType::U8x3);
    // After a DCT-scaled decode the remaining step is at most 2×, where bilinear loses
    // nothing visible and costs half; larger steps (PNG, thumbnails) get Catmull-Rom.
    let filter = if u64::from(w.max(h)) <= 2 * u64::from(tw.max(th)) {
        fr::FilterType::Bilinear
    } else {
        fr::FilterType::CatmullRom
    };
    fr::Resizer::new()
        .resize(
            &src,
            &mut dst,
            &fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(filter)),
        )
        .map_err(|e| PhotoError::Encode(e.to_string()))?;
    Ok(dst.into_vec())
}

fn encode(rgb: &[u8], w: u32, h: u32, quality: u8) -> Result<Vec<u8>, PhotoError> {
    let (w16, h16) = (
        u16::try_from(w).map_err(|_| PhotoError::TooLarge {
            width: w,
            height: h,
        })?,
        u16::try_from(h).map_err(|_| PhotoError::TooLarge {
            width: w,
            height: h,
        })?,
    );
    let mut out = Vec::with_capacity(rgb.len() / 8);
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    encoder
        .encode(rgb, w16, h16, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| PhotoError::Encode(e.to_string()))?;
    Ok(out)
}
