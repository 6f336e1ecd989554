//! `spec.backup.schedule`: cron expressions (pure). Five fields, minute hour day-of-month month
//! day-of-week, in UTC, with `*`, values, ranges `a-b`, steps `*/n` and `a-b/n`, and lists; as in
//! cron, when both day fields are restricted a day matching either is a fire day.

use jiff::civil::{Date, DateTime};
use jiff::{Timestamp, tz::TimeZone};

/// What the schedule asks of this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleStep {
    /// No schedule.
    Off,
    /// The schedule cannot be used; says why.
    Invalid(String),
    /// Nothing due. `last` is what the status should record (now, for a schedule seen for the
    /// first time: its first backup is its next fire time, not one at once).
    Wait {
        last: Timestamp,
        next: Option<Timestamp>,
    },
    /// A backup is due for the fire time `due`; fire times missed before it (the operator was
    /// down) are not made up, one backup covers them.
    Take {
        due: Timestamp,
        next: Option<Timestamp>,
    },
}

/// The step for a schedule whose last recorded fire time is `last`; `field` names it in errors.
pub fn schedule_step(
    field: &str,
    expression: Option<&str>,
    last: Option<Timestamp>,
    now: Timestamp,
) -> ScheduleStep {
    let Some(expression) = expression else {
        return ScheduleStep::Off;
    };
    let schedule = match Schedule::parse(expression) {
        Ok(schedule) => schedule,
        Err(why) => return ScheduleStep::Invalid(format!("{field}: {why}")),
    };
    let Some(last) = last else {
        return ScheduleStep::Wait {
            last: now,
            next: schedule.next_after(now),
        };
    };
    let mut due = None;
    let mut cursor = last;
    while let Some(next) = schedule.next_after(cursor) {
        if next > now {
            break;
        }
        due = Some(next);
        cursor = next;
    }
    match due {
        Some(due) => ScheduleStep::Take {
            due,
            next: schedule.next_after(due.max(now)),
        },
        None => ScheduleStep::Wait {
            last,
            next: schedule.next_after(last),
        },
    }
}

/// The name of the backup a schedule takes at `due`: `<cluster>-<yyyymmddhhmm>`, the same for
/// every round that sees it due, so it is created once.
pub fn scheduled_backup_name(cluster: &str, due: Timestamp) -> String {
    format!("{cluster}-{}", due.strftime("%Y%m%d%H%M"))
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: Vec<u8>,
    hours: Vec<u8>,
    days_of_month: Field,
    months: Vec<u8>,
    days_of_week: Field,
}

/// A day field, which matters for cron's either-day rule only when it is not `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    values: Vec<u8>,
    any: bool,
}

/// How far ahead the next fire time is looked for: a schedule such as `0 0 30 2 *` never fires.
const SEARCH_DAYS: i64 = 4 * 366 + 1;

impl Schedule {
    pub fn parse(expression: &str) -> Result<Self, String> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(format!(
                "a schedule has five fields (minute hour day-of-month month day-of-week), {expression:?} has {}",
                fields.len()
            ));
        };
        let days_of_week = field(dow, 0, 7, "day-of-week")?;
        Ok(Self {
            minutes: field(minute, 0, 59, "minute")?.values,
            hours: field(hour, 0, 23, "hour")?.values,
            days_of_month: field(dom, 1, 31, "day-of-month")?,
            months: field(month, 1, 12, "month")?.values,
            // 7 is Sunday too.
            days_of_week: Field {
                values: {
                    let mut days: Vec<u8> = days_of_week.values.iter().map(|d| d % 7).collect();
                    days.sort_unstable();
                    days.dedup();
                    days
                },
                any: days_of_week.any,
            },
        })
    }

    /// The first fire time strictly after `after`, if any within four years.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = after.to_zoned(TimeZone::UTC).datetime();
        let first_day = start.date();
        for offset in 0..SEARCH_DAYS {
            let day = first_day.checked_add(jiff::Span::new().days(offset)).ok()?;
            if !self.fires_on(day) {
                continue;
            }
            for &hour in &self.hours {
                for &minute in &self.minutes {
                    let at = DateTime::from_parts(
                        day,
                        jiff::civil::Time::new(hour as i8, minute as i8, 0, 0).ok()?,
                    );
                    if at > start {
                        return at.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp());
                    }
                }
            }
        }
        None
    }

    fn fires_on(&self, day: Date) -> bool {
        if !self.months.contains(&(day.month() as u8)) {
            return false;
        }
        let dom = self.days_of_month.values.contains(&(day.day() as u8));
        let dow = self
            .days_of_week
            .values
            .contains(&(day.weekday().to_sunday_zero_offset() as u8));
        match (self.days_of_month.any, self.days_of_week.any) {
            (true, true) => true,
            (false, true) => dom,
            (true, false) => dow,
            (false, false) => dom || dow,
        }
    }
}

fn field(text: &str, min: u8, max: u8, name: &str) -> Result<Field, String> {
    let bad = |why: &str| format!("the {name} field {text:?} {why}");
    let mut values = Vec::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u8 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| bad("has a step that is not a positive number"))?;
                (range, step)
            }
            None => (part, 1),
        };
        let number = |n: &str| -> Result<u8, String> {
            n.parse::<u8>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| bad(&format!("has {n:?}, not a number from {min} to {max}")))
        };
        let (low, high) = match range {
            "*" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if step > 1 => (number(range)?, max),
                None => {
                    let v = number(range)?;
                    (v, v)
                }
            },
        };
        if low > high {
            return Err(bad("has a range that runs backwards"));
        }
        values.extend((low..=high).step_by(step as usize));
    }
    values.sort_unstable();
    values.dedup();
    Ok(Field {
        values,
        any: text == "*",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn next_fire_times() {
        let cases = [
            (
                "every minute",
                "* * * * *",
                "2026-11-29T03:04:05Z",
                "2026-11-29T03:05:00Z",
            ),
            (
                "daily at 03:00, later today",
                "0 3 * * *",
                "2026-11-29T01:00:00Z",
                "2026-11-29T03:00:00Z",
            ),
            (
                "daily at 03:00, exactly then: the next day",
                "0 3 * * *",
                "2026-11-29T03:00:00Z",
                "2026-11-30T03:00:00Z",
            ),
            (
                "every 15 minutes",
                "*/15 * * * *",
                "2026-11-29T03:16:00Z",
                "2026-11-29T03:30:00Z",
            ),
            (
                "hourly across midnight",
                "5 * * * *",
                "2026-11-29T23:06:00Z",
                "2026-11-30T00:05:00Z",
            ),
            (
                "first of the month",
                "0 0 1 * *",
                "2026-11-29T00:00:00Z",
                "2026-12-01T00:00:00Z",
            ),
            (
                "Sundays (0), 2026-11-29 is one",
                "30 2 * * 0",
                "2026-11-28T00:00:00Z",
                "2026-11-29T02:30:00Z",
            ),
            (
                "Sunday as 7",
                "30 2 * * 7",
                "2026-11-28T00:00:00Z",
                "2026-11-29T02:30:00Z",
            ),
            (
                "weekdays",
                "0 9 * * 1-5",
                "2026-11-28T10:00:00Z",
                "2026-11-30T09:00:00Z",
            ),
            (
                "either day field when both are set",
                "0 0 15 * 1",
                "2026-11-29T00:00:00Z",
                "2026-11-30T00:00:00Z",
            ),
            (
                "a list and a stepped range",
                "0,30 8-18/5 * * *",
                "2026-11-29T13:31:00Z",
                "2026-11-29T18:00:00Z",
            ),
            (
                "29 February, years ahead",
                "0 0 29 2 *",
                "2026-11-29T00:00:00Z",
                "2028-02-29T00:00:00Z",
            ),
        ];
        for (name, expression, after, expected) in cases {
            let schedule = Schedule::parse(expression).unwrap();
            assert_eq!(schedule.next_after(at(after)), Some(at(expected)), "{name}");
        }
    }

    #[test]
    fn steps() {
        let daily = Some("0 3 * * *");
        let cases = [
            (
                "no schedule",
                None,
                None,
                "2026-11-29T04:00:00Z",
                ScheduleStep::Off,
            ),
            (
                "first seen: wait for the next fire time, recording now",
                daily,
                None,
                "2026-11-29T04:00:00Z",
                ScheduleStep::Wait {
                    last: at("2026-11-29T04:00:00Z"),
                    next: Some(at("2026-11-30T03:00:00Z")),
                },
            ),
            (
                "not due yet",
                daily,
                Some("2026-11-29T03:00:00Z"),
                "2026-11-29T20:00:00Z",
                ScheduleStep::Wait {
                    last: at("2026-11-29T03:00:00Z"),
                    next: Some(at("2026-11-30T03:00:00Z")),
                },
            ),
            (
                "due",
                daily,
                Some("2026-11-29T03:00:00Z"),
                "2026-11-30T03:00:02Z",
                ScheduleStep::Take {
                    due: at("2026-11-30T03:00:00Z"),
                    next: Some(at("2026-12-01T03:00:00Z")),
                },
            ),
            (
                "three missed: one backup, for the latest",
                daily,
                Some("2026-11-26T03:00:00Z"),
                "2026-11-29T12:00:00Z",
                ScheduleStep::Take {
                    due: at("2026-11-29T03:00:00Z"),
                    next: Some(at("2026-11-30T03:00:00Z")),
                },
            ),
        ];
        for (name, expression, last, now, expected) in cases {
            assert_eq!(
                schedule_step("spec.backup.schedule", expression, last.map(at), at(now)),
                expected,
                "{name}"
            );
        }
        assert!(matches!(
            schedule_step(
                "spec.backup.schedule",
                Some("0 25 * * *"),
                None,
                at("2026-11-29T04:00:00Z")
            ),
            ScheduleStep::Invalid(why) if why.starts_with("spec.backup.schedule: the hour field")
        ));
    }

    #[test]
    fn a_scheduled_backup_is_named_after_its_cluster_and_fire_time() {
        assert_eq!(
            scheduled_backup_name("orders", at("2026-11-30T03:00:00Z")),
            "orders-202611300300"
        );
    }

    #[test]
    fn a_date_that_never_comes_has_no_next_time() {
        let schedule = Schedule::parse("0 0 30 2 *").unwrap();
        assert_eq!(schedule.next_after(at("2026-11-29T00:00:00Z")), None);
    }

    #[test]
    fn bad_schedules_say_which_field_and_why() {
        let cases = [
            ("0 3 * *", "five fields"),
            (
                "60 * * * *",
                "the minute field \"60\" has \"60\", not a number from 0 to 59",
            ),
            ("* 24 * * *", "the hour field"),
            ("* * 0 * *", "the day-of-month field"),
            ("* * * 13 *", "the month field"),
            ("* * * * 8", "the day-of-week field"),
            ("*/0 * * * *", "step that is not a positive number"),
            ("30-10 * * * *", "runs backwards"),
        ];
        for (expression, expected) in cases {
            let error = Schedule::parse(expression).unwrap_err();
            assert!(error.contains(expected), "{expression}: {error}");
        }
    }
}
