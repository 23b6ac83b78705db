//! ONNX ResNets: a pattern matcher from an ONNX graph onto our network description, not an
//! ONNX runtime. It walks the dataflow from the graph input (stem conv, optional BN + ReLU,
//! max pool, residual units, pooling, classifier) and reads every structural choice off the
//! graph itself: pre- or post-activation units, which conv strides, padding, widths, batch
//! norms kept as nodes (the ONNX model zoo's MXNet Gluon exports) or already folded into conv
//! biases (`torch.onnx.export`). Anything outside that pattern is an error naming the node,
//! its op type and what was expected there.
//!
//! Pass-through nodes (`Identity`, `Cast` between float types: what a float16 conversion adds
//! around the graph) are looked through. Initializers may be float32, float16, bfloat16 or
//! float64, in `raw_data` or the typed fields; float16 values in `int32_data` are bit patterns.

use super::onnx_proto::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};
use super::{Loaded, check_finite, finish};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::model::arch::{Arch, Flavour, Rules, Stage, UnitKind};
use crate::model::flavour::{
    AxisOrder, Biases, Companion, Family, ShortcutRule, StemPoolPadding, StrideConv, StrideUnit,
};
use crate::model::params::{BatchNorm, ConvWeights, Params, UnitParams};
use prost::Message;
use std::collections::HashMap;
use std::path::Path;

/// ONNX `TensorProto.DataType` codes read here.
const FLOAT: i32 = 1;
const INT64: i32 = 7;
const FLOAT16: i32 = 10;
const DOUBLE: i32 = 11;
const BFLOAT16: i32 = 16;

/// Whether `bytes` parse as an ONNX model with a graph (used to recognise an ONNX file
/// without the `.onnx` extension).
pub(crate) fn looks_like_onnx(bytes: &[u8]) -> bool {
    ModelProto::decode(bytes).is_ok_and(|m| m.graph.is_some())
}

fn fail(path: &Path, problem: impl Into<String>) -> Error {
    Error::Onnx {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// Loads an ONNX ResNet from the bytes of `path`.
pub(crate) fn load_onnx(bytes: &[u8], path: &Path) -> Result<Loaded> {
    let model = ModelProto::decode(bytes)
        .map_err(|e| fail(path, format!("not a valid ONNX protobuf ({e})")))?;
    let Some(graph) = model.graph.as_ref() else {
        return Err(fail(path, "the model has no graph"));
    };
    let opset = model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .unwrap_or(0);
    let mut m = Matcher::new(graph, path)?;
    let (arch, params) = m.network()?;
    m.all_used()?;
    let producer = format!("{} {}", model.producer_name, model.producer_version);
    let format = format!("ONNX opset {opset}, from {}", producer.trim());
    let flavour = arch.flavour;
    let companion = Companion {
        preprocess: None,
        labels: None,
        notes: vec![format!(
            "ONNX files do not say how to preprocess: classify uses {} (override with --size \
             and --resize)",
            if flavour == Flavour::TimmV2 {
                "timm's (the initializers carry timm names): shorter side 235, crop 224, bicubic, [-1, 1]"
            } else {
                "the ONNX model zoo's and torchvision's: shorter side 256, crop 224, ImageNet mean/std"
            }
        )],
    };
    Ok(finish(Network { arch, params }, path, format, companion))
}

/// One conv (with its bias) as the graph holds it.
struct Conv {
    node: String,
    weights: ConvWeights,
    stride: usize,
}

/// A conv, the batch norm right after it if any, and the value they produce.
struct ConvBn {
    conv: Conv,
    bn: Option<BatchNorm>,
    out: String,
}

struct Matcher<'a> {
    path: &'a Path,
    nodes: &'a [NodeProto],
    /// Output value -> pass-through input value (Identity, float Cast).
    alias: HashMap<&'a str, &'a str>,
    /// Value -> index of the node producing it.
    producer: HashMap<String, usize>,
    /// Value -> indices of the nodes reading it.
    consumers: HashMap<String, Vec<usize>>,
    initializers: HashMap<&'a str, &'a TensorProto>,
    /// `Constant` nodes' tensors by output name.
    constants: HashMap<&'a str, &'a TensorProto>,
    used: Vec<bool>,
    input: String,
    output: String,
    initializer_names: Vec<&'a str>,
}

fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map_or(default, |a| a.f)
}

fn attr_s(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// `name (Op)` of a node, for messages.
fn show(node: &NodeProto) -> String {
    let name = if node.name.is_empty() {
        node.output.first().map_or("?", String::as_str)
    } else {
        &node.name
    };
    format!("`{name}` ({})", node.op_type)
}

impl<'a> Matcher<'a> {
    fn new(graph: &'a GraphProto, path: &'a Path) -> Result<Matcher<'a>> {
        let nodes = graph.node.as_slice();
        let initializers: HashMap<&str, &TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let mut alias = HashMap::new();
        let mut constants = HashMap::new();
        let mut used = vec![false; nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            if !n.domain.is_empty() && n.domain != "ai.onnx" {
                return Err(fail(
                    path,
                    format!("node {} is from the custom domain `{}`", show(n), n.domain),
                ));
            }
            let float_cast = n.op_type == "Cast"
                && matches!(
                    attr_i(n, "to", 0) as i32,
                    FLOAT | FLOAT16 | DOUBLE | BFLOAT16
                );
            if (n.op_type == "Identity" || float_cast) && n.input.len() == 1 && n.output.len() == 1
            {
                alias.insert(n.output[0].as_str(), n.input[0].as_str());
                used[i] = true;
            }
            if n.op_type == "Constant"
                && n.output.len() == 1
                && let Some(t) = attr(n, "value").and_then(|a| a.t.as_ref())
            {
                constants.insert(n.output[0].as_str(), t);
                used[i] = true;
            }
        }
        let real_inputs: Vec<&str> = graph
            .input
            .iter()
            .map(|i| i.name.as_str())
            .filter(|n| !initializers.contains_key(n))
            .collect();
        let input = match real_inputs[..] {
            [one] => one.to_string(),
            [] => return Err(fail(path, "the graph has no input")),
            _ => {
                return Err(fail(
                    path,
                    format!(
                        "the graph has {} inputs ({}); a ResNet has one image input",
                        real_inputs.len(),
                        real_inputs.join(", ")
                    ),
                ));
            }
        };
        let output = match graph.output.as_slice() {
            [one] => one.name.clone(),
            outs => {
                return Err(fail(
                    path,
                    format!(
                        "the graph has {} outputs ({}); a ResNet has one, the logits",
                        outs.len(),
                        outs.iter()
                            .map(|o| o.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        };
        let mut m = Matcher {
            path,
            nodes,
            alias,
            producer: HashMap::new(),
            consumers: HashMap::new(),
            initializers,
            constants,
            used,
            input,
            output,
            initializer_names: graph.initializer.iter().map(|t| t.name.as_str()).collect(),
        };
        for (i, n) in nodes.iter().enumerate() {
            if m.used[i] {
                continue;
            }
            for o in &n.output {
                m.producer.insert(m.resolve(o).to_string(), i);
            }
            for v in &n.input {
                if !v.is_empty() {
                    let r = m.resolve(v).to_string();
                    m.consumers.entry(r).or_default().push(i);
                }
            }
        }
        m.output = m.resolve(&m.output.clone()).to_string();
        Ok(m)
    }

    /// A value looked through pass-through nodes.
    fn resolve<'v>(&self, mut v: &'v str) -> &'v str
    where
        'a: 'v,
    {
        // Bounded: a cycle of Identity nodes is no graph ONNX allows, but must not hang us.
        for _ in 0..self.nodes.len() + 1 {
            match self.alias.get(v) {
                Some(&src) => v = src,
                None => break,
            }
        }
        v
    }

    fn err(&self, problem: impl Into<String>) -> Error {
        fail(self.path, problem)
    }

    /// The not yet matched nodes reading `v`.
    fn readers(&self, v: &str) -> Vec<usize> {
        self.consumers
            .get(v)
            .map(|c| c.iter().copied().filter(|&i| !self.used[i]).collect())
            .unwrap_or_default()
    }

    /// The one node reading `v`, which must be one of `ops`; `after` names what produced `v`.
    fn next(&self, v: &str, ops: &[&str], after: &str) -> Result<usize> {
        let readers = self.readers(v);
        match readers[..] {
            [i] if ops.contains(&self.nodes[i].op_type.as_str()) => Ok(i),
            [] if v == self.output => Err(self.err(format!(
                "the graph ends after {after}; expected {} there",
                ops.join(" or ")
            ))),
            [] => Err(self.err(format!(
                "nothing reads the output of {after}; expected {}",
                ops.join(" or ")
            ))),
            [i] => Err(self.err(format!(
                "node {} follows {after}; expected {} there",
                show(&self.nodes[i]),
                ops.join(" or ")
            ))),
            _ => Err(self.err(format!(
                "{} nodes read the output of {after} ({}); expected one {}",
                readers.len(),
                readers
                    .iter()
                    .map(|&i| show(&self.nodes[i]))
                    .collect::<Vec<_>>()
                    .join(", "),
                ops.join(" or ")
            ))),
        }
    }

    /// Marks node `i` matched and returns its (resolved) first output.
    fn take(&mut self, i: usize) -> Result<String> {
        self.used[i] = true;
        let n = &self.nodes[i];
        let out = n
            .output
            .first()
            .ok_or_else(|| self.err(format!("node {} has no output", show(n))))?;
        // Extra outputs (a training-mode BatchNormalization's statistics) must be unused.
        for extra in n.output.iter().skip(1).filter(|o| !o.is_empty()) {
            if !self.readers(self.resolve(extra)).is_empty() || self.resolve(extra) == self.output {
                return Err(self.err(format!(
                    "node {}'s output `{extra}` is used; only its first output can be",
                    show(n)
                )));
            }
        }
        Ok(self.resolve(out).to_string())
    }

    /// The resolved value of input `k` of node `i`.
    fn input_of(&self, i: usize, k: usize) -> Option<&str> {
        self.nodes[i]
            .input
            .get(k)
            .filter(|v| !v.is_empty())
            .map(|v| self.resolve(v))
    }

    /// An initializer or `Constant` as `(dims, f32 values)`.
    fn constant(&self, name: &str, node: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = self.tensor(name, node)?;
        let dims = dims(t).ok_or_else(|| self.err(format!("`{name}` has a negative dimension")))?;
        let n: usize = dims.iter().product();
        let bits16 = |raw: &[u8], ints: &[i32], widen: fn(u16) -> f32| -> Vec<f32> {
            if !raw.is_empty() {
                raw.chunks_exact(2)
                    .map(|b| widen(u16::from_le_bytes([b[0], b[1]])))
                    .collect()
            } else {
                // One value per int32, its low 16 bits the pattern (how onnx stores them).
                ints.iter().map(|&v| widen(v as u16)).collect()
            }
        };
        let raw = t.raw_data.as_slice();
        let data: Vec<f32> = match t.data_type {
            FLOAT if !raw.is_empty() => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            FLOAT => t.float_data.clone(),
            FLOAT16 => bits16(raw, &t.int32_data, |h| half::f16::from_bits(h).to_f32()),
            BFLOAT16 => bits16(raw, &t.int32_data, |h| half::bf16::from_bits(h).to_f32()),
            DOUBLE if !raw.is_empty() => raw
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            DOUBLE => t.double_data.iter().map(|&v| v as f32).collect(),
            other => {
                return Err(self.err(format!(
                    "initializer `{name}` of node {} has data type {other}; weights must be \
                     float32, float16, bfloat16 or float64",
                    show(&self.nodes[node])
                )));
            }
        };
        if data.len() != n {
            return Err(self.err(format!(
                "initializer `{name}` has shape {dims:?} ({n} values) but holds {} values",
                data.len()
            )));
        }
        check_finite(name, &data)?;
        Ok((dims, data))
    }

    /// The raw tensor of an initializer or `Constant`.
    fn tensor(&self, name: &str, node: usize) -> Result<&'a TensorProto> {
        let t = self
            .initializers
            .get(name)
            .or_else(|| self.constants.get(name))
            .copied()
            .ok_or_else(|| {
                self.err(format!(
                    "node {} reads `{name}` as a weight, but it is no initializer or constant \
                     (weights computed in the graph are not supported)",
                    show(&self.nodes[node])
                ))
            })?;
        if t.data_location == 1 {
            return Err(self.err(format!(
                "initializer `{name}` lives in an external data file; re-save the model with \
                 the weights inside (`onnx.save(model, path, save_as_external_data=False)`)"
            )));
        }
        Ok(t)
    }

    /// An int64 constant (a Reshape shape, ReduceMean axes).
    fn ints(&self, name: &str, node: usize) -> Result<Vec<i64>> {
        let t = self.tensor(name, node)?;
        if t.data_type != INT64 {
            return Err(self.err(format!(
                "`{name}` of node {} should be int64",
                show(&self.nodes[node])
            )));
        }
        Ok(if t.raw_data.is_empty() {
            t.int64_data.clone()
        } else {
            t.raw_data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect()
        })
    }

    /// A `Conv` node as our network can run it: square odd kernel, equal strides, symmetric
    /// padding of half the kernel, no groups or dilation; weight OIHW, optional bias.
    fn conv(&mut self, i: usize) -> Result<(Conv, String)> {
        let n = &self.nodes[i];
        let what = show(n);
        let bad = |why: String| self.err(format!("conv {what}: {why}"));
        if attr_i(n, "group", 1) != 1 {
            return Err(bad("grouped convolutions are not part of a ResNet".into()));
        }
        if attr_ints(n, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
            return Err(bad("dilated convolutions are not supported".into()));
        }
        let w_name = self
            .input_of(i, 1)
            .ok_or_else(|| bad("no weight input".into()))?
            .to_string();
        let (dims, data) = self.constant(&w_name, i)?;
        let [cout, cin, kh, kw] = dims[..] else {
            return Err(bad(format!(
                "weight `{w_name}` has shape {dims:?}, not [out, in, kh, kw]"
            )));
        };
        if kh != kw || kh % 2 == 0 {
            return Err(bad(format!(
                "a {kh}x{kw} kernel; only square odd kernels are supported"
            )));
        }
        let strides = attr_ints(n, "strides").unwrap_or_else(|| vec![1, 1]);
        let stride = match strides[..] {
            [s, t] if s == t && s >= 1 => s as usize,
            _ => {
                return Err(bad(format!(
                    "strides {strides:?}; only equal strides are supported"
                )));
            }
        };
        let p = (kh / 2) as i64;
        match attr_s(n, "auto_pad").as_deref() {
            None | Some("NOTSET") | Some("") => {
                let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
                if pads != [p, p, p, p] {
                    return Err(bad(format!(
                        "pads {pads:?}; a {kh}x{kh} conv here must pad {p} on every side"
                    )));
                }
            }
            // SAME pads symmetrically by k/2 at stride 1, and a 1x1 pads nothing either way.
            Some(a)
                if (a.starts_with("SAME") && (stride == 1 || kh == 1))
                    || (a == "VALID" && kh == 1) => {}
            Some(a) => {
                return Err(bad(format!(
                    "auto_pad {a} with a {kh}x{kh} kernel at stride {stride} does not pad {p} on \
                     every side"
                )));
            }
        }
        let mut weights = ConvWeights::from_oihw(&data, cout, cin, kh, kw);
        if let Some(b) = self.input_of(i, 2).map(str::to_string) {
            let (bdims, bias) = self.constant(&b, i)?;
            if bias.len() != cout {
                return Err(bad(format!(
                    "bias `{b}` has shape {bdims:?}, expected [{cout}]"
                )));
            }
            weights.bias = Some(bias);
        }
        let out = self.take(i)?;
        Ok((
            Conv {
                node: self.nodes[i].name.clone(),
                weights,
                stride,
            },
            out,
        ))
    }

    /// A `BatchNormalization` node in inference mode.
    fn bn(&mut self, i: usize, channels: usize) -> Result<(BatchNorm, String)> {
        let n = &self.nodes[i];
        let what = show(n);
        if attr_i(n, "spatial", 1) != 1 {
            return Err(self.err(format!("batch norm {what}: spatial=0 is not supported")));
        }
        if attr_i(n, "training_mode", 0) != 0 {
            return Err(self.err(format!(
                "batch norm {what} is in training mode; export the model in eval mode"
            )));
        }
        let mut v = Vec::with_capacity(4);
        for k in 1..5 {
            let name = self
                .input_of(i, k)
                .ok_or_else(|| self.err(format!("batch norm {what} lacks input {k}")))?
                .to_string();
            let (dims, data) = self.constant(&name, i)?;
            if data.len() != channels {
                return Err(self.err(format!(
                    "batch norm {what}: `{name}` has shape {dims:?} but its input has {channels} \
                     channels"
                )));
            }
            v.push(data);
        }
        let eps = attr_f(n, "epsilon", 1e-5);
        let out = self.take(i)?;
        let [gamma, beta, mean, var] = <[Vec<f32>; 4]>::try_from(v).expect("4 inputs");
        Ok((
            BatchNorm {
                gamma,
                beta,
                mean,
                var,
                eps,
            },
            out,
        ))
    }

    /// Conv node `i`, reading a value of `cin` channels, with the batch norm that follows it
    /// (if the exporter did not fold it).
    fn conv_bn(&mut self, i: usize, cin: usize) -> Result<ConvBn> {
        let (conv, out) = self.conv(i)?;
        if conv.weights.cin != cin {
            return Err(self.err(format!(
                "conv {} takes {} input channels but reads a value with {cin}",
                show(&self.nodes[i]),
                conv.weights.cin
            )));
        }
        match self.readers(&out)[..] {
            [j] if self.nodes[j].op_type == "BatchNormalization" => {
                let (bn, out) = self.bn(j, conv.weights.cout)?;
                Ok(ConvBn {
                    conv,
                    bn: Some(bn),
                    out,
                })
            }
            _ => Ok(ConvBn {
                conv,
                bn: None,
                out,
            }),
        }
    }

    /// Whether the one reader of `v` is a `Relu`: its output then.
    fn relu_after(&mut self, v: &str) -> Result<Option<String>> {
        match self.readers(v)[..] {
            [j] if self.nodes[j].op_type == "Relu" => Ok(Some(self.take(j)?)),
            _ => Ok(None),
        }
    }

    /// The whole network.
    fn network(&mut self) -> Result<(Arch, Params)> {
        let mut x = self.input.clone();
        // MXNet Gluon v2: a batch norm on the image itself.
        let first = self.next(&x, &["Conv", "BatchNormalization"], "the graph input")?;
        let mut input_norm = None;
        let mut in_channels = None;
        if self.nodes[first].op_type == "BatchNormalization" {
            let c = self.bn_channels(first)?;
            let (bn, out) = self.bn(first, c)?;
            input_norm = Some(bn);
            in_channels = Some(c);
            x = out;
        }
        let stem_node = self.next(&x, &["Conv"], "the graph input")?;
        let stem_what = show(&self.nodes[stem_node]);
        let (stem, mut x) = self.conv(stem_node)?;
        if in_channels.is_some_and(|c| c != stem.weights.cin) {
            return Err(self.err(format!(
                "the stem conv {stem_what} does not fit the input norm"
            )));
        }
        let stem_width = stem.weights.cout;
        let mut stem_bn = None;
        if let [j] = self.readers(&x)[..]
            && self.nodes[j].op_type == "BatchNormalization"
        {
            let (bn, out) = self.bn(j, stem_width)?;
            stem_bn = Some(bn);
            x = out;
        }
        let stem_relu = self.relu_after(&x)?;
        if stem_bn.is_some() && stem_relu.is_none() {
            return Err(self.err(format!(
                "the stem's batch norm is not followed by a Relu (after {stem_what})"
            )));
        }
        if let Some(r) = stem_relu.clone() {
            x = r;
        }
        let pool = self.next(&x, &["MaxPool"], &format!("the stem conv {stem_what}"))?;
        self.check_stem_pool(pool)?;
        x = self.take(pool)?;
        if stem.stride != 2 {
            return Err(self.err(format!(
                "the stem conv {stem_what} has stride {}; a ResNet stem has stride 2",
                stem.stride
            )));
        }

        // Units until the head. The first unit says which family this is.
        let v2 = self.is_preact(&x);
        let mut units: Vec<Unit> = Vec::new();
        let mut channels = stem_width;
        let post_norm = loop {
            if let Some(post) = self.head_start(&x, v2, channels)? {
                break post;
            }
            let unit = self.unit(&x, v2, channels, units.len())?;
            channels = unit.out;
            x = unit.output.clone();
            units.push(unit);
        };
        if units.is_empty() {
            return Err(self.err("found no residual units between the stem and the head"));
        }
        let (x, post_norm) = match post_norm {
            Some((bn, out)) => (out, Some(bn)),
            None => (x, None),
        };
        if v2 && post_norm.is_none() {
            return Err(self.err(
                "a pre-activation network must end in BatchNormalization + Relu before the \
                 pooling",
            ));
        }
        let classifier = self.head(&x, channels)?;
        self.arch(AssembleInput {
            v2,
            stem,
            stem_bn,
            stem_relu: stem_relu.is_some(),
            input_norm,
            units,
            post_norm,
            classifier,
        })
    }

    /// Channels of a batch norm (from its scale).
    fn bn_channels(&self, i: usize) -> Result<usize> {
        let name = self
            .input_of(i, 1)
            .ok_or_else(|| self.err(format!("batch norm {} has no scale", show(&self.nodes[i]))))?;
        let t = self.tensor(name, i)?;
        match dims(t).as_deref() {
            Some(&[c]) => Ok(c),
            _ => Err(self.err(format!("batch norm scale `{name}` is not 1-D"))),
        }
    }

    fn check_stem_pool(&self, i: usize) -> Result<()> {
        let n = &self.nodes[i];
        let ok = attr_ints(n, "kernel_shape").as_deref() == Some(&[3, 3])
            && attr_ints(n, "strides").as_deref() == Some(&[2, 2])
            && attr_ints(n, "pads").unwrap_or_default() == [1, 1, 1, 1]
            && attr_i(n, "ceil_mode", 0) == 0
            && attr_ints(n, "dilations").is_none_or(|d| d.iter().all(|&v| v == 1))
            && attr_s(n, "auto_pad").is_none_or(|a| a == "NOTSET" || a.is_empty());
        if ok {
            Ok(())
        } else {
            Err(self.err(format!(
                "the stem pool {} is not a 3x3 stride-2 max pool padded 1 on every side",
                show(n)
            )))
        }
    }

    /// Whether units reading `x` are pre-activation (x -> BatchNormalization -> Relu -> Conv).
    fn is_preact(&self, x: &str) -> bool {
        self.readers(x).iter().any(|&i| {
            self.nodes[i].op_type == "BatchNormalization"
                && self.nodes[i].output.first().is_some_and(|o| {
                    self.readers(self.resolve(o)).iter().any(|&j| {
                        self.nodes[j].op_type == "Relu"
                            && self.nodes[j].output.first().is_some_and(|r| {
                                self.readers(self.resolve(r))
                                    .iter()
                                    .all(|&k| self.nodes[k].op_type == "Conv")
                            })
                    })
                })
        })
    }

    /// `Some` when `x` goes into the head: directly into the pooling (`Some(None)`), or
    /// through a v2 post-norm BN + Relu (`Some(Some((bn, relu output)))`).
    #[allow(clippy::type_complexity)]
    fn head_start(
        &mut self,
        x: &str,
        v2: bool,
        channels: usize,
    ) -> Result<Option<Option<(BatchNorm, String)>>> {
        let readers = self.readers(x);
        let [i] = readers[..] else {
            return Ok(None);
        };
        let op = self.nodes[i].op_type.as_str();
        if matches!(op, "GlobalAveragePool" | "ReduceMean") {
            return Ok(Some(None));
        }
        if v2 && op == "BatchNormalization" {
            // The post-norm if its Relu feeds the pooling (a preact's feeds convs).
            let bn_out = self.nodes[i]
                .output
                .first()
                .map(|o| self.resolve(o).to_string());
            let pooled = bn_out.is_some_and(|o| {
                self.readers(&o).iter().any(|&j| {
                    self.nodes[j].op_type == "Relu"
                        && self.nodes[j].output.first().is_some_and(|r| {
                            self.readers(self.resolve(r)).iter().any(|&k| {
                                matches!(
                                    self.nodes[k].op_type.as_str(),
                                    "GlobalAveragePool" | "ReduceMean"
                                )
                            })
                        })
                })
            });
            if pooled {
                let (bn, out) = self.bn(i, channels)?;
                let relu = self
                    .relu_after(&out)?
                    .ok_or_else(|| self.err("the post-norm has no Relu"))?;
                return Ok(Some(Some((bn, relu))));
            }
        }
        Ok(None)
    }

    /// One residual unit reading `x` (`cin` channels).
    fn unit(&mut self, x: &str, v2: bool, cin: usize, index: usize) -> Result<Unit> {
        let at = format!("residual unit {} (reading `{x}`)", index + 1);
        let mut preact = None;
        let main = if v2 {
            let bns: Vec<usize> = self
                .readers(x)
                .into_iter()
                .filter(|&i| self.nodes[i].op_type == "BatchNormalization")
                .collect();
            let [b] = bns[..] else {
                return Err(self.err(format!(
                    "{at}: expected one pre-activation BatchNormalization, found {}",
                    bns.len()
                )));
            };
            let (bn, out) = self.bn(b, cin)?;
            preact = Some(bn);
            self.relu_after(&out)?.ok_or_else(|| {
                self.err(format!(
                    "{at}: the pre-activation batch norm has no Relu after it"
                ))
            })?
        } else {
            x.to_string()
        };
        let readers = self.readers(&main);
        // v1's identity shortcut reads the unit input too (v2's reads x, not the preact).
        let expected = |op: &str| op == "Conv" || (op == "Add" && !v2);
        let convs: Vec<usize> = readers
            .iter()
            .copied()
            .filter(|&i| self.nodes[i].op_type == "Conv")
            .collect();
        let others: Vec<usize> = readers
            .iter()
            .copied()
            .filter(|&i| !expected(&self.nodes[i].op_type))
            .collect();
        if let Some(&o) = others.first() {
            return Err(self.err(format!(
                "{at}: node {} reads the unit's input; expected Conv{}",
                show(&self.nodes[o]),
                if v2 { "" } else { " or the residual Add" }
            )));
        }
        if convs.is_empty() || convs.len() > 2 {
            return Err(self.err(format!(
                "{at}: {} convs read the unit's input; expected the branch's first conv and \
                 at most a projection shortcut",
                convs.len()
            )));
        }
        // Which conv is the shortcut: the one whose output (after its BN) goes into an Add.
        let mut parsed: Vec<ConvBn> = Vec::new();
        for &c in &convs {
            parsed.push(self.conv_bn(c, cin)?);
        }
        let feeds_add = |m: &Self, cb: &ConvBn| matches!(m.readers(&cb.out)[..], [j] if m.nodes[j].op_type == "Add");
        let (first, shortcut) = match parsed.len() {
            1 => (parsed.pop().expect("one"), None),
            _ => {
                let b = parsed.pop().expect("two");
                let a = parsed.pop().expect("two");
                match (feeds_add(self, &a), feeds_add(self, &b)) {
                    (true, false) => (b, Some(a)),
                    (false, true) => (a, Some(b)),
                    _ => {
                        return Err(self.err(format!(
                            "{at}: cannot tell the projection shortcut from the branch among \
                             convs `{}` and `{}`",
                            a.conv.node, b.conv.node
                        )));
                    }
                }
            }
        };
        // The branch: conv [BN] Relu conv [BN] (Relu conv [BN]) -> Add.
        let mut branch = vec![first];
        let add = loop {
            let last = branch.last().expect("non-empty");
            let out = last.out.clone();
            let cout = last.conv.weights.cout;
            let node = last.conv.node.clone();
            let readers = self.readers(&out);
            match readers[..] {
                [j] if self.nodes[j].op_type == "Add" => break j,
                [j] if self.nodes[j].op_type == "Relu" && branch.len() < 3 => {
                    let r = self.take(j)?;
                    let c = self.next(&r, &["Conv"], &format!("the Relu after conv `{node}`"))?;
                    let cb = self.conv_bn(c, cout)?;
                    branch.push(cb);
                }
                _ => {
                    let seen = readers
                        .iter()
                        .map(|&i| show(&self.nodes[i]))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(self.err(format!(
                        "{at}: after conv `{node}` expected Relu (then the next conv) or the \
                         residual Add, found {}",
                        if seen.is_empty() {
                            "nothing".to_string()
                        } else {
                            seen
                        }
                    )));
                }
            }
        };
        let kind = match branch.len() {
            2 => UnitKind::Basic,
            3 => UnitKind::Bottleneck,
            n => {
                return Err(self.err(format!(
                    "{at}: the residual branch has {n} conv(s); a ResNet unit has 2 (basic) or 3 \
                     (bottleneck)"
                )));
            }
        };
        // The Add: branch end + (shortcut output | the unit input).
        let end = branch.last().expect("non-empty").out.clone();
        let sc_value = shortcut.as_ref().map_or(x.to_string(), |s| s.out.clone());
        let add_inputs: Vec<String> = (0..self.nodes[add].input.len())
            .filter_map(|k| self.input_of(add, k).map(str::to_string))
            .collect();
        let mut want = vec![end.clone(), sc_value.clone()];
        let mut have = add_inputs.clone();
        want.sort();
        have.sort();
        if want != have {
            return Err(self.err(format!(
                "{at}: the residual Add {} adds {add_inputs:?}; expected the branch `{end}` and \
                 the shortcut `{sc_value}`",
                show(&self.nodes[add])
            )));
        }
        let mut output = self.take(add)?;
        if !v2 {
            output = self.relu_after(&output)?.ok_or_else(|| {
                self.err(format!("{at}: the residual Add is not followed by a Relu"))
            })?;
        }
        // Strides: one conv of the branch may stride, and the shortcut with it.
        let strides: Vec<usize> = branch.iter().map(|c| c.conv.stride).collect();
        let stride = strides.iter().copied().max().unwrap_or(1);
        let strided: Vec<usize> = (0..strides.len()).filter(|&k| strides[k] != 1).collect();
        let stride_conv = match (kind, &strided[..]) {
            (_, []) => None,
            (UnitKind::Basic, [0]) | (UnitKind::Bottleneck, [1]) => Some(StrideConv::Spatial3x3),
            (UnitKind::Bottleneck, [0]) => Some(StrideConv::Reduce1x1),
            _ => {
                return Err(self.err(format!(
                    "{at}: convs with strides {strides:?}; a unit strides in its first conv (basic) \
                     or in its 1x1 or 3x3 (bottleneck)"
                )));
            }
        };
        match &shortcut {
            Some(s) if s.conv.stride != stride || s.conv.weights.kh != 1 => {
                return Err(self.err(format!(
                    "{at}: the projection shortcut `{}` is not a 1x1 conv with the unit's stride \
                     {stride}",
                    s.conv.node
                )));
            }
            None if stride != 1 => {
                return Err(self.err(format!(
                    "{at}: the unit strides by {stride} but its shortcut is the identity (a \
                     subsampled identity shortcut is not supported)"
                )));
            }
            None if branch.last().expect("non-empty").conv.weights.cout != cin => {
                return Err(self.err(format!(
                    "{at}: an identity shortcut but the branch changes {cin} to {} channels",
                    branch.last().expect("non-empty").conv.weights.cout
                )));
            }
            _ => {}
        }
        if v2 && branch.last().is_some_and(|c| c.bn.is_some()) {
            return Err(self.err(format!(
                "{at}: a pre-activation unit with a batch norm after its last conv"
            )));
        }
        let out = branch.last().expect("non-empty").conv.weights.cout;
        let width = branch[0].conv.weights.cout;
        let mut it = branch.into_iter();
        let c1 = it.next().expect("2 or 3");
        let c2 = it.next().expect("2 or 3");
        let c3 = it.next();
        let params = UnitParams {
            preact,
            conv1: c1.conv.weights,
            bn1: c1.bn.unwrap_or_else(|| BatchNorm::identity(width)),
            conv2: c2.conv.weights,
            bn2: c2.bn,
            bn3: c3.as_ref().and_then(|c| c.bn.clone()),
            conv3: c3.map(|c| c.conv.weights),
            shortcut: shortcut.map(|s| (s.conv.weights, s.bn)),
        };
        Ok(Unit {
            params,
            kind,
            stride,
            stride_conv,
            width,
            out,
            output,
        })
    }

    /// Pooling, flattening and the classifier after the last unit's value `x` (`c` channels),
    /// up to the graph output. Returns the classifier as a 1x1 conv.
    fn head(&mut self, x: &str, c: usize) -> Result<ConvWeights> {
        let pool = self.next(
            x,
            &["GlobalAveragePool", "ReduceMean"],
            "the last residual unit",
        )?;
        if self.nodes[pool].op_type == "ReduceMean" {
            let axes = match attr_ints(&self.nodes[pool], "axes") {
                Some(a) => a,
                None => match self.input_of(pool, 1).map(str::to_string) {
                    Some(name) => self.ints(&name, pool)?,
                    None => Vec::new(),
                },
            };
            let mut axes: Vec<i64> = axes
                .iter()
                .map(|&a| if a < 0 { a + 4 } else { a })
                .collect();
            axes.sort_unstable();
            if axes != [2, 3] {
                return Err(self.err(format!(
                    "the pooling {} averages over axes {axes:?}; expected the spatial axes 2, 3",
                    show(&self.nodes[pool])
                )));
            }
        }
        let mut v = self.take(pool)?;
        let mut classifier: Option<ConvWeights> = None;
        while v != self.output {
            let (ops, what): (&[&str], _) = match classifier {
                None => (
                    &["Flatten", "Reshape", "Squeeze", "Gemm", "MatMul", "Conv"],
                    "the global pooling",
                ),
                Some(_) => (&["Flatten", "Reshape", "Squeeze"], "the classifier"),
            };
            let i = self.next(&v, ops, what)?;
            let n = &self.nodes[i];
            v = match n.op_type.as_str() {
                "Gemm" => {
                    let (w, out) = self.gemm(i, c)?;
                    classifier = Some(w);
                    out
                }
                "MatMul" => {
                    let (w, out) = self.matmul(i, c)?;
                    classifier = Some(w);
                    out
                }
                "Conv" => {
                    let what = show(n);
                    let (conv, out) = self.conv(i)?;
                    if conv.weights.kh != 1 || conv.weights.cin != c {
                        return Err(self.err(format!(
                            "{what} after the pooling is not a 1x1 classifier over {c} channels"
                        )));
                    }
                    let mut w = conv.weights;
                    w.bias.get_or_insert_with(|| vec![0.0; w.cout]);
                    classifier = Some(w);
                    out
                }
                "Reshape" => {
                    let shape = match self.input_of(i, 1).map(str::to_string) {
                        Some(s) => self.ints(&s, i)?,
                        None => Vec::new(),
                    };
                    let feat = classifier.as_ref().map_or(c, |w| w.cout) as i64;
                    if !matches!(shape[..], [_, last] if last == -1 || last == feat) {
                        return Err(self.err(format!(
                            "{} reshapes to {shape:?}; expected [N, {feat}] or [0, -1]",
                            show(n)
                        )));
                    }
                    self.take(i)?
                }
                // Flatten, Squeeze: the pooled [N, C, 1, 1] as [N, C].
                _ => {
                    if n.op_type == "Flatten" && attr_i(n, "axis", 1) != 1 {
                        return Err(self.err(format!("{} flattens from axis != 1", show(n))));
                    }
                    self.take(i)?
                }
            };
        }
        classifier.ok_or_else(|| {
            self.err("the graph output is the pooled features; a classifier (Gemm) is expected")
        })
    }

    /// `Gemm(features, W, b)` as a 1x1 conv, and its output.
    fn gemm(&mut self, i: usize, c: usize) -> Result<(ConvWeights, String)> {
        let n = &self.nodes[i];
        let what = show(n);
        if attr_f(n, "alpha", 1.0) != 1.0
            || attr_f(n, "beta", 1.0) != 1.0
            || attr_i(n, "transA", 0) != 0
        {
            return Err(self.err(format!(
                "classifier {what}: only alpha = beta = 1 and transA = 0 are supported"
            )));
        }
        let trans_b = attr_i(n, "transB", 0) != 0;
        let w_name = self
            .input_of(i, 1)
            .ok_or_else(|| self.err(format!("classifier {what} has no weight")))?
            .to_string();
        let (dims, data) = self.constant(&w_name, i)?;
        let dense = match (&dims[..], trans_b) {
            (&[classes, cin], true) if cin == c => transpose(&data, classes, cin),
            (&[cin, _], false) if cin == c => data,
            _ => {
                return Err(self.err(format!(
                    "classifier {what}: weight `{w_name}` has shape {dims:?} (transB {}), which \
                     does not take {c} features",
                    i64::from(trans_b)
                )));
            }
        };
        let classes = dense.len() / c;
        let bias = match self.input_of(i, 2).map(str::to_string) {
            Some(b) => self.bias(&b, i, classes)?,
            None => vec![0.0; classes],
        };
        let out = self.take(i)?;
        Ok((
            ConvWeights {
                bias: Some(bias),
                ..AxisOrder::Dense.to_hwio(dense, 1, 1, c, classes)
            },
            out,
        ))
    }

    /// `MatMul(features, W)` [+ `Add(b)`] as a 1x1 conv, and its output.
    fn matmul(&mut self, i: usize, c: usize) -> Result<(ConvWeights, String)> {
        let what = show(&self.nodes[i]);
        let w_name = self
            .input_of(i, 1)
            .ok_or_else(|| self.err(format!("classifier {what} has no weight")))?
            .to_string();
        let (dims, dense) = self.constant(&w_name, i)?;
        let classes = match dims[..] {
            [cin, classes] if cin == c => classes,
            _ => {
                return Err(self.err(format!(
                    "classifier {what}: weight `{w_name}` has shape {dims:?}, not [{c}, classes]"
                )));
            }
        };
        let mut out = self.take(i)?;
        let mut bias = vec![0.0; classes];
        if let [j] = self.readers(&out)[..]
            && self.nodes[j].op_type == "Add"
        {
            let other = (0..2)
                .filter_map(|k| self.input_of(j, k))
                .find(|v| *v != out)
                .map(str::to_string)
                .ok_or_else(|| self.err(format!("the bias Add after {what} has no bias")))?;
            bias = self.bias(&other, j, classes)?;
            out = self.take(j)?;
        }
        Ok((
            ConvWeights {
                bias: Some(bias),
                ..AxisOrder::Dense.to_hwio(dense, 1, 1, c, classes)
            },
            out,
        ))
    }

    fn bias(&self, name: &str, node: usize, classes: usize) -> Result<Vec<f32>> {
        let (dims, b) = self.constant(name, node)?;
        if b.len() != classes {
            return Err(self.err(format!(
                "classifier bias `{name}` has shape {dims:?}, expected [{classes}]"
            )));
        }
        Ok(b)
    }

    /// Fails naming the first node the pattern did not account for.
    fn all_used(&self) -> Result<()> {
        match self.used.iter().position(|u| !u) {
            None => Ok(()),
            Some(i) => Err(self.err(format!(
                "node {} is outside the ResNet pattern (nothing of the stem, the residual units \
                 or the head accounts for it)",
                show(&self.nodes[i])
            ))),
        }
    }

    /// Groups the units into stages and builds the arch.
    fn arch(&self, a: AssembleInput) -> Result<(Arch, Params)> {
        let AssembleInput {
            v2,
            stem,
            stem_bn,
            stem_relu,
            input_norm,
            units,
            post_norm,
            classifier,
        } = a;
        let kind = units[0].kind;
        if let Some(u) = units.iter().position(|u| u.kind != kind) {
            return Err(self.err(format!(
                "residual unit {} is {:?} but the first is {kind:?}",
                u + 1,
                units[u].kind
            )));
        }
        let stride_convs: Vec<StrideConv> = units.iter().filter_map(|u| u.stride_conv).collect();
        let stride_conv = stride_convs
            .first()
            .copied()
            .unwrap_or(StrideConv::Spatial3x3);
        if stride_convs.iter().any(|&s| s != stride_conv) {
            return Err(self.err(
                "some units stride in their 1x1 conv and others in their 3x3; a ResNet does one",
            ));
        }
        // A unit that strides, projects or changes width starts a stage.
        let mut stages: Vec<Stage> = Vec::new();
        let mut grouped: Vec<Vec<UnitParams>> = Vec::new();
        for (k, u) in units.into_iter().enumerate() {
            let starts = k == 0
                || u.stride != 1
                || u.params.shortcut.is_some()
                || stages
                    .last()
                    .is_some_and(|s| s.out != u.out || s.width != u.width);
            if starts {
                stages.push(Stage {
                    units: 0,
                    width: u.width,
                    out: u.out,
                    stride: u.stride,
                });
                grouped.push(Vec::new());
            }
            let s = stages.last_mut().expect("pushed");
            s.units += 1;
            grouped.last_mut().expect("pushed").push(u.params);
        }
        let rules = Rules {
            family: if v2 {
                Family::PreActivation
            } else {
                Family::PostActivation
            },
            stride_unit: StrideUnit::First,
            stride_conv,
            stem_pool: StemPoolPadding::TorchNegInf,
            shortcut: ShortcutRule::WhenShapeChanges,
            stem_norm: stem_relu,
            bn_eps: 1e-5,
            biases: Biases::NONE,
        };
        // timm's exporter keeps its parameter names on what it did not fold: use timm's
        // preprocessing for those, the zoo's (= torchvision's) otherwise.
        let timm = self
            .initializer_names
            .iter()
            .any(|n| n.starts_with("stages.") || n.starts_with("stem.conv."));
        let flavour = if timm {
            Flavour::TimmV2
        } else {
            Flavour::Torchvision
        };
        let mut arch = Arch {
            flavour,
            rules,
            unit: kind,
            in_channels: stem.weights.cin,
            stem_width: stem.weights.cout,
            stages,
            classes: classifier.cout,
        };
        // Which shortcut rule the graph follows (only informative: the params say where the
        // projections are).
        let follows = |arch: &Arch| {
            grouped.iter().enumerate().all(|(s, us)| {
                us.iter()
                    .enumerate()
                    .all(|(u, p)| arch.has_projection(s, u) == p.shortcut.is_some())
            })
        };
        if !follows(&arch) {
            arch.rules.shortcut = ShortcutRule::FirstUnitOfStage;
            if !follows(&arch) {
                return Err(self.err(
                    "the projection shortcuts sit neither where the shape changes nor in the \
                     first unit of every stage",
                ));
            }
        }
        if !v2 && stem_bn.is_none() && !stem_relu {
            return Err(self.err("a post-activation network needs a Relu after the stem conv"));
        }
        let params = Params {
            input_norm,
            stem: stem.weights,
            stem_bn,
            stages: grouped,
            post_norm,
            classifier,
        };
        Ok((arch, params))
    }
}

/// A matched residual unit.
struct Unit {
    params: UnitParams,
    kind: UnitKind,
    stride: usize,
    stride_conv: Option<StrideConv>,
    width: usize,
    out: usize,
    /// The value the unit produces.
    output: String,
}

struct AssembleInput {
    v2: bool,
    stem: Conv,
    stem_bn: Option<BatchNorm>,
    stem_relu: bool,
    input_norm: Option<BatchNorm>,
    units: Vec<Unit>,
    post_norm: Option<BatchNorm>,
    classifier: ConvWeights,
}

fn dims(t: &TensorProto) -> Option<Vec<usize>> {
    t.dims.iter().map(|&d| usize::try_from(d).ok()).collect()
}

/// `[rows, cols]` -> `[cols, rows]`.
fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::load::onnx_proto::{OperatorSetIdProto, ValueInfoProto};

    fn tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
        TensorProto {
            dims: dims.to_vec(),
            data_type: FLOAT,
            float_data: values.to_vec(),
            name: name.into(),
            ..Default::default()
        }
    }

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    fn node(op: &str, name: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.to_string()],
            name: name.into(),
            op_type: op.into(),
            attribute: attrs,
            domain: String::new(),
        }
    }

    fn conv(name: &str, x: &str, k: i64, stride: i64) -> NodeProto {
        let p = k / 2;
        node(
            "Conv",
            name,
            &[x, &format!("{name}_w")],
            vec![
                ints("kernel_shape", &[k, k]),
                ints("strides", &[stride, stride]),
                ints("pads", &[p, p, p, p]),
            ],
        )
    }

    fn ramp(n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * scale)
            .collect()
    }

    /// A one-unit basic v1 ResNet, 4 channels, 5 classes.
    fn tiny() -> ModelProto {
        let nodes = vec![
            conv("stem", "x", 7, 2),
            node("Relu", "stem_relu", &["stem"], vec![]),
            node(
                "MaxPool",
                "pool",
                &["stem_relu"],
                vec![
                    ints("kernel_shape", &[3, 3]),
                    ints("strides", &[2, 2]),
                    ints("pads", &[1, 1, 1, 1]),
                ],
            ),
            conv("c1", "pool", 3, 1),
            node("Relu", "r1", &["c1"], vec![]),
            conv("c2", "r1", 3, 1),
            node("Add", "add", &["c2", "pool"], vec![]),
            node("Relu", "out", &["add"], vec![]),
            node("GlobalAveragePool", "gap", &["out"], vec![]),
            node("Flatten", "flat", &["gap"], vec![]),
            node(
                "Gemm",
                "logits",
                &["flat", "fc_w", "fc_b"],
                vec![AttributeProto {
                    name: "transB".into(),
                    i: 1,
                    ..Default::default()
                }],
            ),
        ];
        let initializer = vec![
            tensor("stem_w", &[4, 3, 7, 7], &ramp(4 * 3 * 49, 0.01)),
            tensor("c1_w", &[4, 4, 3, 3], &ramp(144, 0.05)),
            tensor("c2_w", &[4, 4, 3, 3], &ramp(144, 0.03)),
            tensor("fc_w", &[5, 4], &ramp(20, 0.1)),
            tensor("fc_b", &[5], &[0.1, 0.2, 0.3, 0.4, 0.5]),
        ];
        let vi = |n: &str| ValueInfoProto { name: n.into() };
        ModelProto {
            ir_version: 7,
            producer_name: "test".into(),
            producer_version: String::new(),
            graph: Some(GraphProto {
                node: nodes,
                initializer,
                input: vec![vi("x")],
                output: vec![vi("logits")],
            }),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
        }
    }

    fn load(m: &ModelProto) -> Result<Loaded> {
        load_onnx(&m.encode_to_vec(), Path::new("t.onnx"))
    }

    fn graph(m: &mut ModelProto) -> &mut GraphProto {
        m.graph.as_mut().unwrap()
    }

    #[test]
    fn a_tiny_handmade_graph_loads() {
        let l = load(&tiny()).unwrap();
        let a = &l.network.arch;
        assert_eq!(
            (a.unit, a.stages.len(), a.stages[0].units),
            (UnitKind::Basic, 1, 1)
        );
        assert_eq!((a.stem_width, a.classes, a.in_channels), (4, 5, 3));
        assert_eq!(a.family(), Family::PostActivation);
        assert!(l.network.params.stages[0][0].shortcut.is_none());
    }

    #[test]
    fn half_and_double_initializers_widen_like_float() {
        let base = load(&tiny()).unwrap().network.params;
        let mut m = tiny();
        for t in &mut graph(&mut m).initializer {
            let v = std::mem::take(&mut t.float_data);
            match t.name.as_str() {
                // f16 bit patterns in int32_data, as onnxconverter_common writes them.
                "c1_w" => {
                    t.data_type = FLOAT16;
                    t.int32_data = v
                        .iter()
                        .map(|&x| i32::from(half::f16::from_f32(x).to_bits()))
                        .collect();
                }
                "c2_w" => {
                    t.data_type = BFLOAT16;
                    t.raw_data = v
                        .iter()
                        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
                        .collect();
                }
                "fc_w" => {
                    t.data_type = DOUBLE;
                    t.double_data = v.iter().map(|&x| f64::from(x)).collect();
                }
                _ => t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            }
        }
        let p = load(&m).unwrap().network.params;
        let close = |a: &[f32], b: &[f32], tol: f32| {
            a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= tol * x.abs().max(1e-3))
        };
        assert_eq!(p.stem, base.stem);
        assert!(close(
            &p.stages[0][0].conv1.weight,
            &base.stages[0][0].conv1.weight,
            1e-3
        ));
        assert!(close(
            &p.stages[0][0].conv2.weight,
            &base.stages[0][0].conv2.weight,
            8e-3
        ));
        assert_eq!(p.classifier, base.classifier);
    }

    #[test]
    fn non_finite_initializers_are_named_with_their_index() {
        let mut m = tiny();
        graph(&mut m).initializer[2].float_data[9] = f32::NAN;
        match load(&m).unwrap_err() {
            Error::NonFiniteWeight { name, index, .. } => {
                assert_eq!((name.as_str(), index), ("c2_w", 9))
            }
            e => panic!("{e:?}"),
        }
        let mut m = tiny();
        let t = &mut graph(&mut m).initializer[1];
        t.data_type = FLOAT16;
        t.int32_data = vec![0x3c00; 144];
        t.int32_data[100] = 0xfc00; // -inf
        t.float_data.clear();
        match load(&m).unwrap_err() {
            Error::NonFiniteWeight { name, index, value } => {
                assert_eq!(
                    (name.as_str(), index, value),
                    ("c1_w", 100, f32::NEG_INFINITY)
                )
            }
            e => panic!("{e:?}"),
        }
    }

    fn problem(m: &ModelProto) -> String {
        match load(m) {
            Err(e @ Error::Onnx { .. }) => e.to_string(),
            other => panic!("expected Error::Onnx, got {:?}", other.map(|l| l.format)),
        }
    }

    #[test]
    fn nodes_outside_the_pattern_are_named_with_what_was_expected() {
        let mut m = tiny();
        graph(&mut m).node[4].op_type = "Sigmoid".into();
        let e = problem(&m);
        assert!(
            e.contains("`r1` (Sigmoid)") && e.contains("expected Relu"),
            "{e}"
        );

        let mut m = tiny();
        let g = graph(&mut m);
        g.node.push(node("Softmax", "probs", &["logits"], vec![]));
        g.output[0].name = "probs".into();
        let e = problem(&m);
        assert!(
            e.contains("`probs` (Softmax) follows the classifier"),
            "{e}"
        );

        let mut m = tiny();
        graph(&mut m)
            .node
            .push(node("Sigmoid", "stray", &["r1"], vec![]));
        let e = problem(&m);
        assert!(e.contains("`stray` (Sigmoid)"), "{e}");

        let mut m = tiny();
        graph(&mut m).node[5]
            .attribute
            .push(ints("dilations", &[2, 2]));
        assert!(problem(&m).contains("dilated"));

        let mut m = tiny();
        graph(&mut m).node[3].attribute[2] = ints("pads", &[0, 0, 0, 0]);
        assert!(problem(&m).contains("must pad 1 on every side"));

        let mut m = tiny();
        graph(&mut m).initializer[1].data_location = 1;
        assert!(problem(&m).contains("external data"));

        let mut m = tiny();
        graph(&mut m).node[6].domain = "com.microsoft".into();
        assert!(problem(&m).contains("custom domain"));

        let mut m = tiny();
        graph(&mut m).initializer[3].dims = vec![5, 3];
        assert!(problem(&m).contains("shape [5, 3] (15 values) but holds 20"));
        graph(&mut m).initializer[3] = tensor("fc_w", &[5, 3], &ramp(15, 0.1));
        assert!(problem(&m).contains("does not take 4 features"));

        let mut m = tiny();
        m.graph = None;
        assert!(problem(&m).contains("no graph"));
        assert!(load_onnx(b"\x08\x07garbage\xff", Path::new("g.onnx")).is_err());
    }
}
