//! A seccomp filter that makes chosen system calls of the calling thread
//! fail: for injecting refusals no limit can cause.

use std::io;

/// One BPF instruction (`struct sock_filter`).
fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

/// Makes the calling thread's system calls `nrs` fail with `errno` (when
/// `arg2`, if given, matches the low byte of their third argument).
/// Other threads are not affected; the filter cannot be removed, so the
/// caller runs on a thread of its own.
pub fn fail_on_this_thread(nrs: &[libc::c_long], arg2: Option<u32>, errno: i32) {
    const LD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let allow = stmt(RET, libc::SECCOMP_RET_ALLOW);
    let deny = stmt(RET, libc::SECCOMP_RET_ERRNO | (errno as u32 & 0xffff));
    let mut prog = vec![
        stmt(LD, 4), // seccomp_data.arch
        jump(JEQ, AUDIT_ARCH, 1, 0),
        allow,
        stmt(LD, 0), // seccomp_data.nr
    ];
    // One test per syscall: on a match jump to the argument check.
    let n = nrs.len() as u8;
    for (i, &nr) in nrs.iter().enumerate() {
        prog.push(jump(JEQ, nr as u32, n - i as u8, 0));
    }
    prog.push(allow);
    if let Some(v) = arg2 {
        prog.push(stmt(LD, 16 + 2 * 8)); // low word of args[2]
        prog.push(stmt(AND, 0xff));
        prog.push(jump(JEQ, v, 1, 0));
        prog.push(allow);
    }
    prog.push(deny);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: prctl with plain integers, then a pointer to a filter
    // program that lives until the call returns (the kernel copies it).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let rc = libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        );
        assert_eq!(rc, 0, "seccomp: {}", io::Error::last_os_error());
    }
}
