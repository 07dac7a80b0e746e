//! Goals of a site: adding one (or finding it, as Plausible's `PUT /api/v1/sites/goals` does),
//! and removing one by name. Goals are evaluated at query time over the stored events, so a goal
//! applies to all history as soon as it is saved.

use std::path::Path;

use super::atomic_write::{Outcome, update, update_if};
use super::sites::normalize;
use super::types::{Goal, RegistryError};

/// Longest event name or page path of a goal.
const MAX_GOAL_CHARS: usize = 300;
/// Most goals per site.
pub const MAX_GOALS: usize = 200;

/// Checks a goal's fields.
pub fn check(goal: &Goal) -> Result<(), RegistryError> {
    let bad = |why: String| Err(RegistryError::InvalidSetting(why));
    match goal {
        Goal::Event { event_name, .. }
            if event_name.trim().is_empty() || event_name.chars().count() > MAX_GOAL_CHARS =>
        {
            bad(format!("an event goal names an event of 1 to {MAX_GOAL_CHARS} characters"))
        }
        Goal::Event { currency: Some(code), .. } if tally_model::money::Currency::parse(code).is_none() => {
            bad(format!("a revenue goal's currency is an ISO 4217 code such as EUR; got `{code}`"))
        }
        Goal::Page { page_path } | Goal::Scroll { page_path, .. }
            if !page_path.starts_with('/') || page_path.chars().count() > MAX_GOAL_CHARS =>
        {
            bad(format!("a page goal's path starts with `/` and has at most {MAX_GOAL_CHARS} characters"))
        }
        Goal::Scroll { scroll_threshold, .. } if *scroll_threshold > 100 => {
            bad(format!("a scroll goal's threshold is a percentage from 0 to 100, not {scroll_threshold}"))
        }
        Goal::Event { event_name, .. } if event_name == tally_model::event::ENGAGEMENT => {
            bad("the event name `engagement` is the tracker's own (scroll depth, time on page): a goal of it would \
                 count nothing; use a scroll goal"
                .to_owned())
        }
        _ => Ok(()),
    }
}

/// Adds `goal` to `site` unless it has a goal of that name already; returns the goal (the one
/// it had, if any) and whether it is new.
pub fn add_goal(data_dir: &Path, site: &str, goal: Goal) -> Result<(Goal, bool), RegistryError> {
    check(&goal)?;
    let domain = normalize(site)?;
    update_if(data_dir, |file, _| {
        let record = file.site_mut(&domain)?;
        if let Some(had) = record.goals.iter().find(|g| g.name() == goal.name()) {
            return Ok(((had.clone(), false), Outcome::Unchanged));
        }
        if record.goals.len() >= MAX_GOALS {
            return Err(RegistryError::InvalidSetting(format!("a site has at most {MAX_GOALS} goals")));
        }
        record.goals.push(goal.clone());
        Ok(((goal, true), Outcome::Changed))
    })
}

/// Removes the goal named `name` (as answers name it) from `site`.
pub fn remove_goal(data_dir: &Path, site: &str, name: &str) -> Result<(), RegistryError> {
    let domain = normalize(site)?;
    update(data_dir, |file, _| {
        let record = file.site_mut(&domain)?;
        let before = record.goals.len();
        record.goals.retain(|g| g.name() != name);
        if record.goals.len() == before {
            return Err(RegistryError::InvalidSetting(format!("site {domain} has no goal named `{name}`")));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::test_support::TempDir;
    use crate::registry::{Registry, add_site};

    #[test]
    fn goals_are_added_once_listed_and_removed() {
        let dir = TempDir::new("goals");
        add_site(dir.path(), "a.com", None).expect("site");
        let signup = Goal::Event { event_name: "Signup".into(), currency: None };
        assert!(add_goal(dir.path(), "a.com", signup.clone()).expect("added").1);
        assert!(!add_goal(dir.path(), "a.com", signup.clone()).expect("found").1, "a second time finds it");
        let blog = Goal::Page { page_path: "/blog/**".into() };
        add_goal(dir.path(), "a.com", blog.clone()).expect("added");
        let registry = Registry::open(dir.path()).expect("opens");
        assert_eq!(registry.snapshot().site("a.com").expect("site").goals, vec![signup, blog]);
        remove_goal(dir.path(), "a.com", "Visit /blog/**").expect("removed");
        assert!(remove_goal(dir.path(), "a.com", "nope").is_err());
        assert!(add_goal(dir.path(), "a.com", Goal::Page { page_path: "blog".into() }).is_err());
        assert!(add_goal(dir.path(), "b.com", Goal::Event { event_name: "x".into(), currency: None }).is_err());
        // A revenue goal: a currency code; a goal of a name the site has is found, not added.
        let purchase = Goal::Event { event_name: "Purchase".into(), currency: Some("EUR".into()) };
        assert!(add_goal(dir.path(), "a.com", purchase.clone()).expect("added").1);
        let again = Goal::Event { event_name: "Purchase".into(), currency: None };
        assert_eq!(add_goal(dir.path(), "a.com", again).expect("found"), (purchase, false));
        let bad = Goal::Event { event_name: "Order".into(), currency: Some("euro".into()) };
        assert!(add_goal(dir.path(), "a.com", bad).is_err());
    }
}
