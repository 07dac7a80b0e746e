//! Small conversions between JavaScript values and Rust ones, shared by the exported functions.

use js_sys::{Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// Serialises a value into plain JavaScript: structs become objects, `None` becomes `null`,
/// 64- and 128-bit integers become `bigint`s and `serde_bytes` buffers `Uint8Array`s.
pub fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    let serializer = serde_wasm_bindgen::Serializer::new()
        .serialize_missing_as_null(true)
        .serialize_large_number_types_as_bigints(true);
    value.serialize(&serializer).map_err(|e| JsError::new(&format!("cannot build the result: {e}")))
}

/// The property `name` of `object` (`undefined` when absent).
pub fn property(object: &JsValue, name: &str) -> Result<JsValue, JsError> {
    if !object.is_object() {
        return Err(JsError::new(&format!("expected an object with `{name}`")));
    }
    Reflect::get(object, &JsValue::from_str(name)).map_err(|_| JsError::new(&format!("cannot read `{name}`")))
}

/// A required string property.
pub fn string(object: &JsValue, name: &str) -> Result<String, JsError> {
    property(object, name)?.as_string().ok_or_else(|| JsError::new(&format!("`{name}` must be a string")))
}

/// An optional string property: `null` and `undefined` are `None`.
pub fn optional_string(object: &JsValue, name: &str) -> Result<Option<String>, JsError> {
    let value = property(object, name)?;
    if value.is_null() || value.is_undefined() {
        return Ok(None);
    }
    value.as_string().map(Some).ok_or_else(|| JsError::new(&format!("`{name}` must be a string or null")))
}

/// The bytes of a `Uint8Array` value (a Node.js `Buffer` is one too).
pub fn bytes(value: &JsValue, name: &str) -> Result<Vec<u8>, JsError> {
    value
        .dyn_ref::<Uint8Array>()
        .map(Uint8Array::to_vec)
        .ok_or_else(|| JsError::new(&format!("`{name}` must be a Uint8Array")))
}

/// Exactly 16 bytes from a `Uint8Array` value.
pub fn bytes16(value: &JsValue, name: &str) -> Result<[u8; 16], JsError> {
    let bytes = bytes(value, name)?;
    <[u8; 16]>::try_from(bytes.as_slice())
        .map_err(|_| JsError::new(&format!("`{name}` must be 16 bytes, got {}", bytes.len())))
}
