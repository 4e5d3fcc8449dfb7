//! Form encoding of a JSON payload: bracketed keys (`cdr[cliNum]`), arrays indexed
//! (`cdr[recordingIds][0]`), `null` as an empty value. Used for `format: form` bodies and for
//! GET query strings.

use serde_json::{Map, Value};

pub fn encode(payload: &Map<String, Value>) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in payload {
        pairs(&mut ser, k.clone(), v);
    }
    ser.finish()
}

fn pairs(ser: &mut url::form_urlencoded::Serializer<'_, String>, key: String, v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                pairs(ser, format!("{key}[{k}]"), x);
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                pairs(ser, format!("{key}[{i}]"), x);
            }
        }
        Value::Null => {
            ser.append_pair(&key, "");
        }
        Value::String(s) => {
            ser.append_pair(&key, s);
        }
        other => {
            ser.append_pair(&key, &other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_keys_are_bracketed_and_arrays_indexed() {
        let v = json!({"triggerId": "t", "cdr": {"cliNum": "+441610000000", "ans": 1,
            "recordingIds": ["a", "b"], "tags": {"Support": "stage 1"}, "cause": null}});
        let s = encode(v.as_object().unwrap_or(&Map::new()));
        assert_eq!(
            s,
            "triggerId=t&cdr%5BcliNum%5D=%2B441610000000&cdr%5Bans%5D=1&cdr%5BrecordingIds%5D%5B0%5D=a\
             &cdr%5BrecordingIds%5D%5B1%5D=b&cdr%5Btags%5D%5BSupport%5D=stage+1&cdr%5Bcause%5D="
        );
    }
}
