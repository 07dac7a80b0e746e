//! Custom-event props (`event:props:<name>`) as the two tiers keep them: in a segment row, an
//! event's whole prop set as one canonical JSON object; in the per-dimension rollups, one row per
//! (name, value), encoded so that a name's rows share a prefix.
//!
//! The rollups keep at most [`MAX_PROP_ROWS_PER_DAY`] distinct (name, value) rows per site and
//! local day. Past that, a name with a new value is marked overflowed for the day, and queries by
//! that name over that day are answered by the segments, which keep every event's props: no
//! value is ever folded into an "(other)" row.

/// Most distinct (name, value) prop rows the rollups keep per site and local day.
pub const MAX_PROP_ROWS_PER_DAY: u32 = 1_000;

/// The prop set of an event (sorted by name) as a segment row keeps it: a JSON object such as
/// `{"plan":"pro"}`, or `""` for an event without props.
pub fn set_text(props: &[(String, String)]) -> String {
    if props.is_empty() {
        return String::new();
    }
    let object: serde_json::Map<String, serde_json::Value> =
        props.iter().map(|(n, v)| (n.clone(), serde_json::Value::String(v.clone()))).collect();
    serde_json::Value::Object(object).to_string()
}

/// The value of prop `name` in a prop set written by [`set_text`], if it has one.
pub fn value_in(set: &str, name: &str) -> Option<String> {
    if set.is_empty() {
        return None;
    }
    let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(set).ok()?;
    parsed.get(name).and_then(|v| v.as_str()).map(str::to_owned)
}

/// The rollup row value of one prop: the name's length, `:`, the name, then the value, so the
/// rows of one name are exactly those starting with [`row_prefix`] of it.
pub fn row_value(name: &str, value: &str) -> String {
    format!("{}{value}", row_prefix(name))
}

/// The common start of the rollup row values of prop `name`.
pub fn row_prefix(name: &str) -> String {
    format!("{}:{name}", name.len())
}

/// The prop name of a rollup row value, if it is one.
pub fn row_name(row: &str) -> Option<&str> {
    let (len, rest) = row.split_once(':')?;
    rest.get(..len.parse::<usize>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sets_round_trip_and_rows_of_a_name_share_its_prefix() {
        let props = vec![("a:b".to_owned(), "x\"y".to_owned()), ("plan".to_owned(), "pro".to_owned())];
        let set = set_text(&props);
        assert_eq!(value_in(&set, "plan").as_deref(), Some("pro"));
        assert_eq!(value_in(&set, "a:b").as_deref(), Some("x\"y"));
        assert_eq!(value_in(&set, "none"), None);
        assert_eq!((set_text(&[]), value_in("", "plan")), (String::new(), None));
        assert_eq!(row_value("plan", "pro"), "4:planpro");
        assert_eq!(row_name("4:planpro"), Some("plan"));
    }

    proptest! {
        /// A name's prefix never matches a row of another name: `plan` is not `plans`.
        #[test]
        fn prefixes_separate_names(a in ".{0,6}", b in ".{0,6}", v in ".{0,6}") {
            let row = row_value(&b, &v);
            prop_assert_eq!(row.starts_with(&row_prefix(&a)) && row_name(&row) == Some(a.as_str()), a == b);
            prop_assert_eq!(row_name(&row), Some(b.as_str()));
        }
    }
}
