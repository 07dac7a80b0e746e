//! Local-time buckets: an instant becomes the hour it falls in on the site's wall clock.
//!
//! Buckets count hours since 1970-01-01T00:00 local time, so a day in the site's time zone is
//! exactly 24 buckets, also for zones at half- and quarter-hour offsets. On a DST fall-back
//! night the repeated hour shares one bucket.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use tally_model::rollup::Bucket;

/// The local hour bucket of `ms` in `zone` (UTC when `None`).
pub fn local_hour(zone: Option<&TimeZone>, ms: i64) -> Bucket {
    let Ok(ts) = Timestamp::from_millisecond(ms) else {
        return 0;
    };
    let offset = zone.map_or(0, |z| i64::from(z.to_offset(ts).seconds()));
    (ts.as_second() + offset).div_euclid(3600)
}

/// The first bucket of a local calendar day.
pub fn day_start(date: Date) -> Bucket {
    let days = date.since(Date::constant(1970, 1, 1)).map_or(0, |span| i64::from(span.get_days()));
    days * 24
}

/// The local date-time at which a bucket starts.
pub fn bucket_start(bucket: Bucket) -> DateTime {
    Timestamp::from_second(bucket * 3600).map_or(DateTime::default(), |ts| TimeZone::UTC.to_datetime(ts))
}

/// Today's date on the site's wall clock.
pub fn today(zone: &TimeZone, now: Timestamp) -> Date {
    zone.to_datetime(now).date()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).expect("known zone")
    }

    fn ms(rfc3339: &str) -> i64 {
        rfc3339.parse::<Timestamp>().expect("timestamp").as_millisecond()
    }

    #[test]
    fn half_and_quarter_hour_zones_cut_days_at_local_midnight() {
        let kolkata = zone("Asia/Kolkata");
        // 18:29:59Z is 23:59:59 in Kolkata; 18:30Z is the next local day.
        let before = local_hour(Some(&kolkata), ms("2026-03-01T18:29:59Z"));
        let after = local_hour(Some(&kolkata), ms("2026-03-01T18:30:00Z"));
        assert_eq!(before.div_euclid(24) + 1, after.div_euclid(24));
        assert_eq!(after, day_start(Date::constant(2026, 3, 2)));
        let kathmandu = zone("Asia/Kathmandu");
        assert_eq!(local_hour(Some(&kathmandu), ms("2026-03-01T18:15:00Z")), day_start(Date::constant(2026, 3, 2)));
    }

    #[test]
    fn dst_days_have_their_real_hours() {
        let berlin = zone("Europe/Berlin");
        // 2026-03-29: clocks jump from 02:00 to 03:00; 01:30Z is 03:30 local.
        let b = local_hour(Some(&berlin), ms("2026-03-29T01:30:00Z"));
        assert_eq!(bucket_start(b).to_string(), "2026-03-29T03:00:00");
    }

    #[test]
    fn utc_when_no_zone() {
        assert_eq!(local_hour(None, ms("1970-01-02T01:00:00Z")), 25);
        assert_eq!(bucket_start(25).to_string(), "1970-01-02T01:00:00");
    }
}
