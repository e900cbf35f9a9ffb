//! The EXIF orientation tag: how the camera held the sensor, and the transform that shows the
//! picture upright.

use super::PhotoError;

/// The eight EXIF orientations (tag 0x0112), named by the transform that makes the picture
/// upright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    /// 1: as stored.
    Normal,
    /// 2: mirrored left–right.
    FlipHorizontal,
    /// 3: upside down.
    Rotate180,
    /// 4: mirrored top–bottom.
    FlipVertical,
    /// 5: transposed.
    Transpose,
    /// 6: turn 90° clockwise to view (phone held upright, the most common).
    Rotate90,
    /// 7: transversed.
    Transverse,
    /// 8: turn 90° counter-clockwise to view.
    Rotate270,
}

impl Orientation {
    /// The orientation for an EXIF value. 0 ("unknown", written by some cameras) reads as 1;
    /// anything else outside 1–8 is refused.
    pub fn from_value(value: u32) -> Result<Orientation, PhotoError> {
        Ok(match value {
            0 | 1 => Orientation::Normal,
            2 => Orientation::FlipHorizontal,
            3 => Orientation::Rotate180,
            4 => Orientation::FlipVertical,
            5 => Orientation::Transpose,
            6 => Orientation::Rotate90,
            7 => Orientation::Transverse,
            8 => Orientation::Rotate270,
            other => {
                return Err(PhotoError::BadExif(format!(
                    "方向值 {other} 不在 1–8 之间 / orientation {other} is not 1–8"
                )));
            }
        })
    }

    /// The EXIF value.
    pub fn value(self) -> u32 {
        match self {
            Orientation::Normal => 1,
            Orientation::FlipHorizontal => 2,
            Orientation::Rotate180 => 3,
            Orientation::FlipVertical => 4,
            Orientation::Transpose => 5,
            Orientation::Rotate90 => 6,
            Orientation::Transverse => 7,
            Orientation::Rotate270 => 8,
        }
    }

    /// Reads the orientation of the primary image from a raw EXIF block (starting at the TIFF
    /// header). A block without the tag is `Normal`; an unreadable block is an error, since
    /// the picture's orientation would be a guess.
    pub fn from_exif(exif: &[u8]) -> Result<Orientation, PhotoError> {
        let parsed = exif::Reader::new()
            .read_raw(exif.to_vec())
            .map_err(|e| PhotoError::BadExif(e.to_string()))?;
        match parsed.get_field(exif::Tag::Orientation, exif::In::PRIMARY) {
            None => Ok(Orientation::Normal),
            Some(field) => match field.value.get_uint(0) {
                Some(v) => Orientation::from_value(v),
                None => Err(PhotoError::BadExif(
                    "方向标签不是整数 / the orientation tag is not an integer".into(),
                )),
            },
        }
    }

    /// Applies the transform to a packed RGB buffer of `w` × `h`; returns the upright buffer
    /// and its size.
    pub fn apply(self, rgb: Vec<u8>, w: u32, h: u32) -> Result<(Vec<u8>, u32, u32), PhotoError> {
        use image::metadata::Orientation as O;
        let target = match self {
            Orientation::Normal => return Ok((rgb, w, h)),
            Orientation::FlipHorizontal => O::FlipHorizontal,
            Orientation::Rotate180 => O::Rotate180,
            Orientation::FlipVertical => O::FlipVertical,
            Orientation::Transpose => O::Rotate90FlipH,
            Orientation::Rotate90 => O::Rotate90,
            Orientation::Transverse => O::Rotate270FlipH,
            Orientation::Rotate270 => O::Rotate270,
        };
        let buffer = image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| {
            PhotoError::Encode("像素缓冲区大小不符 / pixel buffer size mismatch".into())
        })?;
        let mut image = image::DynamicImage::ImageRgb8(buffer);
        image.apply_orientation(target);
        let rgb = image.into_rgb8();
        let (w, h) = rgb.dimensions();
        Ok((rgb.into_raw(), w, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_bogus_values_are_refused() {
        for v in 1..=8 {
            assert_eq!(Orientation::from_value(v).map(Orientation::value), Ok(v));
        }
        assert_eq!(Orientation::from_value(0), Ok(Orientation::Normal));
        assert!(matches!(
            Orientation::from_value(9),
            Err(PhotoError::BadExif(_))
        ));
        assert!(matches!(
            Orientation::from_value(65535),
            Err(PhotoError::BadExif(_))
        ));
    }

    #[test]
    fn rotate90_turns_the_top_left_pixel_to_the_top_right() {
        // 2 × 1: red, green. Rotated 90° clockwise: 1 × 2, red on top.
        let rgb = vec![255, 0, 0, 0, 255, 0];
        let (out, w, h) = Orientation::Rotate90.apply(rgb, 2, 1).unwrap_or_default();
        assert_eq!((w, h), (1, 2));
        assert_eq!(out, vec![255, 0, 0, 0, 255, 0]);
        let rgb = vec![255, 0, 0, 0, 255, 0];
        let (out, _, _) = Orientation::Rotate270.apply(rgb, 2, 1).unwrap_or_default();
        assert_eq!(out, vec![0, 255, 0, 255, 0, 0]);
    }
}
