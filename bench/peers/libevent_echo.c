// peer-libevent: TCP echo server written the way libevent's documentation shows it
// (evconnlistener + bufferevent_socket_new, the read callback moves the whole input
// buffer to the output buffer). Library defaults are kept on purpose, including the
// per-read size cap, so the benchmark measures libevent as people use it.
//
// Usage: peer-libevent PORT   (binds 127.0.0.1:PORT, 0 = any free port)
#define _POSIX_C_SOURCE 200809L

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "peer_port.h"

// Enough for the 10k-connection bench points; the kernel caps it at net.core.somaxconn.
enum { listen_backlog = 4096 };

static void echo_read_cb(struct bufferevent* bev, void* ctx) {
  (void)ctx;
  // Moves (not copies) every chain of the input buffer to the output buffer.
  bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void echo_event_cb(struct bufferevent* bev, short events, void* ctx) {
  (void)ctx;
  if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) bufferevent_free(bev);
}

static void accept_cb(struct evconnlistener* listener, evutil_socket_t fd, struct sockaddr* addr,
                      int addr_len, void* ctx) {
  (void)addr;
  (void)addr_len;
  (void)ctx;
  // All peers disable Nagle so that a partially echoed block is not held back waiting
  // for an ACK; the client does the same.
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  struct event_base* base = evconnlistener_get_base(listener);
  struct bufferevent* bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (bev == NULL) {
    fprintf(stderr, "peer-libevent: bufferevent_socket_new failed\n");
    evutil_closesocket(fd);
    return;
  }
  bufferevent_setcb(bev, echo_read_cb, NULL, echo_event_cb, NULL);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void accept_error_cb(struct evconnlistener* listener, void* ctx) {
  (void)listener;
  (void)ctx;
  // EMFILE and friends: report and keep serving the connections we already have.
  int err = EVUTIL_SOCKET_ERROR();
  fprintf(stderr, "peer-libevent: accept: %s\n", evutil_socket_error_to_string(err));
}

static void signal_cb(evutil_socket_t signo, short events, void* ctx) {
  (void)signo;
  (void)events;
  event_base_loopexit((struct event_base*)ctx, NULL);
}

int main(int argc, char** argv) {
  int port = peer_port(argc, argv, "peer-libevent");
  if (port < 0) return 2;
  signal(SIGPIPE, SIG_IGN);

  struct event_base* base = event_base_new();
  if (base == NULL) {
    fprintf(stderr, "peer-libevent: event_base_new failed\n");
    return 1;
  }

  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((unsigned short)port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  struct evconnlistener* listener = evconnlistener_new_bind(
      base, accept_cb, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
      listen_backlog, (struct sockaddr*)&sin, sizeof sin);
  if (listener == NULL) {
    fprintf(stderr, "peer-libevent: bind 127.0.0.1:%d: %s\n", port, strerror(errno));
    event_base_free(base);
    return 1;
  }
  evconnlistener_set_error_cb(listener, accept_error_cb);

  struct sockaddr_in bound;
  socklen_t bound_len = sizeof bound;
  if (getsockname(evconnlistener_get_fd(listener), (struct sockaddr*)&bound, &bound_len) != 0) {
    fprintf(stderr, "peer-libevent: getsockname: %s\n", strerror(errno));
    evconnlistener_free(listener);
    event_base_free(base);
    return 1;
  }

  struct event* sigint = evsignal_new(base, SIGINT, signal_cb, base);
  struct event* sigterm = evsignal_new(base, SIGTERM, signal_cb, base);
  if (sigint == NULL || sigterm == NULL || evsignal_add(sigint, NULL) != 0 ||
      evsignal_add(sigterm, NULL) != 0) {
    fprintf(stderr, "peer-libevent: cannot install signal events\n");
    return 1;
  }

  printf("listening on tcp://127.0.0.1:%u\n", (unsigned)ntohs(bound.sin_port));
  fflush(stdout);

  int rc = event_base_dispatch(base) < 0 ? 1 : 0;

  event_free(sigint);
  event_free(sigterm);
  evconnlistener_free(listener);
  event_base_free(base);
  return rc;
}
