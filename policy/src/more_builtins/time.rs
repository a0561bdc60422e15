//! `time.add_date(ns, years, months, days)` as OPA computes it: Go's
//! `time.AddDate`, which adds to the year, month and day fields and then
//! normalises the date (2026-01-31 plus one month is "2026-02-31", that is
//! 2026-03-03; 2024-02-29 plus one year is 2025-03-01), keeping the time of
//! day in the time zone of `ns` (a number, or `[ns, tz]` as OPA's other
//! `time.*` builtins take it). A result outside the nanoseconds an int64
//! holds (years 1677 to 2262) is undefined, as OPA's error is.
//!
//! regorus clamps to the month's end instead (2026-02-28), and finds
//! 2024-02-29 plus one year undefined.

use chrono::{DateTime, Local, Offset as _, TimeZone as _};
use chrono_tz::Tz;
use regorus::Value;

use super::json::{classify, Num};

const NS_PER_SEC: i128 = 1_000_000_000;

const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// The time zone of a `time.*` argument.
#[derive(Clone, Copy, Debug)]
enum Zone {
    Utc,
    Local,
    Named(Tz),
}

impl Zone {
    /// The zone's offset from UTC, in seconds, at `unix` (seconds).
    fn offset_at(self, unix: i64) -> Option<i64> {
        let naive = DateTime::from_timestamp(unix, 0)?.naive_utc();
        Some(i64::from(match self {
            Zone::Utc => 0,
            Zone::Local => Local.offset_from_utc_datetime(&naive).local_minus_utc(),
            Zone::Named(tz) => tz.offset_from_utc_datetime(&naive).fix().local_minus_utc(),
        }))
    }
}

/// An integer OPA accepts as nanoseconds: exactly an int64 (a whole float
/// too).
fn nanos(v: &Value) -> Option<i64> {
    match classify(v)? {
        Num::Int(i) => Some(i),
        Num::Big(_) => None,
        // 2^63 as f64 is exact: whole floats in [-2^63, 2^63).
        Num::Float(f) if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) => Some(f as i64),
        Num::Float(_) => None,
    }
}

/// OPA's `tzTime`: `ns`, or `[ns]`, `[ns, tz]`, `[ns, tz, layout]`.
fn tz_time(v: &Value) -> Option<(i64, Zone)> {
    match v {
        Value::Number(_) => Some((nanos(v)?, Zone::Utc)),
        Value::Array(items) => {
            let ns = nanos(items.first()?)?;
            let zone = match items.get(1) {
                None => Zone::Utc,
                Some(Value::String(tz)) => match tz.as_ref() {
                    "" | "UTC" => Zone::Utc,
                    "Local" => Zone::Local,
                    name => Zone::Named(name.parse().ok()?),
                },
                Some(_) => return None,
            };
            if items.len() > 2 && !matches!(items.get(2), Some(Value::String(_))) {
                return None;
            }
            Some((ns, zone))
        }
        _ => None,
    }
}

/// An integer operand (OPA's `IntOperand`: written without a fraction).
fn int_operand(v: Option<&Value>) -> Option<i64> {
    match classify(v?)? {
        Num::Int(i) => Some(i),
        _ => None,
    }
}

/// Days from 1970-01-01 to `y-m-d` (proleptic Gregorian; `m` in 1..=12).
fn days_from_civil(y: i128, m: i128, d: i128) -> i128 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number from 1970-01-01: (year, month, day).
fn civil_from_days(z: i128) -> (i128, i128, i128) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i128::from(m <= 2), m, d)
}

/// Go's `t.AddDate(years, months, days)` for `t` = `ns` in `zone`, as
/// nanoseconds; `None` outside the int64 range.
fn add_date(ns: i64, zone: Zone, years: i64, months: i64, days: i64) -> Option<i64> {
    let ns = i128::from(ns);
    let (secs, nsec) = (ns.div_euclid(NS_PER_SEC), ns.rem_euclid(NS_PER_SEC));
    let local = secs + i128::from(zone.offset_at(i64::try_from(secs).ok()?)?);
    let (day_num, tod) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(day_num);
    // Go's Date: months overflow into years, days into months.
    let m0 = m - 1 + i128::from(months);
    let y = y + i128::from(years) + m0.div_euclid(12);
    let m = m0.rem_euclid(12) + 1;
    let day_num = days_from_civil(y, m, 1) + d - 1 + i128::from(days);
    let local = day_num.checked_mul(86_400)?.checked_add(tod)?;
    // Roughly beyond the int64 nanoseconds range: no zone lookup needed.
    if local.abs() > 10_000_000_000_000 {
        return None;
    }
    // Go: the offset in force at the local time read as UTC, unless the
    // UTC time that gives falls in another zone period.
    let guess = zone.offset_at(i64::try_from(local).ok()?)?;
    let offset = zone.offset_at(i64::try_from(local - i128::from(guess)).ok()?)?;
    let unix = local - i128::from(offset);
    i64::try_from(unix.checked_mul(NS_PER_SEC)?.checked_add(nsec)?).ok()
}

/// `time.add_date(ns, years, months, days)`.
pub(super) fn time_add_date(args: &[Value]) -> Value {
    let Some((ns, zone)) = args.first().and_then(tz_time) else {
        return Value::Undefined;
    };
    let (Some(years), Some(months), Some(days)) = (
        int_operand(args.get(1)),
        int_operand(args.get(2)),
        int_operand(args.get(3)),
    ) else {
        return Value::Undefined;
    };
    match add_date(ns, zone, years, months, days) {
        Some(t) => Value::from(t),
        None => Value::Undefined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
    }

    fn add(t: &str, y: i64, m: i64, d: i64) -> Value {
        time_add_date(&[
            Value::from(ns(t)),
            Value::from(y),
            Value::from(m),
            Value::from(d),
        ])
    }

    fn at(t: &str) -> Value {
        Value::from(ns(t))
    }

    #[test]
    fn normalises_like_go() {
        // The compat case time_add_date_and_diff (OPA's recorded dates).
        assert_eq!(
            add("2026-01-31T08:15:30Z", 0, 1, 0),
            at("2026-03-03T08:15:30Z")
        );
        assert_eq!(
            add("2024-01-31T00:00:00Z", 0, 1, 0),
            at("2024-03-02T00:00:00Z")
        );
        assert_eq!(
            add("2024-02-29T00:00:00Z", 1, 0, 0),
            at("2025-03-01T00:00:00Z")
        );
        assert_eq!(
            add("2026-01-31T08:15:30Z", 0, 0, 45),
            at("2026-03-17T08:15:30Z")
        );
        // Negative and large steps, nanoseconds kept.
        assert_eq!(
            add("2024-03-31T12:00:00.123456789Z", 0, -1, 0),
            at("2024-03-02T12:00:00.123456789Z")
        );
        assert_eq!(
            add("2024-01-01T00:00:00Z", 0, -13, 0),
            at("2022-12-01T00:00:00Z")
        );
        assert_eq!(
            add("2024-01-01T00:00:00Z", 0, 0, -1),
            at("2023-12-31T00:00:00Z")
        );
        assert_eq!(
            add("2024-01-01T00:00:00Z", -1, 25, 400),
            at("2026-03-08T00:00:00Z")
        );
        assert_eq!(
            add("1969-12-31T23:59:59.5Z", 0, 0, 1),
            at("1970-01-01T23:59:59.5Z")
        );
    }

    #[test]
    fn in_a_time_zone() {
        // 2026-03-28 23:30 in Paris (UTC+1) plus a day: 2026-03-29 23:30,
        // after the switch to summer time (UTC+2).
        let t = Value::from(vec![
            at("2026-03-28T22:30:00Z"),
            Value::from("Europe/Paris"),
        ]);
        let r = time_add_date(&[t, Value::from(0), Value::from(0), Value::from(1)]);
        assert_eq!(r, at("2026-03-29T21:30:00Z"));
        // Into the hour that does not exist (02:30 on 2026-03-29), and into
        // the one that exists twice (02:30 on 2025-10-26): as OPA (Go).
        let t = Value::from(vec![
            at("2026-03-28T01:30:00Z"),
            Value::from("Europe/Paris"),
        ]);
        let r = time_add_date(&[t, Value::from(0), Value::from(0), Value::from(1)]);
        assert_eq!(r, at("2026-03-29T01:30:00Z"));
        let t = Value::from(vec![
            at("2025-10-25T00:30:00Z"),
            Value::from("Europe/Paris"),
        ]);
        let r = time_add_date(&[t, Value::from(0), Value::from(0), Value::from(1)]);
        assert_eq!(r, at("2025-10-26T01:30:00Z"));
        let t = Value::from(vec![
            at("2025-10-24T00:30:00Z"),
            Value::from("America/New_York"),
        ]);
        let r = time_add_date(&[t, Value::from(0), Value::from(0), Value::from(1)]);
        assert_eq!(r, at("2025-10-25T00:30:00Z"));
        // UTC by name, and a layout in third place.
        let t = Value::from(vec![
            at("2026-01-31T00:00:00Z"),
            Value::from("UTC"),
            Value::from("RFC3339"),
        ]);
        let r = time_add_date(&[t, Value::from(0), Value::from(1), Value::from(0)]);
        assert_eq!(r, at("2026-03-03T00:00:00Z"));
    }

    #[test]
    fn hostile_inputs_are_undefined() {
        let t = at("2026-01-31T00:00:00Z");
        let call = |args: &[Value]| time_add_date(args);
        assert_eq!(call(&[]), Value::Undefined);
        assert_eq!(
            call(&[
                Value::from("2026"),
                Value::from(0),
                Value::from(0),
                Value::from(0)
            ]),
            Value::Undefined
        );
        assert_eq!(
            call(&[t.clone(), Value::from(1.5), Value::from(0), Value::from(0)]),
            Value::Undefined
        );
        assert_eq!(
            call(&[t.clone(), Value::from("1"), Value::from(0), Value::from(0)]),
            Value::Undefined
        );
        // Out of the int64 nanoseconds range (OPA: "time outside of valid range").
        assert_eq!(
            call(&[t.clone(), Value::from(300), Value::from(0), Value::from(0)]),
            Value::Undefined
        );
        assert_eq!(
            call(&[
                t.clone(),
                Value::from(i64::MAX),
                Value::from(i64::MAX),
                Value::from(i64::MAX)
            ]),
            Value::Undefined
        );
        assert_eq!(
            call(&[
                t.clone(),
                Value::from(i64::MIN),
                Value::from(i64::MIN),
                Value::from(i64::MIN)
            ]),
            Value::Undefined
        );
        // Unknown zone, bad zone type.
        let bad = Value::from(vec![t.clone(), Value::from("Mars/Olympus")]);
        assert_eq!(
            call(&[bad, Value::from(0), Value::from(0), Value::from(0)]),
            Value::Undefined
        );
        let bad = Value::from(vec![t.clone(), Value::from(1)]);
        assert_eq!(
            call(&[bad, Value::from(0), Value::from(0), Value::from(0)]),
            Value::Undefined
        );
        assert_eq!(
            call(&[
                Value::new_array(),
                Value::from(0),
                Value::from(0),
                Value::from(0)
            ]),
            Value::Undefined
        );
    }

    #[test]
    fn civil_round_trips() {
        for z in [-1_000_000i128, -719_468, -1, 0, 1, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z, "{z}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
