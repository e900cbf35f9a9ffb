//! Identifiers typed at the door: every fixture person and enterprise validates, and the
//! check characters catch the typos they are designed to catch.

use gridlink_core::address::{CreditCode, IdError, ResidentId};
use proptest::prelude::*;

const TODAY: u32 = 20261128;

#[test]
fn every_fixture_id_number_and_credit_code_is_valid() {
    let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
    let (mut people, mut firms) = (0, 0);
    for address in &district.addresses {
        for p in &address.people {
            ResidentId::parse(&p.id_number, TODAY)
                .unwrap_or_else(|e| panic!("{}: {e}", p.id_number));
            people += 1;
        }
        for e in &address.enterprises {
            CreditCode::parse(&e.credit_code)
                .unwrap_or_else(|err| panic!("{}: {err}", e.credit_code));
            firms += 1;
        }
    }
    assert!(
        people > 1000 && firms > 50,
        "{people} people, {firms} enterprises"
    );
}

fn valid_id() -> impl Strategy<Value = String> {
    // Region, a real date, a sequence; the check character computed by the parser's rule is
    // found by trying all eleven.
    (
        110_000u32..660_000,
        1930u32..2020,
        1u32..=12,
        1u32..=28,
        0u32..1000,
    )
        .prop_map(|(region, y, m, d, seq)| {
            let body = format!("{region:06}{y:04}{m:02}{d:02}{seq:03}");
            "0123456789X"
                .chars()
                .map(|c| format!("{body}{c}"))
                .find(|id| ResidentId::parse(id, TODAY).is_ok())
                .unwrap_or_default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn exactly_one_check_character_fits_and_any_single_wrong_digit_is_caught(
        id in valid_id(),
        pos in 0usize..17,
        digit in 0u8..10,
    ) {
        prop_assert_eq!(id.len(), 18);
        let mut typo = id.clone().into_bytes();
        prop_assume!(typo[pos] != b'0' + digit);
        typo[pos] = b'0' + digit;
        let typo = String::from_utf8(typo).unwrap_or_default();
        // A changed date digit may also make the date invalid; either way it is refused.
        let refused = matches!(
            ResidentId::parse(&typo, TODAY),
            Err(IdError::BadCheck { .. } | IdError::BadBirthDate(_))
        );
        prop_assert!(refused, "typo {} accepted", typo);
    }

    #[test]
    fn swapping_two_different_adjacent_digits_is_caught(id in valid_id(), pos in 0usize..16) {
        let mut swapped = id.clone().into_bytes();
        prop_assume!(swapped[pos] != swapped[pos + 1]);
        swapped.swap(pos, pos + 1);
        let swapped = String::from_utf8(swapped).unwrap_or_default();
        prop_assert!(ResidentId::parse(&swapped, TODAY).is_err());
    }
}
