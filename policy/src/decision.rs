//! From the query's value to what usher does, as opa-envoy-plugin maps it.
//!
//! - `true` / `false`: allow / deny (403).
//! - An object: `allowed` (boolean, required), `http_status` (number, for a
//!   deny; 403 when absent or invalid), `body` (string, for a deny),
//!   `headers` (object: name → string or array of strings; added to the
//!   request to the app when allowed, to the denied response otherwise),
//!   `response_headers_to_add` (same shape; added to the app's response),
//!   `request_headers_to_remove` (array of names). Other keys are ignored.
//! - Anything else fails closed: an undefined result, another type, a
//!   non-boolean `allowed`, malformed header names or values, an evaluation
//!   error or timeout all deny with 403, and say why in `reason` (for the
//!   log only: the client sees `http_status` and `body`).

use http::{HeaderName, HeaderValue};
use regorus::Value;

#[cfg(test)]
mod tests;

/// What the policy decided about one request.
#[derive(Clone, Debug)]
pub struct Decision {
    pub allowed: bool,
    /// For a deny: the policy's `http_status`, else 403. 200 when allowed.
    pub http_status: u16,
    /// For a deny: the policy's `body`.
    pub body: Option<String>,
    /// Allowed: add to the request to the app; denied: add to the denied response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Allowed: add to the app's response.
    pub response_headers_to_add: Vec<(HeaderName, HeaderValue)>,
    /// Allowed: remove from the request before it reaches the app.
    pub request_headers_to_remove: Vec<HeaderName>,
    /// Why it was denied (or what was ignored), for the log only.
    pub reason: Option<String>,
    /// Time to build the input and evaluate, in microseconds.
    pub eval_micros: u64,
}

impl Decision {
    /// A 403 deny with `reason` (for the log).
    pub fn deny(reason: impl Into<String>) -> Decision {
        Decision {
            allowed: false,
            http_status: 403,
            body: None,
            headers: Vec::new(),
            response_headers_to_add: Vec::new(),
            request_headers_to_remove: Vec::new(),
            reason: Some(reason.into()),
            eval_micros: 0,
        }
    }

    fn allow() -> Decision {
        Decision {
            allowed: true,
            http_status: 200,
            reason: None,
            ..Decision::deny("")
        }
    }

    /// The decision for the value the query produced.
    pub(crate) fn from_value(v: &Value) -> Decision {
        match v {
            Value::Bool(true) => Decision::allow(),
            Value::Bool(false) => Decision::deny("policy denied"),
            Value::Undefined => Decision::deny("undefined result"),
            Value::Object(_) => Decision::from_object(v),
            other => Decision::deny(format!(
                "the result is {}, not a boolean or an object",
                type_name(other)
            )),
        }
    }

    fn from_object(v: &Value) -> Decision {
        let allowed = match &v["allowed"] {
            Value::Bool(b) => *b,
            Value::Undefined => return Decision::deny("the decision object has no `allowed`"),
            _ => return Decision::deny("`allowed` is not a boolean"),
        };
        // Malformed headers fail closed even for an allow (opa-envoy-plugin
        // turns them into an error, which Envoy answers with a deny).
        let headers = match header_list(&v["headers"]) {
            Ok(h) => h,
            Err(e) => return Decision::deny(format!("invalid `headers`: {e}")),
        };
        let response_headers_to_add = match header_list(&v["response_headers_to_add"]) {
            Ok(h) => h,
            Err(e) => return Decision::deny(format!("invalid `response_headers_to_add`: {e}")),
        };
        let request_headers_to_remove = match name_list(&v["request_headers_to_remove"]) {
            Ok(h) => h,
            Err(e) => return Decision::deny(format!("invalid `request_headers_to_remove`: {e}")),
        };
        if allowed {
            return Decision {
                headers,
                response_headers_to_add,
                request_headers_to_remove,
                ..Decision::allow()
            };
        }

        let mut notes = vec!["policy denied".to_string()];
        let http_status = match &v["http_status"] {
            Value::Undefined => 403,
            Value::Number(n) => match n.as_u64().and_then(|c| u16::try_from(c).ok()) {
                Some(c) if n.is_integer() && (200..=599).contains(&c) => c,
                _ => {
                    notes.push(format!(
                        "invalid http_status {}: answered 403",
                        n.format_decimal()
                    ));
                    403
                }
            },
            other => {
                notes.push(format!(
                    "http_status is {}, not a number: answered 403",
                    type_name(other)
                ));
                403
            }
        };
        let body = match &v["body"] {
            Value::Undefined => None,
            Value::String(s) => Some(s.to_string()),
            other => {
                notes.push(format!(
                    "body is {}, not a string: ignored",
                    type_name(other)
                ));
                None
            }
        };
        Decision {
            allowed: false,
            http_status,
            body,
            headers,
            response_headers_to_add,
            request_headers_to_remove,
            reason: Some(notes.join("; ")),
            eval_micros: 0,
        }
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Set(_) => "a set",
        Value::Object(_) => "an object",
        Value::Undefined => "undefined",
    }
}

fn header_name(name: &Value) -> Result<HeaderName, String> {
    let Value::String(s) = name else {
        return Err(format!("a header name is {}", type_name(name)));
    };
    HeaderName::from_bytes(s.as_bytes()).map_err(|_| format!("{s:?} is not a valid header name"))
}

fn header_value(name: &HeaderName, v: &Value) -> Result<HeaderValue, String> {
    let Value::String(s) = v else {
        return Err(format!("a value of {name} is {}", type_name(v)));
    };
    HeaderValue::from_str(s).map_err(|_| format!("{s:?} is not a valid value for {name}"))
}

/// `{name: value | [values]}`, or an array of such objects; absent is empty.
fn header_list(v: &Value) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::new();
    let mut add_object = |o: &Value| -> Result<(), String> {
        let Value::Object(fields) = o else {
            return Err(format!("expected an object, got {}", type_name(o)));
        };
        for (k, val) in fields.iter() {
            let name = header_name(k)?;
            match val {
                Value::Array(items) => {
                    for item in items.iter() {
                        out.push((name.clone(), header_value(&name, item)?));
                    }
                }
                Value::Set(items) => {
                    for item in items.iter() {
                        out.push((name.clone(), header_value(&name, item)?));
                    }
                }
                single => out.push((name.clone(), header_value(&name, single)?)),
            }
        }
        Ok(())
    };
    match v {
        Value::Undefined => {}
        Value::Array(items) => {
            for item in items.iter() {
                add_object(item)?;
            }
        }
        other => add_object(other)?,
    }
    Ok(out)
}

/// An array (or set) of header names; absent is empty.
fn name_list(v: &Value) -> Result<Vec<HeaderName>, String> {
    match v {
        Value::Undefined => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(header_name).collect(),
        Value::Set(items) => items.iter().map(header_name).collect(),
        other => Err(format!(
            "expected an array of names, got {}",
            type_name(other)
        )),
    }
}
