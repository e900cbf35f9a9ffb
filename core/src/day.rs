//! The district's day. Deadlines, statistics, scores and dates on pages and exports count in
//! the district's local time, China Standard Time (Asia/Shanghai: UTC+8 all year, no daylight
//! saving), whatever the time zone of the phone or the server. Days are numbered from
//! 1970-01-01 local; instants are UTC milliseconds.
//!
//! This is the one place that says so: Rust code calls these functions (the roll-ups bucket by
//! [`day_of`]), and the server's formatters take their offset from [`OFFSET_SECONDS`].

/// The district's offset from UTC, in seconds.
pub const OFFSET_SECONDS: i32 = 8 * 3600;
/// The offset in milliseconds.
pub const OFFSET_MS: i64 = OFFSET_SECONDS as i64 * 1000;
/// A day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The local day holding an instant.
pub fn day_of(at_ms: i64) -> i64 {
    at_ms.saturating_add(OFFSET_MS).div_euclid(DAY_MS)
}

/// The instant a local day starts (00:00 local), UTC ms.
pub fn start_of(day: i64) -> i64 {
    day.saturating_mul(DAY_MS).saturating_sub(OFFSET_MS)
}

/// The days of a period `[from_ms, to_ms)` counted in whole days: from the day holding
/// `from_ms` up to and including the day holding the last millisecond before `to_ms`, as
/// `[first, end)`.
pub fn days_of_period(from_ms: i64, to_ms: i64) -> (i64, i64) {
    (day_of(from_ms), day_of(to_ms.saturating_sub(1)) + 1)
}

/// The period of the last `days` local days up to and including the day holding `now_ms`:
/// its first day and its start, UTC ms.
pub fn last_days(now_ms: i64, days: i64) -> (i64, i64) {
    let first = day_of(now_ms) - days + 1;
    (first, start_of(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_runs_from_midnight_in_shanghai() {
        // 2026-06-14 16:00 UTC is 2026-06-15 00:00 in Shanghai.
        let midnight = 1_781_452_800_000;
        assert_eq!(day_of(midnight), day_of(midnight + DAY_MS - 1));
        assert_eq!(day_of(midnight - 1) + 1, day_of(midnight));
        assert_eq!(start_of(day_of(midnight)), midnight);
        assert_eq!(start_of(day_of(midnight + 12 * 3_600_000)), midnight);
        assert_eq!(day_of(start_of(20_000)), 20_000);
        // Before 1970 the day is still the floor.
        assert_eq!(day_of(-OFFSET_MS - 1), -1);
    }

    #[test]
    fn a_period_covers_the_days_of_its_first_and_last_instants() {
        let d = 20_000;
        assert_eq!(days_of_period(start_of(d), start_of(d + 1)), (d, d + 1));
        assert_eq!(
            days_of_period(start_of(d) + 5, start_of(d + 1) + 1),
            (d, d + 2)
        );
        assert_eq!(
            days_of_period(start_of(d) - 1, start_of(d) + 1),
            (d - 1, d + 1)
        );
        let now = start_of(d) + 3_600_000;
        assert_eq!(last_days(now, 7), (d - 6, start_of(d - 6)));
        assert_eq!(last_days(now, 1), (d, start_of(d)));
    }
}
