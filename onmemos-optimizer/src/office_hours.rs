//! Office hours: schedules that put workloads to sleep outside working hours and wake them up,
//! kube-green style, evaluated at an instant in the schedule's own time zone.
//!
//! A schedule is awake on its weekdays from `wake` to `sleep` local time (a `sleep` before
//! `wake` means the awake span crosses midnight and belongs to the day it started), except on
//! its excluded dates. Local times are resolved with the IANA database: a wall-clock time that a
//! spring-forward gap skips happens at the first instant after the gap; one that a fall-back
//! repeats happens at its first occurrence.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use onmemos_core::error::{Error, Result};
use onmemos_core::ports::optimizer::OfficeHoursSchedule;
use serde::{Deserialize, Serialize};

/// A schedule, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Its name.
    pub name: String,
    /// The workloads it scales.
    pub workloads: Vec<String>,
    weekdays: [bool; 7],
    wake: NaiveTime,
    sleep: NaiveTime,
    zone: Tz,
    exclusions: Vec<NaiveDate>,
    /// Replicas while asleep.
    pub sleep_replicas: u32,
}

/// What a schedule says at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Whether the workloads should be running.
    pub awake: bool,
    /// When that changes next (within the coming 14 days), if it does.
    pub next_change: Option<DateTime<Utc>>,
}

fn field(name: &str, index: Option<usize>, what: &str) -> String {
    match index {
        Some(i) => format!("schedules[{name}].{what}[{i}]"),
        None => format!("schedules[{name}].{what}"),
    }
}

fn parse_time(name: &str, what: &str, text: &str) -> Result<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| {
        Error::invalid(
            field(name, None, what),
            format!("`{text}` is not a time of day as HH:MM"),
        )
    })
}

impl Schedule {
    /// Parses a schedule from the policy; errors name the field.
    pub fn parse(s: &OfficeHoursSchedule) -> Result<Self> {
        let name = s.name.as_str();
        let mut weekdays = [false; 7];
        for (i, day) in s.weekdays.iter().enumerate() {
            let d: Weekday = day.parse().map_err(|_| {
                Error::invalid(
                    field(name, Some(i), "weekdays"),
                    format!("`{day}` is not a weekday (mon … sun)"),
                )
            })?;
            weekdays[d.num_days_from_monday() as usize] = true;
        }
        let zone: Tz = s.time_zone.parse().map_err(|_| {
            Error::invalid(
                field(name, None, "time_zone"),
                format!("`{}` is not an IANA time zone", s.time_zone),
            )
        })?;
        let wake = parse_time(name, "wake", &s.wake)?;
        let sleep = parse_time(name, "sleep", &s.sleep)?;
        if wake == sleep {
            return Err(Error::invalid(
                field(name, None, "sleep"),
                "sleep and wake are the same time",
            ));
        }
        let exclusions = s
            .exclusions
            .iter()
            .enumerate()
            .map(|(i, d)| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                    Error::invalid(
                        field(name, Some(i), "exclusions"),
                        format!("`{d}` is not a date as YYYY-MM-DD"),
                    )
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            name: s.name.clone(),
            workloads: s.workloads.clone(),
            weekdays,
            wake,
            sleep,
            zone,
            exclusions,
            sleep_replicas: s.sleep_replicas,
        })
    }

    /// The instant a local wall-clock time happens: the first occurrence when it is repeated,
    /// the end of the gap when it is skipped.
    fn instant(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let mut t = local;
        // A gap is at most a few hours; step a minute at a time to its end.
        for _ in 0..(24 * 60) {
            if let Some(dt) = self.zone.from_local_datetime(&t).earliest() {
                return dt.with_timezone(&Utc);
            }
            t += Duration::minutes(1);
        }
        self.zone.from_utc_datetime(&local).with_timezone(&Utc)
    }

    fn day_is_awake(&self, date: NaiveDate) -> bool {
        self.weekdays[date.weekday().num_days_from_monday() as usize]
            && !self.exclusions.contains(&date)
    }

    /// The awake span that starts on `date`, if that day is awake.
    fn span(&self, date: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.day_is_awake(date) {
            return None;
        }
        let start = self.instant(date.and_time(self.wake));
        let end_date = if self.sleep > self.wake {
            date
        } else {
            date.succ_opt()?
        };
        let end = self.instant(end_date.and_time(self.sleep));
        (end > start).then_some((start, end))
    }

    /// The schedule's state at `at`.
    pub fn state_at(&self, at: DateTime<Utc>) -> ScheduleState {
        let local_date = at.with_timezone(&self.zone).date_naive();
        let mut spans = Vec::new();
        let mut date = local_date - Duration::days(1);
        for _ in 0..16 {
            if let Some(span) = self.span(date) {
                spans.push(span);
            }
            date += Duration::days(1);
        }
        let awake = spans.iter().any(|(s, e)| *s <= at && at < *e);
        let next_change = if awake {
            // The end of the span we are in, unless the next one starts right then.
            let mut end = spans
                .iter()
                .filter(|(s, e)| *s <= at && at < *e)
                .map(|(_, e)| *e)
                .max();
            while let Some(e) = end {
                match spans.iter().find(|(s, e2)| *s <= e && e < *e2) {
                    Some((_, e2)) => end = Some(*e2),
                    None => break,
                }
            }
            end
        } else {
            spans.iter().map(|(s, _)| *s).filter(|s| *s > at).min()
        };
        ScheduleState { awake, next_change }
    }

    /// Hours asleep in the 30 days from `from`, for the saving estimate.
    pub fn asleep_hours(&self, from: DateTime<Utc>) -> f64 {
        let to = from + Duration::days(30);
        let last = to.with_timezone(&self.zone).date_naive();
        let mut date = from.with_timezone(&self.zone).date_naive() - Duration::days(1);
        let mut awake_secs = 0i64;
        while date <= last {
            if let Some((start, end)) = self.span(date) {
                let (s, e) = (start.max(from), end.min(to));
                if e > s {
                    awake_secs += (e - s).num_seconds();
                }
            }
            date += Duration::days(1);
        }
        (30.0 * 86_400.0 - awake_secs as f64) / 3600.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(zone: &str, days: &[&str], wake: &str, sleep: &str) -> Schedule {
        Schedule::parse(&OfficeHoursSchedule {
            name: "office".into(),
            workloads: vec!["Deployment/web".into()],
            weekdays: days.iter().map(|d| (*d).to_owned()).collect(),
            wake: wake.into(),
            sleep: sleep.into(),
            time_zone: zone.into(),
            exclusions: vec!["2026-12-25".into()],
            sleep_replicas: 0,
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    const WEEK: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

    #[test]
    fn paris_wakes_at_eight_local_on_both_sides_of_the_spring_change() {
        let s = schedule("Europe/Paris", &WEEK, "08:00", "19:00");
        // Friday 27 March 2026, UTC+1: 08:00 local is 07:00Z.
        let friday = s.state_at(utc("2026-03-27T06:30:00Z"));
        assert!(!friday.awake);
        assert_eq!(friday.next_change, Some(utc("2026-03-27T07:00:00Z")));
        // At 19:00 local (18:00Z) it sleeps until Monday 30 March, now UTC+2: 06:00Z.
        let evening = s.state_at(utc("2026-03-27T18:00:00Z"));
        assert!(!evening.awake);
        assert_eq!(evening.next_change, Some(utc("2026-03-30T06:00:00Z")));
        let monday = s.state_at(utc("2026-03-30T06:00:00Z"));
        assert!(monday.awake);
        assert_eq!(monday.next_change, Some(utc("2026-03-30T17:00:00Z")));
    }

    #[test]
    fn new_york_times_in_the_gap_and_in_the_repeated_hour() {
        let every = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        // 8 March 2026: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist and happens at
        // 03:00 EDT (07:00Z).
        let gap = schedule("America/New_York", &every, "02:30", "12:00");
        let before = gap.state_at(utc("2026-03-08T06:59:00Z"));
        assert!(!before.awake);
        assert_eq!(before.next_change, Some(utc("2026-03-08T07:00:00Z")));
        // 1 November 2026: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice, the
        // schedule takes the first (05:30Z, EDT).
        let repeated = schedule("America/New_York", &every, "01:30", "12:00");
        let state = repeated.state_at(utc("2026-11-01T05:00:00Z"));
        assert_eq!(state.next_change, Some(utc("2026-11-01T05:30:00Z")));
        assert!(repeated.state_at(utc("2026-11-01T06:00:00Z")).awake);
        // The day is 25 hours long: sleeping from 12:00 EST (17:00Z).
        assert_eq!(
            repeated.state_at(utc("2026-11-01T06:00:00Z")).next_change,
            Some(utc("2026-11-01T17:00:00Z"))
        );
    }

    #[test]
    fn spans_across_midnight_and_exclusions() {
        let night = schedule("Europe/Paris", &WEEK, "22:00", "06:00");
        // Monday 22:00 to Tuesday 06:00 local (UTC+1 in December).
        assert!(night.state_at(utc("2026-12-08T01:00:00Z")).awake);
        assert!(!night.state_at(utc("2026-12-08T05:30:00Z")).awake);
        // Friday's span runs into Saturday; Saturday's does not exist.
        assert!(night.state_at(utc("2026-12-12T03:00:00Z")).awake);
        assert!(!night.state_at(utc("2026-12-12T22:30:00Z")).awake);
        // Christmas (a Friday) is excluded.
        let day = schedule("Europe/Paris", &WEEK, "08:00", "19:00");
        assert!(!day.state_at(utc("2026-12-25T10:00:00Z")).awake);
        assert!(day.state_at(utc("2026-12-24T10:00:00Z")).awake);
    }

    #[test]
    fn asleep_hours_count_the_local_week() {
        // 30 days from Monday 1 June 2026 (no DST change, no exclusion): 22 weekdays of 11
        // awake hours each.
        let s = schedule("Europe/Paris", &WEEK, "08:00", "19:00");
        let hours = s.asleep_hours(utc("2026-05-31T22:00:00Z"));
        assert!((hours - (720.0 - 22.0 * 11.0)).abs() < 1e-9, "{hours}");
    }

    #[test]
    fn bad_schedules_name_the_field() {
        let base = OfficeHoursSchedule {
            name: "office".into(),
            workloads: vec![],
            weekdays: vec!["mon".into()],
            wake: "08:00".into(),
            sleep: "19:00".into(),
            time_zone: "Europe/Paris".into(),
            exclusions: vec![],
            sleep_replicas: 0,
        };
        let cases = [
            (
                OfficeHoursSchedule {
                    weekdays: vec!["mon".into(), "funday".into()],
                    ..base.clone()
                },
                "schedules[office].weekdays[1]",
            ),
            (
                OfficeHoursSchedule {
                    time_zone: "Mars/Olympus".into(),
                    ..base.clone()
                },
                "schedules[office].time_zone",
            ),
            (
                OfficeHoursSchedule {
                    wake: "8am".into(),
                    ..base.clone()
                },
                "schedules[office].wake",
            ),
            (
                OfficeHoursSchedule {
                    exclusions: vec!["25/12/2026".into()],
                    ..base.clone()
                },
                "schedules[office].exclusions[0]",
            ),
        ];
        for (schedule, field) in cases {
            let e = Schedule::parse(&schedule)
                .err()
                .unwrap_or_else(|| panic!("accepted {schedule:?}"));
            assert_eq!(e.field(), Some(field));
        }
    }
}
