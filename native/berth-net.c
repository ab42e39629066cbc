/*
 * berth-net: the network plumbing of a container start, done in-process.
 *
 * Spawning ip(8) twice per container (host side, then inside the namespace) costs
 * milliseconds of posix_spawn + exec each; these calls do the same with a few ioctls
 * and one rtnetlink message, synchronously, in well under a millisecond:
 *
 * - netnsCreate(path): a new network namespace (loopback up) bind-mounted on `path`.
 *   The calling thread enters it with unshare(2) and returns to its own namespace
 *   before returning; nothing else runs on the thread meanwhile.
 * - bridgeCreate(name, addr, prefixLen): a bridge with that IPv4 address, up.
 * - vethCreate(hostName, peerName, netnsPath, bridge): a veth pair; the host end is
 *   enslaved to the bridge and up, the peer is created inside the namespace.
 * - netnsConfigure(netnsPath, ifName, mac, addr, prefixLen, gateway): inside the
 *   namespace: MAC, address, up, default route (gateway may be null).
 * - linkDelete(name, netnsPath): removes a link (a veth takes its peer along);
 *   false when there was none.
 * - netnsSocket(netnsPath, stream, addr, port): a bound (and for stream, listening)
 *   non-blocking socket inside the namespace, for the embedded DNS server.
 * - addr6Add(netnsPath, ifName, addr, prefixLen, gateway): an IPv6 address on a link (host
 *   namespace when netnsPath is null), without duplicate address detection (usable at once,
 *   as Docker adds it), and a default route through gateway when one is given.
 *
 * Errors throw an Error with `code` (e.g. "EEXIST"), `errno` and `syscall`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <linux/veth.h>
#include <net/route.h>
#include <node_api.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

/* <net/if.h> clashes with <linux/if.h>. */
extern unsigned int if_nametoindex(const char *ifname);

#define ADDON_NAME "berth-net"
#include "berth-napi.h"

static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *what) {
  napi_throw(env, errno_error(env, err, syscall, what));
  return NULL;
}

/* String argument i into buf (empty for null/undefined). Returns 0 on success. */
static int str_arg(napi_env env, napi_value v, char *buf, size_t len) {
  napi_valuetype t;
  buf[0] = 0;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_null || t == napi_undefined) return 0;
  size_t n;
  if (t != napi_string || napi_get_value_string_utf8(env, v, buf, len, &n) != napi_ok || n >= len - 1) return -1;
  return 0;
}

static int int_arg(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

static napi_value bad_args(napi_env env, const char *usage) {
  napi_throw_type_error(env, NULL, usage);
  return NULL;
}

/* ---- namespace switching -------------------------------------------------- */

/* Enters the namespace at path; *back is this thread's own namespace to return to. */
static int enter_netns(const char *path, int *back, const char **failed) {
  *back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (*back < 0) { *failed = "open(/proc/thread-self/ns/net)"; return errno; }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { int e = errno; close(*back); *failed = "open"; return e; }
  if (setns(fd, CLONE_NEWNET) < 0) { int e = errno; close(fd); close(*back); *failed = "setns"; return e; }
  close(fd);
  return 0;
}

/* Returning must not fail: the thread would go on in a container's namespace. */
static void leave_netns(int back) {
  if (setns(back, CLONE_NEWNET) < 0) abort();
  close(back);
}

/* ---- ioctl helpers (on the calling thread's current namespace) ------------- */

static void set_ifname(struct ifreq *ifr, const char *name) {
  size_t n = strnlen(name, IFNAMSIZ - 1);
  memcpy(ifr->ifr_name, name, n);
  ifr->ifr_name[n] = 0;
}

static int if_set_flags(int s, const char *name, short set) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  set_ifname(&ifr, name);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) return errno;
  ifr.ifr_flags |= set;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) return errno;
  return 0;
}

static int if_set_addr(int s, const char *name, const char *addr, int prefix) {
  struct ifreq ifr;
  struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
  memset(&ifr, 0, sizeof ifr);
  set_ifname(&ifr, name);
  sin->sin_family = AF_INET;
  if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1) return EINVAL;
  if (ioctl(s, SIOCSIFADDR, &ifr) < 0) return errno;
  sin->sin_addr.s_addr = prefix ? htonl(~0u << (32 - prefix)) : 0;
  if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0) return errno;
  return 0;
}

static int if_set_mac(int s, const char *name, const char *mac) {
  struct ifreq ifr;
  unsigned int b[6];
  memset(&ifr, 0, sizeof ifr);
  set_ifname(&ifr, name);
  if (sscanf(mac, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) return EINVAL;
  ifr.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
  for (int i = 0; i < 6; i++) ifr.ifr_hwaddr.sa_data[i] = (char)b[i];
  if (ioctl(s, SIOCSIFHWADDR, &ifr) < 0) return errno;
  return 0;
}

static int add_default_route(int s, const char *dev, const char *gateway) {
  struct rtentry rt;
  memset(&rt, 0, sizeof rt);
  struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;
  struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;
  struct sockaddr_in *mask = (struct sockaddr_in *)&rt.rt_genmask;
  dst->sin_family = gw->sin_family = mask->sin_family = AF_INET;
  if (inet_pton(AF_INET, gateway, &gw->sin_addr) != 1) return EINVAL;
  rt.rt_flags = RTF_UP | RTF_GATEWAY;
  rt.rt_dev = (char *)dev;
  if (ioctl(s, SIOCADDRT, &rt) < 0) return errno;
  return 0;
}

/* ---- rtnetlink ----------------------------------------------------------- */

#define NLREQ_SIZE 1024

/* A request: nlmsghdr + ifinfomsg + attributes in one aligned buffer. */
struct nlreq {
  union { struct nlmsghdr nh; char bytes[NLREQ_SIZE]; } u;
};

static struct ifinfomsg *req_ifi(struct nlreq *r) { return (struct ifinfomsg *)NLMSG_DATA(&r->u.nh); }

static struct rtattr *add_attr(struct nlmsghdr *n, int type, const void *data, size_t len) {
  size_t rtalen = RTA_LENGTH(len);
  size_t at = NLMSG_ALIGN(n->nlmsg_len);
  if (at + RTA_ALIGN(rtalen) > NLREQ_SIZE) return NULL;
  char *base = (char *)n;
  struct rtattr *rta = (struct rtattr *)(base + at);
  rta->rta_type = type;
  rta->rta_len = rtalen;
  if (len) memcpy(base + at + RTA_LENGTH(0), data, len);
  n->nlmsg_len = NLMSG_ALIGN(n->nlmsg_len) + RTA_ALIGN(rtalen);
  return rta;
}

static void end_nest(struct nlmsghdr *n, struct rtattr *nest) {
  nest->rta_len = (unsigned short)((char *)n + NLMSG_ALIGN(n->nlmsg_len) - (char *)nest);
}

/* Sends one request and waits for its ack. Returns 0 or a positive errno. */
static int nl_talk(struct nlmsghdr *n) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return errno;
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  n->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  n->nlmsg_seq = 1;
  int err = 0;
  if (sendto(fd, n, n->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof sa) < 0) { err = errno; goto out; }
  for (;;) {
    char buf[8192];
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r < 0) { if (errno == EINTR) continue; err = errno; goto out; }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)r); h = NLMSG_NEXT(h, r)) {
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        err = -e->error;
        goto out;
      }
    }
  }
out:
  close(fd);
  return err;
}

/* ---- exported calls ------------------------------------------------------- */

static napi_value js_netns_create(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[4096];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || str_arg(env, argv[0], path, sizeof path) || !path[0]) return bad_args(env, "netnsCreate(path)");
  int back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (back < 0) return throw_errno(env, errno, "open", "/proc/thread-self/ns/net");
  if (unshare(CLONE_NEWNET) < 0) { int e = errno; close(back); return throw_errno(env, e, "unshare", NULL); }
  int err = 0;
  const char *failed = NULL;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) { err = errno; failed = "socket"; }
  else {
    if ((err = if_set_flags(s, "lo", IFF_UP))) failed = "ioctl(lo up)";
    close(s);
  }
  if (!err && mount("/proc/thread-self/ns/net", path, NULL, MS_BIND, NULL) < 0) { err = errno; failed = "mount"; }
  leave_netns(back);
  if (err) return throw_errno(env, err, failed, path);
  return NULL;
}

static napi_value js_bridge_create(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char name[IFNAMSIZ + 1], addr[64];
  int32_t prefix;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || str_arg(env, argv[0], name, sizeof name) || !name[0] || str_arg(env, argv[1], addr, sizeof addr) ||
      int_arg(env, argv[2], &prefix)) return bad_args(env, "bridgeCreate(name, addr, prefixLen)");
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return throw_errno(env, errno, "socket", NULL);
  int err = 0;
  const char *failed = NULL;
  if (ioctl(s, SIOCBRADDBR, name) < 0 && errno != EEXIST) { err = errno; failed = "ioctl(SIOCBRADDBR)"; }
  if (!err && addr[0] && (err = if_set_addr(s, name, addr, prefix))) failed = "ioctl(SIOCSIFADDR)";
  if (!err && (err = if_set_flags(s, name, IFF_UP))) failed = "ioctl(SIOCSIFFLAGS)";
  close(s);
  if (err) return throw_errno(env, err, failed, name);
  return NULL;
}

static napi_value js_veth_create(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  char host[IFNAMSIZ + 1], peer[IFNAMSIZ + 1], ns[4096], bridge[IFNAMSIZ + 1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4 || str_arg(env, argv[0], host, sizeof host) || !host[0] || str_arg(env, argv[1], peer, sizeof peer) || !peer[0] ||
      str_arg(env, argv[2], ns, sizeof ns) || !ns[0] || str_arg(env, argv[3], bridge, sizeof bridge) || !bridge[0])
    return bad_args(env, "vethCreate(hostName, peerName, netnsPath, bridge)");
  unsigned int master = if_nametoindex(bridge);
  if (!master) return throw_errno(env, errno, "if_nametoindex", bridge);
  int nsfd = open(ns, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) return throw_errno(env, errno, "open", ns);
  struct nlreq req;
  memset(&req, 0, sizeof req);
  struct nlmsghdr *nh = &req.u.nh;
  nh->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  nh->nlmsg_type = RTM_NEWLINK;
  nh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  req_ifi(&req)->ifi_family = AF_UNSPEC;
  req_ifi(&req)->ifi_flags = IFF_UP;
  req_ifi(&req)->ifi_change = IFF_UP;
  add_attr(nh, IFLA_IFNAME, host, strlen(host) + 1);
  add_attr(nh, IFLA_MASTER, &master, sizeof master);
  struct rtattr *linkinfo = add_attr(nh, IFLA_LINKINFO, NULL, 0);
  add_attr(nh, IFLA_INFO_KIND, "veth", 4);
  struct rtattr *data = add_attr(nh, IFLA_INFO_DATA, NULL, 0);
  struct ifinfomsg peer_ifi;
  memset(&peer_ifi, 0, sizeof peer_ifi);
  peer_ifi.ifi_family = AF_UNSPEC;
  struct rtattr *peer_info = add_attr(nh, VETH_INFO_PEER, &peer_ifi, sizeof peer_ifi);
  add_attr(nh, IFLA_IFNAME, peer, strlen(peer) + 1);
  uint32_t fd32 = (uint32_t)nsfd;
  struct rtattr *last = add_attr(nh, IFLA_NET_NS_FD, &fd32, sizeof fd32);
  if (!last) { close(nsfd); return throw_errno(env, E2BIG, "rtnetlink", host); }
  end_nest(nh, peer_info);
  end_nest(nh, data);
  end_nest(nh, linkinfo);
  int err = nl_talk(nh);
  close(nsfd);
  if (err) return throw_errno(env, err, "rtnetlink(RTM_NEWLINK veth)", host);
  return NULL;
}

static napi_value js_netns_configure(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  char ns[4096], ifname[IFNAMSIZ + 1], mac[32], addr[64], gw[64];
  int32_t prefix;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6 || str_arg(env, argv[0], ns, sizeof ns) || !ns[0] || str_arg(env, argv[1], ifname, sizeof ifname) || !ifname[0] ||
      str_arg(env, argv[2], mac, sizeof mac) || str_arg(env, argv[3], addr, sizeof addr) || !addr[0] ||
      int_arg(env, argv[4], &prefix) || str_arg(env, argv[5], gw, sizeof gw))
    return bad_args(env, "netnsConfigure(netnsPath, ifName, mac, addr, prefixLen, gateway)");
  int back;
  const char *failed = NULL;
  int err = enter_netns(ns, &back, &failed);
  if (err) return throw_errno(env, err, failed, ns);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) { err = errno; failed = "socket"; }
  if (!err && mac[0] && (err = if_set_mac(s, ifname, mac))) failed = "ioctl(SIOCSIFHWADDR)";
  if (!err && (err = if_set_addr(s, ifname, addr, prefix))) failed = "ioctl(SIOCSIFADDR)";
  if (!err && (err = if_set_flags(s, ifname, IFF_UP))) failed = "ioctl(SIOCSIFFLAGS)";
  if (!err && gw[0] && (err = add_default_route(s, ifname, gw))) failed = "ioctl(SIOCADDRT)";
  if (s >= 0) close(s);
  leave_netns(back);
  if (err) return throw_errno(env, err, failed, ifname);
  return NULL;
}

static napi_value js_link_delete(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  char name[IFNAMSIZ + 1], ns[4096];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || str_arg(env, argv[0], name, sizeof name) || !name[0] || (argc > 1 && str_arg(env, argv[1], ns, sizeof ns)))
    return bad_args(env, "linkDelete(name, netnsPath)");
  if (argc < 2) ns[0] = 0;
  int back = -1;
  const char *failed = NULL;
  int err = 0;
  if (ns[0] && (err = enter_netns(ns, &back, &failed))) return throw_errno(env, err, failed, ns);
  struct nlreq req;
  memset(&req, 0, sizeof req);
  struct nlmsghdr *nh = &req.u.nh;
  nh->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  nh->nlmsg_type = RTM_DELLINK;
  req_ifi(&req)->ifi_family = AF_UNSPEC;
  add_attr(nh, IFLA_IFNAME, name, strlen(name) + 1);
  err = nl_talk(nh);
  if (back >= 0) leave_netns(back);
  if (err && err != ENODEV) return throw_errno(env, err, "rtnetlink(RTM_DELLINK)", name);
  CHECK(napi_get_boolean(env, err == 0, &result));
  return result;
}

static napi_value js_netns_socket(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  char ns[4096], addr[64];
  bool stream;
  int32_t port;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4 || str_arg(env, argv[0], ns, sizeof ns) || !ns[0] || napi_get_value_bool(env, argv[1], &stream) != napi_ok ||
      str_arg(env, argv[2], addr, sizeof addr) || !addr[0] || int_arg(env, argv[3], &port))
    return bad_args(env, "netnsSocket(netnsPath, stream, addr, port)");
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) return bad_args(env, "netnsSocket: bad IPv4 address");
  int back;
  const char *failed = NULL;
  int err = enter_netns(ns, &back, &failed);
  if (err) return throw_errno(env, err, failed, ns);
  int s = socket(AF_INET, (stream ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) { err = errno; failed = "socket"; }
  int one = 1;
  if (!err && setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) { err = errno; failed = "setsockopt"; }
  if (!err && bind(s, (struct sockaddr *)&sin, sizeof sin) < 0) { err = errno; failed = "bind"; }
  if (!err && stream && listen(s, 64) < 0) { err = errno; failed = "listen"; }
  leave_netns(back);
  if (err) {
    if (s >= 0) close(s);
    return throw_errno(env, err, failed, addr);
  }
  CHECK(napi_create_int32(env, s, &result));
  return result;
}

/* Adds an IPv6 address (IFA_F_NODAD) and optionally a default route, on the current namespace. */
static int addr6_add(const char *ifname, const struct in6_addr *addr, int prefix, const struct in6_addr *gw) {
  unsigned int index = if_nametoindex(ifname);
  if (!index) return errno;
  struct nlreq req;
  memset(&req, 0, sizeof req);
  struct nlmsghdr *nh = &req.u.nh;
  nh->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
  nh->nlmsg_type = RTM_NEWADDR;
  nh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
  struct ifaddrmsg *ifa = NLMSG_DATA(nh);
  ifa->ifa_family = AF_INET6;
  ifa->ifa_prefixlen = (unsigned char)prefix;
  ifa->ifa_flags = IFA_F_NODAD;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = index;
  add_attr(nh, IFA_LOCAL, addr, sizeof *addr);
  add_attr(nh, IFA_ADDRESS, addr, sizeof *addr);
  uint32_t flags = IFA_F_NODAD;
  add_attr(nh, IFA_FLAGS, &flags, sizeof flags);
  int err = nl_talk(nh);
  if (err || !gw) return err;
  memset(&req, 0, sizeof req);
  nh->nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
  nh->nlmsg_type = RTM_NEWROUTE;
  nh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
  struct rtmsg *rtm = NLMSG_DATA(nh);
  rtm->rtm_family = AF_INET6;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = RT_SCOPE_UNIVERSE;
  rtm->rtm_type = RTN_UNICAST;
  add_attr(nh, RTA_GATEWAY, gw, sizeof *gw);
  uint32_t oif = index;
  add_attr(nh, RTA_OIF, &oif, sizeof oif);
  return nl_talk(nh);
}

static napi_value js_addr6_add(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  char ns[4096], ifname[IFNAMSIZ + 1], addr[64], gw[64];
  int32_t prefix;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5 || str_arg(env, argv[0], ns, sizeof ns) || str_arg(env, argv[1], ifname, sizeof ifname) || !ifname[0] ||
      str_arg(env, argv[2], addr, sizeof addr) || !addr[0] || int_arg(env, argv[3], &prefix) || str_arg(env, argv[4], gw, sizeof gw))
    return bad_args(env, "addr6Add(netnsPath, ifName, addr, prefixLen, gateway)");
  struct in6_addr a, g;
  if (inet_pton(AF_INET6, addr, &a) != 1 || (gw[0] && inet_pton(AF_INET6, gw, &g) != 1) || prefix < 0 || prefix > 128)
    return bad_args(env, "addr6Add: bad IPv6 address or prefix length");
  int back = -1;
  const char *failed = NULL;
  int err = 0;
  if (ns[0] && (err = enter_netns(ns, &back, &failed))) return throw_errno(env, err, failed, ns);
  err = addr6_add(ifname, &a, prefix, gw[0] ? &g : NULL);
  if (back >= 0) leave_netns(back);
  if (err) return throw_errno(env, err, "rtnetlink(RTM_NEWADDR/RTM_NEWROUTE inet6)", ifname);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    EXPORT_FN("netnsCreate", js_netns_create),
    EXPORT_FN("bridgeCreate", js_bridge_create),
    EXPORT_FN("vethCreate", js_veth_create),
    EXPORT_FN("netnsConfigure", js_netns_configure),
    EXPORT_FN("linkDelete", js_link_delete),
    EXPORT_FN("netnsSocket", js_netns_socket),
    EXPORT_FN("addr6Add", js_addr6_add),
  };
  DEFINE_EXPORTS(props);
  return exports;
}

NAPI_MODULE(berth_net, init)
