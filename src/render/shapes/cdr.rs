//! `cdr` (seed 002): `{"triggerId", "id", "tenantId", "cdr": {…}, "customData"}`.
//!
//! The record (`cdr`) is also, with `orgId`, the item of a `cdr-batch` window: both are declared
//! from one field list (`cdr_record!`), so that they cannot drift apart and the batch item needs
//! no `allOf` (a flattened record's `additionalProperties: false` would refuse `orgId`).
//!
//! In the record, `id`, `dType`, `sVer`, `hasRec`, `dir` and `type` are always present; every
//! other field is sometimes present: left out when the call record does not have it (or, for
//! the parties' numbers, when a privacy rule removes it). Durations are whole seconds, flags
//! 1/0; names, numbers and rating values are copied from the call record as the source sent
//! them (any JSON).

use serde_json::{Map, Value};

/// The `cdr` payload.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CdrPayload {
    /// The integration's id in GUID form. Always present.
    #[serde(rename = "triggerId")]
    pub trigger_id: String,
    /// The entity the event is about: the tenant's id. Always present.
    pub id: String,
    /// The tenant's id. Always present.
    #[serde(rename = "tenantId")]
    pub tenant_id: String,
    /// The call record. Always present.
    pub cdr: CdrRecord,
    /// The integration's `custom_data`. Sometimes present: only when the integration has some.
    #[serde(
        rename = "customData",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Object>)]
    pub custom_data: Option<Map<String, Value>>,
}

/// Declares a CDR record struct: the record's fields, then `$extra`.
macro_rules! cdr_record {
    ($(#[$meta:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// The event's call id.
            pub id: String,
            /// The record type: always `CloudSessionCdr`.
            #[serde(rename = "dType")]
            pub d_type: String,
            /// The record's schema version: always 1.
            #[serde(rename = "sVer")]
            pub s_ver: i64,
            /// The PBX's id (`pbx.id`).
            #[serde(rename = "pbxId", default, skip_serializing_if = "Option::is_none")]
            pub pbx_id: Option<String>,
            /// The PBX's name.
            #[serde(rename = "pbxName", default, skip_serializing_if = "Option::is_none")]
            pub pbx_name: Option<String>,
            /// The call's time zone (`timezone`), as the source named it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tz: Option<String>,
            /// When the call started, ISO 8601 with the source's offset.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub start: Option<String>,
            /// When it was answered, ISO 8601 with the source's offset.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub answer: Option<String>,
            /// When it ended, ISO 8601 with the source's offset.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub end: Option<String>,
            /// Start to end, whole seconds; absent unless both are known and in order.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub dur: Option<i64>,
            /// Ringing, whole seconds (`ring_ms` rounded half up).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub ring: Option<i64>,
            /// Talking, whole seconds.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub talk: Option<i64>,
            /// On hold, whole seconds.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub hold: Option<i64>,
            /// Parked, whole seconds.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub park: Option<i64>,
            /// 1 when the call was lost, else 0.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub lost: Option<i64>,
            /// 1 when it was lost while parked, else 0.
            #[serde(rename = "lostInPark", default, skip_serializing_if = "Option::is_none")]
            pub lost_in_park: Option<i64>,
            /// 1 when the caller abandoned it (`abandoned`), else 0.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub aban: Option<i64>,
            /// 1 when it was answered, else 0.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub ans: Option<i64>,
            /// 1 when it was a short call, else 0.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub short: Option<i64>,
            /// 1 when it went trunk to trunk, else 0.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub t2t: Option<i64>,
            /// 1 when the call has recordings, else 0. Always present.
            #[serde(rename = "hasRec")]
            pub has_rec: i64,
            /// 1 when the call was rated (`rating.rated`), else 0.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub rate: Option<i64>,
            /// The hang-up cause, as the source sent it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub cause: Option<Value>,
            /// Direction: 1 internal, 2 inbound, 3 outbound, 4 both, 0 unknown. Always
            /// present.
            pub dir: i64,
            /// Scope: 1 internal, 2 external, 0 unknown. Always present.
            #[serde(rename = "type")]
            pub kind: i64,
            /// The caller's number; a privacy rule can mask, truncate or remove it.
            #[serde(rename = "cliNum", default, skip_serializing_if = "Option::is_none")]
            pub cli_num: Option<Value>,
            /// The caller's name.
            #[serde(rename = "cliName", default, skip_serializing_if = "Option::is_none")]
            pub cli_name: Option<Value>,
            /// The caller's location.
            #[serde(rename = "cliLoc", default, skip_serializing_if = "Option::is_none")]
            pub cli_loc: Option<Value>,
            /// The caller's area.
            #[serde(rename = "cliArea", default, skip_serializing_if = "Option::is_none")]
            pub cli_area: Option<Value>,
            /// The caller's state.
            #[serde(rename = "cliState", default, skip_serializing_if = "Option::is_none")]
            pub cli_state: Option<Value>,
            /// The caller's country.
            #[serde(rename = "cliCtry", default, skip_serializing_if = "Option::is_none")]
            pub cli_ctry: Option<Value>,
            /// The number dialled (`did.number`).
            #[serde(rename = "ddiNum", default, skip_serializing_if = "Option::is_none")]
            pub ddi_num: Option<Value>,
            /// The dialled number's name.
            #[serde(rename = "ddiName", default, skip_serializing_if = "Option::is_none")]
            pub ddi_name: Option<Value>,
            /// First ringing device's number (`first_ringing.device.number`), privacy applied.
            #[serde(rename = "fRngDevNum", default, skip_serializing_if = "Option::is_none")]
            pub f_rng_dev_num: Option<Value>,
            /// First ringing device's name.
            #[serde(rename = "fRngDevName", default, skip_serializing_if = "Option::is_none")]
            pub f_rng_dev_name: Option<Value>,
            /// First ringing user's number (`first_ringing.user.number`), privacy applied.
            #[serde(rename = "fRngUsrNum", default, skip_serializing_if = "Option::is_none")]
            pub f_rng_usr_num: Option<Value>,
            /// First ringing user's name.
            #[serde(rename = "fRngUsrName", default, skip_serializing_if = "Option::is_none")]
            pub f_rng_usr_name: Option<Value>,
            /// First ringing agent's number (`first_ringing.agent.number`), privacy applied.
            #[serde(rename = "fRngAgtNum", default, skip_serializing_if = "Option::is_none")]
            pub f_rng_agt_num: Option<Value>,
            /// First ringing agent's name.
            #[serde(rename = "fRngAgtName", default, skip_serializing_if = "Option::is_none")]
            pub f_rng_agt_name: Option<Value>,
            /// Last ringing device's number (`last_ringing.device.number`), privacy applied.
            #[serde(rename = "lRngDevNum", default, skip_serializing_if = "Option::is_none")]
            pub l_rng_dev_num: Option<Value>,
            /// Last ringing device's name.
            #[serde(rename = "lRngDevName", default, skip_serializing_if = "Option::is_none")]
            pub l_rng_dev_name: Option<Value>,
            /// Last ringing user's number (`last_ringing.user.number`), privacy applied.
            #[serde(rename = "lRngUsrNum", default, skip_serializing_if = "Option::is_none")]
            pub l_rng_usr_num: Option<Value>,
            /// Last ringing user's name.
            #[serde(rename = "lRngUsrName", default, skip_serializing_if = "Option::is_none")]
            pub l_rng_usr_name: Option<Value>,
            /// Last ringing agent's number (`last_ringing.agent.number`), privacy applied.
            #[serde(rename = "lRngAgtNum", default, skip_serializing_if = "Option::is_none")]
            pub l_rng_agt_num: Option<Value>,
            /// Last ringing agent's name.
            #[serde(rename = "lRngAgtName", default, skip_serializing_if = "Option::is_none")]
            pub l_rng_agt_name: Option<Value>,
            /// Answering device's number (`answered_by.device.number`), privacy applied.
            #[serde(rename = "ansDevNum", default, skip_serializing_if = "Option::is_none")]
            pub ans_dev_num: Option<Value>,
            /// Answering device's name.
            #[serde(rename = "ansDevName", default, skip_serializing_if = "Option::is_none")]
            pub ans_dev_name: Option<Value>,
            /// Answering user's number (`answered_by.user.number`), privacy applied.
            #[serde(rename = "ansUsrNum", default, skip_serializing_if = "Option::is_none")]
            pub ans_usr_num: Option<Value>,
            /// Answering user's name.
            #[serde(rename = "ansUsrName", default, skip_serializing_if = "Option::is_none")]
            pub ans_usr_name: Option<Value>,
            /// Answering agent's number (`answered_by.agent.number`), privacy applied.
            #[serde(rename = "ansAgtNum", default, skip_serializing_if = "Option::is_none")]
            pub ans_agt_num: Option<Value>,
            /// Answering agent's name.
            #[serde(rename = "ansAgtName", default, skip_serializing_if = "Option::is_none")]
            pub ans_agt_name: Option<Value>,
            /// Last answering device's number (`last_answered_by.device.number`), privacy applied.
            #[serde(rename = "lAnsDevNum", default, skip_serializing_if = "Option::is_none")]
            pub l_ans_dev_num: Option<Value>,
            /// Last answering device's name.
            #[serde(rename = "lAnsDevName", default, skip_serializing_if = "Option::is_none")]
            pub l_ans_dev_name: Option<Value>,
            /// Last answering user's number (`last_answered_by.user.number`), privacy applied.
            #[serde(rename = "lAnsUsrNum", default, skip_serializing_if = "Option::is_none")]
            pub l_ans_usr_num: Option<Value>,
            /// Last answering user's name.
            #[serde(rename = "lAnsUsrName", default, skip_serializing_if = "Option::is_none")]
            pub l_ans_usr_name: Option<Value>,
            /// Last answering agent's number (`last_answered_by.agent.number`), privacy applied.
            #[serde(rename = "lAnsAgtNum", default, skip_serializing_if = "Option::is_none")]
            pub l_ans_agt_num: Option<Value>,
            /// Last answering agent's name.
            #[serde(rename = "lAnsAgtName", default, skip_serializing_if = "Option::is_none")]
            pub l_ans_agt_name: Option<Value>,
            /// The route's id.
            #[serde(rename = "rteID", default, skip_serializing_if = "Option::is_none")]
            pub rte_id: Option<Value>,
            /// The route's name.
            #[serde(rename = "rteName", default, skip_serializing_if = "Option::is_none")]
            pub rte_name: Option<Value>,
            /// The first ringing group's name.
            #[serde(rename = "fRngGroupName", default, skip_serializing_if = "Option::is_none")]
            pub f_rng_group_name: Option<Value>,
            /// The last ringing group's name.
            #[serde(rename = "lRngGroupName", default, skip_serializing_if = "Option::is_none")]
            pub l_rng_group_name: Option<Value>,
            /// The answering group's name.
            #[serde(rename = "ansGroupName", default, skip_serializing_if = "Option::is_none")]
            pub ans_group_name: Option<Value>,
            /// The call's cost (`rating.cost`).
            #[serde(rename = "rateCost", default, skip_serializing_if = "Option::is_none")]
            pub rate_cost: Option<Value>,
            /// The rating band.
            #[serde(rename = "rateBand", default, skip_serializing_if = "Option::is_none")]
            pub rate_band: Option<Value>,
            /// The rate's name.
            #[serde(rename = "rateName", default, skip_serializing_if = "Option::is_none")]
            pub rate_name: Option<Value>,
            /// The call's recording ids (`recording_ids`); present, maybe `[]`, when the source
            /// sent the list.
            #[serde(rename = "recordingIds", default, skip_serializing_if = "Option::is_none")]
            pub recording_ids: Option<Vec<String>>,
            /// Directory contacts matched to the call; present when the source sent the list.
            #[serde(rename = "directoryMatches", default, skip_serializing_if = "Option::is_none")]
            pub directory_matches: Option<Vec<super::cdr::CdrDirectoryMatch>>,
            /// The call's tags, as the source sent them.
            #[schema(value_type = Option<Object>)]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tags: Option<Map<String, Value>>,
            $($extra)*
        }
    };
}
pub(super) use cdr_record;

cdr_record! {
    /// Seed 002's CDR record, from a `call.completed` event's `data`.
    CdrRecord {}
}

/// A directory contact matched to the call; every field sometimes present.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CdrDirectoryMatch {
    /// The directory's name (`dir_name`).
    #[serde(rename = "dirName", default, skip_serializing_if = "Option::is_none")]
    pub dir_name: Option<Value>,
    /// The directory's id (`dir_id`).
    #[serde(rename = "dirId", default, skip_serializing_if = "Option::is_none")]
    pub dir_id: Option<Value>,
    /// The directory's type (`dir_type`).
    #[serde(rename = "dirType", default, skip_serializing_if = "Option::is_none")]
    pub dir_type: Option<Value>,
    /// The contact's id (`contact_id`).
    #[serde(rename = "contactId", default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<Value>,
    /// The contact's fields, renamed: only `title`, `fullName`, `companyName`, `jobTitle`,
    /// `phone1`–`phone4`, `email`, `crmId` and `field1`–`field10`, each when the source gave
    /// it. Present when the match has a `fields` object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub fields: Option<Map<String, Value>>,
}
