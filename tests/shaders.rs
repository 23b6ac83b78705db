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

/// The `const`s that size the shaders' private and workgroup arrays, read from the parsed
/// modules, against the plan's tile numbers.
#[test]
fn tile_sizes_agree_with_the_plan() {
    let modules = resnet_wgpu::gpu::kernels::modules();
    let constant = |module: &str, name: &str| -> u32 {
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
    };
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
