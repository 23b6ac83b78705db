//! The HTTP/REST transport: KServe v2 routes on axum, JSON tensors and Triton's binary tensor
//! extension unpacked into the protocol's checks (`protocol.rs`) and packed back.

use crate::app::{App, Refusal};
use crate::batcher::Kind;
use crate::protocol::{self, Answer, Data, Prepared, Spec};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;

type Shared = Arc<App>;

/// The routes.
pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{m}", get(model_metadata))
        .route("/v2/models/{m}/ready", get(model_ready))
        .route("/v2/models/{m}/config", get(model_config))
        .route("/v2/models/{m}/infer", post(infer))
        .route("/v2/models/{m}/versions/{v}", get(model_metadata_v))
        .route("/v2/models/{m}/versions/{v}/ready", get(model_ready_v))
        .route("/v2/models/{m}/versions/{v}/config", get(model_config_v))
        .route("/v2/models/{m}/versions/{v}/infer", post(infer_v))
        .route("/metrics", get(metrics_text))
        .fallback(|uri: axum::http::Uri| async move {
            error(StatusCode::NOT_FOUND, format!("no such endpoint: {uri}"))
        })
        .with_state(app)
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": msg.into()}).to_string(),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match &self {
            Refusal::Bad(_) => StatusCode::BAD_REQUEST,
            Refusal::NotFound(_) => StatusCode::NOT_FOUND,
            Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error(status, self.message())
    }
}

fn json_ok(v: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

async fn live() -> StatusCode {
    StatusCode::OK
}

async fn server_metadata() -> Response {
    json_ok(json!({
        "name": protocol::SERVER_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": protocol::EXTENSIONS,
    }))
}

async fn ready(State(app): State<Shared>) -> StatusCode {
    if app.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn model_ready(State(app): State<Shared>, Path(model): Path<String>) -> Response {
    match app.kind(&model) {
        Ok(_) => ready(State(app)).await.into_response(),
        Err(r) => r.into_response(),
    }
}

async fn model_ready_v(
    State(app): State<Shared>,
    Path((m, v)): Path<(String, String)>,
) -> Response {
    if let Err(r) = app.version(&v) {
        return r.into_response();
    }
    model_ready(State(app), Path(m)).await
}

fn tensor_meta(t: protocol::TensorMeta) -> Value {
    json!({"name": t.name, "datatype": t.datatype, "shape": t.shape})
}

async fn model_metadata(State(app): State<Shared>, Path(model): Path<String>) -> Response {
    match app.kind(&model) {
        Ok(k) => json_ok(json!({
            "name": app.spec.model_name(k),
            "versions": [protocol::VERSION],
            "platform": protocol::PLATFORM,
            "inputs": [tensor_meta(app.spec.input_meta(k))],
            "outputs": [tensor_meta(app.spec.output_meta())],
        })),
        Err(r) => r.into_response(),
    }
}

async fn model_metadata_v(
    State(app): State<Shared>,
    Path((m, v)): Path<(String, String)>,
) -> Response {
    if let Err(r) = app.version(&v) {
        return r.into_response();
    }
    model_metadata(State(app), Path(m)).await
}

fn config_tensor(t: protocol::ConfigTensor) -> Value {
    let mut v = json!({"name": t.name, "data_type": t.data_type, "dims": t.dims});
    if let Some(shape) = t.reshape {
        v["reshape"] = json!({ "shape": shape });
    }
    v
}

async fn model_config(State(app): State<Shared>, Path(model): Path<String>) -> Response {
    match app.kind(&model) {
        Ok(k) => {
            let c = app.spec.config(k, app.delay_us, app.max_queue);
            json_ok(json!({
                "name": c.name,
                "platform": c.platform,
                "backend": c.platform,
                "max_batch_size": c.max_batch_size,
                "input": [config_tensor(c.input)],
                "output": [config_tensor(c.output)],
                "dynamic_batching": {
                    "preferred_batch_size": [c.preferred_batch_size],
                    "max_queue_delay_microseconds": c.max_queue_delay_us,
                    "default_queue_policy": {"max_queue_size": c.max_queue_size},
                },
                "instance_group": [{"count": c.instance_count, "kind": "KIND_GPU"}],
            }))
        }
        Err(r) => r.into_response(),
    }
}

async fn model_config_v(
    State(app): State<Shared>,
    Path((m, v)): Path<(String, String)>,
) -> Response {
    if let Err(r) = app.version(&v) {
        return r.into_response();
    }
    model_config(State(app), Path(m)).await
}

async fn metrics_text(State(app): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics
            .render(app.classifier.session().pipeline_count()),
    )
        .into_response()
}

async fn infer_v(
    State(app): State<Shared>,
    Path((m, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = app.version(&v) {
        return r.into_response();
    }
    infer(State(app), Path(m), headers, body).await
}

async fn infer(
    State(app): State<Shared>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let kind = match app.kind(&model) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let started = Instant::now();
    match infer_inner(&app, kind, headers, body, started).await {
        Ok(r) => r,
        Err(r) => {
            app.metrics.failure(kind);
            r.into_response()
        }
    }
}

async fn infer_inner(
    app: &Shared,
    kind: Kind,
    headers: HeaderMap,
    body: Body,
    started: Instant,
) -> Result<Response, Refusal> {
    let header_len = match headers.get("inference-header-content-length") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    Refusal::Bad("Inference-Header-Content-Length must be a byte count".into())
                })?,
        ),
    };
    // Admission: a bounded number of bodies in memory at once; the rest are told to retry.
    let reading = app.admit()?;
    let bytes = match tokio::time::timeout(app.body_timeout, read_body(body, app.max_body)).await {
        Err(_) => {
            return Err(Refusal::Bad(format!(
                "the request body did not arrive within {} s",
                app.body_timeout.as_secs()
            )));
        }
        Ok(r) => r.map_err(Refusal::Bad)?,
    };
    let done = app
        .infer(kind, started, Some(reading), move |spec| {
            parse(spec, kind, &bytes, header_len)
        })
        .await?;
    let (body, header) = respond(&app.spec, kind, done.n, &done.reply, &done.answer);
    Ok(match header {
        None => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Some(h) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (
                    header::HeaderName::from_static("inference-header-content-length"),
                    h.to_string(),
                ),
            ],
            body,
        )
            .into_response(),
    })
}

/// Bytes of an over-the-limit body still read (and dropped) so that the client sees the 400
/// rather than a reset connection; a larger body's connection is closed unread.
const DRAIN: usize = 16 << 20;

/// The request body, at most `limit` bytes.
async fn read_body(mut body: Body, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut over = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the request body could not be read: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if over > 0 || out.len() + data.len() > limit {
            over += data.len();
            out = Vec::new();
            if over > DRAIN {
                break;
            }
        } else {
            out.extend_from_slice(&data);
        }
    }
    if over > 0 {
        return Err(format!(
            "the request body is over the limit of {limit} bytes (--max-body)"
        ));
    }
    Ok(out)
}

/// How to answer an HTTP request.
pub struct Reply {
    id: Option<Value>,
    /// Triton's binary extension for the output.
    binary: bool,
}

/// Parses a request body (`header_len`: Inference-Header-Content-Length) and preprocesses its
/// input. Every error is a 400 saying what was expected.
fn parse(
    spec: &Spec,
    kind: Kind,
    body: &[u8],
    header_len: Option<usize>,
) -> Result<(Prepared, Reply), String> {
    let (head, mut binary) = match header_len {
        Some(h) if h > body.len() => {
            return Err(format!(
                "Inference-Header-Content-Length is {h} but the body has only {} bytes",
                body.len()
            ));
        }
        Some(h) => body.split_at(h),
        None => (body, &[][..]),
    };
    let req: Value = serde_json::from_slice(head)
        .map_err(|e| format!("malformed JSON in the inference request header: {e}"))?;
    let req = req
        .as_object()
        .ok_or("the inference request must be a JSON object with \"inputs\"")?;
    let inputs = req
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or("the inference request has no \"inputs\" array")?;
    protocol::check_input_count(spec, kind, inputs.len())?;
    let input = inputs[0]
        .as_object()
        .ok_or("each input must be a JSON object")?;
    let want = Spec::input_name(kind);
    let shape: Vec<i64> = input
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|s| s.iter().map(Value::as_i64).collect())
        .ok_or_else(|| format!("input `{want}` needs a \"shape\" of integers"))?;
    let checked = protocol::check_input(
        spec,
        kind,
        input.get("name").and_then(Value::as_str).unwrap_or(""),
        input.get("datatype").and_then(Value::as_str).unwrap_or(""),
        &shape,
    )?;
    let params = input.get("parameters").and_then(Value::as_object);
    let data = match params.and_then(|p| p.get("binary_data_size")) {
        Some(size) => {
            let size = size
                .as_u64()
                .ok_or("binary_data_size must be a non-negative integer")?
                as usize;
            if size > binary.len() {
                return Err(format!(
                    "input `{want}` says binary_data_size {size} but only {} bytes of binary data follow the header",
                    binary.len()
                ));
            }
            let (mine, rest) = binary.split_at(size);
            binary = rest;
            Data::Raw(mine)
        }
        None => {
            let data = input.get("data").ok_or_else(|| {
                format!("input `{want}` has neither \"data\" nor binary_data_size")
            })?;
            match kind {
                Kind::Tensor => {
                    let mut out = Vec::new();
                    flatten_numbers(data, &mut out)
                        .map_err(|e| format!("input `{want}`: {e}; expected FP32 numbers"))?;
                    Data::Numbers(out)
                }
                Kind::Image => {
                    let mut out = Vec::new();
                    flatten_strings(data, &mut out)
                        .map_err(|e| format!("input `{want}`: {e}; expected BYTES (strings)"))?;
                    Data::Strings(out)
                }
            }
        }
    };
    let input = protocol::input_values(spec, kind, &checked, data)?;
    if !binary.is_empty() {
        return Err(format!(
            "{} bytes of binary data follow the header that no input's binary_data_size claims",
            binary.len()
        ));
    }
    let mut binary_out = req
        .get("parameters")
        .and_then(|p| p.get("binary_data_output"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut classification = None;
    if let Some(outputs) = req.get("outputs") {
        let outputs = outputs.as_array().ok_or("\"outputs\" must be an array")?;
        for o in outputs {
            protocol::check_output(
                spec,
                kind,
                o.get("name").and_then(Value::as_str).unwrap_or(""),
            )?;
            let p = o.get("parameters").and_then(Value::as_object);
            if let Some(b) = p.and_then(|p| p.get("binary_data")) {
                binary_out = b.as_bool().ok_or("binary_data must be true or false")?;
            }
            if let Some(k) = p.and_then(|p| p.get("classification")) {
                classification = Some(protocol::classification(spec, k.as_u64())?);
            }
        }
    }
    Ok((
        Prepared {
            n: checked.n,
            input,
            classification,
        },
        Reply {
            id: req.get("id").cloned(),
            binary: binary_out,
        },
    ))
}

fn flatten_numbers(v: &Value, out: &mut Vec<f32>) -> Result<(), String> {
    match v {
        Value::Array(a) => a.iter().try_for_each(|v| flatten_numbers(v, out)),
        Value::Number(x) => {
            out.push(x.as_f64().unwrap_or(f64::NAN) as f32);
            Ok(())
        }
        other => Err(format!("data holds {other}")),
    }
}

fn flatten_strings<'a>(v: &'a Value, out: &mut Vec<&'a [u8]>) -> Result<(), String> {
    match v {
        Value::Array(a) => a.iter().try_for_each(|v| flatten_strings(v, out)),
        Value::String(s) => {
            out.push(s.as_bytes());
            Ok(())
        }
        other => Err(format!("data holds {other}")),
    }
}

/// The response body: JSON, or with the binary extension the JSON header then the output's
/// raw bytes (and the header's length, for Inference-Header-Content-Length).
fn respond(
    spec: &Spec,
    kind: Kind,
    n: usize,
    reply: &Reply,
    answer: &Answer,
) -> (Vec<u8>, Option<usize>) {
    let mut output = Map::new();
    output.insert("name".into(), protocol::OUTPUT.into());
    output.insert("datatype".into(), answer.datatype().into());
    output.insert("shape".into(), json!(answer.shape(spec, n)));
    let binary = reply.binary.then(|| answer.raw());
    match (&binary, answer) {
        (Some(b), _) => {
            output.insert("parameters".into(), json!({"binary_data_size": b.len()}));
        }
        (None, Answer::Logits(v)) => {
            output.insert("data".into(), json!(v));
        }
        (None, Answer::Classes { strings, .. }) => {
            output.insert("data".into(), json!(strings));
        }
    }
    let mut resp = Map::new();
    resp.insert("model_name".into(), spec.model_name(kind).into());
    resp.insert("model_version".into(), protocol::VERSION.into());
    if let Some(id) = &reply.id {
        resp.insert("id".into(), id.clone());
    }
    resp.insert("outputs".into(), Value::Array(vec![Value::Object(output)]));
    let mut body = serde_json::to_vec(&Value::Object(resp)).expect("json");
    match binary {
        Some(b) => {
            let header = body.len();
            body.extend(b);
            (body, Some(header))
        }
        None => (body, None),
    }
}
