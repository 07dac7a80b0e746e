//! The shared bad-input vectors (`vectors/bad_input.json`): loading them, their bodies and what
//! they predict. Used by the core's end-to-end tests and by the edge Worker's.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The shared vectors (the edge's tests read the same file).
const VECTORS: &str = include_str!("vectors/bad_input.json");

/// What a vector predicts.
#[derive(Debug)]
pub enum Expect {
    /// The body as a whole is refused: 4xx with `{"error": reason}`.
    Rejected { status: u16, error: String },
    /// 202 with these accepted and dropped events; `site_drops` are counted for the site.
    Accepted { accepted: u64, dropped: Vec<String>, site_drops: Vec<String> },
}

#[derive(Debug)]
pub struct Vector {
    pub name: String,
    pub about: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub expect: Expect,
}

fn str_of<'a>(v: &'a Value, key: &str, vector: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("vector {vector}: `{key}` is not a string"))
}

fn u64_of(v: &Value, key: &str, vector: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("vector {vector}: `{key}` is not a count"))
}

fn strings(v: &Value, vector: &str) -> Vec<String> {
    let items = v.as_array().unwrap_or_else(|| panic!("vector {vector}: expected a list of reasons, got {v}"));
    items.iter().map(|r| r.as_str().unwrap_or_else(|| panic!("vector {vector}: reason {r}")).to_owned()).collect()
}

/// The registered site and the vectors.
pub fn load() -> (String, Vec<Vector>) {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    let site = doc["site"].as_str().unwrap().to_owned();
    let defaults = doc["default_headers"].as_object().unwrap();
    let vectors = doc["vectors"].as_array().unwrap().iter().map(|v| vector(v, defaults)).collect();
    (site, vectors)
}

fn vector(v: &Value, defaults: &Map<String, Value>) -> Vector {
    let name = str_of(v, "name", "?").to_owned();
    let mut headers: BTreeMap<String, Value> = defaults.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(own) = v["headers"].as_object() {
        headers.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let headers = headers
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::Null => None,
            Value::String(s) => Some((k, s)),
            other => panic!("vector {name}: header {k} is {other}"),
        })
        .collect();
    let body = body_of(v, &name);
    let e = &v["expect"];
    let status = u16::try_from(u64_of(e, "status", &name)).unwrap();
    let expect = if status == 202 {
        Expect::Accepted {
            accepted: u64_of(e, "accepted", &name),
            dropped: strings(&e["dropped"], &name),
            site_drops: strings(&e["site_drops"], &name),
        }
    } else {
        Expect::Rejected { status, error: str_of(e, "error", &name).to_owned() }
    };
    let about = v["about"].as_str().unwrap_or_default().to_owned();
    Vector { name, about, headers, body, expect }
}

/// The body of a vector: `body`, `body_hex`, `body_json` or `body_gen`.
fn body_of(v: &Value, name: &str) -> Vec<u8> {
    if let Some(text) = v.get("body") {
        text.as_str().unwrap_or_else(|| panic!("vector {name}: body is not a string")).as_bytes().to_vec()
    } else if let Some(hex) = v.get("body_hex") {
        decode_hex(hex.as_str().unwrap_or_else(|| panic!("vector {name}: body_hex is not a string")))
    } else if let Some(json) = v.get("body_json") {
        json.to_string().into_bytes()
    } else if let Some(generator) = v.get("body_gen") {
        generate(generator, name)
    } else {
        panic!("vector {name} has no body")
    }
}

fn decode_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd hex length");
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

fn count_of(g: &Value, key: &str, name: &str) -> usize {
    usize::try_from(u64_of(g, key, name)).unwrap()
}

/// The generators described in the vectors file.
fn generate(g: &Value, name: &str) -> Vec<u8> {
    match str_of(g, "kind", name) {
        "pad" => {
            let mut body = g["json"].to_string().into_bytes();
            let size = count_of(g, "size", name);
            assert!(body.len() <= size, "vector {name}: its JSON is already longer than {size} bytes");
            body.resize(size, b' ');
            body
        }
        "nest" => {
            let depth = count_of(g, "depth", name);
            let (open, inner, close) = (str_of(g, "open", name), str_of(g, "inner", name), str_of(g, "close", name));
            format!("{}{inner}{}", open.repeat(depth), close.repeat(depth)).into_bytes()
        }
        "repeat" => Value::Array(vec![g["item"].clone(); count_of(g, "count", name)]).to_string().into_bytes(),
        "props" => {
            let (count, name_len, value_len) =
                (count_of(g, "count", name), count_of(g, "name_len", name), count_of(g, "value_len", name));
            let props: Map<String, Value> = (0..count)
                .map(|i| {
                    let mut key = format!("p{i}");
                    while key.chars().count() < name_len {
                        key.push('x');
                    }
                    (key, Value::String("v".repeat(value_len)))
                })
                .collect();
            let mut event = g["event"].clone();
            event["props"] = Value::Object(props);
            event.to_string().into_bytes()
        }
        "long_field" => {
            let mut value = str_of(g, "prefix", name).to_owned();
            let chars = count_of(g, "chars", name);
            while value.chars().count() < chars {
                value.push('x');
            }
            let mut event = g["event"].clone();
            event[str_of(g, "field", name)] = Value::String(value);
            event.to_string().into_bytes()
        }
        other => panic!("vector {name}: unknown generator {other}"),
    }
}

/// The body as text for a failure message: lossy, and cut if long.
pub fn show(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.chars().count() > 160 {
        format!("{}… ({} bytes)", text.chars().take(160).collect::<String>(), body.len())
    } else {
        format!("{text:?}")
    }
}
