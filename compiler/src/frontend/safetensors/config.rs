//! `config.json` with typed, named access: every error names the field.
#![deny(clippy::indexing_slicing)]
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// A checkpoint's `config.json`.
#[derive(Debug, Clone)]
pub struct Config {
    fields: Map<String, Value>,
}

fn field_error(field: &str, reason: impl Into<String>) -> Error {
    Error::ConfigField {
        field: field.to_string(),
        reason: reason.into(),
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Config::parse(&text).map_err(|e| Error::InvalidModel(format!("`{}`: {e}", path.display())))
    }

    /// The JSON file `rel` of a checkpoint.
    pub fn read(src: super::Source<'_>, rel: &str) -> Result<Config> {
        let text = src.read_to_string(rel)?;
        Config::parse(&text)
            .map_err(|e| Error::InvalidModel(format!("`{}`: {e}", src.path(rel).display())))
    }

    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        match serde_json::from_str(text) {
            Ok(Value::Object(fields)) => Ok(Config { fields }),
            Ok(_) => Err("not a JSON object".into()),
            Err(e) => Err(format!("not JSON: {e}")),
        }
    }

    /// The raw value of a field; `null` counts as absent.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field).filter(|v| !v.is_null())
    }

    pub fn str(&self, field: &str) -> Result<String> {
        match self.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(field_error(field, "must be a string")),
            None => Err(field_error(field, "is missing")),
        }
    }

    pub fn str_or(&self, field: &str, default: &str) -> Result<String> {
        match self.get(field) {
            None => Ok(default.to_string()),
            Some(_) => self.str(field),
        }
    }

    pub fn usize(&self, field: &str) -> Result<usize> {
        match self.get(field) {
            Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                field_error(field, format!("must be a non-negative integer, got {v}"))
            }),
            None => Err(field_error(field, "is missing")),
        }
    }

    pub fn usize_or(&self, field: &str, default: usize) -> Result<usize> {
        match self.get(field) {
            None => Ok(default),
            Some(_) => self.usize(field),
        }
    }

    pub fn f64_or(&self, field: &str, default: f64) -> Result<f64> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| field_error(field, format!("must be a number, got {v}"))),
        }
    }

    pub fn bool_or(&self, field: &str, default: bool) -> Result<bool> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| field_error(field, format!("must be true or false, got {v}"))),
        }
    }

    /// An object-valued field as its own config (`rope_parameters`, `rope_scaling`).
    pub fn object(&self, field: &str) -> Result<Option<Config>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(fields)) => Ok(Some(Config {
                fields: fields.clone(),
            })),
            Some(v) => Err(field_error(field, format!("must be an object, got {v}"))),
        }
    }

    /// Refuse a field whose value changes the math unless it equals `neutral`.
    pub fn require(&self, field: &str, neutral: &Value, why: &str) -> Result<()> {
        match self.get(field) {
            Some(v) if v != neutral => Err(field_error(
                field,
                format!("{v} is not supported ({why}); only {neutral} is"),
            )),
            _ => Ok(()),
        }
    }

    /// An error about `field` for a builder to return.
    pub fn error(&self, field: &str, reason: impl Into<String>) -> Error {
        field_error(field, reason)
    }
}
