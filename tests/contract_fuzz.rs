//! Both OpenAPI documents fuzzed with schemathesis (`.venv/bin/st`, every check, stateful links)
//! against the real handlers behind the local API Gateway: a short, seeded run; `dev/bin/fuzz-api`
//! (make fuzz) is the long one. A missing `st` fails the test: `make test` installs it.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::gateway::{Handlers, STAFF_KEY, start_gateway};
use crate::support::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What one schemathesis run reported.
struct Run {
    exit_code: i32,
    report: Value,
    output: String,
}

impl Run {
    fn generated(&self) -> u64 {
        self.report["test_cases"]["generated"].as_u64().unwrap_or(0)
    }

    /// Failures and errors by title, for the assertion message.
    fn problems(&self) -> Vec<String> {
        let titled = |key: &str| {
            self.report[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("{key}: {} x{}", p["title"], p["count"]))
                .collect::<Vec<_>>()
        };
        [titled("failures"), titled("errors")].concat()
    }
}

/// `st run` of one document against `base`, seeded, with its JSON report parsed.
async fn schemathesis(base: &str, document: &str) -> Run {
    let st = root().join(".venv/bin/st");
    assert!(st.exists(), "{} is missing: `make test` (dev/bin/ensure-venv) installs it", st.display());
    let report = std::env::temp_dir().join(format!("st-{}.json", uuid::Uuid::new_v4().simple()));
    let mut command = Command::new(&st);
    command
        .current_dir(root())
        // The checks (all but one, and why) and the statuses they expect: api/schemathesis.toml.
        .args(["--config-file", "api/schemathesis.toml", "run", &format!("api/{document}"), "--url", base])
        .args(["--seed", "20261128", "--max-examples", "12", "--generation-deterministic"])
        // One worker: hypothesis describing its strategies from two threads at once trips a
        // CPython 3.11 AST error ("recursion depth mismatch") now and then.
        .args(["--workers", "1", "--no-color", "--report", "json"])
        .arg("--report-json-path")
        .arg(&report)
        // The staff API's local key (api/schemathesis.toml reads it as the localKey scheme's).
        .env("STAFF_LOCAL_KEY", STAFF_KEY)
        // Nothing from the environment changes what runs.
        .env_remove("SCHEMATHESIS_HOOKS");
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("st runs");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let parsed = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("st wrote no report:\n{text}"));
    let _ = std::fs::remove_file(&report);
    Run { exit_code: output.status.code().unwrap_or(-1), report: parsed, output: text }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_wrong_with_either_api_through_the_gateway() {
    let stack = Stack::new().await;
    let base = start_gateway(Handlers::with_replays(&stack).await).await;
    let started = std::time::Instant::now();
    let public = schemathesis(&base, "openapi.yaml").await;
    let staff = schemathesis(&base, "staff-openapi.yaml").await;
    println!("both documents in {:.1} s", started.elapsed().as_secs_f64());
    for (name, run) in [("public", &public), ("staff", &staff)] {
        println!("{name}: {} cases\n{}", run.generated(), run.output);
        assert!(run.problems().is_empty(), "{name}: {:?}\n{}", run.problems(), run.output);
        assert_eq!(run.exit_code, 0, "{name}:\n{}", run.output);
        assert_eq!(run.report["complete"], true, "{name}");
        assert_eq!(run.report["operations"]["errored"], 0, "{name}");
        assert_eq!(run.report["test_cases"]["with_failures"], 0, "{name}");
        // Every operation was exercised, by many cases.
        let operations = &run.report["operations"];
        assert_eq!(operations["tested"], operations["total"], "{name}: {operations}");
        assert!(run.generated() >= 100, "{name}: only {} cases", run.generated());
    }
}

// What JSON Schema can say of the handlers' rules is said exactly: a case the document calls valid
// is one the handler accepts, and the other way round (schemathesis relies on it both ways).

/// A schema of one of the documents, by pointer, in the document's context, formats asserted.
fn schema(document: &str, pointer: &str) -> jsonschema::Validator {
    let path = root().join("api").join(document);
    let mut root: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    root.as_object_mut().unwrap().insert("$ref".into(), json!(format!("#{pointer}")));
    jsonschema::options().should_validate_formats(true).build(&root).expect("the schema compiles")
}

/// Texts at the edges of trimming, control characters, white space and length.
fn edge_texts(max_chars: usize) -> Vec<String> {
    let mut texts: Vec<String> = [
        "",
        " ",
        "\t",
        "\n",
        "\r",
        "a",
        " a ",
        "\ta",
        "a\t",
        "a\tb",
        "a\nb",
        "a\rb",
        "\u{85}a",
        "a\u{85}b",
        "\u{a0}",
        "\u{3000}a\u{3000}",
        "\u{2028}",
        "a\u{2028}b",
        "\u{feff}",
        "\u{1}",
        "a\u{7f}",
        "\u{9f}a",
        "é",
        "\u{200b}",
        "\u{1680}x",
        "日本語",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    for n in [max_chars - 1, max_chars, max_chars + 1] {
        texts.push("x".repeat(n));
        texts.push(format!("  {}\t", "y".repeat(n)));
    }
    texts.push(format!("x{}x", " ".repeat(max_chars - 2)));
    texts.push(format!("x{}x", " ".repeat(max_chars - 1)));
    texts
}

#[test]
fn the_documented_region_is_exactly_the_regions_intake_accepts() {
    let region = schema("openapi.yaml", "/components/schemas/Submission/properties/region");
    let mut codes =
        vec!["US-CA".to_owned(), "us-ca".into(), "Us-cA".into(), "US-NY".into(), "USA".into(), "".into()];
    for a in 'A'..='Z' {
        for b in 'A'..='Z' {
            codes.extend([
                format!("{a}{b}"),
                format!("{a}{b}").to_lowercase(),
                format!("{}{b}", a.to_ascii_lowercase()),
            ]);
        }
    }
    for code in codes {
        let accepted = privacy_shared::domain::Region::parse(&code).is_ok();
        assert_eq!(region.is_valid(&json!(code)), accepted, "{code:?}: intake accepts it: {accepted}");
    }
}

#[test]
fn the_documented_staff_texts_and_amounts_are_exactly_what_the_staff_api_accepts() {
    use privacy_shared::domain::{CostEstimate, MAX_STAFF_TEXT_CHARS, StaffText};
    let reason = schema("staff-openapi.yaml", "/components/schemas/StaffText");
    let note = schema("staff-openapi.yaml", "/components/schemas/Completion/properties/note");
    for text in edge_texts(MAX_STAFF_TEXT_CHARS) {
        let parsed = StaffText::parse(&text);
        assert_eq!(reason.is_valid(&json!(text)), parsed.is_ok(), "reason {text:?}: {parsed:?}");
        // A blank note is no note (admin's `complete`); any other is a staff text.
        let noted = text.trim().is_empty() || parsed.is_ok();
        assert_eq!(note.is_valid(&json!(text)), noted, "note {text:?}");
    }
    let amount = schema("staff-openapi.yaml", "/components/schemas/Money/properties/amount");
    for text in [
        "0.01",
        "1.00",
        "25.00",
        "99999.99",
        "099999.99",
        "000001.00",
        "100000.00",
        "0.00",
        "000000.00",
        "100000.01",
        "100001.00",
        "0100000.00",
        "1000000.00",
        "1.5",
        "1",
        ".50",
        "1.500",
        "-1.00",
        "+1.00",
        " 1.00",
        "1,00",
        "١.٠٠",
    ] {
        let accepted = CostEstimate::parse(text, "EUR").is_ok();
        assert_eq!(amount.is_valid(&json!(text)), accepted, "amount {text:?}");
    }
}

#[tokio::test]
async fn the_documented_free_texts_and_recipient_are_exactly_what_intake_accepts() {
    let stack = Local::new();
    let submission = schema("openapi.yaml", "/components/schemas/Submission");
    let mut cases = Vec::new();
    for (field, kind, max) in [("name", "access", 200), ("details", "access", 5000)] {
        cases.extend(edge_texts(max).into_iter().map(|t| (kind, json!({ field: t }))));
    }
    for text in edge_texts(200) {
        cases.push(("rectification", json!({"corrections": {"job_title": text}})));
    }
    for recipient in ["", "  ", "\u{3000}", "\t", "other@example.org", " other@example.org", "not an address"]
    {
        cases.push(("portability", json!({ "recipient": recipient })));
        cases.push(("access", json!({ "recipient": recipient })));
    }
    for (n, (kind, extra)) in cases.into_iter().enumerate() {
        let mut body = json!({"email": format!("parity-{n}@example.com"), "kind": kind, "region": "NL"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (status, answer) = submit(&stack.deps(), &body.to_string()).await;
        assert!(status == 202 || status == 422, "{body}: {status} {answer}");
        assert_eq!(submission.is_valid(&body), status == 202, "{body}: intake answered {status} {answer}");
    }
}
