//! include/shmchan.h is what cbindgen makes of this crate now: the header
//! and the library's exports cannot disagree unnoticed.
//!
//! `SHMCHAN_BLESS=1 cargo test -p shmchan-ffi --test header` writes the
//! header instead of comparing (after a change to the C interface).

use std::path::Path;

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let ffi = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(ffi.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_crate(ffi)
        .generate()
        .expect("cbindgen parses ffi/src");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = ffi.join("../include/shmchan.h");
    if std::env::var_os("SHMCHAN_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/shmchan.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/shmchan.h differs from what cbindgen generates from ffi/src; \
         after a change to the C interface, run \
         SHMCHAN_BLESS=1 cargo test -p shmchan-ffi --test header\n\
         --- generated ---\n{}",
        String::from_utf8_lossy(&generated)
    );
}
