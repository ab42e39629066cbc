/**
 * Berth's default seccomp filter.
 *
 * Docker's default profile allows ~370 syscalls by name and refuses the rest;
 * runc compiles such an allow-list in `runc init` at every start (5–14 ms on this
 * machine). Berth denies instead, by name, the syscalls that profile refuses to a
 * container with the same capabilities: loading kernel code, keyrings, clock,
 * swap, reboot and mount changes, new namespaces (unshare, setns, clone of a
 * user namespace), and interfaces that mostly widen the kernel's attack surface
 * (bpf, perf events, userfaultfd, io_uring). Measured with runc here, the
 * deny-list costs about a millisecond or less. The difference to Docker: a
 * syscall this list does not name is allowed, where Docker's profile refuses
 * every syscall it does not name (including ones newer than the profile).
 *
 * A capability that a syscall needs lifts its entry (e.g. `--cap-add SYS_ADMIN`
 * allows mount and unshare), as the conditional entries of Docker's profile do.
 */

export interface OciSeccompArg { index: number; value: number; valueTwo?: number; op: string }
export interface OciSeccompRule { names: string[]; action: string; errnoRet?: number; args?: OciSeccompArg[] }
export interface OciSeccomp { defaultAction: string; architectures: string[]; syscalls: OciSeccompRule[] }

const EPERM = 1;
const ENOSYS = 38;

/** Refused whatever the capabilities (Docker's profile never allows them). */
const ALWAYS_DENIED = [
  'add_key', 'keyctl', 'request_key', // the kernel keyring is not namespaced
  'kexec_file_load', 'kexec_load', 'create_module', 'get_kernel_syms', 'query_module',
  'nfsservctl', 'uselib', 'ustat', '_sysctl', 'vm86', 'vm86old',
  'io_uring_setup', 'io_uring_enter', 'io_uring_register',
];

/** Refused unless the container has the capability named. */
const DENIED_WITHOUT: Record<string, string[]> = {
  CAP_SYS_ADMIN: [
    'bpf', 'fanotify_init', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'lookup_dcookie', 'mount', 'mount_setattr',
    'move_mount', 'name_to_handle_at', 'open_tree', 'perf_event_open', 'pivot_root', 'quotactl', 'quotactl_fd',
    'setns', 'swapoff', 'swapon', 'umount', 'umount2', 'unshare',
  ],
  CAP_SYS_BOOT: ['reboot'],
  CAP_SYS_MODULE: ['delete_module', 'finit_module', 'init_module'],
  CAP_SYS_PACCT: ['acct'],
  CAP_SYS_PTRACE: ['kcmp', 'pidfd_getfd', 'process_madvise', 'userfaultfd'],
  CAP_SYS_RAWIO: ['ioperm', 'iopl'],
  CAP_SYS_TIME: ['clock_adjtime', 'clock_adjtime64', 'clock_settime', 'clock_settime64', 'settimeofday', 'stime'],
  CAP_SYS_TTY_CONFIG: ['vhangup'],
  CAP_SYSLOG: ['syslog'],
  CAP_DAC_READ_SEARCH: ['open_by_handle_at'],
};

/**
 * clone(2) with CLONE_NEWUSER is refused without CAP_SYS_ADMIN (Docker's masked-argument
 * rule). The other namespace flags need no rule: outside a new user namespace the
 * kernel itself requires CAP_SYS_ADMIN for them.
 */
const CLONE_NEWUSER = 0x10000000;

/** The seccomp architectures of this host: the native one and the 32-bit ABIs it can run. */
function architectures(arch: string): string[] {
  switch (arch) {
    case 'x64': return ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];
    case 'arm64': return ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];
    case 'ia32': return ['SCMP_ARCH_X86'];
    case 'arm': return ['SCMP_ARCH_ARM'];
    case 'ppc64': return ['SCMP_ARCH_PPC64LE'];
    case 's390x': return ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'];
    default: return [];
  }
}

/** The filter for a container with these (effective) capabilities. */
export function defaultSeccompProfile(capabilities: readonly string[], arch: string = process.arch): OciSeccomp {
  const has = new Set(capabilities);
  const denied = [...ALWAYS_DENIED];
  for (const [cap, names] of Object.entries(DENIED_WITHOUT)) if (!has.has(cap)) denied.push(...names);
  const syscalls: OciSeccompRule[] = [{ names: denied.sort(), action: 'SCMP_ACT_ERRNO', errnoRet: EPERM }];
  if (!has.has('CAP_SYS_ADMIN')) {
    // clone3 passes its flags in memory, out of seccomp's sight: ENOSYS makes libc fall back to clone.
    syscalls.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
    // clone's flags are argument 0 on x86 and arm (s390 swaps the first two).
    const index = arch === 's390x' ? 1 : 0;
    syscalls.push({ names: ['clone'], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, args: [{ index, value: CLONE_NEWUSER, valueTwo: CLONE_NEWUSER, op: 'SCMP_CMP_MASKED_EQ' }] });
  }
  return { defaultAction: 'SCMP_ACT_ALLOW', architectures: architectures(arch), syscalls };
}
