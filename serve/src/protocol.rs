//! KServe v2 inference requests and responses as Triton writes them: JSON tensors, Triton's
//! binary tensor extension and its classification extension.

use crate::batcher::Kind;
use resnet_wgpu::preprocess::Preprocess;
use serde_json::{Map, Value, json};

/// What a checkpoint's models look like on the wire.
pub struct Spec {
    pub name: String,
    pub image_name: String,
    pub chw: [usize; 3],
    pub classes: usize,
    pub max_batch: usize,
    pub labels: Vec<String>,
    pub preprocess: Preprocess,
}

impl Spec {
    pub fn model_name(&self, kind: Kind) -> &str {
        match kind {
            Kind::Tensor => &self.name,
            Kind::Image => &self.image_name,
        }
    }

    fn input_name(kind: Kind) -> &'static str {
        match kind {
            Kind::Tensor => "input",
            Kind::Image => "image",
        }
    }

    fn input_desc(&self, kind: Kind) -> String {
        let [c, h, w] = self.chw;
        match kind {
            Kind::Tensor => format!("`input` (FP32 [-1,{c},{h},{w}])"),
            Kind::Image => "`image` (BYTES [-1], encoded image files)".into(),
        }
    }

    /// `GET /v2/models/{m}`.
    pub fn metadata(&self, kind: Kind) -> Value {
        let [c, h, w] = self.chw;
        let input = match kind {
            Kind::Tensor => json!({"name": "input", "datatype": "FP32", "shape": [-1, c, h, w]}),
            Kind::Image => json!({"name": "image", "datatype": "BYTES", "shape": [-1]}),
        };
        json!({
            "name": self.model_name(kind),
            "versions": ["1"],
            "platform": "resnet-wgpu",
            "inputs": [input],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, self.classes]}],
        })
    }

    /// Triton's `GET /v2/models/{m}/config`.
    pub fn config(&self, kind: Kind, delay_us: u64, max_queue: usize) -> Value {
        let [c, h, w] = self.chw;
        let input = match kind {
            Kind::Tensor => json!({"name": "input", "data_type": "TYPE_FP32", "dims": [c, h, w]}),
            Kind::Image => json!({
                "name": "image", "data_type": "TYPE_STRING", "dims": [1],
                "reshape": {"shape": []},
            }),
        };
        json!({
            "name": self.model_name(kind),
            "platform": "resnet-wgpu",
            "backend": "resnet-wgpu",
            "max_batch_size": self.max_batch,
            "input": [input],
            "output": [{"name": "logits", "data_type": "TYPE_FP32", "dims": [self.classes]}],
            "dynamic_batching": {
                "preferred_batch_size": [self.max_batch],
                "max_queue_delay_microseconds": delay_us,
                "default_queue_policy": {"max_queue_size": max_queue},
            },
            "instance_group": [{"count": 1, "kind": "KIND_GPU"}],
        })
    }
}

/// A parsed request: its input, preprocessed, and how to answer.
pub struct Request {
    pub id: Option<Value>,
    pub n: usize,
    pub input: Vec<f32>,
    pub binary: bool,
    pub classification: Option<usize>,
}

type Bad = String;

/// Parses a request body (`header_len`: Inference-Header-Content-Length) and preprocesses its
/// input. Every error is a 400 saying what was expected.
pub fn parse(
    spec: &Spec,
    kind: Kind,
    body: &[u8],
    header_len: Option<usize>,
) -> Result<Request, Bad> {
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
    let want = Spec::input_name(kind);
    let model = spec.model_name(kind);
    if inputs.len() != 1 {
        return Err(format!(
            "model `{model}` takes exactly one input, {}; the request has {}",
            spec.input_desc(kind),
            inputs.len()
        ));
    }
    let input = inputs[0]
        .as_object()
        .ok_or("each input must be a JSON object")?;
    let name = input.get("name").and_then(Value::as_str).unwrap_or("");
    if name != want {
        return Err(format!(
            "unknown input `{name}` for model `{model}`; expected {}",
            spec.input_desc(kind)
        ));
    }
    let datatype = input.get("datatype").and_then(Value::as_str).unwrap_or("");
    let want_dtype = match kind {
        Kind::Tensor => "FP32",
        Kind::Image => "BYTES",
    };
    if datatype != want_dtype {
        return Err(format!(
            "input `{want}` has datatype `{datatype}`; expected {}",
            spec.input_desc(kind)
        ));
    }
    let shape: Vec<usize> = input
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|s| s.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
        .ok_or_else(|| format!("input `{want}` needs a \"shape\" of non-negative integers"))?;
    let [c, h, w] = spec.chw;
    let n = match (kind, shape.as_slice()) {
        (Kind::Tensor, &[n, sc, sh, sw]) if [sc, sh, sw] == spec.chw => n,
        (Kind::Image, &[n]) | (Kind::Image, &[n, 1]) => n,
        _ => {
            return Err(format!(
                "input `{want}` has shape {shape:?}; expected {}",
                spec.input_desc(kind)
            ));
        }
    };
    if n == 0 || n > spec.max_batch {
        return Err(format!(
            "input `{want}` has a batch of {n}; expected 1 to {} (max_batch_size)",
            spec.max_batch
        ));
    }
    let params = input.get("parameters").and_then(Value::as_object);
    let binary_size = match params.and_then(|p| p.get("binary_data_size")) {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or("binary_data_size must be a non-negative integer")? as usize,
        ),
    };
    let bytes_in = |binary: &mut &[u8]| -> Result<Vec<u8>, Bad> {
        let size = binary_size.expect("binary");
        if size > binary.len() {
            return Err(format!(
                "input `{want}` says binary_data_size {size} but only {} bytes of binary data follow the header",
                binary.len()
            ));
        }
        let (mine, rest) = binary.split_at(size);
        *binary = rest;
        Ok(mine.to_vec())
    };
    let input_data: Vec<f32> = match kind {
        Kind::Tensor => {
            // n is at most --max-batch and c, h, w are the model's: the product is checked
            // all the same, and nothing is reserved from the claimed shape before the data
            // is there (a short request must not make the server allocate for a big one).
            let count = [c, h, w]
                .iter()
                .try_fold(n, |a, &b| a.checked_mul(b))
                .ok_or_else(|| format!("input `{want}`: shape {shape:?} is too large"))?;
            let values: Vec<f32> = if binary_size.is_some() {
                let raw = bytes_in(&mut binary)?;
                if raw.len() != count * 4 {
                    return Err(format!(
                        "input `{want}` has {} bytes of binary data; shape {shape:?} of FP32 needs {}",
                        raw.len(),
                        count * 4
                    ));
                }
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            } else {
                let data = input.get("data").ok_or_else(|| {
                    format!("input `{want}` has neither \"data\" nor binary_data_size")
                })?;
                let mut out = Vec::new();
                flatten_numbers(data, &mut out)
                    .map_err(|e| format!("input `{want}`: {e}; expected FP32 numbers"))?;
                out
            };
            if values.len() != count {
                return Err(format!(
                    "input `{want}` has {} values; shape {shape:?} needs {count}",
                    values.len()
                ));
            }
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "input `{want}` holds {} at element {i}; expected finite FP32 values",
                    values[i]
                ));
            }
            values
        }
        Kind::Image => {
            let images: Vec<Vec<u8>> = if binary_size.is_some() {
                let raw = bytes_in(&mut binary)?;
                split_bytes(&raw).map_err(|e| format!("input `{want}`: {e}"))?
            } else {
                let data = input.get("data").ok_or_else(|| {
                    format!("input `{want}` has neither \"data\" nor binary_data_size")
                })?;
                let mut out = Vec::new();
                flatten_strings(data, &mut out)
                    .map_err(|e| format!("input `{want}`: {e}; expected BYTES (strings)"))?;
                out
            };
            if images.len() != n {
                return Err(format!(
                    "input `{want}` has {} elements; shape {shape:?} needs {n}",
                    images.len()
                ));
            }
            let mut out = Vec::with_capacity(n * c * h * w);
            for (i, bytes) in images.iter().enumerate() {
                let name = format!("image[{i}]");
                let img = spec
                    .preprocess
                    .decode(bytes, &name)
                    .map_err(|e| format!("input `{want}`: {e}; expected an encoded image file (JPEG, PNG, WebP, BMP, GIF)"))?;
                let x = spec
                    .preprocess
                    .apply(&img)
                    .map_err(|e| format!("input `{want}`: {e}"))?;
                if x.len() != c * h * w {
                    return Err(format!(
                        "input `{want}`: image {i} preprocessed to {} values, not {c}x{h}x{w}",
                        x.len()
                    ));
                }
                out.extend(x);
            }
            out
        }
    };
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
            let name = o.get("name").and_then(Value::as_str).unwrap_or("");
            if name != "logits" {
                return Err(format!(
                    "unknown output `{name}` for model `{model}`; expected `logits`"
                ));
            }
            let p = o.get("parameters").and_then(Value::as_object);
            if let Some(b) = p.and_then(|p| p.get("binary_data")) {
                binary_out = b.as_bool().ok_or("binary_data must be true or false")?;
            }
            if let Some(k) = p.and_then(|p| p.get("classification")) {
                let k = k
                    .as_u64()
                    .filter(|&k| k >= 1)
                    .ok_or("classification must be a positive integer (the top k)")?;
                classification = Some((k as usize).min(spec.classes));
            }
        }
    }
    Ok(Request {
        id: req.get("id").cloned(),
        n,
        input: input_data,
        binary: binary_out,
        classification,
    })
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

fn flatten_strings(v: &Value, out: &mut Vec<Vec<u8>>) -> Result<(), String> {
    match v {
        Value::Array(a) => a.iter().try_for_each(|v| flatten_strings(v, out)),
        Value::String(s) => {
            out.push(s.as_bytes().to_vec());
            Ok(())
        }
        other => Err(format!("data holds {other}")),
    }
}

/// Triton's BYTES serialization: each element a 4-byte little-endian length, then its bytes.
fn split_bytes(mut raw: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        if raw.len() < 4 {
            return Err(format!(
                "{} stray bytes where a 4-byte element length was expected",
                raw.len()
            ));
        }
        let len = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
        raw = &raw[4..];
        if len > raw.len() {
            return Err(format!(
                "element {} claims {len} bytes but only {} remain",
                out.len(),
                raw.len()
            ));
        }
        out.push(raw[..len].to_vec());
        raw = &raw[len..];
    }
    Ok(out)
}

/// The output tensor: logits, or with the classification extension the top k of each row as
/// `"probability:index:label"`. Returns the JSON header and the binary part (if binary).
pub fn respond(
    spec: &Spec,
    kind: Kind,
    req: &Request,
    logits: &[f32],
    top_k: impl Fn(&[f32], usize) -> Vec<(usize, f32)>,
) -> (Vec<u8>, Option<usize>) {
    let mut output = Map::new();
    output.insert("name".into(), "logits".into());
    let mut binary = Vec::new();
    match req.classification {
        None => {
            output.insert("datatype".into(), "FP32".into());
            output.insert("shape".into(), json!([req.n, spec.classes]));
            if req.binary {
                binary.extend(logits.iter().flat_map(|v| v.to_le_bytes()));
            } else {
                output.insert("data".into(), json!(logits));
            }
        }
        Some(k) => {
            let mut strings = Vec::with_capacity(req.n * k);
            for row in logits.chunks(spec.classes) {
                for (index, p) in top_k(row, k) {
                    strings.push(format!("{p:.6}:{index}:{}", spec.labels[index]));
                }
            }
            output.insert("datatype".into(), "BYTES".into());
            output.insert("shape".into(), json!([req.n, k]));
            if req.binary {
                for s in &strings {
                    binary.extend((s.len() as u32).to_le_bytes());
                    binary.extend(s.as_bytes());
                }
            } else {
                output.insert("data".into(), json!(strings));
            }
        }
    }
    if req.binary {
        output.insert(
            "parameters".into(),
            json!({"binary_data_size": binary.len()}),
        );
    }
    let mut resp = Map::new();
    resp.insert("model_name".into(), spec.model_name(kind).into());
    resp.insert("model_version".into(), "1".into());
    if let Some(id) = &req.id {
        resp.insert("id".into(), id.clone());
    }
    resp.insert("outputs".into(), Value::Array(vec![Value::Object(output)]));
    let mut body = serde_json::to_vec(&Value::Object(resp)).expect("json");
    if req.binary {
        let header = body.len();
        body.extend(binary);
        (body, Some(header))
    } else {
        (body, None)
    }
}
