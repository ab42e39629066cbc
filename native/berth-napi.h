/*
 * Shared by the native addons: the N-API call check and the Error they throw for a
 * failed system call (`code` such as "EEXIST", `errno`, `syscall`, as Node's own errors).
 * Include after <node_api.h>, <stdio.h> and <string.h>, with ADDON_NAME defined.
 */
#ifndef BERTH_NAPI_H
#define BERTH_NAPI_H

#define CHECK(call)                                                          \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      napi_throw_error(env, NULL, ADDON_NAME ": N-API call failed: " #call); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

/* One function of an addon's exports table (init). */
#define EXPORT_FN(name, fn) { name, NULL, fn, NULL, NULL, NULL, napi_default, NULL }

/* Defines the exports of an addon's init from its table of EXPORT_FNs. */
#define DEFINE_EXPORTS(props) CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props))

/* The one int32 argument of fn(n): 0, or -1 with a TypeError naming `usage` pending. */
static inline int int32_only_arg(napi_env env, napi_callback_info info, int32_t *out, const char *usage) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], out) != napi_ok) {
    napi_throw_type_error(env, NULL, usage);
    return -1;
  }
  return 0;
}

static napi_value errno_error(napi_env env, int err, const char *syscall, const char *path) {
  const char *name = strerrorname_np(err);
  char msg[4352];
  snprintf(msg, sizeof msg, "%s: %s%s%s", syscall, strerror(err), path ? " " : "", path ? path : "");
  napi_value code_v, msg_v, error, errno_v, syscall_v;
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code_v);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v);
  napi_create_error(env, code_v, msg_v, &error);
  napi_create_int32(env, -err, &errno_v);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v);
  napi_set_named_property(env, error, "syscall", syscall_v);
  return error;
}

#endif
