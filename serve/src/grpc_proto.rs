//! The messages of `proto/grpc_service.proto` and `proto/model_config.proto`, declared for
//! prost's derive: no protoc, no build script, no generated code (as the library's ONNX
//! reader does). Names and field numbers are the public protocol's, so that Triton's clients
//! and perf_analyzer work unchanged; the test at the end checks that this file and the .proto
//! files declare the same fields with the same numbers and types.

// The protocol's own names (`KIND_GPU`, `bool_param`, ...), as prost spells them.
#![allow(clippy::enum_variant_names)]

use std::collections::HashMap;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerLiveRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerLiveResponse {
    #[prost(bool, tag = "1")]
    pub live: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerReadyRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerReadyResponse {
    #[prost(bool, tag = "1")]
    pub ready: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelReadyRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelReadyResponse {
    #[prost(bool, tag = "1")]
    pub ready: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerMetadataRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerMetadataResponse {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(string, repeated, tag = "3")]
    pub extensions: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelMetadataRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelMetadataResponse {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, repeated, tag = "2")]
    pub versions: Vec<String>,
    #[prost(string, tag = "3")]
    pub platform: String,
    #[prost(message, repeated, tag = "4")]
    pub inputs: Vec<model_metadata_response::TensorMetadata>,
    #[prost(message, repeated, tag = "5")]
    pub outputs: Vec<model_metadata_response::TensorMetadata>,
}

pub mod model_metadata_response {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorMetadata {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub datatype: String,
        #[prost(int64, repeated, tag = "3")]
        pub shape: Vec<i64>,
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InferParameter {
    #[prost(oneof = "infer_parameter::ParameterChoice", tags = "1, 2, 3, 4, 5")]
    pub parameter_choice: Option<infer_parameter::ParameterChoice>,
}

pub mod infer_parameter {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum ParameterChoice {
        #[prost(bool, tag = "1")]
        BoolParam(bool),
        #[prost(int64, tag = "2")]
        Int64Param(i64),
        #[prost(string, tag = "3")]
        StringParam(String),
        #[prost(double, tag = "4")]
        DoubleParam(f64),
        #[prost(uint64, tag = "5")]
        Uint64Param(u64),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InferTensorContents {
    #[prost(bool, repeated, tag = "1")]
    pub bool_contents: Vec<bool>,
    #[prost(int32, repeated, tag = "2")]
    pub int_contents: Vec<i32>,
    #[prost(int64, repeated, tag = "3")]
    pub int64_contents: Vec<i64>,
    #[prost(uint32, repeated, tag = "4")]
    pub uint_contents: Vec<u32>,
    #[prost(uint64, repeated, tag = "5")]
    pub uint64_contents: Vec<u64>,
    #[prost(float, repeated, tag = "6")]
    pub fp32_contents: Vec<f32>,
    #[prost(double, repeated, tag = "7")]
    pub fp64_contents: Vec<f64>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub bytes_contents: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferRequest {
    #[prost(string, tag = "1")]
    pub model_name: String,
    #[prost(string, tag = "2")]
    pub model_version: String,
    #[prost(string, tag = "3")]
    pub id: String,
    #[prost(map = "string, message", tag = "4")]
    pub parameters: HashMap<String, InferParameter>,
    #[prost(message, repeated, tag = "5")]
    pub inputs: Vec<model_infer_request::InferInputTensor>,
    #[prost(message, repeated, tag = "6")]
    pub outputs: Vec<model_infer_request::InferRequestedOutputTensor>,
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub raw_input_contents: Vec<Vec<u8>>,
}

pub mod model_infer_request {
    use super::{InferParameter, InferTensorContents};
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferInputTensor {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub datatype: String,
        #[prost(int64, repeated, tag = "3")]
        pub shape: Vec<i64>,
        #[prost(map = "string, message", tag = "4")]
        pub parameters: HashMap<String, InferParameter>,
        #[prost(message, optional, tag = "5")]
        pub contents: Option<InferTensorContents>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferRequestedOutputTensor {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(map = "string, message", tag = "2")]
        pub parameters: HashMap<String, InferParameter>,
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferResponse {
    #[prost(string, tag = "1")]
    pub model_name: String,
    #[prost(string, tag = "2")]
    pub model_version: String,
    #[prost(string, tag = "3")]
    pub id: String,
    #[prost(map = "string, message", tag = "4")]
    pub parameters: HashMap<String, InferParameter>,
    #[prost(message, repeated, tag = "5")]
    pub outputs: Vec<model_infer_response::InferOutputTensor>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub raw_output_contents: Vec<Vec<u8>>,
}

pub mod model_infer_response {
    use super::{InferParameter, InferTensorContents};
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferOutputTensor {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub datatype: String,
        #[prost(int64, repeated, tag = "3")]
        pub shape: Vec<i64>,
        #[prost(map = "string, message", tag = "4")]
        pub parameters: HashMap<String, InferParameter>,
        #[prost(message, optional, tag = "5")]
        pub contents: Option<InferTensorContents>,
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelConfigRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelConfigResponse {
    #[prost(message, optional, tag = "1")]
    pub config: Option<ModelConfig>,
}

// model_config.proto

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataType {
    TypeInvalid = 0,
    TypeBool = 1,
    TypeUint8 = 2,
    TypeUint16 = 3,
    TypeUint32 = 4,
    TypeUint64 = 5,
    TypeInt8 = 6,
    TypeInt16 = 7,
    TypeInt32 = 8,
    TypeInt64 = 9,
    TypeFp16 = 10,
    TypeFp32 = 11,
    TypeFp64 = 12,
    TypeString = 13,
    TypeBf16 = 14,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelTensorReshape {
    #[prost(int64, repeated, tag = "1")]
    pub shape: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInput {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(enumeration = "DataType", tag = "2")]
    pub data_type: i32,
    #[prost(int64, repeated, tag = "4")]
    pub dims: Vec<i64>,
    #[prost(message, optional, tag = "5")]
    pub reshape: Option<ModelTensorReshape>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelOutput {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(enumeration = "DataType", tag = "2")]
    pub data_type: i32,
    #[prost(int64, repeated, tag = "3")]
    pub dims: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelQueuePolicy {
    #[prost(uint32, tag = "4")]
    pub max_queue_size: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelDynamicBatching {
    #[prost(int32, repeated, tag = "1")]
    pub preferred_batch_size: Vec<i32>,
    #[prost(uint64, tag = "2")]
    pub max_queue_delay_microseconds: u64,
    #[prost(message, optional, tag = "6")]
    pub default_queue_policy: Option<ModelQueuePolicy>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInstanceGroup {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub count: i32,
    #[prost(enumeration = "model_instance_group::Kind", tag = "4")]
    pub kind: i32,
}

pub mod model_instance_group {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum Kind {
        KindAuto = 0,
        KindGpu = 1,
        KindCpu = 2,
        KindModel = 3,
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelConfig {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub platform: String,
    #[prost(int32, tag = "4")]
    pub max_batch_size: i32,
    #[prost(message, repeated, tag = "5")]
    pub input: Vec<ModelInput>,
    #[prost(message, repeated, tag = "6")]
    pub output: Vec<ModelOutput>,
    #[prost(message, repeated, tag = "7")]
    pub instance_group: Vec<ModelInstanceGroup>,
    #[prost(oneof = "model_config::SchedulingChoice", tags = "11")]
    pub scheduling_choice: Option<model_config::SchedulingChoice>,
    #[prost(string, tag = "17")]
    pub backend: String,
}

pub mod model_config {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum SchedulingChoice {
        #[prost(message, tag = "11")]
        DynamicBatching(super::ModelDynamicBatching),
    }
}

#[cfg(test)]
mod tests {
    //! This file against the .proto files: the same messages, each with the same fields,
    //! numbers, types and repetition. (The Python tests check the .proto files against the
    //! descriptors tritonclient ships.)

    use std::collections::BTreeSet;

    /// (message, field, number, type, repeated): message is the innermost name.
    type Field = (String, String, u32, String, bool);

    fn snake(camel: &str) -> String {
        let mut s = String::new();
        for (i, c) in camel.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    s.push('_');
                }
                s.push(c.to_ascii_lowercase());
            } else {
                s.push(c);
            }
        }
        s
    }

    const SCALARS: [&str; 9] = [
        "bool", "string", "bytes", "int32", "int64", "uint32", "uint64", "float", "double",
    ];

    /// Fields of the .proto files: `[repeated] TYPE NAME = N;` and `map<K, V> NAME = N;`
    /// lines inside `message` blocks (a oneof's fields belong to its message).
    fn proto_fields(text: &str, enums: &mut BTreeSet<String>) -> BTreeSet<Field> {
        let mut out = BTreeSet::new();
        // The open blocks: Some(message name) or None (oneof, enum, service).
        let mut stack: Vec<Option<String>> = Vec::new();
        for line in text.lines() {
            let line = line.split("//").next().unwrap().trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if line.ends_with('{') && !line.contains('}') {
                let block = match words[0] {
                    "message" => Some(words[1].to_string()),
                    "enum" => {
                        enums.insert(words[1].to_string());
                        None
                    }
                    _ => None,
                };
                // A oneof's fields are its message's.
                let block = if words[0] == "oneof" {
                    stack.iter().rev().flatten().next().cloned()
                } else {
                    block
                };
                stack.push(block);
                continue;
            }
            if line == "}" {
                stack.pop();
                continue;
            }
            let Some(Some(message)) = stack.last() else {
                continue;
            };
            if words[0] == "message" {
                // An empty message on one line: `message X {}`.
                continue;
            }
            let (repeated, rest) = match words[0] {
                "repeated" => (true, &words[1..]),
                _ => (false, &words[..]),
            };
            let (ty, name, number) = if rest[0].starts_with("map<") {
                let close = line.find('>').unwrap();
                let after: Vec<&str> = line[close + 1..].split_whitespace().collect();
                ("map".to_string(), after[0], after[2])
            } else {
                (rest[0].to_string(), rest[1], rest[3])
            };
            let number = number.trim_end_matches(';').parse().unwrap();
            out.insert((message.clone(), name.to_string(), number, ty, repeated));
        }
        out
    }

    /// Fields of this file: each `#[prost(...)]` attribute and the field or oneof variant
    /// after it, in the struct or oneof enum it is in (a oneof's fields belong to the
    /// message whose field holds the oneof: found by the module the enum is in).
    fn rust_fields(text: &str) -> BTreeSet<Field> {
        let mut out = BTreeSet::new();
        let mut container = String::new();
        let mut module = String::new();
        let mut attr: Option<String> = None;
        for line in text.lines().map(str::trim) {
            if line.starts_with("mod tests") {
                break;
            }
            if let Some(m) = line.strip_prefix("pub mod ") {
                module = m.trim_end_matches(" {").to_string();
                continue;
            }
            if let Some(s) = line.strip_prefix("pub struct ") {
                container = s.split([' ', '{']).next().unwrap().to_string();
                continue;
            }
            if let Some(e) = line.strip_prefix("pub enum ") {
                // A oneof's variants: fields of the message its module is named after.
                let name = e.split([' ', '{']).next().unwrap();
                container = if name.ends_with("Choice") {
                    module
                        .split('_')
                        .map(|w| w[..1].to_uppercase() + &w[1..])
                        .collect()
                } else {
                    String::new()
                };
                continue;
            }
            if let Some(a) = line.strip_prefix("#[prost(") {
                attr = Some(a.trim_end_matches(")]").to_string());
                continue;
            }
            let Some(a) = attr.take() else { continue };
            if container.is_empty() || a.starts_with("oneof") {
                continue;
            }
            let tag: u32 = a
                .split("tag = \"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let ty = if a.starts_with("map") {
                "map".to_string()
            } else if a.starts_with("enumeration") {
                let e = a.split('"').nth(1).unwrap();
                e.rsplit("::").next().unwrap().to_string()
            } else if a.starts_with("bytes") {
                "bytes".to_string()
            } else {
                a.split(',').next().unwrap().trim().to_string()
            };
            let repeated = a.contains("repeated");
            let name = if let Some(f) = line.strip_prefix("pub ") {
                f.split(':').next().unwrap().to_string()
            } else {
                snake(line.split('(').next().unwrap())
            };
            out.insert((container.clone(), name, tag, ty, repeated));
        }
        out
    }

    #[test]
    fn the_messages_are_the_proto_files_own() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/");
        let mut enums = BTreeSet::new();
        let mut proto = BTreeSet::new();
        for f in ["grpc_service.proto", "model_config.proto"] {
            let text = std::fs::read_to_string(format!("{dir}{f}")).unwrap();
            proto.extend(proto_fields(&text, &mut enums));
        }
        // The .proto names a message or enum type where prost says `message` or the enum.
        let proto: BTreeSet<Field> = proto
            .into_iter()
            .map(|(m, f, n, ty, r)| {
                let leaf = ty.rsplit('.').next().unwrap().to_string();
                let ty = if SCALARS.contains(&ty.as_str()) || ty == "map" || enums.contains(&leaf) {
                    leaf
                } else {
                    "message".to_string()
                };
                (m, f, n, ty, r)
            })
            .collect();
        let rust = rust_fields(include_str!("grpc_proto.rs"));
        assert!(proto.len() > 60, "{proto:#?}");
        let only_proto: Vec<_> = proto.difference(&rust).collect();
        let only_rust: Vec<_> = rust.difference(&proto).collect();
        assert!(
            only_proto.is_empty() && only_rust.is_empty(),
            "only in the .proto files: {only_proto:#?}\nonly in grpc_proto.rs: {only_rust:#?}"
        );
    }
}
