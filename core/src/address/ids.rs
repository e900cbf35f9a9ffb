//! Identifiers typed at the door, checked before they are saved:
//!
//! - [`ResidentId`]: the 18-character resident identity number (GB 11643-1999): a 6-digit
//!   region code, the birth date (YYYYMMDD), a 3-digit sequence and an ISO 7064 MOD 11-2 check
//!   character (`0`–`9` or `X`). Every single wrong digit and every swap of two adjacent
//!   different digits changes the check character, so typos are caught at the door.
//! - [`CreditCode`]: the unified social credit code of an organisation (GB 32100-2015): 18
//!   characters from `0-9A-Z` without `I O S V Z`, a registration-authority code, an
//!   organisation-type code, a 6-digit region code, a 9-character organisation code and a
//!   MOD 31 check character.
//!
//! Both are shown masked to roles that need not see them ([`ResidentId::masked`]).

use std::fmt;

/// Why an identifier was refused. Messages are zh-CN first, English second.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Wrong length or characters.
    #[error("{what}格式不对：{detail} / {what_en} is malformed: {detail}")]
    Malformed {
        /// What it is, in Chinese.
        what: &'static str,
        /// What it is, in English.
        what_en: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The birth date in a resident ID is not a real date (or lies in the future). The
    /// message does not repeat the date: error texts reach logs and screens, and a birth date
    /// is personal data.
    #[error(
        "身份证号中的出生日期无效（第 7–14 位）/ the birth date in the ID number (characters 7–14) is not a valid date"
    )]
    BadBirthDate(String),
    /// The check character does not match: a typo.
    #[error(
        "{what}校验位不符，请核对 / the check character of the {what_en} does not match: check for a typo"
    )]
    BadCheck {
        /// What it is, in Chinese.
        what: &'static str,
        /// What it is, in English.
        what_en: &'static str,
    },
}

/// A valid 18-character resident identity number (upper-case `X`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResidentId(String);

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

impl ResidentId {
    /// Checks and normalises (trims, upper-cases `x`) an ID number. `today` (YYYYMMDD) bounds
    /// the birth date.
    pub fn parse(text: &str, today: u32) -> Result<ResidentId, IdError> {
        let malformed = |detail: String| IdError::Malformed {
            what: "身份证号",
            what_en: "the ID number",
            detail,
        };
        let id = text.trim().to_ascii_uppercase();
        let chars: Vec<char> = id.chars().collect();
        if chars.len() != 18 {
            return Err(malformed(format!(
                "应为 18 位，实为 {} 位 / 18 characters expected, {} found",
                chars.len(),
                chars.len()
            )));
        }
        if !chars[..17].iter().all(char::is_ascii_digit)
            || !(chars[17].is_ascii_digit() || chars[17] == 'X')
        {
            return Err(malformed(
                "前 17 位应为数字，末位为数字或 X / 17 digits then a digit or X".into(),
            ));
        }
        let date: u32 = id[6..14].parse().unwrap_or(0);
        if !valid_date(date) || date > today || date < 18800101 {
            return Err(IdError::BadBirthDate(id[6..14].to_owned()));
        }
        let sum: u32 = chars[..17]
            .iter()
            .zip(ID_WEIGHTS)
            .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
            .sum();
        if ID_CHECK[(sum % 11) as usize] != chars[17] {
            return Err(IdError::BadCheck {
                what: "身份证号",
                what_en: "ID number",
            });
        }
        Ok(ResidentId(id))
    }

    /// The number.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Birth date as YYYYMMDD.
    pub fn birth_date(&self) -> u32 {
        self.0[6..14].parse().unwrap_or(0)
    }

    /// Whether the sequence digit says male (odd) or female (even).
    pub fn is_male(&self) -> bool {
        self.0.as_bytes()[16] % 2 == 1
    }

    /// Shown to roles that need not see it: region code and last four kept,
    /// `320509********5838`.
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.0[..6], &self.0[14..])
    }
}

impl fmt::Debug for ResidentId {
    /// Debug output never prints the full number (logs end up in places).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentId({})", self.masked())
    }
}

pub(crate) fn valid_date(yyyymmdd: u32) -> bool {
    let (y, m, d) = (yyyymmdd / 10_000, yyyymmdd / 100 % 100, yyyymmdd % 100);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// A valid unified social credit code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CreditCode(String);

const CREDIT_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const CREDIT_WEIGHTS: [usize; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

impl CreditCode {
    /// Checks and normalises (trims, upper-cases) a credit code.
    pub fn parse(text: &str) -> Result<CreditCode, IdError> {
        let malformed = |detail: String| IdError::Malformed {
            what: "统一社会信用代码",
            what_en: "the unified social credit code",
            detail,
        };
        let code = text.trim().to_ascii_uppercase();
        let values: Vec<usize> = code
            .chars()
            .map(|c| CREDIT_ALPHABET.find(c).ok_or(c))
            .collect::<Result<_, char>>()
            .map_err(|c| {
                malformed(format!(
                    "含不允许的字符 {c:?}（不用 I、O、S、V、Z）/ character {c:?} is not allowed (no I, O, S, V, Z)"
                ))
            })?;
        if values.len() != 18 {
            return Err(malformed(format!(
                "应为 18 位，实为 {} 位 / 18 characters expected, {} found",
                values.len(),
                values.len()
            )));
        }
        // Registration authority: 1 organs, 5 civil affairs, 9 market regulation, Y other
        // (GB 32100 table 1), and the region code digits are digits.
        if !matches!(code.as_bytes()[0], b'1'..=b'9' | b'A' | b'N' | b'Y')
            || !code[2..8].bytes().all(|b| b.is_ascii_digit())
        {
            return Err(malformed(
                "登记管理部门代码或行政区划码无效 / the authority or region part is invalid".into(),
            ));
        }
        let sum: usize = values[..17]
            .iter()
            .zip(CREDIT_WEIGHTS)
            .map(|(v, w)| v * w)
            .sum();
        if (31 - sum % 31) % 31 != values[17] {
            return Err(IdError::BadCheck {
                what: "统一社会信用代码",
                what_en: "credit code",
            });
        }
        Ok(CreditCode(code))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 6-digit region code it was registered in.
    pub fn region(&self) -> &str {
        &self.0[2..8]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: u32 = 20261128;

    #[test]
    fn a_valid_id_parses_masks_and_tells_its_birth_date() {
        let id = ResidentId::parse(" 11010519491231002x ", TODAY).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(id.birth_date(), 19491231);
        assert!(!id.is_male());
        assert_eq!(id.masked(), "110105********002X");
        assert!(!format!("{id:?}").contains("19491231"));
    }

    #[test]
    fn typos_dates_and_shapes_are_refused() {
        let bad_check = ResidentId::parse("110105194912310021", TODAY);
        assert!(matches!(bad_check, Err(IdError::BadCheck { .. })));
        assert!(matches!(
            ResidentId::parse("11010519491331002X", TODAY),
            Err(IdError::BadBirthDate(_))
        ));
        assert!(matches!(
            ResidentId::parse("110105203001010000", TODAY),
            Err(IdError::BadBirthDate(_))
        ));
        for shape in [
            "",
            "1101051949123100",
            "11010519491231002Y",
            "1101051949123100２X",
        ] {
            assert!(matches!(
                ResidentId::parse(shape, TODAY),
                Err(IdError::Malformed { .. })
            ));
        }
        assert!(valid_date(20240229) && !valid_date(20230229) && !valid_date(19000229));
    }

    #[test]
    fn credit_codes_follow_gb32100() {
        let code = CreditCode::parse("91350100M000100Y43").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(code.region(), "350100");
        assert!(matches!(
            CreditCode::parse("91350100M000100Y44"),
            Err(IdError::BadCheck { .. })
        ));
        assert!(matches!(
            CreditCode::parse("91350100M000100I43"),
            Err(IdError::Malformed { .. })
        ));
        assert!(matches!(
            CreditCode::parse("9135010"),
            Err(IdError::Malformed { .. })
        ));
        assert!(CreditCode::parse("B1350100M000100Y43").is_err());
    }
}
