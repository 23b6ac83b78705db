//! Every `shaders/*.wgsl` parses and validates with naga (no GPU needed).

use std::path::Path;

#[test]
fn every_shader_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("shaders/ directory") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wgsl") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string_with_path(&src, &name)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}", e.emit_to_string_with_path(&src, &name)));
        assert!(
            !module.entry_points.is_empty(),
            "{} has no entry point",
            path.display()
        );
        checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    checked.sort();
    // The kernel wrappers include exactly these.
    for want in ["conv.wgsl", "elementwise.wgsl", "pool.wgsl", "texture.wgsl"] {
        assert!(checked.iter().any(|c| c == want), "missing shaders/{want}");
    }
}
