//! The `_name` forms of the location dimensions: `visit:country_name` (the country's English
//! short name from ISO 3166-1, as the `rust_iso3166` crate has it, with the common short forms
//! below where ISO's is long), `visit:region_name` (the subdivision's name from ISO 3166-2, in the
//! form ISO lists it, often the local one: `Bayern`), `visit:city_name` (the city's name as stored,
//! which already is a name). Groupings and filters by them read the code's column and show or
//! compare the name; a code without a known name shows as the code itself.

use std::borrow::Cow;
use tally_model::dimension::Dimension;

/// The location dimensions that have a `_name` form.
pub const NAMED: [Dimension; 3] = [Dimension::Country, Dimension::Region, Dimension::City];

/// Where ISO 3166-1's name is long or formal, the short name people (and Plausible) use.
const SHORT_NAMES: [(&str, &str); 19] = [
    ("BO", "Bolivia"),
    ("CD", "DR Congo"),
    ("FM", "Micronesia"),
    ("GB", "United Kingdom"),
    ("IR", "Iran"),
    ("KP", "North Korea"),
    ("KR", "South Korea"),
    ("LA", "Laos"),
    ("MD", "Moldova"),
    ("NL", "Netherlands"),
    ("PS", "Palestine"),
    ("RU", "Russia"),
    ("SY", "Syria"),
    ("TW", "Taiwan"),
    ("TZ", "Tanzania"),
    ("US", "United States"),
    ("VE", "Venezuela"),
    ("VN", "Vietnam"),
    ("BN", "Brunei"),
];

/// The API name of a dimension's `_name` form (`visit:country_name`).
pub fn api_name(dimension: Dimension) -> String {
    format!("{}_name", dimension.name())
}

/// The dimension whose `_name` form `name` is, if it is one.
pub fn parse(name: &str) -> Option<Dimension> {
    let base = name.strip_suffix("_name")?;
    NAMED.into_iter().find(|d| d.name() == base)
}

/// How a stored value of `dimension` shows in its `_name` form.
pub fn display(dimension: Dimension, value: &str) -> Cow<'_, str> {
    let name = match dimension {
        Dimension::Country => SHORT_NAMES
            .iter()
            .find(|(code, _)| *code == value)
            .map(|(_, name)| *name)
            .or_else(|| rust_iso3166::from_alpha2(value).map(|c| c.name)),
        Dimension::Region => rust_iso3166::iso3166_2::from_code(value).map(|s| s.name),
        _ => None,
    };
    name.map_or(Cow::Borrowed(value), Cow::Borrowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_show_as_names() {
        assert_eq!(display(Dimension::Country, "DE"), "Germany");
        assert_eq!(display(Dimension::Country, "US"), "United States");
        assert_eq!(display(Dimension::Country, "IN"), "India");
        assert_eq!(display(Dimension::Region, "DE-BY"), "Bayern");
        assert_eq!(display(Dimension::City, "München"), "München");
        // Unknown codes and the empty value stay as they are.
        assert_eq!(display(Dimension::Country, "XX"), "XX");
        assert_eq!(display(Dimension::Country, ""), "");
        assert_eq!(parse("visit:country_name"), Some(Dimension::Country));
        assert_eq!(parse("visit:city_name"), Some(Dimension::City));
        assert_eq!(parse("visit:source_name"), None);
        assert_eq!(api_name(Dimension::Region), "visit:region_name");
    }
}
