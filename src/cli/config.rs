//! `--config FILE`: the same options as the flags, in TOML, for runbooks and pipelines.
//!
//! Precedence, highest first: a flag on the command line, an `RDS_TABLE_RESTORE_*` variable, the
//! config file, the built-in default. The file is applied by setting the variable of each key
//! that is not already set, before the command line is parsed, so clap's own flag-over-env rule
//! does the rest and every option works in the file without a list kept by hand.

use std::path::Path;

use crate::error::{Error, Result};

pub const ENV_PREFIX: &str = "RDS_TABLE_RESTORE_";

/// The config file named by `--config FILE`, `--config=FILE` or `RDS_TABLE_RESTORE_CONFIG`.
pub fn config_path(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().cloned();
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(p.to_string());
        }
    }
    std::env::var(format!("{ENV_PREFIX}CONFIG")).ok()
}

/// The variables a file's keys set: `client-cidr = "..."` (or `client_cidr`) becomes
/// `RDS_TABLE_RESTORE_CLIENT_CIDR`. `known` is every variable the command line reads; any other
/// key is refused by name, since a typo would otherwise be silently ignored.
pub fn variables(text: &str, known: &[String]) -> Result<Vec<(String, String)>> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| Error::InvalidInput(format!("the config file is not valid TOML: {e}")))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let var = format!("{ENV_PREFIX}{}", key.replace('-', "_").to_ascii_uppercase());
        if var.ends_with("_PASSWORD") || !known.contains(&var) || var == format!("{ENV_PREFIX}CONFIG") {
            let hint = if var.ends_with("_PASSWORD") {
                "passwords do not belong in config files: use db-password-file, db-secret-arn or iam-auth"
            } else {
                "it is not an option of this tool (options are the long flags, e.g. client-cidr)"
            };
            return Err(Error::InvalidInput(format!("config key `{key}`: {hint}")));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            // A list, for an option given more than once (`table = ["customers", "orders"]`):
            // its variable takes the values comma-separated.
            toml::Value::Array(items) if items.iter().all(|i| i.is_str()) => {
                items.iter().filter_map(|i| i.as_str()).collect::<Vec<_>>().join(",")
            }
            other => {
                return Err(Error::InvalidInput(format!(
                    "config key `{key}` must be a string, a number, true/false or a list of strings, not {}",
                    other.type_str()
                )))
            }
        };
        out.push((var, text));
    }
    Ok(out)
}

/// Reads the file and sets the variables not already set. Call before any thread starts.
pub fn apply(path: &Path, known: &[String]) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::InvalidInput(format!("cannot read the config file {}: {e}", path.display())))?;
    let mut applied = Vec::new();
    for (var, value) in variables(&text, known)? {
        if std::env::var_os(&var).is_none() {
            std::env::set_var(&var, value);
            applied.push(var);
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        ["CLIENT_CIDR", "CHUNK_SIZE", "YES", "DB_PASSWORD_FILE"]
            .iter()
            .map(|k| format!("{ENV_PREFIX}{k}"))
            .collect()
    }

    #[test]
    fn keys_become_variables_and_typos_are_refused() {
        let vars = variables(
            "client-cidr = \"203.0.113.7/32\"\nchunk_size = 500\nyes = true\n",
            &known(),
        )
        .unwrap();
        assert_eq!(
            vars,
            vec![
                (format!("{ENV_PREFIX}CHUNK_SIZE"), "500".to_string()),
                (format!("{ENV_PREFIX}CLIENT_CIDR"), "203.0.113.7/32".to_string()),
                (format!("{ENV_PREFIX}YES"), "true".to_string()),
            ]
        );
        let e = variables("clinet-cidr = \"x\"", &known()).unwrap_err().to_string();
        assert!(e.contains("`clinet-cidr`"), "{e}");
        let e = variables("db-password = \"hunter2\"", &known())
            .unwrap_err()
            .to_string();
        assert!(e.contains("do not belong") && !e.contains("hunter2"), "{e}");
        assert!(variables("chunk-size = [1]", &known()).is_err());
    }

    #[test]
    fn the_path_comes_from_the_flag_in_either_form() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            config_path(&args(&["x", "--config", "a.toml"])).as_deref(),
            Some("a.toml")
        );
        assert_eq!(config_path(&args(&["x", "--config=b.toml"])).as_deref(), Some("b.toml"));
    }
}
