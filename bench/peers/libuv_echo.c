// peer-libuv: TCP echo server in the libuv idiom of its guide and tests: uv_tcp_t listener,
// the alloc callback mallocs suggested_size (64 KiB) for every read, the read callback
// hands that buffer to uv_write, and the write callback frees it.
//
// Usage: peer-libuv PORT   (binds 127.0.0.1:PORT, 0 = any free port)
#define _POSIX_C_SOURCE 200809L

#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer_port.h"

// Enough for the 10k-connection bench points; the kernel caps it at net.core.somaxconn.
enum { listen_backlog = 4096 };

// One write request owns the buffer it sends; the write callback frees both.
typedef struct {
  uv_write_t req;
  uv_buf_t buf;
} write_req_t;

static uv_loop_t* loop;
static uv_tcp_t server;
static uv_signal_t sigint_watcher;
static uv_signal_t sigterm_watcher;

// Client handles are malloc'ed and mark themselves with data == handle; the listener and
// the signal watchers are static and keep data == NULL.
static void on_close(uv_handle_t* handle) {
  if (handle->data == handle) free(handle);
}

static void alloc_cb(uv_handle_t* handle, size_t suggested_size, uv_buf_t* buf) {
  (void)handle;
  buf->base = malloc(suggested_size);
  buf->len = buf->base != NULL ? suggested_size : 0;
}

static void write_cb(uv_write_t* req, int status) {
  write_req_t* wr = (write_req_t*)req;
  if (status < 0 && status != UV_ECANCELED) {
    fprintf(stderr, "peer-libuv: write: %s\n", uv_strerror(status));
    if (!uv_is_closing((uv_handle_t*)req->handle)) uv_close((uv_handle_t*)req->handle, on_close);
  }
  free(wr->buf.base);
  free(wr);
}

static void read_cb(uv_stream_t* client, ssize_t nread, const uv_buf_t* buf) {
  if (nread > 0) {
    write_req_t* wr = malloc(sizeof *wr);
    if (wr == NULL) {
      free(buf->base);
      uv_close((uv_handle_t*)client, on_close);
      return;
    }
    wr->buf = uv_buf_init(buf->base, (unsigned int)nread);
    int rc = uv_write(&wr->req, client, &wr->buf, 1, write_cb);
    if (rc != 0) {
      fprintf(stderr, "peer-libuv: uv_write: %s\n", uv_strerror(rc));
      free(wr->buf.base);
      free(wr);
      uv_close((uv_handle_t*)client, on_close);
    }
    return;
  }
  // nread == 0 is EAGAIN; nread < 0 is EOF or an error. Either way the buffer is ours.
  free(buf->base);
  if (nread < 0) {
    if (nread != UV_EOF && nread != UV_ECONNRESET)
      fprintf(stderr, "peer-libuv: read: %s\n", uv_strerror((int)nread));
    if (!uv_is_closing((uv_handle_t*)client)) uv_close((uv_handle_t*)client, on_close);
  }
}

static void on_connection(uv_stream_t* listener, int status) {
  if (status < 0) {
    fprintf(stderr, "peer-libuv: connection: %s\n", uv_strerror(status));
    return;
  }
  uv_tcp_t* client = malloc(sizeof *client);
  if (client == NULL) return;
  uv_tcp_init(loop, client);
  client->data = client;
  if (uv_accept(listener, (uv_stream_t*)client) != 0) {
    uv_close((uv_handle_t*)client, on_close);
    return;
  }
  // All peers disable Nagle so that a partially echoed block is not held back.
  uv_tcp_nodelay(client, 1);
  uv_read_start((uv_stream_t*)client, alloc_cb, read_cb);
}

static void close_walk_cb(uv_handle_t* handle, void* arg) {
  (void)arg;
  if (!uv_is_closing(handle)) uv_close(handle, on_close);
}

static void signal_cb(uv_signal_t* watcher, int signo) {
  (void)signo;
  // Close every handle; uv_run returns once their close callbacks have run.
  uv_walk(watcher->loop, close_walk_cb, NULL);
}

int main(int argc, char** argv) {
  int port = peer_port(argc, argv, "peer-libuv");
  if (port < 0) return 2;
  signal(SIGPIPE, SIG_IGN);

  loop = uv_default_loop();
  uv_tcp_init(loop, &server);

  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  int rc = uv_tcp_bind(&server, (const struct sockaddr*)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t*)&server, listen_backlog, on_connection);
  if (rc != 0) {
    fprintf(stderr, "peer-libuv: listen 127.0.0.1:%d: %s (%s)\n", port, uv_strerror(rc),
            uv_err_name(rc));
    return 1;
  }

  struct sockaddr_in bound;
  int bound_len = sizeof bound;
  rc = uv_tcp_getsockname(&server, (struct sockaddr*)&bound, &bound_len);
  if (rc != 0) {
    fprintf(stderr, "peer-libuv: getsockname: %s\n", uv_strerror(rc));
    return 1;
  }

  uv_signal_init(loop, &sigint_watcher);
  uv_signal_init(loop, &sigterm_watcher);
  uv_signal_start(&sigint_watcher, signal_cb, SIGINT);
  uv_signal_start(&sigterm_watcher, signal_cb, SIGTERM);

  printf("listening on tcp://127.0.0.1:%u\n", (unsigned)ntohs(bound.sin_port));
  fflush(stdout);

  uv_run(loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(loop);
  if (rc != 0) fprintf(stderr, "peer-libuv: uv_loop_close: %s\n", uv_strerror(rc));
  return rc == 0 ? 0 : 1;
}
