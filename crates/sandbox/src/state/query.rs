//! Reading a dataset's comments in pages: `export_dataset` (with their
//! annotations and predictions, in `timestamp` or `created_at` order) and
//! the dataset query (`query_comments`, `list_recent_comments`: newest
//! first, filtered, with their labellings).
//!
//! A page is chosen by scanning the dataset's sources: every comment the
//! conditions admit gets its key in the ordering, `(time, source id,
//! comment id)`, unique per comment; the page is the `limit` smallest keys
//! after the cursor. The continuation encodes the ordering and the key of
//! the page's last comment, so the next page starts right after it whatever
//! was uploaded, changed or deleted meanwhile (see `DESIGN.md`).

use std::cmp::Ordering;

use super::*;

#[derive(Deserialize)]
struct ExportDatasetRequest {
    #[serde(default)]
    comment_uids: Vec<String>,
    #[serde(default)]
    source_ids: Vec<String>,
    from: Option<String>,
    to: Option<String>,
    order_by: Option<ExportOrder>,
    limit: Option<i64>,
    continuation: Option<String>,
}

/// `ExportOrderBy`.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
enum ExportOrder {
    Timestamp,
    CreatedAt,
}

#[derive(Deserialize)]
struct QueryCommentsRequest {
    order: Map<String, Value>,
    filter: Option<Value>,
    #[serde(default)]
    attribute_filters: Vec<Value>,
    collapse_mode: Option<String>,
    limit: Option<i64>,
    continuation: Option<String>,
}

#[derive(Deserialize)]
struct RecentCommentsRequest {
    limit: i64,
    filter: Value,
    continuation: Option<String>,
}

/// `UserPropertyFilter`: every condition given must hold.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct UserPropertyFilter {
    #[serde(default)]
    one_of: Vec<PropertyValue>,
    #[serde(default)]
    not_one_of: Vec<PropertyValue>,
    minimum: Option<f64>,
    maximum: Option<f64>,
}

/// `UserPropertyValue`.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum PropertyValue {
    String(String),
    Number(f64),
    Bool(bool),
}

impl PropertyValue {
    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (Self::String(a), Value::String(b)) => a == b,
            (Self::Number(a), Value::Number(b)) => b.as_f64() == Some(*a),
            (Self::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl UserPropertyFilter {
    /// Whether a comment whose property holds `value` (`None`: the comment
    /// does not have it) meets the condition. A missing property meets
    /// `not_one_of` only.
    fn admits(&self, value: Option<&Value>) -> bool {
        if !self.one_of.is_empty()
            && !value.is_some_and(|v| self.one_of.iter().any(|o| o.matches(v)))
        {
            return false;
        }
        if value.is_some_and(|v| self.not_one_of.iter().any(|o| o.matches(v))) {
            return false;
        }
        let number = value.and_then(Value::as_f64);
        if self
            .minimum
            .is_some_and(|min| number.is_none_or(|n| n < min))
        {
            return false;
        }
        if self
            .maximum
            .is_some_and(|max| number.is_none_or(|n| n > max))
        {
            return false;
        }
        true
    }
}

/// The `CommentFilter` conditions the sandbox applies; the others answer
/// 501 when given (an empty condition, `{}` or `[]`, is no condition).
#[derive(Default, Debug)]
struct Conditions {
    /// Only these sources of the dataset; all of them when empty.
    sources: Vec<String>,
    /// `timestamp.minimum`, inclusive.
    minimum: Option<DateTime<Utc>>,
    /// `timestamp.maximum`, exclusive.
    maximum: Option<DateTime<Utc>>,
    /// `only_reviewed` → true, `only_unreviewed` → false.
    reviewed: Option<bool>,
    user_properties: Vec<(String, UserPropertyFilter)>,
}

/// The `CommentFilter` members the sandbox applies.
const APPLIED_CONDITIONS: &str = "`sources`, `timestamp`, `reviewed` and `user_properties`";

/// An ordering of a dataset's comments.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Order {
    /// `export_dataset`, ascending.
    Export(ExportOrder),
    /// The query's `recent`: newest `timestamp` first.
    Recent,
}

/// A comment's place in an ordering: its ordering time, source id, id.
type Key<'a> = (DateTime<Utc>, &'a str, &'a str);

impl Order {
    /// The time a comment is ordered by: its `timestamp` (upload time when
    /// it has none), or its `created_at`.
    fn time(self, c: &StoredComment) -> DateTime<Utc> {
        match self {
            Self::Export(ExportOrder::CreatedAt) => c.created_at,
            Self::Export(ExportOrder::Timestamp) | Self::Recent => c.order,
        }
    }

    fn compare(self, a: Key<'_>, b: Key<'_>) -> Ordering {
        match self {
            Self::Export(_) => a.cmp(&b),
            Self::Recent => b.cmp(&a),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Export(ExportOrder::Timestamp) => "timestamp",
            Self::Export(ExportOrder::CreatedAt) => "created_at",
            Self::Recent => "recent",
        }
    }
}

/// Where a page starts: right after this key.
#[derive(Debug)]
struct Cursor {
    time: DateTime<Utc>,
    source_id: String,
    comment_id: String,
}

impl Cursor {
    fn key(&self) -> Key<'_> {
        (self.time, &self.source_id, &self.comment_id)
    }

    /// The ordering and the key, hex-encoded (the comment id last: it may
    /// hold any character).
    fn encode(order: Order, (time, source_id, comment_id): Key<'_>) -> String {
        let text = format!(
            "{}\n{}\n{source_id}\n{comment_id}",
            order.tag(),
            time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        );
        text.bytes().map(|b| format!("{b:02x}")).collect()
    }

    fn decode(text: &str, order: Order) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::bad_request(format!(
                "`continuation`: not a continuation of this sandbox: {text:?}"
            ))
        };
        if !text.len().is_multiple_of(2) {
            return Err(invalid());
        }
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<_>>()
            .ok_or_else(invalid)?;
        let decoded = String::from_utf8(bytes).map_err(|_| invalid())?;
        let mut parts = decoded.splitn(4, '\n');
        let (Some(tag), Some(time), Some(source_id), Some(comment_id)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if tag != order.tag() {
            return Err(ApiError::bad_request(format!(
                "`continuation`: it continues the `{tag}` order, not `{}`",
                order.tag()
            )));
        }
        Ok(Self {
            time: parse_timestamp(time).ok_or_else(invalid)?,
            source_id: source_id.to_owned(),
            comment_id: comment_id.to_owned(),
        })
    }
}

/// One page of an ordering.
struct Page<'a> {
    items: Vec<(Key<'a>, &'a StoredComment)>,
    /// Every comment the conditions admit, on any page.
    admitted: usize,
    /// The continuation of the next page, if there is one.
    continuation: Option<String>,
}

fn not_implemented(op: &str, what: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        http::StatusCode::NOT_IMPLEMENTED,
        format!("{op}: {what} is not implemented by the sandbox"),
    )
}

/// A date-time of a request body, 422 naming `field` when it is not one.
fn body_timestamp(text: &str, field: &str) -> Result<DateTime<Utc>, ApiError> {
    parse_timestamp(text)
        .ok_or_else(|| ApiError::unprocessable(format!("`{field}`: not a date-time: {text:?}")))
}

/// A page size: `DEFAULT_PAGE` when not given, 1 to `MAX_PAGE`.
fn page_size(n: Option<i64>, error: fn(String) -> ApiError) -> Result<usize, ApiError> {
    match n {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE as i64).contains(&n) => Ok(n as usize),
        Some(n) => Err(error(format!("`limit`: between 1 and {MAX_PAGE}, got {n}"))),
    }
}

/// A value the query string and the body may both carry: one of them, or
/// both when equal (400 when they differ).
fn one_of_two<T: PartialEq + std::fmt::Debug>(
    name: &str,
    in_query: Option<T>,
    in_body: Option<T>,
) -> Result<Option<T>, ApiError> {
    match (in_query, in_body) {
        (Some(q), Some(b)) if q != b => Err(ApiError::bad_request(format!(
            "`{name}` is given in the query ({q:?}) and in the body ({b:?}) with different values"
        ))),
        (q, b) => Ok(q.or(b)),
    }
}

/// `{}`, `[]` or `null`: a filter member that sets no condition.
fn is_no_condition(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(members) => members.is_empty(),
        _ => false,
    }
}

impl State {
    /// The dataset's sources among `ids` (all of them when `ids` is empty);
    /// 422 naming `field` for an id that is not one of the dataset's.
    fn chosen_sources<'d>(
        d: &'d Dataset,
        ids: &[String],
        field: &str,
    ) -> Result<Vec<&'d str>, ApiError> {
        for (i, id) in ids.iter().enumerate() {
            if !d.source_ids.contains(id) {
                return Err(ApiError::unprocessable(format!(
                    "`{field}[{i}]`: `{id}` is not a source of the dataset"
                )));
            }
        }
        Ok(d.source_ids
            .iter()
            .filter(|id| ids.is_empty() || ids.contains(id))
            .map(String::as_str)
            .collect())
    }

    /// The page after `after` of the comments of `sources` that `admit`
    /// accepts, in `order`.
    fn page<'a>(
        &'a self,
        sources: &[&'a str],
        order: Order,
        after: Option<&Cursor>,
        limit: usize,
        admit: impl Fn(&str, &str, &StoredComment) -> bool,
    ) -> Page<'a> {
        let mut items = Vec::new();
        let mut admitted = 0;
        for &source_id in sources {
            let Some(source) = self.sources.get(source_id) else {
                continue;
            };
            for (id, c) in &source.comments {
                if !admit(source_id, id, c) {
                    continue;
                }
                admitted += 1;
                let key = (order.time(c), source_id, id.as_str());
                if after.is_some_and(|a| order.compare(key, a.key()) != Ordering::Greater) {
                    continue;
                }
                items.push((key, c));
            }
        }
        let by_key =
            |a: &(Key<'_>, &StoredComment), b: &(Key<'_>, &StoredComment)| order.compare(a.0, b.0);
        let more = items.len() > limit;
        if more {
            items.select_nth_unstable_by(limit, by_key);
            items.truncate(limit);
        }
        items.sort_unstable_by(by_key);
        let continuation = items
            .last()
            .filter(|_| more)
            .map(|(key, _)| Cursor::encode(order, *key));
        Page {
            items,
            admitted,
            continuation,
        }
    }

    /// The comments of the dataset's sources with their annotations and
    /// predictions, in `order_by` order (`timestamp` by default), in
    /// `[from, to)` of that order's time.
    pub(crate) fn export_dataset(
        &self,
        project: &str,
        dataset: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: ExportDatasetRequest = decode_value(body, "")?;
        let d = &self.datasets[&self.dataset_id(project, dataset)?];
        let order = Order::Export(request.order_by.unwrap_or(ExportOrder::Timestamp));
        let from = request
            .from
            .as_deref()
            .map(|t| body_timestamp(t, "from"))
            .transpose()?;
        let to = request
            .to
            .as_deref()
            .map(|t| body_timestamp(t, "to"))
            .transpose()?;
        let limit = page_size(request.limit, ApiError::unprocessable)?;
        let after = request
            .continuation
            .as_deref()
            .map(|c| Cursor::decode(c, order))
            .transpose()?;
        let sources = Self::chosen_sources(d, &request.source_ids, "source_ids")?;
        let uids: BTreeSet<&str> = request.comment_uids.iter().map(String::as_str).collect();
        let page = self.page(
            &sources,
            order,
            after.as_ref(),
            limit,
            |source_id, id, c| {
                let t = order.time(c);
                from.is_none_or(|from| t >= from)
                    && to.is_none_or(|to| t < to)
                    && (uids.is_empty() || uids.contains(format!("{source_id}.{id}").as_str()))
            },
        );
        let comments: Vec<Value> = page
            .items
            .iter()
            .map(|&((_, source_id, id), c)| {
                let uid = format!("{source_id}.{id}");
                let mut item = json!({"comment": Self::comment_json(source_id, c)});
                if let Some(annotations) = self.exported_annotations(&d.id, &uid) {
                    item["annotations"] = annotations;
                }
                if let Some(predictions) = self.exported_predictions(&d.id, &uid) {
                    item["predictions"] = predictions;
                }
                item
            })
            .collect();
        let mut out = json!({"comments": comments});
        if let Some(continuation) = page.continuation {
            out["continuation"] = continuation.into();
        }
        Ok(out)
    }

    /// A `CommentFilter` of a query on `d`, checked whole.
    fn conditions(
        &self,
        d: &Dataset,
        filter: Option<Value>,
        op: &str,
    ) -> Result<Conditions, ApiError> {
        let members = match filter {
            None | Some(Value::Null) => return Ok(Conditions::default()),
            Some(Value::Object(members)) => members,
            Some(_) => {
                return Err(ApiError::unprocessable(
                    "`filter`: expected an object (a CommentFilter)",
                ));
            }
        };
        let mut out = Conditions::default();
        for (key, value) in members {
            match key.as_str() {
                "sources" if !value.is_null() => {
                    let ids: Vec<String> = decode_value(value, "filter.sources")?;
                    out.sources = Self::chosen_sources(d, &ids, "filter.sources")?
                        .into_iter()
                        .map(str::to_owned)
                        .collect();
                    // An empty list is no condition: every source.
                    if ids.is_empty() {
                        out.sources.clear();
                    }
                }
                "timestamp" if !value.is_null() => {
                    let range: TimestampRange = decode_value(value, "filter.timestamp")?;
                    out.minimum = range
                        .minimum
                        .as_deref()
                        .map(|t| body_timestamp(t, "filter.timestamp.minimum"))
                        .transpose()?;
                    out.maximum = range
                        .maximum
                        .as_deref()
                        .map(|t| body_timestamp(t, "filter.timestamp.maximum"))
                        .transpose()?;
                }
                "reviewed" => {
                    out.reviewed = match value.as_str() {
                        _ if value.is_null() => None,
                        Some("only_reviewed") => Some(true),
                        Some("only_unreviewed") => Some(false),
                        _ => {
                            return Err(ApiError::unprocessable(format!(
                                "`filter.reviewed`: `only_reviewed` or `only_unreviewed`, got {value}"
                            )));
                        }
                    }
                }
                "user_properties" if !value.is_null() => {
                    let conditions: BTreeMap<String, UserPropertyFilter> =
                        decode_value(value, "filter.user_properties")?;
                    out.user_properties = conditions.into_iter().collect();
                }
                _ if is_no_condition(&value) => {}
                _ => {
                    return Err(not_implemented(
                        op,
                        format!("`filter.{key}` (the sandbox applies {APPLIED_CONDITIONS})"),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn admits(
        &self,
        dataset_id: &str,
        conditions: &Conditions,
        source_id: &str,
        id: &str,
        c: &StoredComment,
    ) -> bool {
        if conditions.minimum.is_some_and(|min| c.order < min)
            || conditions.maximum.is_some_and(|max| c.order >= max)
        {
            return false;
        }
        let properties = if conditions.user_properties.is_empty() {
            None
        } else {
            c.fields.get("user_properties")
        };
        let properties = properties.as_ref().and_then(Value::as_object);
        if !conditions
            .user_properties
            .iter()
            .all(|(key, condition)| condition.admits(properties.and_then(|p| p.get(key))))
        {
            return false;
        }
        conditions.reviewed.is_none_or(|reviewed| {
            self.is_reviewed(dataset_id, &format!("{source_id}.{id}")) == reviewed
        })
    }

    /// A page of the dataset's comments admitted by `conditions`, newest
    /// first, each as an `AnnotatedComment`.
    fn recent_page(
        &self,
        d: &Dataset,
        conditions: &Conditions,
        continuation: Option<&str>,
        limit: usize,
        with_predictions: bool,
    ) -> Result<(Vec<Value>, usize, Option<String>), ApiError> {
        let after = continuation
            .map(|c| Cursor::decode(c, Order::Recent))
            .transpose()?;
        let sources: Vec<&str> = d
            .source_ids
            .iter()
            .filter(|id| conditions.sources.is_empty() || conditions.sources.contains(id))
            .map(String::as_str)
            .collect();
        let page = self.page(
            &sources,
            Order::Recent,
            after.as_ref(),
            limit,
            |s, id, c| self.admits(&d.id, conditions, s, id, c),
        );
        let results = page
            .items
            .iter()
            .map(|&((_, source_id, id), c)| {
                let uid = format!("{source_id}.{id}");
                let mut result = json!({
                    "comment": Self::comment_json(source_id, c),
                    "labelling": self.labelling_groups(&d.id, &uid, with_predictions),
                });
                if with_predictions {
                    result["trigger_exceptions"] = Self::trigger_exceptions(d, &uid);
                }
                result
            })
            .collect();
        Ok((results, page.admitted, page.continuation))
    }

    /// The exception tags of a comment, keyed by the id of the stream that
    /// tagged it (`AnnotatedComment.trigger_exceptions`).
    fn trigger_exceptions(d: &Dataset, uid: &str) -> Value {
        d.streams
            .values()
            .filter_map(|s| {
                let kind = s.exceptions.get(uid)?;
                Some((s.id.clone(), json!({"type": kind})))
            })
            .collect::<Map<String, Value>>()
            .into()
    }

    /// The dataset query: the `recent` order, the conditions of
    /// `Conditions`; anything else answers 501 naming it.
    pub(crate) fn query_comments(
        &self,
        project: &str,
        dataset: &str,
        query: &Query,
        body: Value,
    ) -> Result<Value, ApiError> {
        const OP: &str = "query_comments";
        let request: QueryCommentsRequest = decode_value(body, "")?;
        let d = &self.datasets[&self.dataset_id(project, dataset)?];
        match request.order.get("kind") {
            Some(Value::String(kind)) if kind == "recent" => {}
            Some(Value::String(kind)) => {
                return Err(not_implemented(
                    OP,
                    format!("the `{kind}` order (`order.kind`; the sandbox orders by `recent`)"),
                ));
            }
            _ => {
                return Err(ApiError::unprocessable(
                    "`order.kind`: missing, or not a string",
                ));
            }
        }
        if let Some(option) = request
            .order
            .iter()
            .find(|(k, v)| *k != "kind" && !v.is_null())
            .map(|(k, _)| k)
        {
            return Err(ApiError::unprocessable(format!(
                "`order.{option}`: not an option of the `recent` order"
            )));
        }
        if !request.attribute_filters.is_empty() {
            return Err(not_implemented(OP, "`attribute_filters`"));
        }
        match request.collapse_mode.as_deref() {
            None | Some("none") => {}
            Some("thread_id") => return Err(not_implemented(OP, "`collapse_mode` `thread_id`")),
            Some(other) => {
                return Err(ApiError::unprocessable(format!(
                    "`collapse_mode`: `thread_id` or `none`, got {other:?}"
                )));
            }
        }
        let query_limit = query.integer("limit")?;
        let limit = page_size(
            one_of_two("limit", query_limit, request.limit)?,
            if query_limit.is_some() {
                ApiError::bad_request
            } else {
                ApiError::unprocessable
            },
        )?;
        let continuation = one_of_two(
            "continuation",
            query.get("continuation"),
            request.continuation.as_deref(),
        )?;
        let conditions = self.conditions(d, request.filter, OP)?;
        let (results, admitted, continuation) =
            self.recent_page(d, &conditions, continuation, limit, true)?;
        let mut out = json!({
            "results": results,
            "num_results": {"filtered": admitted, "expected": admitted},
            "entity_defs": [],
            "triggers": Self::streams_json(d),
        });
        if let Some(continuation) = continuation {
            out["continuation"] = continuation.into();
        }
        Ok(out)
    }

    /// The dataset's comments admitted by the filter, newest first: the
    /// dataset query's `recent` order, without predictions.
    pub(crate) fn list_recent_comments(
        &self,
        project: &str,
        dataset: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: RecentCommentsRequest = decode_value(body, "")?;
        let d = &self.datasets[&self.dataset_id(project, dataset)?];
        let limit = page_size(Some(request.limit), ApiError::unprocessable)?;
        let conditions = self.conditions(d, Some(request.filter), "list_recent_comments")?;
        let (results, _, continuation) = self.recent_page(
            d,
            &conditions,
            request.continuation.as_deref(),
            limit,
            false,
        )?;
        let mut out = json!({"results": results});
        if let Some(continuation) = continuation {
            out["continuation"] = continuation.into();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continuation_round_trips_any_comment_id_and_names_its_order() {
        let time = parse_timestamp("2026-03-01T10:00:00.123456789Z").unwrap();
        for id in ["c1", "with\nnewlines\n", "ünïcödé.and.dots", ""] {
            let text = Cursor::encode(Order::Recent, (time, "18ba5ce699f8da1f", id));
            let cursor = Cursor::decode(&text, Order::Recent).unwrap();
            assert_eq!(cursor.key(), (time, "18ba5ce699f8da1f", id));
            let other = Cursor::decode(&text, Order::Export(ExportOrder::Timestamp));
            assert_eq!(other.unwrap_err().status, http::StatusCode::BAD_REQUEST);
        }
        for bad in ["", "0", "zz", "61"] {
            assert!(Cursor::decode(bad, Order::Recent).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_user_property_condition_holds_for_the_values_it_names() {
        let filter: UserPropertyFilter =
            serde_json::from_value(json!({"one_of": ["UK", 2.5], "not_one_of": ["FR"]})).unwrap();
        assert!(filter.admits(Some(&json!("UK"))));
        assert!(filter.admits(Some(&json!(2.5))));
        assert!(!filter.admits(Some(&json!("DE"))));
        assert!(!filter.admits(None));
        let none_of: UserPropertyFilter =
            serde_json::from_value(json!({"not_one_of": ["FR"]})).unwrap();
        assert!(none_of.admits(None));
        assert!(!none_of.admits(Some(&json!("FR"))));
        let range: UserPropertyFilter =
            serde_json::from_value(json!({"minimum": 1, "maximum": 2})).unwrap();
        assert!(range.admits(Some(&json!(1))) && range.admits(Some(&json!(2.0))));
        assert!(!range.admits(Some(&json!(2.5))) && !range.admits(Some(&json!("1"))));
        assert!(!range.admits(None));
    }
}
