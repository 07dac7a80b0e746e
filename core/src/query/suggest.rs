//! "Did you mean": the known name closest to a misspelt one, for error messages.

/// The known name most like `name` (Jaro-Winkler similarity at least 0.8), if any.
pub fn closest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// `"; did you mean `x`?"` when a known name is close, else nothing.
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    closest(name, known).map_or_else(String::new, |k| format!("; did you mean `{k}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let metrics = ["visitors", "visits", "pageviews", "bounce_rate"];
        assert_eq!(closest("vistors", metrics), Some("visitors"));
        assert_eq!(closest("pageview", metrics), Some("pageviews"));
        assert_eq!(closest("bouncerate", metrics), Some("bounce_rate"));
        assert_eq!(closest("revenue", metrics), None);
        assert_eq!(did_you_mean("zzz", metrics), "");
    }
}
