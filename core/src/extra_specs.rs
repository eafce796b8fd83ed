//! Matching a volume type's extra specs against a backend's capabilities,
//! with the operators Cinder's volume types use: shared by the scheduler's
//! capabilities filter and the api's pool listing.

use serde_json::{Map, Value};

use crate::model::Metadata;

/// Whether the capability `cap` satisfies the extra-spec value `req`.
///
/// `req` is a plain value (text equality, or numeric equality when the
/// capability is a number), or an operator and its operand: `=` (number ≥),
/// `==`, `!=`, `>=`, `<=` (numbers), `s==`, `s!=`, `s<`, `s<=`, `s>`, `s>=`
/// (text), `<in>` (substring), `<is>` (boolean), or `<or> a <or> b` (any of).
/// As in Cinder, an operand is one word. JSON booleans read as `True`/`False`;
/// a list capability matches when any element does; null never matches.
pub fn matches(cap: &Value, req: &str) -> bool {
    match cap {
        Value::Array(items) => items.iter().any(|item| matches_one(item, req)),
        _ => matches_one(cap, req),
    }
}

/// A capability value as text, the way Cinder prints it.
pub fn as_text(cap: &Value) -> String {
    match cap {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

fn matches_one(cap: &Value, req: &str) -> bool {
    if cap.is_null() {
        return false;
    }
    let text = as_text(cap);
    let mut words = req.split_whitespace();
    let op = words.next().unwrap_or_default();
    if op == "<or>" {
        return req.split_whitespace().skip(1).step_by(2).any(|w| w == text);
    }
    let operand = words.next();
    match operate(cap, &text, op, operand.unwrap_or_default()) {
        Some(result) => operand.is_some() && result,
        None => plain(cap, &text, req),
    }
}

/// Applies operator `op`, or `None` when `op` is not an operator.
fn operate(cap: &Value, text: &str, op: &str, operand: &str) -> Option<bool> {
    Some(match op {
        "=" => numeric(text, operand, |c, r| c >= r),
        "==" => numeric(text, operand, |c, r| c == r),
        "!=" => numeric(text, operand, |c, r| c != r),
        ">=" => numeric(text, operand, |c, r| c >= r),
        "<=" => numeric(text, operand, |c, r| c <= r),
        "s==" => text == operand,
        "s!=" => text != operand,
        "s<" => text < operand,
        "s<=" => text <= operand,
        "s>" => text > operand,
        "s>=" => text >= operand,
        "<in>" => text.contains(operand),
        "<is>" => boolean(cap).is_some_and(|c| parse_bool(operand) == Some(c)),
        _ => return None,
    })
}

/// A value without operator: equal text, or equal numbers for a numeric capability.
fn plain(cap: &Value, text: &str, req: &str) -> bool {
    text == req || (cap.is_number() && numeric(text, req, |c, r| c == r))
}

fn numeric(cap: &str, req: &str, cmp: fn(f64, f64) -> bool) -> bool {
    match (cap.trim().parse::<f64>(), req.parse::<f64>()) {
        (Ok(c), Ok(r)) => cmp(c, r),
        _ => false,
    }
}

fn boolean(cap: &Value) -> Option<bool> {
    match cap {
        Value::Bool(b) => Some(*b),
        Value::String(s) => parse_bool(s),
        _ => None,
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// `Ok` when every extra spec that is unscoped or `capabilities:`-scoped
/// matches the capability at that `:`-separated path. Keys with any other
/// scope (`provisioning:`, `qos:`, vendor scopes) are not capabilities and
/// are left to whoever reads them.
pub fn capabilities_satisfy(
    caps: &Map<String, Value>,
    extra_specs: &Metadata,
) -> Result<(), String> {
    for (key, req) in extra_specs {
        let Some(path) = capability_path(key) else {
            continue;
        };
        match lookup(caps, &path) {
            None => {
                return Err(format!(
                    "the pool does not report {}, the type asks for '{req}'",
                    path.join(":")
                ))
            }
            Some(cap) if !matches(cap, req) => {
                return Err(format!(
                    "{} is '{}', the type asks for '{req}'",
                    path.join(":"),
                    as_text(cap)
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The capability path an extra-spec key names, or `None` for other scopes.
fn capability_path(key: &str) -> Option<Vec<&str>> {
    let mut parts: Vec<&str> = key.split(':').collect();
    match parts.as_slice() {
        [_] => Some(parts),
        ["capabilities", _, ..] => {
            parts.remove(0);
            Some(parts)
        }
        _ => None,
    }
}

fn lookup<'a>(caps: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(caps.get(*first)?, |value, key| value.get(*key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(cap: Value, req: &str) -> bool {
        matches(&cap, req)
    }

    #[test]
    fn plain_value_is_equality() {
        assert!(m(json!("lvm"), "lvm"));
        assert!(!m(json!("lvm"), "LVM"));
        assert!(m(json!("LVM iSCSI"), "LVM iSCSI"));
        assert!(m(json!(10), "10"));
        assert!(m(json!(10.0), "10"));
        assert!(!m(json!(10), "11"));
        assert!(m(json!(true), "True"));
        assert!(!m(json!("10"), "10.0"));
    }

    #[test]
    fn equals_sign_is_numeric_at_least() {
        assert!(m(json!(10), "= 10"));
        assert!(m(json!(11.5), "= 10"));
        assert!(!m(json!(9), "= 10"));
        assert!(m(json!("12"), "= 10"));
        assert!(!m(json!("many"), "= 10"));
    }

    #[test]
    fn numeric_comparisons() {
        assert!(m(json!(10), "== 10.0"));
        assert!(!m(json!(10), "== 11"));
        assert!(m(json!(10), "!= 11"));
        assert!(!m(json!(10), "!= 10"));
        assert!(m(json!(10), ">= 10"));
        assert!(!m(json!(9), ">= 10"));
        assert!(m(json!(10), "<= 10"));
        assert!(!m(json!(11), "<= 10"));
        assert!(!m(json!("x"), "<= 10"));
    }

    #[test]
    fn string_comparisons() {
        assert!(m(json!("abc"), "s== abc"));
        assert!(!m(json!("abc"), "s== abd"));
        assert!(m(json!("abc"), "s!= abd"));
        assert!(!m(json!("abc"), "s!= abc"));
        assert!(m(json!("abc"), "s< abd"));
        assert!(!m(json!("abd"), "s< abc"));
        assert!(m(json!("abc"), "s<= abc"));
        assert!(m(json!("abd"), "s> abc"));
        assert!(!m(json!("abc"), "s> abc"));
        assert!(m(json!("abc"), "s>= abc"));
        // Text order, not numeric order.
        assert!(m(json!(9), "s> 10"));
    }

    #[test]
    fn substring() {
        assert!(m(json!("gold silver"), "<in> silver"));
        assert!(!m(json!("gold"), "<in> bronze"));
    }

    #[test]
    fn boolean() {
        assert!(m(json!(true), "<is> True"));
        assert!(m(json!(true), "<is> true"));
        assert!(!m(json!(false), "<is> True"));
        assert!(m(json!(false), "<is> False"));
        assert!(m(json!("True"), "<is> True"));
        assert!(!m(json!(1), "<is> True"));
        assert!(!m(json!(true), "<is> yes"));
    }

    #[test]
    fn any_of() {
        assert!(m(json!("b"), "<or> a <or> b"));
        assert!(m(json!("a"), "<or> a"));
        assert!(!m(json!("c"), "<or> a <or> b"));
        assert!(!m(json!("<or>"), "<or> a <or> b"));
        assert!(m(json!(true), "<or> True <or> x"));
    }

    #[test]
    fn lists_null_and_missing_operands() {
        assert!(m(json!(["iSCSI", "FC"]), "FC"));
        assert!(!m(json!(["iSCSI", "FC"]), "NFS"));
        assert!(!m(Value::Null, "None"));
        // An operator without operand matches nothing.
        assert!(!m(json!("<is>"), "<is>"));
        assert!(!m(json!(10), "="));
    }
}
