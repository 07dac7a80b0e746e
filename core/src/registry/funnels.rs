//! Funnels of a site: named sequences of 2 to 8 of its goals, saved (or replaced) and removed by
//! name. A funnel is evaluated at query time over the stored events (`query/funnel.rs`), so it
//! applies to all history as soon as it is saved.

use std::path::Path;

use super::atomic_write::update;
use super::sites::normalize;
use super::types::{Funnel, Goal, RegistryError};

/// Fewest steps of a funnel (as in Plausible).
pub const MIN_FUNNEL_STEPS: usize = 2;
/// Most steps of a funnel (as in Plausible).
pub const MAX_FUNNEL_STEPS: usize = 8;
/// Most funnels per site.
pub const MAX_FUNNELS: usize = 100;
/// Longest funnel name.
const MAX_NAME_CHARS: usize = 200;

/// The goals of a funnel's `steps` among a site's `goals` (of the site `domain`, named in
/// errors): 2 to 8 steps, each the name of one of the goals, none twice. Saved funnels are
/// checked so when saved, and every funnel when counted (a goal may have been removed since).
pub fn step_goals<'g>(steps: &[String], goals: &'g [Goal], domain: &str) -> Result<Vec<&'g Goal>, RegistryError> {
    let bad = |why: String| Err(RegistryError::InvalidSetting(why));
    if !(MIN_FUNNEL_STEPS..=MAX_FUNNEL_STEPS).contains(&steps.len()) {
        return bad(format!("a funnel has {MIN_FUNNEL_STEPS} to {MAX_FUNNEL_STEPS} steps, not {}", steps.len()));
    }
    let mut found = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        if steps[..i].contains(step) {
            return bad(format!("goal `{step}` is a step of this funnel twice"));
        }
        let Some(goal) = goals.iter().find(|g| g.name() == *step) else {
            let names: Vec<String> = goals.iter().map(Goal::name).collect();
            return bad(format!(
                "funnel step `{step}` is not a goal of {domain}; its goals are: {}",
                if names.is_empty() { "none yet".to_owned() } else { names.join(", ") }
            ));
        };
        found.push(goal);
    }
    Ok(found)
}

/// Saves `funnel` for `site`, replacing one of the same name; its steps are checked by
/// [`step_goals`]. Returns whether it replaced one.
pub fn save_funnel(data_dir: &Path, site: &str, funnel: Funnel) -> Result<bool, RegistryError> {
    let name = funnel.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(RegistryError::InvalidSetting(format!("a funnel's name has 1 to {MAX_NAME_CHARS} characters")));
    }
    let funnel = Funnel { name: name.to_owned(), ..funnel };
    let domain = normalize(site)?;
    update(data_dir, |file, _| {
        let record = file.site_mut(&domain)?;
        step_goals(&funnel.steps, &record.goals, &domain)?;
        if let Some(had) = record.funnels.iter_mut().find(|f| f.name == funnel.name) {
            *had = funnel.clone();
            return Ok(true);
        }
        if record.funnels.len() >= MAX_FUNNELS {
            return Err(RegistryError::InvalidSetting(format!("a site has at most {MAX_FUNNELS} funnels")));
        }
        record.funnels.push(funnel.clone());
        Ok(false)
    })
}

/// Removes the funnel named `name` from `site`.
pub fn remove_funnel(data_dir: &Path, site: &str, name: &str) -> Result<(), RegistryError> {
    let domain = normalize(site)?;
    update(data_dir, |file, _| {
        let record = file.site_mut(&domain)?;
        let before = record.funnels.len();
        record.funnels.retain(|f| f.name != name);
        if record.funnels.len() == before {
            return Err(RegistryError::InvalidSetting(format!("site {domain} has no funnel named `{name}`")));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::test_support::TempDir;
    use crate::registry::{Goal, Registry, add_goal, add_site};

    fn funnel(name: &str, steps: &[&str]) -> Funnel {
        Funnel { name: name.into(), steps: steps.iter().map(|s| (*s).to_owned()).collect(), strict_order: false }
    }

    #[test]
    fn funnels_are_saved_replaced_listed_and_removed() {
        let dir = TempDir::new("funnels");
        add_site(dir.path(), "a.com", None).expect("site");
        for goal in [
            Goal::Page { page_path: "/product/*".into() },
            Goal::Event { event_name: "Signup".into(), currency: None },
            Goal::Event { event_name: "Purchase".into(), currency: None },
        ] {
            add_goal(dir.path(), "a.com", goal).expect("goal");
        }
        let checkout = funnel("Checkout", &["Visit /product/*", "Signup"]);
        assert!(!save_funnel(dir.path(), "a.com", checkout).expect("saved"), "new");
        let longer = funnel("Checkout", &["Visit /product/*", "Signup", "Purchase"]);
        assert!(save_funnel(dir.path(), "a.com", longer.clone()).expect("saved"), "replaced");
        let registry = Registry::open(dir.path()).expect("opens");
        assert_eq!(registry.snapshot().site("a.com").expect("site").funnels, vec![longer]);

        let refused = |f: Funnel| save_funnel(dir.path(), "a.com", f).expect_err("refused").to_string();
        assert!(refused(funnel("One", &["Signup"])).contains("2 to 8 steps"));
        assert!(refused(funnel("Nine", &["Signup"; 9])).contains("2 to 8 steps"));
        assert!(refused(funnel("Twice", &["Signup", "Signup"])).contains("twice"));
        assert!(refused(funnel("Unknown", &["Signup", "Nope"])).contains("not a goal of a.com"));
        assert!(refused(funnel(" ", &["Signup", "Purchase"])).contains("name"));

        remove_funnel(dir.path(), "a.com", "Checkout").expect("removed");
        assert!(remove_funnel(dir.path(), "a.com", "Checkout").is_err());
    }
}
