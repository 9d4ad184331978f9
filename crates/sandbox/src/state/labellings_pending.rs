//! Placeholder for the labellings slice: replaced by `labellings.rs` (which
//! implements these methods for real) at merge, when this file is deleted.

use super::*;

impl State {
    /// Whether the comment (uid `<source_id>.<comment_id>`) has a reviewed labelling in the dataset.
    pub(super) fn is_reviewed(&self, _dataset_id: &str, _uid: &str) -> bool {
        false
    }

    /// ExportedComment's `annotations` (schema ExportedAnnotations), None when the comment has none.
    pub(super) fn exported_annotations(&self, _dataset_id: &str, _uid: &str) -> Option<Value> {
        None
    }

    /// ExportedComment's `predictions` (schema ExportedPredictions), None when there are none.
    pub(super) fn exported_predictions(&self, _dataset_id: &str, _uid: &str) -> Option<Value> {
        None
    }

    /// AnnotatedComment's `labelling` (array of LabellingGroup): assigned/dismissed, and
    /// `predicted` when `with_predictions`.
    pub(super) fn labelling_groups(
        &self,
        _dataset_id: &str,
        _uid: &str,
        _with_predictions: bool,
    ) -> Value {
        json!([])
    }
}
