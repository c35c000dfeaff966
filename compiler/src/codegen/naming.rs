//! Deterministic, keyword-safe Rust identifiers derived from model names.
use std::collections::BTreeSet;

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "union", "run", "model",
    "inputs", "outputs", "arena", "rt",
];

/// `snake_case` identifier for a model name: non-alphanumerics become `_`, a leading
/// digit gets a `v_` prefix, keywords get a `_` suffix.
pub fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_underscore = false;
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
            last_underscore = false;
        } else if !last_underscore {
            out.push('_');
            last_underscore = true;
        }
    }
    let trimmed = out.trim_matches('_').to_string();
    let mut id = if trimmed.is_empty() {
        "v".to_string()
    } else {
        trimmed
    };
    if id.starts_with(|c: char| c.is_ascii_digit()) {
        id = format!("v_{id}");
    }
    if KEYWORDS.contains(&id.as_str()) {
        id.push('_');
    }
    id
}

/// Unique snake-case identifiers for a list of names, in order (`x`, `x_2`, ...).
pub fn unique_snake(names: &[String]) -> Vec<String> {
    let mut taken = BTreeSet::new();
    names
        .iter()
        .map(|n| {
            let base = snake(n);
            let mut id = base.clone();
            let mut k = 2;
            while !taken.insert(id.clone()) {
                id = format!("{base}_{k}");
                k += 1;
            }
            id
        })
        .collect()
}

/// A crate name (`kebab-case`) from a model file stem.
pub fn crate_name(stem: &str) -> String {
    let s = snake(stem).trim_end_matches('_').replace('_', "-");
    if s.is_empty() { "model".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised_and_unique() {
        assert_eq!(snake("onnx::Shape_422"), "onnx_shape_422");
        assert_eq!(snake("461"), "v_461");
        assert_eq!(snake("type"), "type_");
        assert_eq!(
            unique_snake(&["a.b".into(), "a/b".into()]),
            vec!["a_b", "a_b_2"]
        );
        assert_eq!(crate_name("tiny_bert-ts"), "tiny-bert-ts");
    }
}
