//! Helpers shared by the sandbox's test suites.

use cm_sandbox::Sandbox;

/// A sandbox that checks every answer against the spec's response schema;
/// a test fails at its end (when this drops) if any answer violated it.
pub struct Checked(Sandbox);

impl std::ops::Deref for Checked {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.0
    }
}

impl Drop for Checked {
    fn drop(&mut self) {
        let violations = self.0.schema_violations();
        // A test already failing reports its own failure, not this one.
        if !std::thread::panicking() {
            assert!(
                violations.is_empty(),
                "answers violated the spec's response schemas:\n{}",
                violations
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

pub async fn checked() -> Checked {
    Checked(
        Sandbox::builder()
            .validate_responses(true)
            .start()
            .await
            .unwrap(),
    )
}
