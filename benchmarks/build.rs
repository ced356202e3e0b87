//! Names the build profile for the report's header (`BENCH_BUILD`): a
//! figure means little without it. Cargo tells a build script neither the
//! profile's name nor its LTO setting, so this reads the profile's target
//! directory from OUT_DIR (`<target>/<profile>/build/<pkg>-<hash>/out`)
//! and the environment overrides that `ab-commits.sh` uses.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=CARGO_PROFILE_RELEASE_LTO");
    println!("cargo:rerun-if-env-changed=CARGO_PROFILE_RELEASE_CODEGEN_UNITS");
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    let dir = Path::new(&out)
        .ancestors()
        .nth(3)
        .and_then(Path::file_name)
        .and_then(|s| s.to_str())
        .unwrap_or("unknown")
        .to_owned();
    let lto_off = std::env::var("CARGO_PROFILE_RELEASE_LTO")
        .is_ok_and(|v| matches!(v.as_str(), "false" | "off" | "no"));
    let what = match dir.as_str() {
        "nolto" => {
            "nolto profile: no LTO, 16 codegen units, as `cargo build --release` gives a user"
        }
        "release" if lto_off => {
            "release profile with LTO off by the environment (CARGO_PROFILE_RELEASE_LTO), as `cargo build --release` gives a user"
        }
        "release" => "release profile of benchmarks/: LTO, 1 codegen unit",
        "debug" => "debug profile: unoptimised, figures meaningless",
        _ => "a custom profile (see benchmarks/Cargo.toml)",
    };
    println!("cargo:rustc-env=BENCH_BUILD={what} [target/{dir}]");
}
