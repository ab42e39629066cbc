/*
 * netbench: the network benchmark's own client and sink, one static binary bind-mounted into the
 * containers of both engines, so the figures measure the engines' networking, not busybox's
 * nc (small reads) or nslookup (a process per lookup).
 *
 *   netbench sink PORT              accept connections one after another on 0.0.0.0:PORT; read
 *                                   each to EOF (256 KiB reads), then close it
 *   netbench send HOST PORT MB      send MB MiB (1 MiB writes), half-close, wait for the sink's
 *                                   close; print MB/s. Retries the connect for up to 10 s (the
 *                                   sink starts after `run -d` returns)
 *   netbench dns NAME COUNT         COUNT A queries for NAME, one after another, over UDP to the
 *                                   first nameserver of /etc/resolv.conf; each must answer with
 *                                   an address; print lookups/s
 *
 * Build: gcc -O2 -static -o netbench bench/netbench.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int die(const char *what) {
  perror(what);
  return 1;
}

static int sink(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 8) < 0) return die("sink: bind/listen");
  static char buf[256 * 1024];
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) { if (errno == EINTR) continue; return die("sink: accept"); }
    while (read(c, buf, sizeof buf) > 0) {}
    close(c);
  }
}

static int send_bulk(const char *host, int port, long mb) {
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) { fprintf(stderr, "send: bad address %s\n", host); return 1; }
  int c = -1;
  for (int i = 0; i < 200; i++) {
    c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, sizeof a) == 0) {
      /* docker-proxy accepts before the container listens and then closes: wait for a byte-free moment
       * to tell a live sink from that (a closed peer shows POLLIN/POLLHUP at once). */
      struct pollfd p = { .fd = c, .events = POLLIN };
      if (poll(&p, 1, 200) == 0) break;
    }
    close(c);
    c = -1;
    usleep(50 * 1000);
  }
  if (c < 0) { fprintf(stderr, "send: nothing listens on %s:%d\n", host, port); return 1; }
  static char buf[1 << 20];
  memset(buf, 'x', sizeof buf);
  double t0 = now();
  for (long i = 0; i < mb; i++) {
    size_t off = 0;
    while (off < sizeof buf) {
      ssize_t w = write(c, buf + off, sizeof buf - off);
      if (w < 0) { if (errno == EINTR) continue; return die("send: write"); }
      off += (size_t)w;
    }
  }
  shutdown(c, SHUT_WR);
  char b;
  while (read(c, &b, 1) > 0) {} /* the sink closes once it has read everything */
  double s = now() - t0;
  printf("%.1f\n", mb / s);
  return 0;
}

static int nameserver(struct sockaddr_in *a) {
  FILE *f = fopen("/etc/resolv.conf", "r");
  char line[512], ip[64];
  if (!f) return -1;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, " nameserver %63s", ip) == 1 && inet_pton(AF_INET, ip, &a->sin_addr) == 1) {
      fclose(f);
      a->sin_family = AF_INET;
      a->sin_port = htons(53);
      return 0;
    }
  }
  fclose(f);
  return -1;
}

static int dns(const char *name, long count) {
  struct sockaddr_in ns;
  if (nameserver(&ns) < 0) { fprintf(stderr, "dns: no IPv4 nameserver in /etc/resolv.conf\n"); return 1; }
  unsigned char q[512], r[1500];
  size_t n = 12;
  memset(q, 0, 12);
  q[2] = 0x01; /* RD */
  q[5] = 1;    /* one question */
  const char *p = name;
  while (*p) {
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    if (len == 0 || len > 63 || n + len + 6 > sizeof q) { fprintf(stderr, "dns: bad name\n"); return 1; }
    q[n++] = (unsigned char)len;
    memcpy(q + n, p, len);
    n += len;
    p += len + (dot ? 1 : 0);
  }
  q[n++] = 0;
  q[n++] = 0; q[n++] = 1; /* A */
  q[n++] = 0; q[n++] = 1; /* IN */
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (connect(s, (struct sockaddr *)&ns, sizeof ns) < 0) return die("dns: connect");
  double t0 = now();
  for (long i = 0; i < count; i++) {
    q[0] = (unsigned char)(i >> 8);
    q[1] = (unsigned char)i;
    for (int attempt = 0;; attempt++) {
      if (attempt == 5) { fprintf(stderr, "dns: no answer for query %ld\n", i); return 1; }
      if (send(s, q, n, 0) < 0) return die("dns: send");
      struct pollfd pf = { .fd = s, .events = POLLIN };
      if (poll(&pf, 1, 2000) <= 0) continue;
      ssize_t got = recv(s, r, sizeof r, 0);
      if (got < 12 || r[0] != q[0] || r[1] != q[1]) continue;
      if ((r[3] & 0x0f) != 0 || (r[6] == 0 && r[7] == 0)) { fprintf(stderr, "dns: %s did not resolve (rcode %d)\n", name, r[3] & 0x0f); return 1; }
      break;
    }
  }
  printf("%.0f\n", count / (now() - t0));
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "sink")) return sink(atoi(argv[2]));
  if (argc == 5 && !strcmp(argv[1], "send")) return send_bulk(argv[2], atoi(argv[3]), atol(argv[4]));
  if (argc == 4 && !strcmp(argv[1], "dns")) return dns(argv[2], atol(argv[3]));
  fprintf(stderr, "usage: netbench sink PORT | send HOST PORT MB | dns NAME COUNT\n");
  return 2;
}
