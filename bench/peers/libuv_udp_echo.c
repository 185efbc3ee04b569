// peer-libuv-udp: UDP echo server in the libuv idiom (uv_udp_t, uv_udp_recv_start, a reply
// to each datagram's sender), in its fastest documented configuration:
//  - receive: uv_udp_init_ex(..., AF_INET | UV_UDP_RECVMMSG), libuv 1.37+. With a buffer of
//    20 x 64 KiB from the alloc callback, libuv reads up to 20 datagrams per recvmmsg (its
//    UV__MMSG_MAXWIDTH; BIND's netmgr sizes its buffer the same way) and calls recv_cb for
//    each (UV_UDP_MMSG_CHUNK), then once with UV_UDP_MMSG_FREE. The buffer is static: every
//    callback for it runs before the next alloc.
//  - reply: uv_udp_try_send (libuv 1.27+), one sendmsg with no request to allocate; only
//    when it reports UV_EAGAIN (the send queue is busy) is the datagram copied into a
//    malloc'ed uv_udp_send request, which libuv sends when the socket is writable.
//
// Usage: peer-libuv-udp PORT   (binds 127.0.0.1:PORT, 0 = any free port)
#define _POSIX_C_SOURCE 200809L

#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer_port.h"

enum { dgram_max = 64 * 1024, mmsg_width = 20 };

// A queued reply owns its copy of the datagram; the send callback frees both.
typedef struct {
  uv_udp_send_t req;
  uv_buf_t buf;
} send_req_t;

static uv_loop_t* loop;
static uv_udp_t server;
static uv_signal_t sigint_watcher;
static uv_signal_t sigterm_watcher;
static char recv_buffer[mmsg_width * dgram_max];
static unsigned long long send_failed;

static void alloc_cb(uv_handle_t* handle, size_t suggested_size, uv_buf_t* buf) {
  (void)handle;
  (void)suggested_size;
  *buf = uv_buf_init(recv_buffer, sizeof recv_buffer);
}

static void send_cb(uv_udp_send_t* req, int status) {
  send_req_t* sr = (send_req_t*)req;
  if (status < 0 && status != UV_ECANCELED) ++send_failed;
  free(sr->buf.base);
  free(sr);
}

static void queue_reply(const uv_buf_t* data, const struct sockaddr* to) {
  send_req_t* sr = malloc(sizeof *sr);
  char* copy = malloc(data->len > 0 ? data->len : 1);
  if (sr == NULL || copy == NULL) {
    free(sr);
    free(copy);
    ++send_failed;
    return;
  }
  memcpy(copy, data->base, data->len);
  sr->buf = uv_buf_init(copy, (unsigned int)data->len);
  if (uv_udp_send(&sr->req, &server, &sr->buf, 1, to, send_cb) != 0) {
    free(copy);
    free(sr);
    ++send_failed;
  }
}

static void recv_cb(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf,
                    const struct sockaddr* addr, unsigned flags) {
  (void)handle;
  if (nread < 0) {
    // An error the socket reported (an ICMP error for an earlier reply): keep serving.
    fprintf(stderr, "peer-libuv-udp: recv: %s\n", uv_strerror((int)nread));
    return;
  }
  // addr == NULL: nothing more to read, or the end of an mmsg batch (UV_UDP_MMSG_FREE);
  // with an address, nread == 0 is an empty datagram, echoed like any other.
  if (addr == NULL || (flags & UV_UDP_PARTIAL)) return;
  uv_buf_t reply = uv_buf_init(buf->base, (unsigned int)nread);
  int rc = uv_udp_try_send(&server, &reply, 1, addr);
  if (rc == UV_EAGAIN) {
    queue_reply(&reply, addr);
  } else if (rc < 0) {
    ++send_failed;
  }
}

static void close_walk_cb(uv_handle_t* handle, void* arg) {
  (void)arg;
  if (!uv_is_closing(handle)) uv_close(handle, NULL);
}

static void signal_cb(uv_signal_t* watcher, int signo) {
  (void)signo;
  uv_walk(watcher->loop, close_walk_cb, NULL);
}

int main(int argc, char** argv) {
  int port = peer_port(argc, argv, "peer-libuv-udp");
  if (port < 0) return 2;
  loop = uv_default_loop();
  int rc = uv_udp_init_ex(loop, &server, AF_INET | UV_UDP_RECVMMSG);
  if (rc != 0) {
    fprintf(stderr, "peer-libuv-udp: uv_udp_init_ex: %s (%s)\n", uv_strerror(rc), uv_err_name(rc));
    return 1;
  }
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  rc = uv_udp_bind(&server, (const struct sockaddr*)&addr, 0);
  if (rc == 0) rc = uv_udp_recv_start(&server, alloc_cb, recv_cb);
  if (rc != 0) {
    fprintf(stderr, "peer-libuv-udp: bind 127.0.0.1:%d: %s (%s)\n", port, uv_strerror(rc),
            uv_err_name(rc));
    return 1;
  }
  struct sockaddr_in bound;
  int bound_len = sizeof bound;
  rc = uv_udp_getsockname(&server, (struct sockaddr*)&bound, &bound_len);
  if (rc != 0) {
    fprintf(stderr, "peer-libuv-udp: getsockname: %s\n", uv_strerror(rc));
    return 1;
  }
  uv_signal_init(loop, &sigint_watcher);
  uv_signal_init(loop, &sigterm_watcher);
  uv_signal_start(&sigint_watcher, signal_cb, SIGINT);
  uv_signal_start(&sigterm_watcher, signal_cb, SIGTERM);

  printf("listening on udp://127.0.0.1:%u recvmmsg=%s\n", (unsigned)ntohs(bound.sin_port),
         uv_udp_using_recvmmsg(&server) ? "yes" : "no");
  fflush(stdout);

  uv_run(loop, UV_RUN_DEFAULT);
  if (send_failed > 0) fprintf(stderr, "peer-libuv-udp: %llu replies not sent\n", send_failed);
  rc = uv_loop_close(loop);
  if (rc != 0) fprintf(stderr, "peer-libuv-udp: uv_loop_close: %s\n", uv_strerror(rc));
  return rc == 0 ? 0 : 1;
}
