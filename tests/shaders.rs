//! Every shader module (the conv family's files joined as the kernels join them) parses and
//! validates with naga, with the capabilities its device features give (no GPU needed); and
//! the numbers the plan and the shaders must agree on do.

use naga::valid::{Capabilities, ShaderStages, SubgroupOperationSet, ValidationFlags, Validator};
use resnet_wgpu::plan::kernel as k;

fn parse(name: &str, src: &str) -> naga::Module {
    naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string_with_path(src, name)))
}

#[test]
fn every_module_parses_and_validates() {
    let modules = resnet_wgpu::gpu::kernels::modules();
    assert_eq!(modules.len(), 8);
    for (name, src, features) in modules {
        let module = parse(&name, src);
        // unpack2x16float needs SHADER_FLOAT16_IN_FLOAT32: a downlevel flag every wgpu
        // backend has.
        let mut caps = Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        if features.contains(wgpu::Features::SUBGROUP) {
            caps |= Capabilities::SUBGROUP;
        }
        if features.contains(wgpu::Features::SHADER_INT64) {
            caps |= Capabilities::SHADER_INT64;
        }
        Validator::new(ValidationFlags::all(), caps)
            .subgroup_stages(ShaderStages::COMPUTE)
            .subgroup_operations(SubgroupOperationSet::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
        assert!(!module.entry_points.is_empty(), "{name} has no entry point");
    }
}

/// The value of the u32 `const` `name` in the shader module `module` (as `modules()` names it).
fn constant(module: &str, name: &str) -> u32 {
    let modules = resnet_wgpu::gpu::kernels::modules();
    let src = modules.iter().find(|m| m.0 == module).unwrap().1;
    let m = parse(module, src);
    let (_, c) = m
        .constants
        .iter()
        .find(|(_, c)| c.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("{module} has no const {name}"));
    match m.global_expressions[c.init] {
        naga::Expression::Literal(naga::Literal::U32(v)) => v,
        ref e => panic!("{module}::{name} = {e:?}"),
    }
}

/// The `const`s that size the shaders' private and workgroup arrays, read from the parsed
/// modules, against the plan's tile numbers.
#[test]
fn tile_sizes_agree_with_the_plan() {
    assert_eq!(constant("ConvRegister", "RTM"), k::REGISTER_ROWS);
    assert_eq!(constant("ConvRegister", "RTN4"), k::REGISTER_COLS4);
    // The shared variant's tiles are override constants; its arrays' bounds are `const`s
    // that every planned tile must fit, with whole vec4 of each operand per invocation.
    let (tm, tn4, bk, bm, bn4, stage) = k::SHARED_MAX;
    for (name, v) in [
        ("TM_MAX", tm),
        ("TN4_MAX", tn4),
        ("BK_MAX", bk),
        ("BM_MAX", bm),
        ("BN4_MAX", bn4),
        ("STAGE_MAX", stage),
    ] {
        assert_eq!(constant("ConvShared", name), v, "{name}");
    }
    for t in k::SHARED_TILES {
        let (a, b) = (t.bm() * (t.bk / 4), t.bk * t.bn4());
        assert!(t.tm <= tm && t.tn4 <= tn4 && t.bk <= bk && t.bm() <= bm && t.bn4() <= bn4);
        assert!(t.bk.is_multiple_of(4) && t.tm.is_multiple_of(4), "{t:?}");
        assert!(
            a.is_multiple_of(t.invocations()) && a / t.invocations() <= stage,
            "{t:?}: A staging"
        );
        assert!(
            b.is_multiple_of(t.invocations()) && b / t.invocations() <= stage,
            "{t:?}: B staging"
        );
        // Workgroup memory: the A and B tiles of the largest shape, within WebGPU's 16 KiB.
        assert!((bm * bk / 4 + bk * bn4) * 16 <= 16384);
    }
    assert_eq!(constant("ConvTexture", "TMAX"), k::TEXTURE_MAX_ROWS);
    assert_eq!(
        constant("ConvTexture", "TEX_WIDTH"),
        resnet_wgpu::gpu::kernels::texture::TEXTURE_WIDTH
    );
    assert_eq!(
        constant("Pack", "TEX_WIDTH"),
        resnet_wgpu::gpu::kernels::texture::TEXTURE_WIDTH
    );
    assert_eq!(constant("ConvSubgroup", "BRMAX"), k::SUBGROUP_MAX_ROWS);
    assert_eq!(constant("ConvSubgroup", "BN4MAX"), k::SUBGROUP_MAX_COLS4);
    const {
        assert!(k::SUBGROUP_ROWS <= k::SUBGROUP_MAX_ROWS);
        assert!(k::SUBGROUP_COLS4 <= k::SUBGROUP_MAX_COLS4);
    }
    assert!(
        k::TEXTURE_ROWS
            .iter()
            .all(|&(r, _)| r <= k::TEXTURE_MAX_ROWS)
    );
}

/// `(name, byte offset)` of each named field of a Rust uniform struct.
macro_rules! fields {
    ($t:ty; $($f:ident),* $(,)?) => {
        vec![$((stringify!($f).to_string(), std::mem::offset_of!($t, $f) as u32)),*]
    };
}

/// The `Params` struct of a module: `(name, offset)` of its members, and its size.
fn wgsl_params(module: &str) -> (Vec<(String, u32)>, u32) {
    let modules = resnet_wgpu::gpu::kernels::modules();
    let src = modules.iter().find(|m| m.0 == module).unwrap().1;
    let m = parse(module, src);
    let (_, ty) = m
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some("Params"))
        .unwrap_or_else(|| panic!("{module} has no Params"));
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        panic!("{module}: Params is not a struct");
    };
    let fields = members
        .iter()
        .map(|mb| (mb.name.clone().unwrap_or_default(), mb.offset))
        .collect();
    (fields, *span)
}

/// Every uniform the plan writes has the layout its shader declares (names, offsets, size),
/// field by field.
#[test]
fn uniforms_have_the_shaders_layout() {
    use resnet_wgpu::plan::launch::{conv, conv::texture::PackParams, elementwise, pool};
    let conv_fields = fields!(conv::Params;
        m, cout, cin, coutp, h, w, oh, ow, kh, kw, stride, pad, in_off, out_off, res_off,
        split_off, at, res_h, res_w, res_stride, flags, bias, act, cinp, tiles_n, tiles, w_texel,
        a_stride, c_stride, w_stride, tiles_y, tiles_x, alpha, k_chunk, splits, _pad);
    let pool_fields = fields!(pool::Params;
        total, c, h, w, oh, ow, size, stride, pad_top, pad_left, in_off, out_off, pad_value,
        flags, cp, _pad0);
    let bn_fields =
        fields!(elementwise::Params; total, c, in_off, out_off, cp, flags, _pad1, _pad2);
    let pack_fields = fields!(PackParams; texels, cin, cinp4, in_off);
    let cases = [
        ("ConvShared", conv_fields.clone(), size_of::<conv::Params>()),
        (
            "ConvRegister",
            conv_fields.clone(),
            size_of::<conv::Params>(),
        ),
        (
            "ConvTexture",
            conv_fields.clone(),
            size_of::<conv::Params>(),
        ),
        (
            "ConvSubgroup",
            conv_fields.clone(),
            size_of::<conv::Params>(),
        ),
        ("Winograd", conv_fields, size_of::<conv::Params>()),
        ("Pool", pool_fields, size_of::<pool::Params>()),
        ("Elementwise", bn_fields, size_of::<elementwise::Params>()),
        ("Pack", pack_fields, size_of::<PackParams>()),
    ];
    for (module, rust, size) in cases {
        let (wgsl, span) = wgsl_params(module);
        assert_eq!(wgsl, rust, "{module}: Params fields");
        assert_eq!(span as usize, size, "{module}: Params size");
    }
}

/// Every flag bit the plan sets has the value its shader tests.
#[test]
fn flags_have_the_shaders_values() {
    use resnet_wgpu::plan::launch::{conv, elementwise, pool};
    let value = constant;
    let conv_flags = [
        ("FLAG_IN_ACT", conv::FLAG_IN_ACT),
        ("FLAG_RESIDUAL", conv::FLAG_RESIDUAL),
        ("FLAG_RELU", conv::FLAG_RELU),
        ("FLAG_SPLIT_RELU", conv::FLAG_SPLIT_RELU),
        ("FLAG_M_FASTEST", conv::FLAG_M_FASTEST),
        ("FLAG_NO_BIAS", conv::FLAG_NO_BIAS),
        ("FLAG_OUT_F16", conv::FLAG_OUT_F16),
        ("FLAG_RES_F16", conv::FLAG_RES_F16),
        ("FLAG_RAGGED", conv::FLAG_RAGGED),
    ];
    for module in [
        "ConvShared",
        "ConvRegister",
        "ConvTexture",
        "ConvSubgroup",
        "Winograd",
    ] {
        for (name, v) in conv_flags {
            assert_eq!(value(module, name), v, "{module}::{name}");
        }
    }
    let nhwc = [
        ("NHWC_IN_F16", pool::NHWC_IN_F16),
        ("NHWC_OUT_F16", pool::NHWC_OUT_F16),
        ("NHWC_W_F16", pool::NHWC_W_F16),
        ("NHWC_RAGGED", pool::NHWC_RAGGED),
    ];
    for module in ["Pool", "Elementwise"] {
        for (name, v) in nhwc {
            assert_eq!(value(module, name), v, "{module}::{name}");
        }
    }
    assert_eq!(value("Pool", "POOL_ACT"), pool::POOL_ACT);
    assert_eq!(value("Elementwise", "BN_NO_RELU"), elementwise::BN_NO_RELU);
    // One meaning per bit within a kernel: the flags a kernel tests are distinct bits.
    let bits: Vec<u32> = conv_flags.iter().map(|f| f.1).collect();
    assert!(bits.iter().all(|b| b.is_power_of_two()));
    assert_eq!(
        bits.iter().fold(0, |a, b| a | b).count_ones() as usize,
        bits.len()
    );
    let nhwc_bits = [pool::POOL_ACT, elementwise::BN_NO_RELU]
        .into_iter()
        .chain(nhwc.iter().map(|f| f.1));
    assert_eq!(nhwc_bits.fold(0, |a, b| a | b).count_ones(), 6);
    // The modules with a `flags` field declare the FLAGS override the plan specialises.
    let modules = resnet_wgpu::gpu::kernels::modules();
    for shader in resnet_wgpu::plan::launch::Shader::ALL {
        let (name, src, _) = modules
            .iter()
            .find(|(n, _, _)| *n == shader.name())
            .unwrap_or_else(|| panic!("no module {shader:?}"));
        let m = parse(name, src);
        let declared = m
            .overrides
            .iter()
            .any(|(_, o)| o.name.as_deref() == Some(resnet_wgpu::plan::launch::FLAGS));
        assert_eq!(
            declared,
            shader.flags_offset().is_some(),
            "{name}: FLAGS override"
        );
    }
}

/// The fixed workgroup sizes the plan's grids assume are the shaders' `@workgroup_size`.
#[test]
fn workgroup_sizes_agree_with_the_plan() {
    let modules = resnet_wgpu::gpu::kernels::modules();
    let mut seen = 0;
    for (name, src, _) in &modules {
        let m = parse(name, src);
        for ep in &m.entry_points {
            if let Some(&(_, want)) = resnet_wgpu::plan::launch::WORKGROUP_SIZES
                .iter()
                .find(|(e, _)| *e == ep.name)
            {
                assert!(ep.workgroup_size_overrides.is_none(), "{}", ep.name);
                assert_eq!(ep.workgroup_size, [want, 1, 1], "{name}::{}", ep.name);
                seen += 1;
            }
        }
    }
    assert_eq!(seen, resnet_wgpu::plan::launch::WORKGROUP_SIZES.len());
}
