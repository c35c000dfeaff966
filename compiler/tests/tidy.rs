//! House rules, checked on every run: a `//!` line opens every Rust file; no panicking
//! shortcuts in the compiler's non-test code; no ignored or should-panic tests; `unsafe`
//! only in runtime-core, each block under a `// SAFETY:` comment; the modules that read
//! user files deny unchecked indexing.
mod common;

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | "gen" | ".git") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&common::repo(), &mut files);
    files.sort();
    assert!(
        files.len() > 20,
        "found too few Rust files: {}",
        files.len()
    );
    files
}

/// The file with every `#[cfg(test)]` item blanked out (its lines kept, empty, so line
/// numbers still match): from the attribute to the `;` that ends a one-line item or the brace
/// that closes the item's body, braces in string and char literals not counted.
fn non_test_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let end = test_item_len(item);
        out.extend(item[..end].chars().filter(|&c| c == '\n'));
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The length of the item `item` opens with: up to its first `;` outside a body, or its
/// body's closing brace. Panics (failing the check) when the braces do not balance.
fn test_item_len(item: &str) -> usize {
    let b = item.as_bytes();
    let (mut i, mut depth) = (0, 0usize);
    while i < b.len() {
        match b[i] {
            b';' if depth == 0 => return i + 1,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1).expect("unbalanced `}` in a test item");
                if depth == 0 {
                    return i + 1;
                }
            }
            b'"' => {
                // A string literal (raw strings hold no `"` before their end in this tree).
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                while i + 1 < b.len() && b[i + 1] != b'\'' {
                    i += 1;
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    panic!("a `#[cfg(test)]` item whose braces do not balance")
}

#[test]
fn every_rust_file_opens_with_a_doc_line() {
    let missing: Vec<String> = all_rust_files()
        .into_iter()
        .filter(|p| {
            !std::fs::read_to_string(p)
                .unwrap_or_default()
                .starts_with("//!")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading `//!` line:\n{}",
        missing.join("\n")
    );
}

#[test]
fn compiler_source_has_no_panicking_shortcuts() {
    let forbidden = [
        concat!(".unwrap", "()"),
        concat!(".expect", "("),
        concat!("panic", "!("),
        concat!("unreachable", "!("),
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
    ];
    let mut hits = Vec::new();
    let mut files = Vec::new();
    rust_files(&common::repo().join("compiler/src"), &mut files);
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        for (n, line) in non_test_part(&text).lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if forbidden.iter().any(|f| code.contains(f)) {
                hits.push(format!("{}:{}: {}", p.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "panicking shortcuts in compiler/src:\n{}",
        hits.join("\n")
    );
}

#[test]
fn no_ignored_or_should_panic_tests() {
    let forbidden = [concat!("#[", "ignore"), concat!("#[", "should_panic")];
    let hits: Vec<String> = all_rust_files()
        .into_iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            forbidden.iter().any(|f| text.contains(f))
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        hits.is_empty(),
        "ignored or should-panic tests in:\n{}",
        hits.join("\n")
    );
}

#[test]
fn unsafe_lives_only_in_runtime_core_with_safety_comments() {
    let runtime = common::repo().join("runtime-core");
    let mut problems = Vec::new();
    for p in all_rust_files() {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let is_unsafe =
                code.contains(concat!("unsafe", " {")) || code.contains(concat!("unsafe", " fn"));
            if !is_unsafe || code.contains('"') {
                continue;
            }
            if !p.starts_with(&runtime) {
                problems.push(format!(
                    "{}:{}: unsafe outside runtime-core",
                    p.display(),
                    n + 1
                ));
            } else if !lines[n.saturating_sub(4)..n]
                .iter()
                .any(|l| l.contains("// SAFETY:"))
            {
                problems.push(format!(
                    "{}:{}: unsafe without a `// SAFETY:` comment above",
                    p.display(),
                    n + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Modules that read bytes from files a user passes in (model files, checkpoints,
/// tokenizers, `.npy` vectors, keys, target profiles, ELF images): indexing there must be
/// checked, so each file denies clippy's `indexing_slicing` (CI runs clippy with
/// `-D warnings`). Folders cover every file under them, present and future.
const INPUT_MODULES: &[&str] = &[
    "compiler/src/frontend",
    "compiler/src/tokenizer.rs",
    "compiler/src/npy.rs",
    "compiler/src/signature.rs",
    "compiler/src/manifest.rs",
    "compiler/src/footprint.rs",
    "compiler/src/target.rs",
    "compiler/src/verify.rs",
    "compiler/src/generate.rs",
    "compiler/src/main.rs",
    "compiler/src/codegen/golden.rs",
];

#[test]
fn input_modules_deny_unchecked_indexing() {
    let deny = concat!("#![deny(clippy::", "indexing_slicing)]");
    let allow = concat!("allow(clippy::", "indexing_slicing)");
    let mut files = Vec::new();
    for m in INPUT_MODULES {
        let path = common::repo().join(m);
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else {
            assert!(path.is_file(), "{m} is listed but does not exist");
            files.push(path);
        }
    }
    assert!(
        files.len() > 20,
        "found too few input modules: {}",
        files.len()
    );
    let mut problems = Vec::new();
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let code = non_test_part(&text);
        if !code.lines().any(|l| l.trim() == deny) {
            problems.push(format!("{}: lacks `{deny}`", p.display()));
        }
        for (n, line) in code.lines().enumerate() {
            if line.contains(allow) {
                problems.push(format!(
                    "{}:{}: `{allow}` outside tests",
                    p.display(),
                    n + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn test_items_are_blanked_and_the_code_after_them_is_checked() {
    let text = "a\n#[cfg(test)]\nmod t {\n let s = \"}}\"; let c = '}'; x.unwrap();\n}\nb.unwrap()\n#[cfg(test)]\nuse y;\nc\n";
    let kept = non_test_part(text);
    let lines: Vec<&str> = kept.lines().collect();
    assert_eq!(lines.len(), text.lines().count());
    assert_eq!(lines[5], "b.unwrap()");
    assert_eq!(lines[8], "c");
    assert!(!kept.contains("x.unwrap") && !kept.contains("use y"));
}
