//! Checks on request bodies. Every message names the field and says what is expected.

use scoria_core::model::Metadata;
use serde_json::{Map, Value};

use crate::http::fault::{bad_request, ApiError, ApiResult};

/// Longest name or description accepted.
pub const MAX_TEXT: usize = 255;

/// The object under `key` (e.g. `volume` in `{"volume": {…}}`).
pub fn object<'a>(
    body: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a Map<String, Value>, ApiError> {
    match body.get(key) {
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {other}. It must be an object."
        ))),
        None => Err(bad_request(format!(
            "Malformed request body: the body must contain '{key}'."
        ))),
    }
}

/// The single action of a `POST …/action` body and its argument.
pub fn single_action(body: &Map<String, Value>) -> ApiResult<(&str, &Value)> {
    let mut entries = body.iter();
    match (entries.next(), entries.next()) {
        (Some((k, v)), None) => Ok((k.as_str(), v)),
        _ => Err(bad_request(
            "Malformed request body: an action body must have exactly one key, the action's name.",
        )),
    }
}

/// The 400 for an action the resource does not have.
pub fn no_such_action(name: &str) -> ApiError {
    bad_request(format!(
        "There is no such action: {name}. Verify the request body and Content-Type header and try again."
    ))
}

/// The argument object of action `name`.
pub fn action_args<'a>(name: &str, v: &'a Value) -> ApiResult<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| {
        bad_request(format!(
            "Invalid input received: the argument of {name} must be an object."
        ))
    })
}

/// The member `key` of action `name`'s argument, which it needs.
pub fn required<'a>(name: &str, m: &'a Map<String, Value>, key: &str) -> ApiResult<&'a Value> {
    m.get(key)
        .ok_or_else(|| bad_request(format!("Invalid input received: {name} needs '{key}'.")))
}

/// Fails when the body has keys outside `allowed`.
pub fn only_keys(m: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(bad_request(format!(
            "Additional properties are not allowed ('{k}' was unexpected)."
        ))),
        None => Ok(()),
    }
}

/// An optional string of at most `max` characters (null is absent).
pub fn opt_string(
    m: &Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(s)) => Err(bad_request(format!(
            "Invalid input for field/attribute {key}. It is {} characters long; at most {max} are allowed.",
            s.chars().count()
        ))),
        Some(other) => Err(bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {other}. It must be a string."
        ))),
    }
}

/// A positive integer number of GiB (JSON number or numeric string, as Cinder accepts).
pub fn size(key: &str, v: &Value) -> Result<i64, ApiError> {
    let parsed = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match parsed {
        Some(n) if n > 0 && n <= i32::MAX as i64 => Ok(n),
        _ => Err(bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {v}. {key} must be an integer between 1 and {}.",
            i32::MAX
        ))),
    }
}

/// A boolean given as JSON bool or one of Cinder's accepted strings.
pub fn boolean(key: &str, v: &Value) -> Result<bool, ApiError> {
    let parsed = match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => parse_bool(s),
        _ => None,
    };
    parsed.ok_or_else(|| {
        bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {v}. It must be a boolean."
        ))
    })
}

/// Cinder's list of boolean spellings.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// A metadata map: string keys of 1–255 characters, string values up to 255.
pub fn metadata(key: &str, v: &Value) -> Result<Metadata, ApiError> {
    let Value::Object(m) = v else {
        return Err(bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {v}. It must be an object of strings."
        )));
    };
    let mut out = Metadata::new();
    for (k, val) in m {
        if k.is_empty() || k.chars().count() > MAX_TEXT {
            return Err(bad_request(format!(
                "Invalid input for field/attribute {key}. Metadata keys must be 1 to {MAX_TEXT} characters long."
            )));
        }
        let Value::String(s) = val else {
            return Err(bad_request(format!(
                "Invalid input for field/attribute {key}. The value of '{k}' must be a string, not {val}."
            )));
        };
        if s.chars().count() > MAX_TEXT {
            return Err(bad_request(format!(
                "Invalid input for field/attribute {key}. The value of '{k}' is longer than {MAX_TEXT} characters."
            )));
        }
        out.insert(k.clone(), s.clone());
    }
    Ok(out)
}

/// An optional UUID-shaped id; anything else is a 400 naming the field.
pub fn opt_id(m: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {other}. It must be a string id."
        ))),
    }
}

/// Parses a metadata filter sent as a Python dict literal (`{'k': 'v'}`) or JSON.
pub fn metadata_filter(text: &str) -> ApiResult<Vec<(String, String)>> {
    let as_json = text.replace('\'', "\"");
    let parsed: Map<String, Value> = serde_json::from_str(&as_json)
        .map_err(|_| bad_request(format!("Invalid input received: metadata filter '{text}' must be a dictionary such as {{'key': 'value'}}.")))?;
    Ok(parsed
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect())
}

/// A JSON value as Python's `repr` writes it: Cinder's validation messages
/// quote the values they refuse this way (`'abc'`, `{'k': 1}`, `True`).
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let quote = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::from(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
            out
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::String(k.clone())), py_repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// A JSON value as Python's `str` writes it: strings bare, the rest as
/// [`py_repr`].
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// The 400 of a body that fails Cinder's JSON schema, worded as Cinder words
/// it: the field (the last step of the path to the refused value), that
/// value, and why.
pub fn schema_error(field: &str, value: &Value, why: impl std::fmt::Display) -> ApiError {
    bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {}. {why}",
        py_str(value)
    ))
}

/// The schema message of a value that is not of JSON type `types` (e.g.
/// `'object'`, `'boolean', 'string'`).
pub fn not_of_type(v: &Value, types: &str) -> String {
    format!("{} is not of type {types}", py_repr(v))
}

/// Fails, as Cinder's schema does, when object `m` (the value of `field`)
/// has keys outside `allowed`.
pub fn no_other_properties(field: &str, m: &Map<String, Value>, allowed: &[&str]) -> ApiResult<()> {
    let extra: Vec<String> = m
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| py_repr(&Value::String(k.clone())))
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    let verb = if extra.len() == 1 { "was" } else { "were" };
    Err(schema_error(
        field,
        &Value::Object(m.clone()),
        format!(
            "Additional properties are not allowed ({} {verb} unexpected)",
            extra.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{metadata_filter, py_repr, py_str};

    #[test]
    fn python_renderings() {
        assert_eq!(py_repr(&json!("a'b")), "\"a'b\"");
        assert_eq!(
            py_repr(&json!({"k": [1, true, null]})),
            "{'k': [1, True, None]}"
        );
        assert_eq!(py_str(&json!("x")), "x");
        assert_eq!(py_str(&json!({})), "{}");
    }

    #[test]
    fn metadata_filter_forms() {
        let pair = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(metadata_filter("{'a': 'b'}").unwrap(), pair("a", "b"));
        assert_eq!(metadata_filter("{\"k\": \"v\"}").unwrap(), pair("k", "v"));
        assert!(metadata_filter("k=v").is_err());
    }
}
