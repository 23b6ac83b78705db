//! The inference protocol without its transport: what each model declares, how a request's
//! tensors are checked and turned into the GPU's input, and the answer's rows. HTTP (`http.rs`:
//! JSON and Triton's binary tensor extension) and gRPC (`grpc.rs`: protobuf, raw or typed
//! contents) only unpack their wire format into these calls and pack the results back, so
//! both check a request the same way and say the same thing about it.

use crate::batcher::Kind;
use resnet_wgpu::preprocess::Preprocess;

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

/// A tensor as model metadata declares it (-1: any size).
pub struct TensorMeta {
    pub name: &'static str,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
}

/// A tensor as Triton's model configuration declares it: dims without the batch.
pub struct ConfigTensor {
    pub name: &'static str,
    /// `TYPE_FP32`, `TYPE_STRING`.
    pub data_type: &'static str,
    pub dims: Vec<i64>,
    /// What the model computes with, where it differs from `dims`.
    pub reshape: Option<Vec<i64>>,
}

/// Triton's model configuration, the fields we fill in.
pub struct Config {
    pub name: String,
    pub platform: &'static str,
    pub max_batch_size: usize,
    pub input: ConfigTensor,
    pub output: ConfigTensor,
    pub preferred_batch_size: usize,
    pub max_queue_delay_us: u64,
    pub max_queue_size: usize,
    /// One GPU session per checkpoint.
    pub instance_count: usize,
}

/// The server's name and what it implements, for server metadata.
pub const SERVER_NAME: &str = "resnet-wgpu";
pub const EXTENSIONS: [&str; 3] = [
    "classification",
    "binary_tensor_data",
    "model_configuration",
];
pub const PLATFORM: &str = "resnet-wgpu";
/// Each model's only version.
pub const VERSION: &str = "1";
pub const OUTPUT: &str = "logits";

impl Spec {
    pub fn model_name(&self, kind: Kind) -> &str {
        match kind {
            Kind::Tensor => &self.name,
            Kind::Image => &self.image_name,
        }
    }

    pub fn input_name(kind: Kind) -> &'static str {
        match kind {
            Kind::Tensor => "input",
            Kind::Image => "image",
        }
    }

    fn input_datatype(kind: Kind) -> &'static str {
        match kind {
            Kind::Tensor => "FP32",
            Kind::Image => "BYTES",
        }
    }

    /// The input as error messages describe it.
    pub fn input_desc(&self, kind: Kind) -> String {
        let [c, h, w] = self.chw;
        match kind {
            Kind::Tensor => format!("`input` (FP32 [-1,{c},{h},{w}])"),
            Kind::Image => "`image` (BYTES [-1] or [-1,1], encoded image files)".into(),
        }
    }

    /// Model metadata's input. The image model's is `[-1, 1]`, one file per row, as Triton
    /// reports an input configured with dims `[1]` (perf_analyzer builds its requests from
    /// it); requests may leave the 1 out (`[N]`).
    pub fn input_meta(&self, kind: Kind) -> TensorMeta {
        let [c, h, w] = self.chw.map(|d| d as i64);
        TensorMeta {
            name: Self::input_name(kind),
            datatype: Self::input_datatype(kind),
            shape: match kind {
                Kind::Tensor => vec![-1, c, h, w],
                Kind::Image => vec![-1, 1],
            },
        }
    }

    /// Model metadata's output.
    pub fn output_meta(&self) -> TensorMeta {
        TensorMeta {
            name: OUTPUT,
            datatype: "FP32",
            shape: vec![-1, self.classes as i64],
        }
    }

    /// Triton's model configuration (perf_analyzer reads it).
    pub fn config(&self, kind: Kind, delay_us: u64, max_queue: usize) -> Config {
        let input = match kind {
            Kind::Tensor => ConfigTensor {
                name: "input",
                data_type: "TYPE_FP32",
                dims: self.chw.iter().map(|&d| d as i64).collect(),
                reshape: None,
            },
            // One encoded file per batch row: Triton says so with dims [1] reshaped to [].
            Kind::Image => ConfigTensor {
                name: "image",
                data_type: "TYPE_STRING",
                dims: vec![1],
                reshape: Some(vec![]),
            },
        };
        Config {
            name: self.model_name(kind).to_string(),
            platform: PLATFORM,
            max_batch_size: self.max_batch,
            input,
            output: ConfigTensor {
                name: OUTPUT,
                data_type: "TYPE_FP32",
                dims: vec![self.classes as i64],
                reshape: None,
            },
            preferred_batch_size: self.max_batch,
            max_queue_delay_us: delay_us,
            max_queue_size: max_queue,
            instance_count: 1,
        }
    }
}

/// A bad request's message (HTTP 400, gRPC INVALID_ARGUMENT): what was wrong and what was
/// expected.
pub type Bad = String;

/// The request's one input, as checked by [`check_input`].
pub struct Checked {
    /// Batch rows.
    pub n: usize,
    /// The shape as the request states it (for messages).
    pub shape: Vec<i64>,
    /// FP32 elements (tensor model) or encoded files (image model) the shape calls for.
    pub count: usize,
}

/// The inputs a request names: exactly one, the model's.
pub fn check_input_count(spec: &Spec, kind: Kind, inputs: usize) -> Result<(), Bad> {
    if inputs != 1 {
        return Err(format!(
            "model `{}` takes exactly one input, {}; the request has {inputs}",
            spec.model_name(kind),
            spec.input_desc(kind)
        ));
    }
    Ok(())
}

/// The input's name, datatype and shape.
pub fn check_input(
    spec: &Spec,
    kind: Kind,
    name: &str,
    datatype: &str,
    shape: &[i64],
) -> Result<Checked, Bad> {
    let want = Spec::input_name(kind);
    if name != want {
        return Err(format!(
            "unknown input `{name}` for model `{}`; expected {}",
            spec.model_name(kind),
            spec.input_desc(kind)
        ));
    }
    if datatype != Spec::input_datatype(kind) {
        return Err(format!(
            "input `{want}` has datatype `{datatype}`; expected {}",
            spec.input_desc(kind)
        ));
    }
    let dims: Option<Vec<usize>> = shape.iter().map(|&d| usize::try_from(d).ok()).collect();
    let Some(dims) = dims else {
        return Err(format!(
            "input `{want}` has shape {shape:?}; a shape's dimensions cannot be negative"
        ));
    };
    let n = match (kind, dims.as_slice()) {
        (Kind::Tensor, &[n, c, h, w]) if [c, h, w] == spec.chw => n,
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
    // n is at most --max-batch and c, h, w are the model's: the product is checked all the
    // same, and nothing is reserved from the claimed shape before the data is there (a short
    // request must not make the server allocate for a big one).
    let count = match kind {
        Kind::Tensor => spec
            .chw
            .iter()
            .try_fold(n, |a, &b| a.checked_mul(b))
            .ok_or_else(|| format!("input `{want}`: shape {shape:?} is too large"))?,
        Kind::Image => n,
    };
    Ok(Checked {
        n,
        shape: shape.to_vec(),
        count,
    })
}

/// An input's elements as the transport carried them.
pub enum Data<'a> {
    /// Bytes in Triton's raw layout (HTTP's binary extension, gRPC's raw_input_contents):
    /// FP32 as little-endian floats, BYTES as elements each after its u32 little-endian length.
    Raw(&'a [u8]),
    /// Numbers (JSON's `data`, gRPC's fp32_contents).
    Numbers(Vec<f32>),
    /// Byte strings (JSON's `data` strings, gRPC's bytes_contents).
    Strings(Vec<&'a [u8]>),
}

/// The input's elements, checked against its shape, as the GPU's input: the tensor model's
/// values (finite), or the image model's files decoded and preprocessed as `classify` does.
pub fn input_values(
    spec: &Spec,
    kind: Kind,
    checked: &Checked,
    data: Data<'_>,
) -> Result<Vec<f32>, Bad> {
    let want = Spec::input_name(kind);
    let shape = &checked.shape;
    match kind {
        Kind::Tensor => {
            let values = match data {
                Data::Raw(raw) => {
                    if Some(raw.len()) != checked.count.checked_mul(4) {
                        return Err(format!(
                            "input `{want}` has {} bytes of binary data; shape {shape:?} of FP32 needs {}",
                            raw.len(),
                            checked.count.saturating_mul(4)
                        ));
                    }
                    raw.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect()
                }
                Data::Numbers(v) => v,
                Data::Strings(_) => {
                    return Err(format!(
                        "input `{want}` holds strings; expected FP32 numbers"
                    ));
                }
            };
            if values.len() != checked.count {
                return Err(format!(
                    "input `{want}` has {} values; shape {shape:?} needs {}",
                    values.len(),
                    checked.count
                ));
            }
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "input `{want}` holds {} at element {i}; expected finite FP32 values",
                    values[i]
                ));
            }
            Ok(values)
        }
        Kind::Image => {
            let images: Vec<&[u8]> = match data {
                Data::Raw(raw) => split_bytes(raw).map_err(|e| format!("input `{want}`: {e}"))?,
                Data::Strings(s) => s,
                Data::Numbers(_) => {
                    return Err(format!(
                        "input `{want}` holds numbers; expected BYTES (encoded image files)"
                    ));
                }
            };
            if images.len() != checked.n {
                return Err(format!(
                    "input `{want}` has {} elements; shape {shape:?} needs {}",
                    images.len(),
                    checked.n
                ));
            }
            let [c, h, w] = spec.chw;
            let mut out = Vec::with_capacity(checked.n * c * h * w);
            for (i, bytes) in images.iter().enumerate() {
                let name = format!("image[{i}]");
                let img = spec.preprocess.decode(bytes, &name).map_err(|e| {
                    format!(
                        "input `{want}`: {e}; expected an encoded image file (JPEG, PNG, WebP, BMP, GIF)"
                    )
                })?;
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
            Ok(out)
        }
    }
}

/// A requested output's name: the models have one, `logits`.
pub fn check_output(spec: &Spec, kind: Kind, name: &str) -> Result<(), Bad> {
    if name != OUTPUT {
        return Err(format!(
            "unknown output `{name}` for model `{}`; expected `{OUTPUT}`",
            spec.model_name(kind)
        ));
    }
    Ok(())
}

/// The classification extension's k (`None`: the request's value was not a positive
/// integer), at most the number of classes.
pub fn classification(spec: &Spec, k: Option<u64>) -> Result<usize, Bad> {
    let k = k
        .filter(|&k| k >= 1)
        .ok_or("classification must be a positive integer (the top k)")?;
    Ok(usize::try_from(k).unwrap_or(usize::MAX).min(spec.classes))
}

/// A checked request, ready for the GPU.
pub struct Prepared {
    pub n: usize,
    pub input: Vec<f32>,
    /// The classification extension's k, if asked.
    pub classification: Option<usize>,
}

/// The output tensor.
pub enum Answer {
    /// FP32 `[n, classes]`.
    Logits(Vec<f32>),
    /// BYTES `[n, k]`: each row's top k as `"probability:index:label"`.
    Classes { k: usize, strings: Vec<String> },
}

impl Answer {
    /// `logits` of `n` rows, or their top k (`top_k`: softmax and the k best of a row, as
    /// `(index, probability)`).
    pub fn new(
        spec: &Spec,
        classification: Option<usize>,
        logits: Vec<f32>,
        top_k: impl Fn(&[f32], usize) -> Vec<(usize, f32)>,
    ) -> Answer {
        match classification {
            None => Answer::Logits(logits),
            Some(k) => {
                let mut strings = Vec::with_capacity(logits.len() / spec.classes.max(1) * k);
                for row in logits.chunks(spec.classes) {
                    for (index, p) in top_k(row, k) {
                        strings.push(format!("{p:.6}:{index}:{}", spec.labels[index]));
                    }
                }
                Answer::Classes { k, strings }
            }
        }
    }

    pub fn datatype(&self) -> &'static str {
        match self {
            Answer::Logits(_) => "FP32",
            Answer::Classes { .. } => "BYTES",
        }
    }

    /// The output's shape for `n` rows.
    pub fn shape(&self, spec: &Spec, n: usize) -> [usize; 2] {
        match self {
            Answer::Logits(_) => [n, spec.classes],
            Answer::Classes { k, .. } => [n, *k],
        }
    }

    /// Triton's raw layout (binary extension, raw_output_contents).
    pub fn raw(&self) -> Vec<u8> {
        match self {
            Answer::Logits(v) => v.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Answer::Classes { strings, .. } => {
                let mut out = Vec::new();
                for s in strings {
                    out.extend((s.len() as u32).to_le_bytes());
                    out.extend(s.as_bytes());
                }
                out
            }
        }
    }
}

/// Triton's BYTES serialization: each element a 4-byte little-endian length, then its bytes.
pub fn split_bytes(mut raw: &[u8]) -> Result<Vec<&[u8]>, String> {
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
        out.push(&raw[..len]);
        raw = &raw[len..];
    }
    Ok(out)
}
