//! The query planner: which tier answers a query. Tier 1, the per-dimension rollups, answers
//! what it holds exactly (no filters, at most one dimension or prop and one time grouping, by hour
//! only for the totals and the exit pages; not `visits` by an event's page, name or hostname,
//! which count the visits that hold such events); everything else goes to tier 2, the columnar
//! segments (files beside the embedded store, S3 objects for the DynamoDB store).

use super::request::{Grouping, Metric, Query};
use serde::Serialize;
use tally_model::breakdown::Slot;

/// A tier of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Per-dimension rollups: time proportional to distinct values, not events.
    Rollups,
    /// Columnar segments of the events and visits: any filter and grouping (embedded store).
    Segments,
}

/// The tier that answers `query`.
pub fn plan(query: &Query) -> Tier {
    let fields: Vec<&Grouping> = query.groupings.iter().filter(|g| g.is_field()).collect();
    let times = query.groupings.len() - fields.len();
    // Hour rows exist for the total and the exit pages only (`Slot::keeps_hours`).
    let hours_held = match fields.first() {
        Some(Grouping::Dim(d) | Grouping::Name(d)) => Slot::Of(*d).keeps_hours(),
        Some(_) => false,
        None => true,
    };
    let by_hour = query.groupings.contains(&Grouping::Hour);
    // Visits by an event's own field are the visits that hold such events: the rollups count a
    // visit where it entered, so the segments (which keep each event's visit) answer.
    let visits_by_events = query.metrics.contains(&Metric::Visits)
        && fields.iter().any(|g| matches!(g, Grouping::Prop(_)) || matches!(g, Grouping::Dim(d) if d.is_event_own()));
    // What engagement events measured lives in the segments alone.
    let engagement = query.asks_engagement();
    if query.filters.is_empty()
        && query.seconds.is_none()
        && fields.len() <= 1
        && times <= 1
        && (hours_held || !by_hour)
        && !visits_by_events
        && !engagement
    {
        Tier::Rollups
    } else {
        Tier::Segments
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::QueryRequest;
    use jiff::tz::TimeZone;

    fn tier(json: &str) -> Tier {
        let request: QueryRequest = serde_json::from_str(json).expect("request");
        let now = "2026-11-28T12:00:00Z".parse().expect("now");
        plan(&Query::resolve(&request, &TimeZone::UTC, now).expect("valid"))
    }

    #[test]
    fn unfiltered_single_breakdowns_read_rollups() {
        let base = r#""site_id":"a.com","metrics":["visitors"],"date_range":"7d""#;
        assert_eq!(tier(&format!("{{{base}}}")), Tier::Rollups);
        assert_eq!(tier(&format!(r#"{{{base},"dimensions":["event:page","time:day"]}}"#)), Tier::Rollups);
        assert_eq!(tier(&format!(r#"{{{base},"dimensions":["event:page","time:hour"]}}"#)), Tier::Segments);
        assert_eq!(tier(&format!(r#"{{{base},"dimensions":["time:hour"]}}"#)), Tier::Rollups);
        assert_eq!(tier(&format!(r#"{{{base},"dimensions":["event:page","visit:country"]}}"#)), Tier::Segments);
        assert_eq!(tier(&format!(r#"{{{base},"dimensions":["event:page","time:week"]}}"#)), Tier::Rollups);
        assert_eq!(tier(&format!(r#"{{{base},"dimensions":["time:month"]}}"#)), Tier::Rollups);
        assert_eq!(tier(&format!(r#"{{{base},"filters":[["is","visit:country",["DE"]]]}}"#)), Tier::Segments);
        let visits = r#""site_id":"a.com","metrics":["visits"],"date_range":"7d""#;
        assert_eq!(tier(&format!(r#"{{{visits},"dimensions":["event:page"]}}"#)), Tier::Segments);
        assert_eq!(tier(&format!(r#"{{{visits},"dimensions":["visit:entry_page"]}}"#)), Tier::Rollups);
        assert_eq!(tier(&format!(r#"{{{base},"dimensions":["event:props:plan"]}}"#)), Tier::Rollups);
        assert_eq!(tier(&format!(r#"{{{base},"filters":[["is","event:props:plan",["pro"]]]}}"#)), Tier::Segments);
    }
}
