// peer-recvfrom: the speed-of-light reference for the datagram echo benchmark. One
// blocking socket, one recvfrom and one sendto per datagram, no library and no readiness
// API in between: the fewest instructions per datagram a one-at-a-time server can run.
//
// A stop signal ends the blocked recvfrom with EINTR (the handler is installed without
// SA_RESTART); one that lands just before recvfrom is seen within the 200 ms receive
// timeout.
//
// Usage: peer-recvfrom PORT   (binds 127.0.0.1:PORT, 0 = any free port)
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "peer_port.h"

enum { dgram_max = 64 * 1024 };

static volatile sig_atomic_t stop;
static char buffer[dgram_max];

static void on_stop(int signo) {
  (void)signo;
  stop = 1;
}

static void die(const char* op) {
  fprintf(stderr, "peer-recvfrom: %s: %s\n", op, strerrorname_np(errno));
  exit(1);
}

int main(int argc, char** argv) {
  int port = peer_port(argc, argv, "peer-recvfrom");
  if (port < 0) return 2;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) die("sigaction");

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr*)&addr, sizeof addr) != 0) die("bind");
  socklen_t len = sizeof addr;
  if (getsockname(fd, (struct sockaddr*)&addr, &len) != 0) die("getsockname");
  struct timeval tv = {0, 200000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) die("setsockopt(SO_RCVTIMEO)");

  printf("listening on udp://127.0.0.1:%u\n", (unsigned)ntohs(addr.sin_port));
  fflush(stdout);

  unsigned long long send_failed = 0;
  while (!stop) {
    struct sockaddr_storage from;
    socklen_t from_len = sizeof from;
    ssize_t n = recvfrom(fd, buffer, sizeof buffer, 0, (struct sockaddr*)&from, &from_len);
    if (n < 0) continue;  // EINTR, the timeout, or an error for an earlier reply
    if (sendto(fd, buffer, (size_t)n, 0, (struct sockaddr*)&from, from_len) < 0) ++send_failed;
  }
  if (send_failed > 0) fprintf(stderr, "peer-recvfrom: %llu replies not sent\n", send_failed);
  close(fd);
  return 0;
}
