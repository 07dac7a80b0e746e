//! Saved segments in filters: `["is", "segment", [id, …]]` stands for the saved filter lists of
//! those segments (any of them), `["is_not", "segment", […]]` for none of them, anywhere in a
//! filter tree. Expanded before the query is parsed, so a segment's filters obey every filter
//! limit of the query that names it.

use super::filter::parse_filters;
use super::request::QueryError;
use crate::registry::SavedSegment;
use serde_json::{Value, json};

/// `filters` with every segment reference replaced by the segments' filters.
pub fn expand(filters: &[Value], saved: &[SavedSegment]) -> Result<Vec<Value>, QueryError> {
    filters.iter().map(|f| expand_one(f, saved)).collect()
}

fn expand_one(filter: &Value, saved: &[SavedSegment]) -> Result<Value, QueryError> {
    let Some(parts) = filter.as_array() else { return Ok(filter.clone()) };
    match parts.as_slice() {
        [op, dimension, ids, ..] if dimension == "segment" => {
            let negated = match op.as_str() {
                Some("is") => false,
                Some("is_not") => true,
                _ => {
                    return Err(QueryError(format!(
                        "a segment filter is [\"is\" or \"is_not\", \"segment\", [ids]]; got {filter}"
                    )));
                }
            };
            let ids = ids.as_array().ok_or_else(|| QueryError(format!("segment ids are a list; got {ids}")))?;
            let mut any = Vec::new();
            for id in ids {
                let id = id.as_u64().or_else(|| id.as_str().and_then(|s| s.parse().ok()));
                let segment = id.and_then(|id| saved.iter().find(|s| u64::from(s.id) == id)).ok_or_else(|| {
                    QueryError(format!("no saved segment {} on this site", id.map_or("?".into(), |i| i.to_string())))
                })?;
                let filters: Vec<Value> = serde_json::from_str(&segment.filters)
                    .map_err(|e| QueryError(format!("saved segment {} is not valid JSON: {e}", segment.id)))?;
                any.push(json!(["and", filters]));
            }
            let any = json!(["or", any]);
            Ok(if negated { json!(["not", any]) } else { any })
        }
        [op, inner] if op == "not" => Ok(json!(["not", expand_one(inner, saved)?])),
        [op, inner] if op == "and" || op == "or" => {
            let list = inner.as_array().map(|l| l.iter().map(|f| expand_one(f, saved)).collect::<Result<Vec<_>, _>>());
            match list {
                Some(list) => Ok(json!([op, list?])),
                None => Ok(filter.clone()),
            }
        }
        _ => Ok(filter.clone()),
    }
}

/// Checks filters to save as a segment (valid, at least one, naming no segment) and returns them
/// as compact JSON.
pub fn check(filters: &str) -> Result<String, QueryError> {
    let list: Vec<Value> =
        serde_json::from_str(filters).map_err(|e| QueryError(format!("a segment's filters are a JSON list: {e}")))?;
    if list.is_empty() {
        return Err(QueryError("a segment needs at least one filter".into()));
    }
    if filters.contains("\"segment\"") {
        return Err(QueryError("a saved segment cannot name another segment".into()));
    }
    parse_filters(&list)?;
    serde_json::to_string(&list).map_err(|e| QueryError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_become_the_saved_filters() {
        let saved = vec![
            SavedSegment { id: 1, name: "Germans".into(), filters: r#"[["is","visit:country",["DE"]]]"#.into() },
            SavedSegment { id: 2, name: "Blog".into(), filters: r#"[["contains","event:page",["/blog"]]]"#.into() },
        ];
        let expanded = expand(&[json!(["is", "segment", [1, 2]]), json!(["is", "event:name", ["pageview"]])], &saved);
        assert_eq!(
            expanded.expect("expands"),
            vec![
                json!([
                    "or",
                    [["and", [["is", "visit:country", ["DE"]]]], ["and", [["contains", "event:page", ["/blog"]]]]]
                ]),
                json!(["is", "event:name", ["pageview"]]),
            ]
        );
        let negated = expand(&[json!(["not", ["is_not", "segment", ["1"]]])], &saved).expect("expands");
        assert_eq!(negated, vec![json!(["not", ["not", ["or", [["and", [["is", "visit:country", ["DE"]]]]]]]])]);
        assert!(expand(&[json!(["is", "segment", [3]])], &saved).is_err(), "unknown id");
        assert!(check(r#"[["is","visit:country",["DE"]]]"#).is_ok());
        assert!(check("[]").is_err() && check("nope").is_err() && check(r#"[["is","segment",[1]]]"#).is_err());
        assert!(check(r#"[["like","event:page",["/"]]]"#).is_err(), "checked as a query would be");
    }
}
