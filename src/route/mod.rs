//! Routing: which integrations an event goes to. Pure functions of (event, settings).
//!
//! An event matches an integration when its type (or the derived `call.unanswered`) is
//! subscribed, its owner passes the users / answer-groups filters, and every condition holds.
//! Operational events match on their type alone; the planner keeps each from the integration
//! it is about ([`crate::model::alert::subject`]).

mod plan;

pub use crate::model::condition::{Condition, Op};
pub use plan::plan;

use crate::model::event::{Event, EventKind, OwnerKind};
use crate::model::integration::{OwnerFilter, OwnerMode, ValidSpec};

/// The trigger under which `event` goes to an integration with `spec`, or `None`.
pub fn route(event: &Event, spec: &ValidSpec) -> Option<EventKind> {
    let s = &spec.spec;
    let trigger = if s.event_types.contains(&event.kind) {
        event.kind
    } else if event.is_unanswered_call() && s.event_types.contains(&EventKind::CallUnanswered) {
        EventKind::CallUnanswered
    } else {
        return None;
    };
    if !s.profile.accepts(event) {
        return None;
    }
    // Owner filters and conditions are about calls; an operational event has none to test.
    if event.kind.is_operational() {
        return Some(trigger);
    }
    let owner_ok = match event.owner() {
        Some((OwnerKind::User, id)) => accepts(&s.filters.users, id),
        Some((OwnerKind::AnswerGroup, id)) => accepts(&s.filters.answer_groups, id),
        // An event with no owner passes only integrations that do not filter by owner.
        None => {
            s.filters.users.mode == OwnerMode::All && s.filters.answer_groups.mode == OwnerMode::All
        }
    };
    if !owner_ok {
        return None;
    }
    s.filters
        .conditions
        .iter()
        .all(|c| c.matches(event))
        .then_some(trigger)
}

fn accepts(filter: &OwnerFilter, id: &str) -> bool {
    match filter.mode {
        OwnerMode::None => false,
        OwnerMode::All => true,
        OwnerMode::Specific => filter.lists(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::parse_event;
    use crate::model::integration::IntegrationSpec;
    use crate::model::settings::validate;
    use crate::security::ssrf::DestinationPolicy;
    use serde_json::{json, Value};

    fn spec(extra: Value) -> ValidSpec {
        let mut v = json!({"name": "n", "url": "https://crm.example.com/", "event_types": ["call.completed"]});
        if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in more {
                obj.insert(k.clone(), x.clone());
            }
        }
        let s: IntegrationSpec = serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"));
        validate(s, false, DestinationPolicy::default()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn cdr(data: Value) -> Event {
        parse_event(
            json!({"id": "e1", "type": "call.completed", "tenant_id": "t",
            "occurred_at": "2026-11-22T10:00:00Z", "call_id": "c1", "data": data}),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn unanswered_calls_match_the_derived_trigger() {
        let s = spec(json!({"event_types": ["call.unanswered"]}));
        assert_eq!(
            route(&cdr(json!({"answered": false})), &s),
            Some(EventKind::CallUnanswered)
        );
        assert_eq!(route(&cdr(json!({"answered": true})), &s), None);
        let both = spec(json!({"event_types": ["call.completed", "call.unanswered"]}));
        assert_eq!(
            route(&cdr(json!({"answered": false})), &both),
            Some(EventKind::CallCompleted)
        );
    }

    #[test]
    fn owner_filters_select_users_and_answer_groups() {
        let s = spec(json!({"filters": {"users": {"mode": "none"},
            "answer_groups": {"mode": "specific", "ids": ["ag-1"]}}}));
        let user = cdr(json!({"owner": {"kind": "user", "user_id": "u1"}}));
        let ag1 = cdr(json!({"owner": {"kind": "answer_group", "answer_group_id": "ag-1"}}));
        let ag2 = cdr(json!({"owner": {"kind": "answer_group", "answer_group_id": "ag-2"}}));
        assert_eq!(route(&user, &s), None);
        assert!(route(&ag1, &s).is_some());
        assert_eq!(route(&ag2, &s), None);
        assert_eq!(
            route(&cdr(json!({})), &s),
            None,
            "no owner: filtered integrations skip it"
        );
        assert!(route(&cdr(json!({})), &spec(json!({}))).is_some());
    }

    #[test]
    fn conditions_are_and_combined() {
        let s = spec(json!({"filters": {"conditions": [
            {"field": "scope", "op": "eq", "value": "external"},
            {"field": "did.number", "op": "eq", "value": "+441610000000"}]}}));
        let both = cdr(json!({"scope": "external", "did": {"number": "+441610000000"}}));
        let one = cdr(json!({"scope": "external", "did": {"number": "+441610000001"}}));
        assert!(route(&both, &s).is_some());
        assert_eq!(route(&one, &s), None);
    }
}
