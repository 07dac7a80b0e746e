//! Stats API v2 filters: leaves `[operator, dimension, [values], {modifiers}]` combined with
//! `["and", [...]]`, `["or", [...]]` and `["not", filter]`, checked into a [`FilterExpr`] tree
//! and compiled into [`Matcher`]s (regular expressions built once per query, with bounded cost).

use super::exec::NOT_SET;
use super::limits::{MAX_FILTER_DEPTH, MAX_FILTER_VALUE_CHARS, MAX_FILTER_VALUES, MAX_FILTERS, MAX_REGEX_BYTES};
use super::request::QueryError;
use super::suggest::did_you_mean;
use regex::{Regex, RegexBuilder};
use serde_json::Value;
use tally_model::dimension::Dimension;
use tally_model::limits::MAX_PROP_NAME_CHARS;

/// The API names of custom props start with this.
pub const PROP_PREFIX: &str = "event:props:";
/// The value a prop filter sees for an event without the prop (as Plausible names it).
pub const NO_PROP: &str = "(none)";

/// What a filter compares: a dimension, or a custom prop by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    /// A dimension.
    Dim(Dimension),
    /// A location dimension's `_name` form ([`super::place_names`]): the dimension's values,
    /// compared by name.
    Name(Dimension),
    /// `event:props:<name>`; an event without the prop has the value [`NO_PROP`].
    Prop(String),
    /// `event:goal`: a goal's name (expanded by [`super::goals`] before the executors).
    Goal,
    /// A scroll goal's threshold (never in a request: [`super::goals`] writes it): an engagement
    /// row passes when its scroll depth is at least the filter's one value, a percentage.
    ScrollDepth,
}

impl Field {
    /// Whether it is an event's own field (page, name, hostname, a prop, a goal) rather than its
    /// visit's.
    pub fn is_event_own(&self) -> bool {
        match self {
            Field::Dim(d) => d.is_event_own(),
            Field::Name(_) => false,
            Field::Prop(_) | Field::Goal | Field::ScrollDepth => true,
        }
    }

    /// Its API name.
    pub fn name(&self) -> String {
        match self {
            Field::Goal => "event:goal".to_owned(),
            Field::ScrollDepth => "scroll_depth".to_owned(),
            Field::Dim(d) => d.name().to_owned(),
            Field::Name(d) => super::place_names::api_name(*d),
            Field::Prop(name) => format!("{PROP_PREFIX}{name}"),
        }
    }
}

/// A filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// The value is one of the given ones.
    Is,
    /// The value is none of the given ones.
    IsNot,
    /// The value contains one of the given substrings.
    Contains,
    /// The value contains none of the given substrings.
    ContainsNot,
    /// The value matches one of the given regular expressions (anywhere in it, as Plausible's
    /// `matches` does; anchor with `^` and `$`).
    Matches,
    /// The value matches none of the given regular expressions.
    MatchesNot,
}

impl Op {
    const ALL: [(Op, &'static str); 6] = [
        (Op::Is, "is"),
        (Op::IsNot, "is_not"),
        (Op::Contains, "contains"),
        (Op::ContainsNot, "contains_not"),
        (Op::Matches, "matches"),
        (Op::MatchesNot, "matches_not"),
    ];

    fn parse(name: &str) -> Option<Op> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(op, _)| *op)
    }

    /// Whether it passes the values that do *not* match.
    fn negated(self) -> bool {
        matches!(self, Op::IsNot | Op::ContainsNot | Op::MatchesNot)
    }
}

/// One comparison.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Filter {
    /// How to compare.
    pub op: Op,
    /// What to compare.
    pub field: Field,
    /// The values (any one matches; for the negated operators, none may match).
    pub values: Vec<String>,
    /// Whether case matters (Plausible's `case_sensitive` modifier; default true).
    pub case_sensitive: bool,
}

/// Filters combined: the query's top-level list is combined with AND.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FilterExpr {
    /// One comparison.
    Leaf(Filter),
    /// Every one passes.
    And(Vec<FilterExpr>),
    /// At least one passes.
    Or(Vec<FilterExpr>),
    /// It does not pass.
    Not(Box<FilterExpr>),
    /// `["has_done", filter]` (or `has_not_done`, `negated`): the rows of visits that hold (or
    /// hold no) event passing `filter` in the range; `filter` compares event fields only.
    HasDone {
        /// The events to look for.
        inner: Box<FilterExpr>,
        /// `has_not_done`.
        negated: bool,
    },
}

impl FilterExpr {
    /// Its comparisons, depth first.
    pub fn leaves(&self) -> Vec<&Filter> {
        let mut out = Vec::new();
        self.collect_leaves(&mut out);
        out
    }

    fn collect_leaves<'a>(&'a self, out: &mut Vec<&'a Filter>) {
        match self {
            FilterExpr::Leaf(filter) => out.push(filter),
            FilterExpr::And(all) | FilterExpr::Or(all) => all.iter().for_each(|e| e.collect_leaves(out)),
            FilterExpr::Not(inner) | FilterExpr::HasDone { inner, .. } => inner.collect_leaves(out),
        }
    }

    /// Whether it compares an event's own field (page, name, hostname, a prop or a goal) other
    /// than inside `has_done`: then a visit is in when one of its events passes.
    pub fn reads_events(&self) -> bool {
        match self {
            FilterExpr::Leaf(filter) => filter.field.is_event_own(),
            FilterExpr::And(all) | FilterExpr::Or(all) => all.iter().any(FilterExpr::reads_events),
            FilterExpr::Not(inner) => inner.reads_events(),
            FilterExpr::HasDone { .. } => false,
        }
    }

    /// Whether a `has_done` or `has_not_done` is in it.
    pub fn has_done_inside(&self) -> bool {
        match self {
            FilterExpr::Leaf(_) => false,
            FilterExpr::And(all) | FilterExpr::Or(all) => all.iter().any(FilterExpr::has_done_inside),
            FilterExpr::Not(inner) => inner.has_done_inside(),
            FilterExpr::HasDone { .. } => true,
        }
    }

    /// The tree with each comparison compiled.
    pub fn compile(&self) -> Result<Compiled, QueryError> {
        Ok(match self {
            FilterExpr::Leaf(filter) => Compiled::Leaf(Matcher::new(filter)?),
            FilterExpr::And(all) => Compiled::And(all.iter().map(FilterExpr::compile).collect::<Result<_, _>>()?),
            FilterExpr::Or(any) => Compiled::Or(any.iter().map(FilterExpr::compile).collect::<Result<_, _>>()?),
            FilterExpr::Not(inner) => Compiled::Not(Box::new(inner.compile()?)),
            FilterExpr::HasDone { inner, negated } => {
                Compiled::HasDone { inner: Box::new(inner.compile()?), negated: *negated, visits: Default::default() }
            }
        })
    }
}

/// A [`FilterExpr`] with its comparisons compiled.
#[derive(Debug)]
pub enum Compiled {
    /// One comparison.
    Leaf(Matcher),
    /// Every one passes.
    And(Vec<Compiled>),
    /// At least one passes.
    Or(Vec<Compiled>),
    /// It does not pass.
    Not(Box<Compiled>),
    /// `has_done` / `has_not_done`: the visits whose events pass `inner`, found by the executor
    /// before its scan.
    HasDone {
        /// The events to look for.
        inner: Box<Compiled>,
        /// `has_not_done`.
        negated: bool,
        /// The ids of the visits with such an event (`tally_model::segment::visit_id`).
        visits: std::sync::OnceLock<std::collections::HashSet<u64>>,
    },
}

/// One comparison, ready to test values.
#[derive(Debug)]
pub struct Matcher {
    /// The comparison.
    pub filter: Filter,
    /// The values, lower-cased when case does not matter.
    needles: Vec<String>,
    /// For `matches` and `matches_not`: the expressions.
    regexes: Vec<Regex>,
}

impl Matcher {
    /// Compiles `filter`; a regular expression that is invalid or too large is a clear error.
    pub fn new(filter: &Filter) -> Result<Matcher, QueryError> {
        let fold = |v: &str| if filter.case_sensitive { v.to_owned() } else { v.to_lowercase() };
        let regexes = match filter.op {
            Op::Matches | Op::MatchesNot => filter
                .values
                .iter()
                .map(|pattern| {
                    RegexBuilder::new(pattern)
                        .case_insensitive(!filter.case_sensitive)
                        .size_limit(MAX_REGEX_BYTES)
                        .dfa_size_limit(MAX_REGEX_BYTES)
                        .build()
                        .map_err(|e| QueryError(format!("filter on `{}`: {}", filter.field.name(), regex_error(&e))))
                })
                .collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        Ok(Matcher { needles: filter.values.iter().map(|v| fold(v)).collect(), regexes, filter: filter.clone() })
    }

    /// Whether `value` passes.
    pub fn passes(&self, value: &str) -> bool {
        let folded;
        let value = if self.filter.case_sensitive {
            value
        } else {
            folded = value.to_lowercase();
            folded.as_str()
        };
        let hit = match self.filter.op {
            // `(not set)` stands for the empty value, as answers show it.
            Op::Is | Op::IsNot => self.needles.iter().any(|v| v == value || (value.is_empty() && v == NOT_SET)),
            Op::Contains | Op::ContainsNot => self.needles.iter().any(|v| value.contains(v.as_str())),
            Op::Matches | Op::MatchesNot => self.regexes.iter().any(|r| r.is_match(value)),
        };
        hit != self.filter.op.negated()
    }
}

fn regex_error(error: &regex::Error) -> String {
    match error {
        regex::Error::CompiledTooBig(limit) => {
            format!("the regular expression compiles to more than {limit} bytes; simplify it")
        }
        other => format!("not a valid regular expression: {}", other.to_string().lines().last().unwrap_or("")),
    }
}

/// A custom prop's name from its API name, checked.
pub fn prop_name(name: &str) -> Result<Option<String>, QueryError> {
    let Some(prop) = name.strip_prefix(PROP_PREFIX) else { return Ok(None) };
    if prop.is_empty() || prop.chars().count() > MAX_PROP_NAME_CHARS {
        return Err(QueryError(format!("a custom prop name is 1 to {MAX_PROP_NAME_CHARS} characters: `{name}`")));
    }
    if prop == "*" {
        return Err(QueryError(format!(
            "`{name}` names no prop: name one, as in `{PROP_PREFIX}plan` (every prop at once is not offered)"
        )));
    }
    Ok(Some(prop.to_owned()))
}

/// Parses the request's `filters` list: at most [`MAX_FILTERS`] comparisons in all, nested at
/// most [`MAX_FILTER_DEPTH`] deep, no comparison twice at the top level.
pub fn parse_filters(filters: &[Value]) -> Result<Vec<FilterExpr>, QueryError> {
    let parsed = filters.iter().map(|f| parse_expr(f, 1)).collect::<Result<Vec<_>, _>>()?;
    let leaves: usize = parsed.iter().map(|e| e.leaves().len()).sum();
    if leaves > MAX_FILTERS {
        return Err(QueryError(format!("at most {MAX_FILTERS} filters; got {leaves}")));
    }
    if let Some(twice) = parsed.iter().enumerate().find(|(i, f)| parsed[..*i].contains(f)) {
        return Err(QueryError(format!("filter {} is given twice", twice.0 + 1)));
    }
    for expr in &parsed {
        expr.compile()?;
    }
    Ok(parsed)
}

fn parse_expr(filter: &Value, depth: usize) -> Result<FilterExpr, QueryError> {
    let shape = || {
        QueryError(format!(
            "a filter is [operator, dimension, [values]] (with an optional {{\"case_sensitive\": false}}), \
             [\"and\" or \"or\", [filters]] or [\"not\", filter]; got {}",
            short(filter)
        ))
    };
    if depth > MAX_FILTER_DEPTH {
        return Err(QueryError(format!("filters nest at most {MAX_FILTER_DEPTH} deep")));
    }
    let parts = filter.as_array().ok_or_else(shape)?;
    match parts.as_slice() {
        [op, inner] if op == "has_done" || op == "has_not_done" => {
            let inner = parse_expr(inner, depth + 1)?;
            if let Some(leaf) = inner.leaves().into_iter().find(|f| !f.field.is_event_own()) {
                return Err(QueryError(format!(
                    "`{}` looks for events: its filter compares event:page, event:name, event:hostname, \
                     event:goal or event:props:*, not `{}`",
                    op.as_str().unwrap_or(""),
                    leaf.field.name()
                )));
            }
            if inner.has_done_inside() {
                return Err(QueryError("`has_done` and `has_not_done` do not nest".into()));
            }
            Ok(FilterExpr::HasDone { inner: Box::new(inner), negated: op == "has_not_done" })
        }
        [op, inner] if op == "and" || op == "or" => {
            let inner = inner.as_array().ok_or_else(shape)?;
            if inner.is_empty() {
                return Err(QueryError(format!("`{}` needs at least one filter", op.as_str().unwrap_or(""))));
            }
            let all = inner.iter().map(|f| parse_expr(f, depth + 1)).collect::<Result<Vec<_>, _>>()?;
            Ok(if op == "and" { FilterExpr::And(all) } else { FilterExpr::Or(all) })
        }
        [op, inner] if op == "not" => Ok(FilterExpr::Not(Box::new(parse_expr(inner, depth + 1)?))),
        [op, dimension, values] => parse_leaf(op, dimension, values, None).map(FilterExpr::Leaf),
        [op, dimension, values, modifiers] => parse_leaf(op, dimension, values, Some(modifiers)).map(FilterExpr::Leaf),
        _ => Err(shape()),
    }
}

fn parse_leaf(op: &Value, dimension: &Value, values: &Value, modifiers: Option<&Value>) -> Result<Filter, QueryError> {
    let names: Vec<&str> = Op::ALL.iter().map(|(_, n)| *n).collect();
    let op = op.as_str().and_then(Op::parse).ok_or_else(|| {
        let hint = op.as_str().map(|o| did_you_mean(o, names.iter().copied())).unwrap_or_default();
        QueryError(format!("unsupported filter operator {}{hint}: use {}, and, or or not", short(op), names.join(", ")))
    })?;
    let name =
        dimension.as_str().ok_or_else(|| QueryError(format!("a filter's dimension is a string; got {dimension}")))?;
    let field = match prop_name(name)? {
        _ if name == "event:goal" => Field::Goal,
        Some(prop) => Field::Prop(prop),
        None => match super::place_names::parse(name) {
            Some(dimension) => Field::Name(dimension),
            None => Field::Dim(Dimension::parse(name).ok_or_else(|| QueryError(format!("cannot filter by `{name}`")))?),
        },
    };
    let values =
        values.as_array().ok_or_else(|| QueryError(format!("a filter's values are a list; got {}", short(values))))?;
    if values.len() > MAX_FILTER_VALUES {
        return Err(QueryError(format!("a filter has at most {MAX_FILTER_VALUES} values; got {}", values.len())));
    }
    let values: Vec<String> = values
        .iter()
        .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| QueryError(format!("filter values are strings; got {v}"))))
        .collect::<Result<_, _>>()?;
    if values.iter().any(|v| v.chars().count() > MAX_FILTER_VALUE_CHARS) {
        return Err(QueryError(format!("a filter value has at most {MAX_FILTER_VALUE_CHARS} characters")));
    }
    let case_sensitive = match modifiers {
        None => true,
        Some(Value::Object(map)) => {
            if let Some(other) = map.keys().find(|k| *k != "case_sensitive") {
                return Err(QueryError(format!("unknown filter modifier `{other}`: only case_sensitive")));
            }
            match map.get("case_sensitive") {
                None => true,
                Some(Value::Bool(b)) => *b,
                Some(other) => return Err(QueryError(format!("case_sensitive is true or false; got {other}"))),
            }
        }
        Some(other) => return Err(QueryError(format!("filter modifiers are an object; got {}", short(other)))),
    };
    Ok(Filter { op, field, values, case_sensitive })
}

/// A value as it may appear in an error: at most 200 characters of its JSON.
fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn leaf(filter: Value) -> Matcher {
        match parse_filters(&[filter]).expect("parses").remove(0) {
            FilterExpr::Leaf(f) => Matcher::new(&f).expect("compiles"),
            other => panic!("not a leaf: {other:?}"),
        }
    }

    #[test]
    fn every_operator_with_and_without_case() {
        let page = |op: &str, v: &str| leaf(json!([op, "event:page", [v]]));
        assert!(page("is", "/a").passes("/a") && !page("is", "/a").passes("/A"));
        assert!(page("is_not", "/a").passes("/b") && !page("is_not", "/a").passes("/a"));
        assert!(page("contains", "blog").passes("/blog/x") && !page("contains", "blog").passes("/Blog"));
        assert!(page("contains_not", "blog").passes("/docs") && !page("contains_not", "blog").passes("/blog"));
        assert!(page("matches", "^/p/[0-9]+$").passes("/p/12") && !page("matches", "^/p/[0-9]+$").passes("/p/x"));
        assert!(page("matches", "log").passes("/blog"), "unanchored, as Plausible's");
        assert!(page("matches_not", "^/p/").passes("/q") && !page("matches_not", "^/p/").passes("/p/1"));
        let any_case = leaf(json!(["contains", "event:page", ["BLOG"], {"case_sensitive": false}]));
        assert!(any_case.passes("/blog/x") && any_case.passes("/Blog"));
        let regex_any_case = leaf(json!(["matches", "event:page", ["^/BLOG"], {"case_sensitive": false}]));
        assert!(regex_any_case.passes("/blog"));
        let not_set = leaf(json!(["is", "visit:city", ["(not set)"]]));
        assert!(not_set.passes("") && !not_set.passes("Berlin"), "(not set) is the empty value");
        let is_any_case = leaf(json!(["is_not", "visit:country", ["de"], {"case_sensitive": false}]));
        assert!(!is_any_case.passes("DE") && is_any_case.passes("FR"));
    }

    #[test]
    fn and_or_not_nest_and_count_every_comparison() {
        let parsed = parse_filters(&[json!([
            "or",
            [
                ["is", "visit:country", ["DE"]],
                ["and", [["is", "visit:country", ["FR"]], ["not", ["contains", "event:page", ["/admin"]]]]]
            ]
        ])])
        .expect("parses");
        assert_eq!(parsed[0].leaves().len(), 3);
        let too_many: Vec<Value> = (0..21).map(|i| json!(["is", "event:page", [format!("/{i}")]])).collect();
        let error = parse_filters(&[json!(["or", too_many])]).expect_err("21 comparisons");
        assert!(error.0.contains("at most 20 filters"), "{error}");
        let mut deep = json!(["is", "event:page", ["/"]]);
        for _ in 0..MAX_FILTER_DEPTH {
            deep = json!(["not", deep]);
        }
        assert!(parse_filters(&[deep]).expect_err("too deep").0.contains("nest at most"));
    }

    #[test]
    fn has_done_takes_event_filters_once() {
        let parsed = parse_filters(&[json!([
            "has_not_done",
            ["or", [["is", "event:name", ["Signup"]], ["contains", "event:page", ["/x"]]]]
        ])])
        .expect("parses");
        assert!(matches!(&parsed[0], FilterExpr::HasDone { negated: true, .. }));
        assert_eq!(parsed[0].leaves().len(), 2, "its comparisons count against the limit");
        assert!(!parsed[0].reads_events(), "a visit filter, not an event one");
        let error = |f: Value| parse_filters(&[f]).expect_err("refused").0;
        assert!(error(json!(["has_done", ["is", "visit:country", ["DE"]]])).contains("looks for events"));
        assert!(error(json!(["has_done", ["has_done", ["is", "event:page", ["/"]]]])).contains("do not nest"));
    }

    #[test]
    fn bad_filters_say_what_to_fix() {
        let error = |f: Value| parse_filters(&[f]).expect_err("refused").0;
        assert!(error(json!(["like", "event:page", ["/"]])).contains("unsupported filter operator"));
        assert!(error(json!(["matches", "event:page", ["("]])).contains("not a valid regular expression"));
        assert!(error(json!(["matches", "event:page", ["\\w{1000}\\w{1000}"]])).contains("simplify it"));
        assert!(error(json!(["is", "event:page", ["/"], {"case": false}])).contains("unknown filter modifier"));
        assert!(error(json!(["is", "event:page", ["/"], {"case_sensitive": "no"}])).contains("true or false"));
        assert!(error(json!(["and", []])).contains("at least one filter"));
        assert!(error(json!(["is", "visit:nope", ["/"]])).contains("cannot filter by"));
    }
}
