//! The texts a policy is compiled from: `.rego` files, and `.json` /
//! `.yaml` / `.yml` data files (each an object, merged at the root of
//! `data`). Errors name the file.

use std::path::{Path, PathBuf};

use super::PolicyError;

/// The texts a policy is compiled from.
#[derive(Clone, Debug, Default)]
pub struct PolicySource {
    /// (display path, Rego text)
    pub policies: Vec<(String, String)>,
    /// (display path, value): each an object, merged at the root of `data`.
    pub data: Vec<(String, serde_json::Value)>,
}

impl PolicySource {
    /// Reads .rego files and .json/.yaml/.yml data files. Errors name the file.
    pub fn from_files(
        policy_files: &[PathBuf],
        data_files: &[PathBuf],
    ) -> Result<PolicySource, PolicyError> {
        let mut source = PolicySource::default();
        for p in policy_files {
            let text = std::fs::read_to_string(p).map_err(|e| PolicyError::Io {
                path: display(p),
                source: e,
            })?;
            source.policies.push((display(p), text));
        }
        for p in data_files {
            source.data.push((display(p), read_data_file(p)?));
        }
        Ok(source)
    }
}

pub(crate) fn display(p: &Path) -> String {
    p.display().to_string()
}

pub(crate) fn is_data_file(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("json" | "yaml" | "yml")
    )
}

/// A .json / .yaml / .yml data file: an object (an empty YAML file is `{}`).
pub(crate) fn read_data_file(p: &Path) -> Result<serde_json::Value, PolicyError> {
    let path = display(p);
    let text = std::fs::read_to_string(p).map_err(|e| PolicyError::Io {
        path: path.clone(),
        source: e,
    })?;
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let value: serde_json::Value = match ext.as_str() {
        "json" => serde_json::from_str(&text).map_err(|e| PolicyError::Data {
            path: path.clone(),
            message: format!("not valid JSON: {e}"),
        })?,
        "yaml" | "yml" => yaml_serde::from_str(&text).map_err(|e| PolicyError::Data {
            path: path.clone(),
            message: format!("not valid YAML: {e}"),
        })?,
        _ => {
            return Err(PolicyError::Data {
                path,
                message: "a data file must be .json, .yaml or .yml".into(),
            })
        }
    };
    match value {
        serde_json::Value::Object(_) => Ok(value),
        serde_json::Value::Null => Ok(serde_json::Value::Object(Default::default())),
        _ => Err(PolicyError::Data {
            path,
            message: "the data must be an object (it is merged at the root of `data`)".into(),
        }),
    }
}
