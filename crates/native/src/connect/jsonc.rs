//! Edits to JSON-with-comments documents through a syntax tree, so that everything but the
//! keys being set (other entries, comments, order, indentation) stays byte for byte, and the
//! diff that shows them.

use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstInputValue, CstObject, CstRootNode};
use serde_json::Value;

use super::ConnectError;

/// One change to a JSON document.
#[derive(Debug, Clone)]
pub enum Edit {
    /// A value at a path of object keys (objects on the way are created).
    Set(Vec<String>, CstInputValue),
    /// A key taken out, if present.
    Remove(Vec<String>),
    /// In the array at a path of object keys, the object whose `"id"` is the given one is this
    /// object (replaced if different, appended if missing): VS Code's `inputs`.
    Upsert(Vec<String>, String, CstInputValue),
}

pub fn set(path: &[&str], value: CstInputValue) -> Edit {
    Edit::Set(path.iter().map(|key| key.to_string()).collect(), value)
}

pub fn text(value: &str) -> CstInputValue {
    CstInputValue::String(value.to_string())
}

pub fn object(entries: Vec<(&str, CstInputValue)>) -> CstInputValue {
    CstInputValue::Object(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
    )
}

/// Applies `edits` to a JSONC document (`None` or blank: a new one). Values already equal are
/// left alone, so an unchanged document comes back byte for byte.
pub fn apply_edits(
    path: &str,
    original: Option<&str>,
    edits: &[Edit],
) -> Result<String, ConnectError> {
    // Windows editors may start the file with a byte order mark, which JSON does not allow.
    let (bom, original) = match original.and_then(|text| text.strip_prefix('\u{feff}')) {
        Some(rest) => ("\u{feff}", Some(rest)),
        None => ("", original),
    };
    let source = match original {
        Some(text) if !text.trim().is_empty() => text,
        _ => "{}\n",
    };
    let root = CstRootNode::parse(source, &ParseOptions::default()).map_err(|err| {
        ConnectError::Parse {
            path: path.to_string(),
            message: err.to_string(),
        }
    })?;
    let not_an = |kind: &'static str, key: &str| ConnectError::NotA {
        path: path.to_string(),
        key: key.to_string(),
        kind,
    };
    let top = match root.value() {
        None => root.object_value_or_set(),
        Some(_) => root
            .object_value()
            .ok_or_else(|| not_an("a JSON object", "(the document)"))?,
    };
    let descend = |keys: &[String]| -> Result<CstObject, ConnectError> {
        let mut container: CstObject = top.clone();
        for key in keys {
            container = container
                .object_value_or_create(key)
                .ok_or_else(|| not_an("a JSON object", key))?;
        }
        Ok(container)
    };
    for edit in edits {
        match edit {
            Edit::Set(keys, value) => {
                let Some((last, parents)) = keys.split_last() else {
                    continue;
                };
                let container = descend(parents)?;
                let wanted = to_value(value);
                match container.get(last) {
                    Some(property) => {
                        let current = property.value().and_then(|node| node.to_serde_value());
                        if current.as_ref() != Some(&wanted) {
                            property.set_value(value.clone());
                        }
                    }
                    None => {
                        container.append(last, value.clone());
                    }
                }
            }
            Edit::Remove(keys) => {
                let Some((last, parents)) = keys.split_last() else {
                    continue;
                };
                let mut container = Some(top.clone());
                for key in parents {
                    container = container.and_then(|object| object.object_value(key));
                }
                if let Some(property) = container.and_then(|object| object.get(last)) {
                    property.remove();
                }
            }
            Edit::Upsert(keys, id, value) => {
                let Some((last, parents)) = keys.split_last() else {
                    continue;
                };
                let container = descend(parents)?;
                let array = container
                    .array_value_or_create(last)
                    .ok_or_else(|| not_an("a JSON array", last))?;
                let wanted = to_value(value);
                let existing = array.elements().into_iter().find_map(|element| {
                    let object = element.as_object()?;
                    let element_id = object.get("id")?.value()?.to_serde_value()?;
                    (element_id.as_str() == Some(id.as_str())).then_some(object)
                });
                match existing {
                    Some(object) => {
                        if object.to_serde_value().as_ref() != Some(&wanted) {
                            object.replace_with(value.clone());
                        }
                    }
                    None => {
                        array.append(value.clone());
                    }
                }
            }
        }
    }
    Ok(format!("{bom}{root}"))
}

fn to_value(input: &CstInputValue) -> Value {
    match input {
        CstInputValue::Null => Value::Null,
        CstInputValue::Bool(value) => Value::Bool(*value),
        CstInputValue::Number(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        CstInputValue::String(text) => Value::String(text.clone()),
        CstInputValue::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        CstInputValue::Object(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, value)| (key.clone(), to_value(value)))
                .collect(),
        ),
    }
}

/// A unified diff from `old` (`None`: no file yet) to `new`, labelled with `path`.
pub fn unified_diff(path: &str, old: Option<&str>, new: &str) -> String {
    let before = old.unwrap_or("");
    let old_label = if old.is_some() { path } else { "/dev/null" };
    similar::TextDiff::from_lines(before, new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, path)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        CstRootNode::parse(text, &ParseOptions::default())
            .unwrap()
            .to_serde_value()
            .unwrap()
    }

    #[test]
    fn documents_that_cannot_be_merged_are_refused() {
        let edits = [set(&["servers", "s"], text("v"))];
        assert!(matches!(
            apply_edits("f", Some("[1, 2]"), &edits),
            Err(ConnectError::NotA { .. })
        ));
        assert!(matches!(
            apply_edits("f", Some(r#"{"servers": []}"#), &edits),
            Err(ConnectError::NotA { key, .. }) if key == "servers"
        ));
        assert!(matches!(
            apply_edits("f", Some(r#"{"servers": "#), &edits),
            Err(ConnectError::Parse { .. })
        ));
        let upsert = [Edit::Upsert(vec!["inputs".into()], "a".into(), text("x"))];
        assert!(matches!(
            apply_edits("f", Some(r#"{"inputs": {}}"#), &upsert),
            Err(ConnectError::NotA {
                kind: "a JSON array",
                ..
            })
        ));
        // Blank counts as empty.
        assert!(
            apply_edits("f", Some("  \n"), &edits)
                .unwrap()
                .contains("\"servers\"")
        );
    }

    #[test]
    fn upsert_replaces_the_element_with_the_id_and_keeps_the_others() {
        let original = "{\n  \"inputs\": [\n    // theirs\n    {\"type\": \"promptString\", \"id\": \"other\"},\n    {\"type\": \"pickString\", \"id\": \"k\"}\n  ]\n}\n";
        let wanted = object(vec![
            ("type", text("promptString")),
            ("id", text("k")),
            ("password", CstInputValue::Bool(true)),
        ]);
        let edits = [Edit::Upsert(vec!["inputs".into()], "k".into(), wanted)];
        let out = apply_edits("f", Some(original), &edits).unwrap();
        assert!(out.contains("// theirs"), "{out}");
        assert_eq!(
            parse(&out)["inputs"],
            serde_json::json!([{"type": "promptString", "id": "other"},
                {"type": "promptString", "id": "k", "password": true}])
        );
        assert_eq!(apply_edits("f", Some(&out), &edits).unwrap(), out);
        let fresh = apply_edits("f", None, &edits).unwrap();
        assert_eq!(parse(&fresh)["inputs"][0]["id"], "k");
    }

    #[test]
    fn unified_diff_labels_new_files_as_from_dev_null() {
        let diff = unified_diff("/x/settings.json", None, "{\n}\n");
        assert!(
            diff.starts_with("--- /dev/null\n+++ /x/settings.json\n@@ -0,0 +1,2 @@\n+{\n+}\n"),
            "{diff}"
        );
        let change = unified_diff("/x", Some("a\nb\n"), "a\nc\n");
        assert!(change.contains("-b\n+c\n"), "{change}");
    }

    #[test]
    fn windows_line_endings_and_a_byte_order_mark_survive() {
        let original = "\u{feff}{\r\n  \"other\": 1\r\n}\r\n";
        let edits = [set(&["servers", "s"], text("v"))];
        let out = apply_edits("f", Some(original), &edits).unwrap();
        assert!(out.starts_with('\u{feff}'), "{out:?}");
        assert!(!out.replace("\r\n", "").contains('\n'), "{out:?}");
        assert_eq!(apply_edits("f", Some(&out), &edits).unwrap(), out);
    }
}
