/* The command line every peer takes: `PEER PORT`, a port on 127.0.0.1 (0 = any free one).
 * Shared by the C and C++ peers, so each file holds only its library's idiom. */
#ifndef NETKIT_PEER_PORT_H
#define NETKIT_PEER_PORT_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* The port, or -1 after printing what is wrong (usage, or the invalid text) on stderr:
 * the caller exits with status 2. */
static inline int peer_port(int argc, char** argv, const char* name) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return -1;
  }
  char* end = NULL;
  errno = 0;
  long port = strtol(argv[1], &end, 10);
  if (errno != 0 || end == argv[1] || *end != '\0' || port < 0 || port > 65535) {
    fprintf(stderr, "%s: invalid port '%s'\n", name, argv[1]);
    return -1;
  }
  return (int)port;
}

#endif
