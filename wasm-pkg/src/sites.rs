//! The registered sites: a list of domains, or a JavaScript predicate over site ids.

use js_sys::{Array, Function};
use std::cell::RefCell;
use std::collections::BTreeSet;
use tally_model::site::normalize_domain;
use wasm_bindgen::prelude::*;

/// Answers "is this site id registered?" for the model.
pub enum SiteCheck {
    /// Site ids, normalised as the model normalises the domains of events.
    List(BTreeSet<String>),
    /// A host function; the first exception it throws is kept and rethrown after ingest.
    Predicate(Function, RefCell<Option<JsValue>>),
}

impl SiteCheck {
    /// Reads a `string[]` (each normalised; an invalid domain is an error) or a function.
    pub fn read(value: &JsValue) -> Result<SiteCheck, JsError> {
        if let Some(function) = value.dyn_ref::<Function>() {
            return Ok(SiteCheck::Predicate(function.clone(), RefCell::new(None)));
        }
        let array = value.dyn_ref::<Array>().ok_or_else(|| JsError::new("`sites` must be a string[] or a function"))?;
        let site = |item: JsValue| {
            let raw = item.as_string().ok_or_else(|| JsError::new("`sites` must hold strings only"))?;
            normalize_domain(&raw).ok_or_else(|| JsError::new(&format!("`sites` holds an invalid domain: {raw:?}")))
        };
        array.iter().map(site).collect::<Result<_, _>>().map(SiteCheck::List)
    }

    /// Whether `site` (a normalised site id) is registered. A predicate that throws says no.
    pub fn contains(&self, site: &str) -> bool {
        match self {
            SiteCheck::List(sites) => sites.contains(site),
            SiteCheck::Predicate(function, error) => match function.call1(&JsValue::NULL, &JsValue::from_str(site)) {
                Ok(answer) => answer.is_truthy(),
                Err(thrown) => {
                    error.borrow_mut().get_or_insert(thrown);
                    false
                }
            },
        }
    }

    /// The first exception the predicate threw, if any: the host's error, not a verdict.
    pub fn thrown(self) -> Option<JsValue> {
        match self {
            SiteCheck::List(_) => None,
            SiteCheck::Predicate(_, error) => error.into_inner(),
        }
    }
}
