//! `cargo xtask codegen [--check] [--root DIR]`.

use std::path::PathBuf;
use std::process::ExitCode;

use xtask::codegen::{self, CodegenError};

const USAGE: &str = "usage: cargo xtask codegen [--check] [--root DIR]

  codegen           lint spec/openapi.yaml and regenerate crates/api-gen/src/generated
  --check           regenerate in memory; fail if the committed files differ
  --root DIR        workspace root (default: this repository)";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut check = false;
    let mut root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    match args.next().as_deref() {
        Some("codegen") => {}
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => return usage_error(),
    }
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--root" => match args.next() {
                Some(dir) => root = PathBuf::from(dir),
                None => return usage_error(),
            },
            _ => return usage_error(),
        }
    }
    match run(&root, check) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CodegenError::Lint(findings)) => {
            for finding in findings {
                eprintln!("error: {finding}");
            }
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(root: &std::path::Path, check: bool) -> Result<(), CodegenError> {
    let generation = codegen::generate(root)?;
    if check {
        codegen::check(root, &generation)?;
    } else {
        codegen::write(root, &generation)?;
    }
    println!(
        "{} {} operations ({} hand-written in cm-api), {} types, {} lines in {:.2?} (lint {:.2?}){}",
        if check { "checked" } else { "generated" },
        generation.operations,
        generation.hand_written.len(),
        generation.types,
        generation.lines(),
        generation.elapsed,
        generation.lint_elapsed,
        if generation.mock_exclusions.is_empty() {
            String::new()
        } else {
            format!(
                " ({} operations without httpmock helpers)",
                generation.mock_exclusions.len()
            )
        },
    );
    Ok(())
}

fn usage_error() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}
