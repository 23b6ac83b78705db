//! A pipeline's shader as wgpu's backends translate it (feature `emit-shaders`, native only):
//! the module of a [`PipelineKey`] parsed and validated by naga, its override constants applied
//! to its one entry point (`naga::back::pipeline_constants::process_overrides`, as every wgpu
//! backend does first), then written by naga's WGSL, SPIR-V, MSL or HLSL writer with the
//! options wgpu 30's Vulkan, Metal and DX12 backends pass, over the bind group layout the
//! session creates ([`Bindings::kinds`](super::launch::Bindings::kinds)). What a backend would fail to translate fails here,
//! without its hardware; what the driver then does with the text is not checked.
//!
//! The options follow `wgpu-hal` 30.0.2 for a pipeline as `src/gpu` creates it (the runtime
//! checks of `create_shader_module`, no zero-initialised workgroup memory):
//! * **SPIR-V** 1.3, what the Vulkan backend writes for a Vulkan 1.1 device, with the
//!   capabilities it declares for a device of exactly the module's features, and bounds checks
//!   for a device without robust buffer access 2 (the stricter case);
//! * **MSL** at one of [`MSL_VERSIONS`]: the Metal backend asks for the newest its OS has
//!   (4.0 on macOS 26 / iOS 26, 3.2 on macOS 15, ...), buffers, textures and the
//!   buffer-sizes buffer numbered in layout order as it does;
//! * **HLSL** at one of [`HLSL_SHADER_MODELS`]: the DX12 backend compiles for the lower of the
//!   device's and DXC's highest shader model (6.0 to 6.9), or 5.1 with FXC, its fallback
//!   without `dxcompiler.dll`, where it offers no subgroups and no 64-bit integers; registers
//!   as it assigns them, and the constant buffer through which it passes `num_workgroups`.

use super::launch::{BindingKind, PipelineKey};
use crate::error::{Error, Result};
use naga::back::{hlsl, msl, spv};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A language version or shader model: `(major, minor)`.
pub type Version = (u8, u8);

/// Every MSL version wgpu 30's Metal backend asks for on an OS that runs wgpu, oldest first:
/// 2.0 (macOS 10.13, iOS 11) to 4.0 (macOS 26, iOS 26).
pub const MSL_VERSIONS: [Version; 9] = [
    (2, 0),
    (2, 1),
    (2, 2),
    (2, 3),
    (2, 4),
    (3, 0),
    (3, 1),
    (3, 2),
    (4, 0),
];

/// Every HLSL shader model wgpu 30's DX12 backend compiles for, lowest first: 5.1 (FXC),
/// 6.0 to 6.9 (DXC).
pub const HLSL_SHADER_MODELS: [Version; 11] = [
    (5, 1),
    (6, 0),
    (6, 1),
    (6, 2),
    (6, 3),
    (6, 4),
    (6, 5),
    (6, 6),
    (6, 7),
    (6, 8),
    (6, 9),
];

/// The SPIR-V version written: Vulkan 1.1's, what wgpu writes for a Vulkan 1.1 device.
pub const SPIRV_VERSION: Version = (1, 3);

/// What to translate a pipeline's shader into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// WGSL, with the override constants applied and only the entry point's code.
    Wgsl,
    /// SPIR-V [`SPIRV_VERSION`] (`spirv-val --target-env vulkan1.1` checks it).
    Spv,
    /// Metal Shading Language at one of [`MSL_VERSIONS`].
    Msl(Version),
    /// HLSL for one of [`HLSL_SHADER_MODELS`].
    Hlsl(Version),
}

impl Format {
    /// MSL at the newest version wgpu asks for (macOS 26, iOS 26).
    pub const MSL: Format = Format::Msl(MSL_VERSIONS[MSL_VERSIONS.len() - 1]);

    /// HLSL for the highest shader model wgpu compiles for (a device and a DXC that have it).
    pub const HLSL: Format = Format::Hlsl(HLSL_SHADER_MODELS[HLSL_SHADER_MODELS.len() - 1]);

    /// The file extension: `wgsl`, `spv`, `metal` or `hlsl`.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Wgsl => "wgsl",
            Format::Spv => "spv",
            Format::Msl(_) => "metal",
            Format::Hlsl(_) => "hlsl",
        }
    }

    /// Whether wgpu's backend at this version can give a device `features` (the subgroup
    /// kernel's `SUBGROUP` and `SHADER_INT64`): Metal's 64-bit integers need MSL 2.3, DX12's
    /// wave ops and 64-bit integers shader model 6.0 (DXC). Pipelines of a module needing
    /// more than a version offers are never created there, so they are not translated for it.
    pub fn offers(self, features: wgpu::Features) -> bool {
        let special = wgpu::Features::SUBGROUP | wgpu::Features::SHADER_INT64;
        match self {
            Format::Wgsl | Format::Spv => true,
            Format::Msl(v) => !features.intersects(special) || v >= (2, 3),
            Format::Hlsl(v) => !features.intersects(special) || v >= (6, 0),
        }
    }
}

impl std::fmt::Display for Format {
    /// `wgsl`, `spv`, `msl4.0`, `hlsl6.9`: what [`Format::from_str`](std::str::FromStr) reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Format::Wgsl => write!(f, "wgsl"),
            Format::Spv => write!(f, "spv"),
            Format::Msl((a, b)) => write!(f, "msl{a}.{b}"),
            Format::Hlsl((a, b)) => write!(f, "hlsl{a}.{b}"),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = Error;

    /// `wgsl`, `spv` (or `spirv`), `msl` (4.0) or `msl2.3` (any of [`MSL_VERSIONS`]), `hlsl`
    /// (6.9) or `hlsl5.1` (any of [`HLSL_SHADER_MODELS`]); case-insensitive.
    fn from_str(s: &str) -> Result<Format> {
        let versions = |list: &[Version]| {
            list.iter()
                .map(|(a, b)| format!("{a}.{b}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let unknown = || {
            Error::Input(format!(
                "unknown shader format `{s}`: use wgsl, spv, msl or hlsl; msl and hlsl take a \
                 version, msl{{{}}} and hlsl{{{}}} (default: msl = {}, hlsl = {})",
                versions(&MSL_VERSIONS),
                versions(&HLSL_SHADER_MODELS),
                Format::MSL,
                Format::HLSL,
            ))
        };
        let lower = s.trim().to_ascii_lowercase();
        let version = |rest: &str, list: &[Version]| -> Result<Version> {
            let (a, b) = rest.split_once('.').ok_or_else(unknown)?;
            let v = (
                a.parse::<u8>().map_err(|_| unknown())?,
                b.parse::<u8>().map_err(|_| unknown())?,
            );
            list.contains(&v).then_some(v).ok_or_else(unknown)
        };
        match lower.as_str() {
            "wgsl" => Ok(Format::Wgsl),
            "spv" | "spirv" | "spir-v" => Ok(Format::Spv),
            "msl" | "metal" => Ok(Format::MSL),
            "hlsl" => Ok(Format::HLSL),
            _ => {
                if let Some(rest) = lower.strip_prefix("msl") {
                    Ok(Format::Msl(version(rest, &MSL_VERSIONS)?))
                } else if let Some(rest) = lower.strip_prefix("hlsl") {
                    Ok(Format::Hlsl(version(rest, &HLSL_SHADER_MODELS)?))
                } else {
                    Err(unknown())
                }
            }
        }
    }
}

/// `shader ConvShared, entry point conv_shared, constants {WG_M=16, ...}`: what an error
/// names.
fn describe(key: &PipelineKey) -> String {
    let constants: Vec<String> = key
        .constants
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "shader {}, entry point {}, constants {{{}}}",
        key.shader.name(),
        key.entry,
        constants.join(", ")
    )
}

/// The module of `key`, validated with the capabilities its device features give, with the
/// override constants applied to its entry point alone.
fn specialise(
    key: &PipelineKey,
) -> std::result::Result<(naga::Module, naga::valid::ModuleInfo), String> {
    use naga::valid::{Capabilities, ShaderStages, SubgroupOperationSet, ValidationFlags};
    let source = key.shader.source();
    let name = key.shader.name();
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| format!("WGSL: {}", e.emit_to_string_with_path(source, &name)))?;
    if !module
        .entry_points
        .iter()
        .any(|ep| ep.stage == naga::ShaderStage::Compute && ep.name == key.entry)
    {
        return Err(format!(
            "the module has no compute entry point `{}`",
            key.entry
        ));
    }
    // unpack2x16float needs SHADER_FLOAT16_IN_FLOAT32, which every wgpu backend has.
    let features = key.shader.features();
    let mut caps = Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    if features.contains(wgpu::Features::SUBGROUP) {
        caps |= Capabilities::SUBGROUP;
    }
    if features.contains(wgpu::Features::SHADER_INT64) {
        caps |= Capabilities::SHADER_INT64;
    }
    let info = naga::valid::Validator::new(ValidationFlags::all(), caps)
        .subgroup_stages(ShaderStages::COMPUTE)
        .subgroup_operations(SubgroupOperationSet::all())
        .validate(&module)
        .map_err(|e| format!("validation: {}", e.emit_to_string(source)))?;
    let constants: naga::back::PipelineConstants = key
        .constants
        .iter()
        .map(|&(k, v)| (k.to_string(), v))
        .collect();
    let (m, i) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((naga::ShaderStage::Compute, key.entry)),
        &constants,
    )
    .map_err(|e| format!("override constants: {e}"))?;
    Ok((m.into_owned(), i.into_owned()))
}

/// Bounds checks as wgpu's checked runtime checks ask (binding arrays: unchecked, as wgpu).
fn restrict() -> naga::proc::BoundsCheckPolicies {
    use naga::proc::BoundsCheckPolicy::{Restrict, Unchecked};
    naga::proc::BoundsCheckPolicies {
        index: Restrict,
        buffer: Restrict,
        image_load: Restrict,
        binding_array: Unchecked,
    }
}

fn binding(n: usize) -> naga::ResourceBinding {
    naga::ResourceBinding {
        group: 0,
        binding: n as u32,
    }
}

fn write_spv(
    key: &PipelineKey,
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
) -> std::result::Result<Vec<u8>, String> {
    use spv::Capability as C;
    // What the Vulkan backend declares on every device, and for the features the module needs.
    let mut capabilities = vec![
        C::Shader,
        C::Matrix,
        C::Sampled1D,
        C::Image1D,
        C::ImageQuery,
        C::DerivativeControl,
        C::StorageImageExtendedFormats,
    ];
    let features = key.shader.features();
    if features.contains(wgpu::Features::SUBGROUP) {
        capabilities.extend([
            C::GroupNonUniform,
            C::GroupNonUniformVote,
            C::GroupNonUniformArithmetic,
            C::GroupNonUniformBallot,
            C::GroupNonUniformShuffle,
            C::GroupNonUniformShuffleRelative,
            C::GroupNonUniformQuad,
        ]);
    }
    if features.contains(wgpu::Features::SHADER_INT64) {
        capabilities.push(C::Int64);
    }
    let options = spv::Options {
        lang_version: SPIRV_VERSION,
        flags: spv::WriterFlags::LABEL_VARYINGS | spv::WriterFlags::FORCE_POINT_SIZE,
        fake_missing_bindings: false,
        // Bindings renumbered in layout order, as the backend does: ours are 0, 1, 2, ...
        binding_map: (0..key.bindings.kinds().len())
            .map(|n| {
                let info = spv::BindingInfo {
                    descriptor_set: 0,
                    binding: n as u32,
                    binding_array_size: None,
                };
                (binding(n), info)
            })
            .collect(),
        capabilities: Some(capabilities.into_iter().collect()),
        bounds_check_policies: restrict(),
        zero_initialize_workgroup_memory: spv::ZeroInitializeWorkgroupMemoryMode::None,
        force_loop_bounding: true,
        ray_query_initialization_tracking: true,
        trace_ray_argument_validation: true,
        use_storage_input_output_16: false,
        debug_info: None,
        task_dispatch_limits: None,
        mesh_shader_primitive_indices_clamp: true,
        emit_int_div_checks: true,
    };
    let pipeline = spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: key.entry.to_string(),
    };
    let words =
        spv::write_vec(module, info, &options, Some(&pipeline)).map_err(|e| e.to_string())?;
    Ok(words.iter().flat_map(|w| w.to_le_bytes()).collect())
}

fn write_msl(
    key: &PipelineKey,
    version: Version,
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
) -> std::result::Result<Vec<u8>, String> {
    // Buffers and textures each numbered in layout order; then the buffer of the runtime-sized
    // arrays' lengths, since the layout has storage buffers.
    let (mut buffers, mut textures) = (0u8, 0u8);
    let mut resources = msl::BindingMap::default();
    for (n, kind) in key.bindings.kinds().iter().enumerate() {
        let mut target = msl::BindTarget::default();
        match *kind {
            BindingKind::Uniform | BindingKind::Storage { .. } => {
                target.buffer = Some(buffers);
                target.mutable = *kind == BindingKind::Storage { read_only: false };
                buffers += 1;
            }
            BindingKind::SampledTexture | BindingKind::StorageTexture => {
                target.texture = Some(textures);
                target.mutable = *kind == BindingKind::StorageTexture;
                textures += 1;
            }
        }
        resources.insert(binding(n), target);
    }
    let options = msl::Options {
        lang_version: version,
        per_entry_point_map: msl::EntryPointResourceMap::from([(
            key.entry.to_string(),
            msl::EntryPointResources {
                resources,
                immediates_buffer: None,
                sizes_buffer: Some(buffers),
            },
        )]),
        inline_samplers: Vec::new(),
        spirv_cross_compatibility: false,
        fake_missing_bindings: false,
        bounds_check_policies: restrict(),
        zero_initialize_workgroup_memory: false,
        force_loop_bounding: true,
        task_dispatch_limits: None,
        mesh_shader_primitive_indices_clamp: true,
        emit_int_div_checks: true,
        ray_query_initialization_tracking: true,
    };
    let pipeline = msl::PipelineOptions {
        entry_point: Some((naga::ShaderStage::Compute, key.entry.to_string())),
        allow_and_force_point_size: false,
        vertex_pulling_transform: true,
        vertex_buffer_mappings: Vec::new(),
        binding_array_length_map: Default::default(),
    };
    let (text, translation) =
        msl::write_string(module, info, &options, &pipeline).map_err(|e| e.to_string())?;
    // The writer reports a failed entry point here, not as an error (wgpu checks it too).
    for name in &translation.entry_point_names {
        name.as_ref().map_err(|e| e.to_string())?;
    }
    Ok(text.into_bytes())
}

fn shader_model(v: Version) -> std::result::Result<hlsl::ShaderModel, String> {
    use hlsl::ShaderModel as S;
    Ok(match v {
        (5, 1) => S::V5_1,
        (6, 0) => S::V6_0,
        (6, 1) => S::V6_1,
        (6, 2) => S::V6_2,
        (6, 3) => S::V6_3,
        (6, 4) => S::V6_4,
        (6, 5) => S::V6_5,
        (6, 6) => S::V6_6,
        (6, 7) => S::V6_7,
        (6, 8) => S::V6_8,
        (6, 9) => S::V6_9,
        (a, b) => return Err(format!("wgpu compiles for no shader model {a}.{b}")),
    })
}

fn write_hlsl(
    key: &PipelineKey,
    model: Version,
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
) -> std::result::Result<Vec<u8>, String> {
    // Registers per class in layout order (one bind group: space 0): constant buffers b,
    // read-only views t, read-write views u. The next constant buffer holds the special
    // constants, `num_workgroups` among them (HLSL has no such built-in).
    let (mut b, mut t, mut u) = (0u32, 0u32, 0u32);
    let mut binding_map = hlsl::BindingMap::default();
    for (n, kind) in key.bindings.kinds().iter().enumerate() {
        let counter = match *kind {
            BindingKind::Uniform => &mut b,
            BindingKind::Storage { read_only: true } | BindingKind::SampledTexture => &mut t,
            BindingKind::Storage { read_only: false } | BindingKind::StorageTexture => &mut u,
        };
        binding_map.insert(
            binding(n),
            hlsl::BindTarget {
                space: 0,
                register: *counter,
                ..Default::default()
            },
        );
        *counter += 1;
    }
    let options = hlsl::Options {
        shader_model: shader_model(model)?,
        binding_map,
        fake_missing_bindings: false,
        special_constants_binding: Some(hlsl::BindTarget {
            space: 0,
            register: b,
            ..Default::default()
        }),
        zero_initialize_workgroup_memory: false,
        restrict_indexing: true,
        force_loop_bounding: true,
        task_dispatch_limits: None,
        mesh_shader_primitive_indices_clamp: true,
        ray_query_initialization_tracking: true,
        ..Default::default()
    };
    let pipeline = hlsl::PipelineOptions {
        entry_point: Some((naga::ShaderStage::Compute, key.entry.to_string())),
    };
    let mut text = String::new();
    let reflection = hlsl::Writer::new(&mut text, &options, &pipeline)
        .write(module, info, None)
        .map_err(|e| e.to_string())?;
    for name in &reflection.entry_point_names {
        name.as_ref().map_err(|e| e.to_string())?;
    }
    Ok(text.into_bytes())
}

/// The shader of `key` in `format`: text for WGSL, MSL and HLSL, little-endian SPIR-V words.
/// An error names the shader, entry point and constants, the format, and what failed.
pub fn translate(key: &PipelineKey, format: Format) -> Result<Vec<u8>> {
    Ok(translate_each(key, &[format])?.remove(0))
}

/// The shader of `key` in each of `formats` ([`translate`]), parsed, validated and
/// specialised once; the first failure is the error.
pub fn translate_each(key: &PipelineKey, formats: &[Format]) -> Result<Vec<Vec<u8>>> {
    let fail = |format: Option<Format>, problem: String| Error::Shader {
        pipeline: describe(key),
        format: format.map_or_else(
            || {
                let all: Vec<String> = formats.iter().map(Format::to_string).collect();
                all.join(", ")
            },
            |f| f.to_string(),
        ),
        problem,
    };
    let features = key.shader.features();
    if let Some(&f) = formats.iter().find(|f| !f.offers(features)) {
        // Not a translation failure: wgpu never creates this pipeline there.
        let needs: Vec<&str> = [
            (wgpu::Features::SUBGROUP, "SUBGROUP"),
            (wgpu::Features::SHADER_INT64, "SHADER_INT64"),
        ]
        .into_iter()
        .filter(|&(f, _)| features.contains(f))
        .map(|(_, name)| name)
        .collect();
        return Err(Error::Input(format!(
            "the pipeline ({}) needs {}, which wgpu's backend does not offer at {f} (the \
             subgroup kernel needs msl2.3 or hlsl6.0 and up): ask for a newer version, or plan \
             without that kernel",
            describe(key),
            needs.join(" and ")
        )));
    }
    let (module, info) = specialise(key).map_err(|e| fail(None, e))?;
    formats
        .iter()
        .map(|&format| {
            match format {
                Format::Wgsl => naga::back::wgsl::write_string(
                    &module,
                    &info,
                    naga::back::wgsl::WriterFlags::empty(),
                )
                .map(String::into_bytes)
                .map_err(|e| e.to_string()),
                Format::Spv => write_spv(key, &module, &info),
                Format::Msl(v) => write_msl(key, v, &module, &info),
                Format::Hlsl(v) => write_hlsl(key, v, &module, &info),
            }
            .map_err(|e| fail(Some(format), e))
        })
        .collect()
}

/// The file of `key` in `format`: [`PipelineKey::file_stem`] and the format's extension.
pub fn file_name(key: &PipelineKey, format: Format) -> String {
    format!("{}.{}", key.file_stem(), format.extension())
}

/// Writes each of `keys` (a plan's [`crate::plan::Plan::pipelines`]) translated to `format`
/// into `dir`, created if needed: one file each ([`file_name`]), overwriting only those. Every
/// key is translated before anything is written; returns the files, in `keys`' order.
pub fn write_all(keys: &[&PipelineKey], format: Format, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut names = HashSet::new();
    let files = keys
        .iter()
        .map(|&key| {
            let name = file_name(key, format);
            if !names.insert(name.clone()) {
                // Entry points are unique across modules and each has one layout: a stem
                // names one key.
                return Err(Error::Shader {
                    pipeline: describe(key),
                    format: format.to_string(),
                    problem: format!("another pipeline of the plan has its file name {name}"),
                });
            }
            Ok((dir.join(name), translate(key, format)?))
        })
        .collect::<Result<Vec<_>>>()?;
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    files
        .into_iter()
        .map(|(path, bytes)| {
            std::fs::write(&path, bytes).map_err(|source| Error::Write {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::launch::Bindings;
    use super::*;
    use std::str::FromStr;

    #[test]
    fn formats_parse_and_print() {
        for f in [Format::Wgsl, Format::Spv, Format::MSL, Format::HLSL]
            .into_iter()
            .chain(MSL_VERSIONS.map(Format::Msl))
            .chain(HLSL_SHADER_MODELS.map(Format::Hlsl))
        {
            assert_eq!(Format::from_str(&f.to_string()).unwrap(), f);
        }
        assert_eq!(Format::from_str("MSL").unwrap(), Format::Msl((4, 0)));
        assert_eq!(Format::from_str("hlsl").unwrap(), Format::Hlsl((6, 9)));
        assert_eq!(Format::from_str("spirv").unwrap(), Format::Spv);
        for bad in [
            "", "glsl", "msl1.0", "msl5.0", "hlsl6", "hlsl6.10", "hlsl5.0", "msl2.x", "spv1.3",
        ] {
            let e = Format::from_str(bad).unwrap_err().to_string();
            assert!(
                e.contains("wgsl, spv, msl or hlsl") && e.contains("hlsl6.9"),
                "{bad}: {e}"
            );
        }
    }

    /// A failure names the shader, entry point and constants, the format, and what failed;
    /// a version whose backend lacks the module's features is the caller's error.
    #[test]
    fn failures_name_the_pipeline() {
        use super::super::launch::{Shader, pipeline_space};
        let bad = PipelineKey {
            shader: Shader::ConvShared,
            entry: "conv_shared",
            constants: vec![("WG_M", 16.0), ("NO_SUCH", 1.0)],
            bindings: Bindings::Consts,
        };
        let e = translate(&bad, Format::Spv).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, Error::Shader { .. }), "{text}");
        for says in [
            "ConvShared",
            "conv_shared",
            "WG_M=16, NO_SUCH=1",
            "spv",
            "NO_SUCH",
        ] {
            assert!(text.contains(says), "{says}: {text}");
        }
        let missing = PipelineKey {
            entry: "conv_nothing",
            constants: Vec::new(),
            ..bad
        };
        let text = translate(&missing, Format::MSL).unwrap_err().to_string();
        assert!(
            text.contains("no compute entry point `conv_nothing`") && text.contains("msl4.0"),
            "{text}"
        );
        let subgroup = pipeline_space()
            .into_iter()
            .find(|k| k.shader == Shader::ConvSubgroup)
            .unwrap();
        let e = translate(&subgroup, Format::Hlsl((5, 1))).unwrap_err();
        assert!(
            matches!(e, Error::Input(_)) && e.to_string().contains("hlsl6.0"),
            "{e}"
        );
        assert!(translate(&subgroup, Format::Hlsl((6, 0))).is_ok());
        assert!(translate(&subgroup, Format::Msl((2, 2))).is_err());
        assert!(translate(&subgroup, Format::Msl((2, 3))).is_ok());
    }

    #[test]
    fn every_layout_starts_with_the_uniform_and_the_arena() {
        for b in Bindings::ALL {
            assert_eq!(
                b.kinds()[..2],
                [
                    BindingKind::Uniform,
                    BindingKind::Storage { read_only: false }
                ]
            );
        }
    }
}
