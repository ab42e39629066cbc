/*
 * berth-sys: the few Linux system calls berthd needs that Node does not offer.
 * One file (~1k lines) on purpose: one addon, loaded once, whose functions share the error
 * and argument helpers of berth-napi.h; each section below is independent of the others.
 *
 * - mount(2) / umount2(2), run on libuv's thread pool: a container start used to
 *   spawn mount(8), and forking a ~70 MB daemon costs milliseconds per spawn.
 * - a sealed memfd copy of a file (the runc binary): runc init copies its own
 *   binary into a sealed memfd on every container start and exec (CVE-2019-5736)
 *   unless it already runs from one; handing runc such a copy skips that work.
 *
 * - FIONREAD on a pipe: how many bytes its reader has not read yet (conmon 2.1's
 *   control FIFO applies the first message of a read to every line in it, so berthd
 *   writes the next message only once conmon has read the previous one).
 *
 * - posix_spawn(3) (vfork semantics): libuv forks, which copies the page tables of
 *   the whole daemon and blocks its event loop for milliseconds per child; conmon and
 *   runc are spawned on every container start and exit. Plus pipe2(2) and a
 *   non-blocking waitpid(2) so that JS can wire up and reap those children.
 *
 * - openat2(2) and readlinkat(2): the scoped resolver (src/common/scopedpath.ts) walks a
 *   container's filesystem one descriptor at a time, so a name the container swaps for a
 *   symlink meanwhile is never followed out of its scope (RESOLVE_IN_ROOT, RESOLVE_BENEATH,
 *   RESOLVE_NO_SYMLINKS, RESOLVE_NO_MAGICLINKS enforced by the kernel).
 *
 * - sendfile(2) of a file into a TCP socket, for the registry server's blob bodies: the
 *   bytes go from the page cache to the socket without passing through JS buffers. The
 *   calls run on libuv's thread pool (a cold page cache never blocks the event loop), each
 *   only until the socket is full or SENDFILE_STEP bytes are out, so a slow client never
 *   holds a pool thread and 8 transfers interleave on 4 threads; a full socket is waited
 *   for with a uv_poll on a dup of its descriptor (libuv's own handle already watches the
 *   original). malloc_trim(3), to hand freed heap back to the kernel once the server idles.
 *
 * - writeFiles(paths, buffers, meta): a batch of new small files (create exclusive, write,
 *   owner, mode, times, close) on libuv's thread pool: a layer of thousands of small files
 *   costs the event loop one call per batch instead of four or five system calls per file.
 *
 * - SHA-256 whose updates run on libuv's thread pool (OpenSSL's, as Node links it): a pull
 *   hashes every byte twice (the blob digest, the layer's diffID); off the event loop that
 *   work overlaps the tar parsing instead of adding to it.
 *
 * Errors reject/throw an Error with `code` (e.g. "EBUSY"), `errno` and `syscall`. Every
 * error path copies errno into a local right after the failing call: anything called
 * later (close, free, N-API) may overwrite it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <linux/openat2.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#define ADDON_NAME "berth-sys"
#include "berth-napi.h"

/* A JS string argument as a malloc'd C string; NULL for null/undefined. */
static int string_arg(napi_env env, napi_value v, char **out) {
  napi_valuetype t;
  *out = NULL;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_null || t == napi_undefined) return 0;
  if (t != napi_string) return -1;
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return -1;
  *out = malloc(len + 1);
  if (!*out) return -1;
  return napi_get_value_string_utf8(env, v, *out, len + 1, &len) == napi_ok ? 0 : -1;
}

/* ---- mount / umount2 on the thread pool ------------------------------- */

typedef struct {
  int is_umount;
  char *source, *target, *fstype, *data;
  unsigned long flags;
  int err;
  napi_deferred deferred;
  napi_async_work work;
} mount_job;

static void mount_job_free(mount_job *j) {
  free(j->source);
  free(j->target);
  free(j->fstype);
  free(j->data);
  free(j);
}

static void mount_execute(napi_env env, void *p) {
  (void)env;
  mount_job *j = p;
  int rc = j->is_umount ? umount2(j->target, (int)j->flags)
                        : mount(j->source, j->target, j->fstype, j->flags, j->data);
  j->err = rc == 0 ? 0 : errno;
}

static void mount_complete(napi_env env, napi_status status, void *p) {
  mount_job *j = p;
  if (status != napi_ok && j->err == 0) j->err = ECANCELED;
  if (j->err) {
    napi_reject_deferred(env, j->deferred, errno_error(env, j->err, j->is_umount ? "umount2" : "mount", j->target));
  } else {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, j->deferred, undef);
  }
  napi_delete_async_work(env, j->work);
  mount_job_free(j);
}

static napi_value queue_job(napi_env env, mount_job *j) {
  napi_value promise, name;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "berth-sys", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, mount_execute, mount_complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    mount_job_free(j);
    napi_throw_error(env, NULL, "berth-sys: cannot queue work");
    return NULL;
  }
  return promise;
}

/* A zeroed job, or NULL with a JS exception pending. */
static mount_job *new_job(napi_env env) {
  mount_job *j = calloc(1, sizeof *j);
  if (!j) napi_throw_error(env, NULL, "berth-sys: out of memory");
  return j;
}

static napi_value bad_arguments(napi_env env, mount_job *j, const char *usage) {
  mount_job_free(j);
  napi_throw_type_error(env, NULL, usage);
  return NULL;
}

/* mount(source|null, target, fstype|null, flags, data|null) -> Promise<void> */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  double flags = 0;
  mount_job *j;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!(j = new_job(env))) return NULL;
  if (argc < 5 || string_arg(env, argv[0], &j->source) || string_arg(env, argv[1], &j->target) || !j->target ||
      string_arg(env, argv[2], &j->fstype) || napi_get_value_double(env, argv[3], &flags) != napi_ok ||
      string_arg(env, argv[4], &j->data))
    return bad_arguments(env, j, "mount(source, target, fstype, flags, data)");
  j->flags = (unsigned long)flags;
  return queue_job(env, j);
}

/* umount2(target, flags) -> Promise<void> */
static napi_value js_umount2(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  double flags = 0;
  mount_job *j;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!(j = new_job(env))) return NULL;
  if (argc < 2 || string_arg(env, argv[0], &j->target) || !j->target || napi_get_value_double(env, argv[1], &flags) != napi_ok)
    return bad_arguments(env, j, "umount2(target, flags)");
  j->is_umount = 1;
  j->flags = (unsigned long)flags;
  return queue_job(env, j);
}

/* ---- sealed memfd copy -------------------------------------------------- */

/* sealedCopy(path, name) -> fd: an executable memfd holding the file, sealed against any change. */
static napi_value js_sealed_copy(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *src = NULL, *name = NULL;
  if (argc < 2 || string_arg(env, argv[0], &src) || !src || string_arg(env, argv[1], &name) || !name) {
    free(src);
    free(name);
    napi_throw_type_error(env, NULL, "sealedCopy(path, name)");
    return NULL;
  }
  int err = 0;
  const char *failed = NULL;
  int in = -1, out = -1;
  struct stat st;
  if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0) { err = errno; failed = "open"; goto done; }
  if (fstat(in, &st) < 0) { err = errno; failed = "fstat"; goto done; }
  /* Only a regular file can be copied (sendfile would fail with a puzzling EINVAL on a directory). */
  if (!S_ISREG(st.st_mode)) { err = S_ISDIR(st.st_mode) ? EISDIR : EACCES; failed = "open"; goto done; }
  if ((out = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0) { err = errno; failed = "memfd_create"; goto done; }
  for (off_t left = st.st_size; left > 0;) {
    ssize_t n = sendfile(out, in, NULL, (size_t)left);
    int e = n < 0 ? errno : 0;
    if (e == EINTR) continue;
    if (n <= 0) { err = n < 0 ? e : EIO; failed = "sendfile"; goto done; }
    left -= n;
  }
  if (fchmod(out, 0555) < 0) { err = errno; failed = "fchmod"; goto done; }
  if (fcntl(out, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
    err = errno; failed = "fcntl(F_ADD_SEALS)"; goto done;
  }
done:
  if (in >= 0) close(in);
  if (err && out >= 0) { close(out); out = -1; }
  if (err) {
    napi_throw(env, errno_error(env, err, failed, src));
    free(src);
    free(name);
    return NULL;
  }
  free(src);
  free(name);
  napi_value fd;
  CHECK(napi_create_int32(env, out, &fd));
  return fd;
}

/* ---- spawn ------------------------------------------------------------------ */

/* A JS array of strings as a NULL-terminated, malloc'd C vector. */
static char **string_vector(napi_env env, napi_value arr) {
  uint32_t n;
  if (napi_get_array_length(env, arr, &n) != napi_ok) return NULL;
  char **v = calloc(n + 1, sizeof *v);
  if (!v) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    if (napi_get_element(env, arr, i, &e) != napi_ok || string_arg(env, e, &v[i]) || !v[i]) {
      for (uint32_t k = 0; k <= i; k++) free(v[k]);
      free(v);
      return NULL;
    }
  }
  return v;
}

static void free_vector(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

/* pipe() -> [readFd, writeFd], both close-on-exec. */
static napi_value js_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    int err = errno; /* before any other call can overwrite it */
    napi_throw(env, errno_error(env, err, "pipe2", NULL));
    return NULL;
  }
  napi_value arr, r, w;
  CHECK(napi_create_array_with_length(env, 2, &arr));
  CHECK(napi_create_int32(env, fds[0], &r));
  CHECK(napi_create_int32(env, fds[1], &w));
  CHECK(napi_set_element(env, arr, 0, r));
  CHECK(napi_set_element(env, arr, 1, w));
  return arr;
}

/*
 * spawn(file, argv, envp, fds, newSession) -> pid. fds[i] is the descriptor of this process
 * that becomes descriptor i of the child; nothing else is inherited (libuv opens everything
 * close-on-exec). Signal dispositions and mask are reset, as libuv does for its children.
 */
static napi_value js_spawn(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *file = NULL;
  char **args = NULL, **envp = NULL;
  int *src = NULL, *tmp = NULL;
  uint32_t nfds = 0;
  bool session = false;
  int err = 0;
  const char *failed = NULL;
  pid_t pid = -1;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  int fa_ok = 0, attr_ok = 0;

  if (argc < 5 || string_arg(env, argv[0], &file) || !file || !(args = string_vector(env, argv[1])) ||
      !(envp = string_vector(env, argv[2])) || napi_get_array_length(env, argv[3], &nfds) != napi_ok ||
      napi_get_value_bool(env, argv[4], &session) != napi_ok) {
    napi_throw_type_error(env, NULL, "spawn(file, argv, envp, fds, newSession)");
    goto out;
  }
  src = calloc(nfds ? nfds : 1, sizeof *src);
  tmp = calloc(nfds ? nfds : 1, sizeof *tmp);
  if (!src || !tmp) { err = ENOMEM; failed = "spawn"; goto out; }
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value e;
    tmp[i] = -1;
    if (napi_get_element(env, argv[3], i, &e) != napi_ok || napi_get_value_int32(env, e, &src[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "spawn: fds must be numbers");
      goto out;
    }
  }
  /* Move every source above the target range first, so one dup2 never clobbers another's source. */
  for (uint32_t i = 0; i < nfds; i++) {
    if ((tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, (int)nfds)) < 0) { err = errno; failed = "fcntl(F_DUPFD)"; goto out; }
  }
  if ((err = posix_spawn_file_actions_init(&fa))) { failed = "posix_spawn_file_actions_init"; goto out; }
  fa_ok = 1;
  for (uint32_t i = 0; i < nfds; i++) {
    if ((err = posix_spawn_file_actions_adddup2(&fa, tmp[i], (int)i))) { failed = "posix_spawn_file_actions_adddup2"; goto out; }
  }
  if ((err = posix_spawnattr_init(&attr))) { failed = "posix_spawnattr_init"; goto out; }
  attr_ok = 1;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (session ? POSIX_SPAWN_SETSID : 0);
  if ((err = posix_spawnattr_setflags(&attr, flags)) || (err = posix_spawnattr_setsigmask(&attr, &none)) ||
      (err = posix_spawnattr_setsigdefault(&attr, &all))) {
    failed = "posix_spawnattr";
    goto out;
  }
  if ((err = posix_spawn(&pid, file, &fa, &attr, args, envp))) { failed = "posix_spawn"; pid = -1; goto out; }

out:
  if (fa_ok) posix_spawn_file_actions_destroy(&fa);
  if (attr_ok) posix_spawnattr_destroy(&attr);
  for (uint32_t i = 0; tmp && i < nfds; i++) if (tmp[i] >= 0) close(tmp[i]);
  free(src);
  free(tmp);
  free_vector(args);
  free_vector(envp);
  if (err) napi_throw(env, errno_error(env, err, failed, file));
  free(file);
  if (pid < 0) return NULL;
  napi_value v;
  CHECK(napi_create_int32(env, pid, &v));
  return v;
}

/* reap(pid) -> null while it runs, else { code, signal } (signal 0 when it exited). Never blocks. */
static napi_value js_reap(napi_env env, napi_callback_info info) {
  napi_value result;
  int32_t pid;
  if (int32_only_arg(env, info, &pid, "reap(pid)")) return NULL;
  int status, err = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, WNOHANG);
    err = r < 0 ? errno : 0; /* before any other call can overwrite it */
  } while (r < 0 && err == EINTR);
  if (r == 0) {
    CHECK(napi_get_null(env, &result));
    return result;
  }
  if (r < 0) {
    napi_throw(env, errno_error(env, err, "waitpid", NULL));
    return NULL;
  }
  napi_value code, sig;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_int32(env, WIFEXITED(status) ? WEXITSTATUS(status) : -1, &code));
  CHECK(napi_create_int32(env, WIFSIGNALED(status) ? WTERMSIG(status) : 0, &sig));
  CHECK(napi_set_named_property(env, result, "code", code));
  CHECK(napi_set_named_property(env, result, "signal", sig));
  return result;
}

/* unreadBytes(fd) -> bytes in the pipe (either end) that its reader has not read. */
static napi_value js_unread_bytes(napi_env env, napi_callback_info info) {
  napi_value result;
  int32_t fd;
  if (int32_only_arg(env, info, &fd, "unreadBytes(fd)")) return NULL;
  int n = 0;
  if (ioctl(fd, FIONREAD, &n) < 0) {
    int err = errno; /* before any other call can overwrite it */
    napi_throw(env, errno_error(env, err, "ioctl(FIONREAD)", NULL));
    return NULL;
  }
  CHECK(napi_create_int32(env, n, &result));
  return result;
}

/* ---- openat2 / readlinkat ---------------------------------------------------- */

/* openat2(dirfd, path, flags, mode, resolve) -> fd. Synchronous: a few dentry lookups, no I/O wait. */
static napi_value js_openat2(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], result;
  int32_t dirfd, flags, mode;
  double resolve;
  char *p = NULL;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5 || napi_get_value_int32(env, argv[0], &dirfd) != napi_ok || string_arg(env, argv[1], &p) || !p ||
      napi_get_value_int32(env, argv[2], &flags) != napi_ok || napi_get_value_int32(env, argv[3], &mode) != napi_ok ||
      napi_get_value_double(env, argv[4], &resolve) != napi_ok) {
    free(p);
    napi_throw_type_error(env, NULL, "openat2(dirfd, path, flags, mode, resolve)");
    return NULL;
  }
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (unsigned long long)(unsigned int)flags | O_CLOEXEC;
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? (unsigned long long)mode : 0;
  how.resolve = (unsigned long long)resolve;
  long fd;
  int err = 0;
  do {
    fd = syscall(SYS_openat2, dirfd, p, &how, sizeof how);
    err = fd < 0 ? errno : 0; /* before any other call can overwrite it */
  } while (fd < 0 && (err == EINTR || err == EAGAIN));
  if (fd < 0) {
    napi_throw(env, errno_error(env, err, "openat2", p));
    free(p);
    return NULL;
  }
  free(p);
  CHECK(napi_create_int32(env, (int32_t)fd, &result));
  return result;
}

/* readlinkat(dirfd, path) -> target; path "" reads the symlink an O_PATH descriptor refers to. */
static napi_value js_readlinkat(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  int32_t dirfd;
  char *p = NULL;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, argv[0], &dirfd) != napi_ok || string_arg(env, argv[1], &p) || !p) {
    free(p);
    napi_throw_type_error(env, NULL, "readlinkat(dirfd, path)");
    return NULL;
  }
  char buf[4097];
  ssize_t n = readlinkat(dirfd, p, buf, sizeof buf - 1);
  int err = n < 0 ? errno : 0; /* before any other call can overwrite it */
  if (n < 0) {
    napi_throw(env, errno_error(env, err, "readlinkat", p));
    free(p);
    return NULL;
  }
  free(p);
  CHECK(napi_create_string_utf8(env, buf, (size_t)n, &result));
  return result;
}

/* ---- sendfile into a socket ---------------------------------------------------- */

/* Bytes one pool job may send before it yields its thread to the other transfers. */
#define SENDFILE_STEP (8u << 20)

typedef struct file_pump {
  napi_env env;
  uint32_t id;
  struct file_pump *next;
  uv_poll_t poll;     /* POLLOUT on `sock` while the socket is full */
  uv_work_t work;     /* one step of sendfile calls on the pool */
  int sock;           /* our dup of the socket: closed when the transfer ends */
  int file;           /* opened by the first step */
  char *path;
  off_t offset;
  uint64_t left, sent;
  int err;            /* errno that ended the transfer */
  bool full;          /* the last step stopped on EAGAIN */
  bool in_pool, cancelled;
  napi_ref callback;
  napi_async_context context;
} file_pump;

static file_pump *pumps;
static uint32_t next_pump_id = 1;

/* On the pool: open the file once, then sendfile until done, EAGAIN, an error or the step's budget. */
static void pump_step(uv_work_t *w) {
  file_pump *p = w->data;
  p->full = false;
  if (p->file < 0 && (p->file = open(p->path, O_RDONLY | O_CLOEXEC)) < 0) { p->err = errno; return; }
  uint64_t budget = SENDFILE_STEP;
  while (p->left > 0 && budget > 0) {
    size_t n = (size_t)(p->left < budget ? p->left : budget);
    ssize_t r = sendfile(p->sock, p->file, &p->offset, n);
    int e = r < 0 ? errno : 0;
    if (e == EINTR) continue;
    if (e == EAGAIN) { p->full = true; return; }
    if (r < 0) { p->err = e; return; }
    if (r == 0) { p->err = EIO; return; } /* the file is shorter than the response promised */
    p->left -= (uint64_t)r;
    p->sent += (uint64_t)r;
    budget -= (uint64_t)r > budget ? budget : (uint64_t)r;
  }
}

static void pump_closed(uv_handle_t *h) {
  file_pump *p = h->data;
  napi_env env = p->env;
  for (file_pump **q = &pumps; *q; q = &(*q)->next) if (*q == p) { *q = p->next; break; }
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value cb, recv, argv[2];
    if (p->err) argv[0] = errno_error(env, p->err, "sendfile", p->path);
    else napi_get_null(env, &argv[0]);
    napi_create_double(env, (double)p->sent, &argv[1]);
    napi_get_global(env, &recv); /* make_callback wants an object (its context is entered) */
    if (napi_get_reference_value(env, p->callback, &cb) == napi_ok) napi_make_callback(env, p->context, recv, cb, 2, argv, NULL);
    napi_close_handle_scope(env, scope);
  }
  napi_delete_reference(env, p->callback);
  napi_async_destroy(env, p->context);
  free(p->path);
  free(p);
}

/* Ends a transfer that is neither on the pool nor polled; the callback runs from the loop. */
static void pump_finish(file_pump *p) {
  if (p->file >= 0) close(p->file);
  uv_close((uv_handle_t *)&p->poll, pump_closed); /* stops the poll (removes the fd from epoll) */
  close(p->sock);
}

static void pump_writable(uv_poll_t *h, int status, int events);
static void pump_after_step(uv_work_t *w, int status);

static void pump_queue(file_pump *p) {
  uv_loop_t *loop;
  int rc = napi_get_uv_event_loop(p->env, &loop) == napi_ok ? uv_queue_work(loop, &p->work, pump_step, pump_after_step) : UV_EINVAL;
  if (rc < 0) { p->err = -rc; pump_finish(p); return; }
  p->in_pool = true;
}

/* After a step (main thread): done, failed, wait for room in the socket, or go on. */
static void pump_after_step(uv_work_t *w, int status) {
  file_pump *p = w->data;
  p->in_pool = false;
  if (status < 0 && !p->err) p->err = -status;
  if (p->cancelled && !p->err) p->err = ECANCELED;
  if (p->err || p->left == 0) { pump_finish(p); return; }
  if (p->full) {
    int rc = uv_poll_start(&p->poll, UV_WRITABLE, pump_writable);
    if (rc < 0) { p->err = -rc; pump_finish(p); }
    return;
  }
  pump_queue(p); /* the step's budget is spent: back in the pool's queue behind the others */
}

static void pump_writable(uv_poll_t *h, int status, int events) {
  (void)events;
  file_pump *p = h->data;
  uv_poll_stop(&p->poll);
  if (status < 0) { p->err = -status; pump_finish(p); return; }
  pump_queue(p);
}

/*
 * sendfileToSocket(socketFd, path, offset, length, callback(err, sent)) -> id. Sends `length` bytes
 * of the file from `offset` into the (non-blocking) socket; the caller's descriptor stays its own.
 */
static napi_value js_sendfile_to_socket(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], result;
  int32_t sock;
  double offset, length;
  char *path = NULL;
  napi_valuetype cbt = napi_undefined;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5 || napi_get_value_int32(env, argv[0], &sock) != napi_ok || string_arg(env, argv[1], &path) || !path ||
      napi_get_value_double(env, argv[2], &offset) != napi_ok || napi_get_value_double(env, argv[3], &length) != napi_ok ||
      offset < 0 || length < 0 || napi_typeof(env, argv[4], &cbt) != napi_ok || cbt != napi_function) {
    free(path);
    napi_throw_type_error(env, NULL, "sendfileToSocket(socketFd, path, offset, length, callback)");
    return NULL;
  }
  file_pump *p = calloc(1, sizeof *p);
  uv_loop_t *loop;
  if (!p) { free(path); napi_throw_error(env, NULL, "berth-sys: out of memory"); return NULL; }
  p->env = env;
  p->path = path;
  p->file = -1;
  p->offset = (off_t)offset;
  p->left = (uint64_t)length;
  p->work.data = p;
  p->poll.data = p;
  if ((p->sock = fcntl(sock, F_DUPFD_CLOEXEC, 3)) < 0) {
    int err = errno; /* before any other call can overwrite it */
    free(path);
    free(p);
    napi_throw(env, errno_error(env, err, "fcntl(F_DUPFD)", NULL));
    return NULL;
  }
  napi_value name;
  bool referenced = false, context = false;
  /* The poll handle last: once initialised it belongs to the loop and can only go through uv_close. */
  if (!(referenced = napi_create_reference(env, argv[4], 1, &p->callback) == napi_ok) ||
      napi_create_string_utf8(env, "berth-sendfile", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      !(context = napi_async_init(env, NULL, name, &p->context) == napi_ok) ||
      napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &p->poll, p->sock) < 0) {
    if (referenced) napi_delete_reference(env, p->callback);
    if (context) napi_async_destroy(env, p->context);
    close(p->sock);
    free(path);
    free(p);
    napi_throw_error(env, NULL, "berth-sys: cannot start sendfile");
    return NULL;
  }
  p->id = next_pump_id++;
  if (next_pump_id == 0) next_pump_id = 1;
  p->next = pumps;
  pumps = p;
  pump_queue(p);
  CHECK(napi_create_uint32(env, p->id, &result));
  return result;
}

/* sendfileCancel(id): ends a transfer (its callback gets ECANCELED); nothing when it has ended. */
static napi_value js_sendfile_cancel(napi_env env, napi_callback_info info) {
  int32_t id;
  if (int32_only_arg(env, info, &id, "sendfileCancel(id)")) return NULL;
  for (file_pump *p = pumps; p; p = p->next) {
    if (p->id != (uint32_t)id || p->cancelled) continue;
    p->cancelled = true;
    /* On the pool: the step ends on its own (a non-blocking socket) and sees the flag. */
    if (!p->in_pool && !uv_is_closing((uv_handle_t *)&p->poll)) {
      uv_poll_stop(&p->poll);
      if (!p->err) p->err = ECANCELED;
      pump_finish(p);
    }
    break;
  }
  return NULL;
}

/* mallocTrim() -> whether memory was released: glibc keeps freed heap mapped until told. */
static napi_value js_malloc_trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  CHECK(napi_get_boolean(env, malloc_trim(0) != 0, &result));
  return result;
}

/* ---- batches of small files on the thread pool --------------------------- */

/* Per file, in meta (Float64Array): mode, uid (-1: no chown), gid, mtime in ms, chmod (0/1). */
#define FILE_META 5

typedef struct {
  size_t n;
  char **paths;
  const char **data;
  size_t *len;
  double *meta;
  napi_ref keep;         /* the buffers array: its memory must outlive the work */
  int err;
  size_t failed;         /* index of the file that failed */
  const char *syscall;
  napi_deferred deferred;
  napi_async_work work;
} files_job;

static void files_job_free(napi_env env, files_job *j) {
  if (j->paths) for (size_t i = 0; i < j->n; i++) free(j->paths[i]);
  free(j->paths);
  free(j->data);
  free(j->len);
  free(j->meta);
  if (j->keep) napi_delete_reference(env, j->keep);
  free(j);
}

static void files_execute(napi_env env, void *p) {
  (void)env;
  files_job *j = p;
  for (size_t i = 0; i < j->n; i++) {
    const double *m = j->meta + i * FILE_META;
    mode_t mode = (mode_t)m[0];
    int fd = open(j->paths[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    const char *call = "open";
    int err = 0;
    if (fd < 0) { err = errno; goto fail; }
    for (size_t off = 0; off < j->len[i];) {
      ssize_t w = write(fd, j->data[i] + off, j->len[i] - off);
      if (w < 0) {
        if (errno == EINTR) continue;
        err = errno; call = "write"; break;
      }
      off += (size_t)w;
    }
    if (!err && m[1] >= 0 && fchown(fd, (uid_t)m[1], (gid_t)m[2]) != 0) { err = errno; call = "fchown"; }
    if (!err && m[4] != 0 && fchmod(fd, mode) != 0) { err = errno; call = "fchmod"; }
    if (!err) {
      double ms = m[3];
      double sec = ms >= 0 ? (double)(long long)(ms / 1000) : -(double)(long long)(-ms / 1000 + 0.999999999);
      struct timespec ts[2];
      ts[0].tv_sec = (time_t)sec;
      ts[0].tv_nsec = (long)((ms - sec * 1000) * 1000000);
      if (ts[0].tv_nsec < 0) ts[0].tv_nsec = 0;
      if (ts[0].tv_nsec > 999999999) ts[0].tv_nsec = 999999999;
      ts[1] = ts[0];
      if (futimens(fd, ts) != 0) { err = errno; call = "futimens"; }
    }
    if (close(fd) != 0 && !err) { err = errno; call = "close"; }
    if (!err) continue;
  fail:
    j->err = err;
    j->syscall = call;
    j->failed = i;
    return;
  }
}

static void files_complete(napi_env env, napi_status status, void *p) {
  files_job *j = p;
  if (status != napi_ok && j->err == 0) { j->err = ECANCELED; j->syscall = "writeFiles"; j->failed = 0; }
  if (j->err) {
    napi_reject_deferred(env, j->deferred, errno_error(env, j->err, j->syscall, j->n ? j->paths[j->failed] : NULL));
  } else {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, j->deferred, undef);
  }
  napi_delete_async_work(env, j->work);
  files_job_free(env, j);
}

static napi_value files_bad(napi_env env, files_job *j) {
  files_job_free(env, j);
  napi_throw_type_error(env, NULL, "writeFiles(paths: string[], buffers: Buffer[], meta: Float64Array)");
  return NULL;
}

/* writeFiles(paths, buffers, meta) -> Promise<void>; stops at the first failure, whose Error names the file. */
static napi_value js_write_files(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  files_job *j = calloc(1, sizeof *j);
  if (!j) { napi_throw_error(env, NULL, "berth-sys: out of memory"); return NULL; }
  uint32_t n = 0, nb = 0;
  bool is_array;
  if (argc < 3 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[0], &n) != napi_ok ||
      napi_get_array_length(env, argv[1], &nb) != napi_ok || nb != n)
    return files_bad(env, j);
  napi_typedarray_type tt;
  size_t mlen;
  void *mdata;
  if (napi_get_typedarray_info(env, argv[2], &tt, &mlen, &mdata, NULL, NULL) != napi_ok ||
      tt != napi_float64_array || mlen != (size_t)n * FILE_META)
    return files_bad(env, j);
  j->n = n;
  j->paths = calloc(n ? n : 1, sizeof *j->paths);
  j->data = calloc(n ? n : 1, sizeof *j->data);
  j->len = calloc(n ? n : 1, sizeof *j->len);
  j->meta = malloc((n ? n : 1) * FILE_META * sizeof(double));
  if (!j->paths || !j->data || !j->len || !j->meta) return files_bad(env, j);
  memcpy(j->meta, mdata, (size_t)n * FILE_META * sizeof(double));
  for (uint32_t i = 0; i < n; i++) {
    napi_value pv, bv;
    bool is_buffer;
    void *bdata;
    size_t blen;
    if (napi_get_element(env, argv[0], i, &pv) != napi_ok || string_arg(env, pv, &j->paths[i]) || !j->paths[i] ||
        napi_get_element(env, argv[1], i, &bv) != napi_ok || napi_is_buffer(env, bv, &is_buffer) != napi_ok || !is_buffer ||
        napi_get_buffer_info(env, bv, &bdata, &blen) != napi_ok)
      return files_bad(env, j);
    j->data[i] = bdata;
    j->len[i] = blen;
  }
  napi_value promise, name;
  if (napi_create_reference(env, argv[1], 1, &j->keep) != napi_ok ||
      napi_create_promise(env, &j->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "berth-sys", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, files_execute, files_complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    files_job_free(env, j);
    napi_throw_error(env, NULL, "berth-sys: cannot queue work");
    return NULL;
  }
  return promise;
}

/* ---- SHA-256 on the thread pool -------------------------------------------- */

typedef struct {
  EVP_MD_CTX *md;
  int busy;              /* an update is running: JS must chain them (checked, not trusted) */
  int spent;             /* digested */
} sha_state;

#define SHA_MAX_PARTS 64

typedef struct {
  sha_state *st;
  size_t parts;
  const unsigned char *data[SHA_MAX_PARTS];
  size_t len[SHA_MAX_PARTS];
  int ok;
  napi_ref keep;         /* the hash object and the buffer, alive until the update ran */
  napi_ref keep_buf;
  napi_deferred deferred;
  napi_async_work work;
} sha_job;

static void sha_finalize(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  sha_state *st = data;
  EVP_MD_CTX_free(st->md);
  free(st);
}

/* sha256New() -> handle */
static napi_value js_sha256_new(napi_env env, napi_callback_info info) {
  (void)info;
  sha_state *st = calloc(1, sizeof *st);
  if (!st || !(st->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(st->md, EVP_sha256(), NULL) != 1) {
    if (st) EVP_MD_CTX_free(st->md);
    free(st);
    napi_throw_error(env, NULL, "berth-sys: cannot create a SHA-256 context");
    return NULL;
  }
  napi_value handle;
  if (napi_create_external(env, st, sha_finalize, NULL, &handle) != napi_ok) {
    sha_finalize(env, st, NULL);
    napi_throw_error(env, NULL, "berth-sys: cannot create a SHA-256 context");
    return NULL;
  }
  return handle;
}

static sha_state *sha_arg(napi_env env, napi_value v) {
  napi_valuetype t;
  void *p = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

static void sha_execute(napi_env env, void *p) {
  (void)env;
  sha_job *j = p;
  j->ok = 1;
  for (size_t i = 0; i < j->parts && j->ok; i++) j->ok = EVP_DigestUpdate(j->st->md, j->data[i], j->len[i]) == 1;
}

static void sha_complete(napi_env env, napi_status status, void *p) {
  sha_job *j = p;
  j->st->busy = 0;
  if (status != napi_ok || !j->ok) {
    napi_value msg, error;
    napi_create_string_utf8(env, "berth-sys: SHA-256 update failed", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &error);
    napi_reject_deferred(env, j->deferred, error);
  } else {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, j->deferred, undef);
  }
  napi_delete_async_work(env, j->work);
  napi_delete_reference(env, j->keep);
  napi_delete_reference(env, j->keep_buf);
  free(j);
}

/* One Buffer, or -1 with a TypeError pending. */
static int sha_part(napi_env env, napi_value v, const unsigned char **data, size_t *len) {
  bool is_buffer = false;
  void *p;
  if (napi_is_buffer(env, v, &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, v, &p, len) != napi_ok) {
    napi_throw_type_error(env, NULL, "sha256Update(handle, buffer | buffer[])");
    return -1;
  }
  *data = p;
  return 0;
}

/* sha256Update(handle, buffer | buffers (at most 64)) -> Promise<void>; one at a time per handle (in order). */
static napi_value js_sha256_update(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sha_state *st = argc >= 2 ? sha_arg(env, argv[0]) : NULL;
  if (!st) {
    napi_throw_type_error(env, NULL, "sha256Update(handle, buffer | buffer[])");
    return NULL;
  }
  if (st->busy || st->spent) {
    napi_throw_error(env, NULL, st->spent ? "berth-sys: sha256Update after the digest" : "berth-sys: sha256Update while the previous update runs");
    return NULL;
  }
  sha_job *j = calloc(1, sizeof *j);
  if (!j) { napi_throw_error(env, NULL, "berth-sys: out of memory"); return NULL; }
  j->st = st;
  bool is_array = false;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok) { free(j); return NULL; }
  if (is_array) {
    uint32_t n = 0;
    if (napi_get_array_length(env, argv[1], &n) != napi_ok || n > SHA_MAX_PARTS) {
      free(j);
      napi_throw_type_error(env, NULL, "sha256Update(handle, buffer | buffer[]): at most 64 buffers");
      return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
      napi_value e;
      if (napi_get_element(env, argv[1], i, &e) != napi_ok || sha_part(env, e, &j->data[i], &j->len[i])) { free(j); return NULL; }
    }
    j->parts = n;
  } else {
    if (sha_part(env, argv[1], &j->data[0], &j->len[0])) { free(j); return NULL; }
    j->parts = 1;
  }
  napi_value promise, name;
  if (napi_create_reference(env, argv[0], 1, &j->keep) != napi_ok ||
      napi_create_reference(env, argv[1], 1, &j->keep_buf) != napi_ok ||
      napi_create_promise(env, &j->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "berth-sys", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, sha_execute, sha_complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    if (j->keep) napi_delete_reference(env, j->keep);
    if (j->keep_buf) napi_delete_reference(env, j->keep_buf);
    free(j);
    napi_throw_error(env, NULL, "berth-sys: cannot queue work");
    return NULL;
  }
  st->busy = 1;
  return promise;
}

/* sha256Digest(handle) -> hex string (the handle is spent: a later update or digest throws). */
static napi_value js_sha256_digest(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sha_state *st = argc >= 1 ? sha_arg(env, argv[0]) : NULL;
  if (!st) { napi_throw_type_error(env, NULL, "sha256Digest(handle)"); return NULL; }
  if (st->busy || st->spent) {
    napi_throw_error(env, NULL, st->spent ? "berth-sys: sha256Digest twice" : "berth-sys: sha256Digest while an update runs");
    return NULL;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(st->md, md, &n) != 1 || n != 32) {
    napi_throw_error(env, NULL, "berth-sys: SHA-256 digest failed");
    return NULL;
  }
  st->spent = 1;
  char hex[65];
  for (unsigned int i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  napi_value result;
  CHECK(napi_create_string_utf8(env, hex, 64, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    EXPORT_FN("mount", js_mount),
    EXPORT_FN("umount2", js_umount2),
    EXPORT_FN("sealedCopy", js_sealed_copy),
    EXPORT_FN("pipe", js_pipe),
    EXPORT_FN("spawn", js_spawn),
    EXPORT_FN("reap", js_reap),
    EXPORT_FN("unreadBytes", js_unread_bytes),
    EXPORT_FN("openat2", js_openat2),
    EXPORT_FN("readlinkat", js_readlinkat),
    EXPORT_FN("sendfileToSocket", js_sendfile_to_socket),
    EXPORT_FN("sendfileCancel", js_sendfile_cancel),
    EXPORT_FN("mallocTrim", js_malloc_trim),
    EXPORT_FN("writeFiles", js_write_files),
    EXPORT_FN("sha256New", js_sha256_new),
    EXPORT_FN("sha256Update", js_sha256_update),
    EXPORT_FN("sha256Digest", js_sha256_digest),
  };
  DEFINE_EXPORTS(props);
  return exports;
}

NAPI_MODULE(berth_sys, init)
