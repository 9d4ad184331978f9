//! Contract cases for the operations `cm-api` implements by hand
//! (`x-hand-written` in the spec: multipart uploads).

use crate::harness::Case;

/// One case per `x-hand-written` operation.
pub fn cases() -> Vec<Case> {
    Vec::new()
}
