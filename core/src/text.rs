//! Which characters the district's text may hold.
//!
//! Whatever a person types ends up in Open311 XML, in CSV and XLSX exports and in pages. XML 1.0
//! cannot carry C0 control characters other than tab, line feed and carriage return, nor U+FFFE
//! and U+FFFF; Unicode's other noncharacters (U+FDD0–U+FDEF and the last two code points of
//! every plane) are never meant for interchange. One such character in one citizen's report
//! would make the whole district's `requests.xml` unreadable, so they are refused where text
//! comes in: on the phone, in every pushed change, in a citizen's report, in an Open311 POST.
//! Writers of XML still drop them, for anything stored before this rule.

/// A character no text of the district may hold.
pub fn is_unfit(c: char) -> bool {
    let u = u32::from(c);
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        || (0xFDD0..=0xFDEF).contains(&u)
        || u & 0xFFFE == 0xFFFE
}

/// The first character of `text` that no text may hold.
pub fn first_unfit(text: &str) -> Option<char> {
    text.chars().find(|&c| is_unfit(c))
}

/// Text holding a character that cannot be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "含有不能使用的字符 U+{code:04X} / holds a character that cannot be used: U+{code:04X}",
    code = u32::from(*.0)
)]
pub struct UnfitChar(pub char);

/// `Ok` when every character of `text` may be stored.
pub fn check(text: &str) -> Result<(), UnfitChar> {
    first_unfit(text).map_or(Ok(()), |c| Err(UnfitChar(c)))
}

/// `Ok` when every string in `value` (keys included) may be stored.
pub fn check_json(value: &serde_json::Value) -> Result<(), UnfitChar> {
    match value {
        serde_json::Value::String(s) => check(s),
        serde_json::Value::Array(items) => items.iter().try_for_each(check_json),
        serde_json::Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| check(k).and_then(|()| check_json(v))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_and_line_breaks_pass() {
        assert_eq!(
            check("楼道堆放杂物\n堵塞消防通道\t（3 号楼）\r\n🚒"),
            Ok(())
        );
    }

    #[test]
    fn what_xml_cannot_carry_is_refused() {
        for c in [
            '\u{0}', '\u{b}', '\u{1f}', '\u{7f}', '\u{85}', '\u{fdd0}', '\u{fdef}',
        ] {
            assert_eq!(
                check(&format!("a{c}b")),
                Err(UnfitChar(c)),
                "{:04X}",
                c as u32
            );
        }
        for c in ['\u{fffe}', '\u{ffff}', '\u{1fffe}', '\u{10ffff}'] {
            assert_eq!(first_unfit(&format!("报修{c}")), Some(c));
        }
        assert!(!is_unfit('\u{fffd}'));
        let nested = serde_json::json!({"parties": [{"name": "张三\u{fffe}"}]});
        assert_eq!(check_json(&nested), Err(UnfitChar('\u{fffe}')));
        assert_eq!(
            check_json(&serde_json::json!({"a\u{0}": 1})),
            Err(UnfitChar('\u{0}'))
        );
        assert!(!is_unfit('\u{fdcf}'));
        assert!(!is_unfit('\u{fdf0}'));
        assert!(
            UnfitChar('\u{ffff}').to_string().contains("U+FFFF"),
            "{}",
            UnfitChar('\u{ffff}')
        );
    }
}
