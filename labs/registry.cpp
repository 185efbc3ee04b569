// Every lab, one line each: declared here, defined in its own file.
#include "lab.hpp"

namespace netkit::labs {

void run_states(lab_context&);
void run_reuseaddr(lab_context&);
void run_sigpipe(lab_context&);
void run_half_close(lab_context&);
void run_close_wait(lab_context&);
void run_rst(lab_context&);
void run_backlog(lab_context&);
void run_oob(lab_context&);
void run_fd_limit(lab_context&);
void run_udp_source(lab_context&);
void run_udp_icmp(lab_context&);
void run_zombies(lab_context&);

const std::vector<lab>& all_labs() {
  static const std::vector<lab> labs{
      {"states",
       "a connection through TCP's eleven states, both ends, read from the kernel",
       {"each state is read from the kernel (sock_diag or /proc), never inferred from the calls",
        "the end that closes first ends in TIME_WAIT; the kernel's timer says for how long",
        "both ends closing with unread data pass through CLOSING (simultaneous close)"},
       run_states},
      {"reuseaddr",
       "restart a listener while its port has a connection in TIME_WAIT",
       {"without SO_REUSEADDR, bind() fails with EADDRINUSE while TIME_WAIT lasts",
        "with it (on the old and the new socket) the restart binds at once"},
       run_reuseaddr},
      {"sigpipe",
       "write to a connection the peer has closed",
       {"the first write succeeds; the peer answers it with RST",
        "the second fails with EPIPE, and without MSG_NOSIGNAL SIGPIPE kills the writer",
        "(shown from a child's wait status: killed by signal 13)"},
       run_sigpipe},
      {"half-close",
       "shutdown(SHUT_WR): the peer reads EOF, the other direction still flows",
       {"the server reads the request, then EOF, while the client can still read",
        "the ends sit in FIN_WAIT_2 and CLOSE_WAIT until the server closes too"},
       run_half_close},
      {"close-wait",
       "a server that forgets to close() piles up CLOSE_WAIT sockets",
       {"each client has closed, but the server holds the socket: CLOSE_WAIT",
        "the kernel's table counts them; they vanish only when the server closes"},
       run_close_wait},
      {"rst",
       "SO_LINGER with a zero timeout: close() sends RST instead of FIN",
       {"the peer's recv fails with ECONNRESET",
        "the aborting side leaves no TIME_WAIT behind (a normal close does)"},
       run_rst},
      {"backlog",
       "a full listen queue: TCP drops the SYN, a Unix socket refuses at once",
       {"the TCP client stays in SYN_SENT and connects only after a retransmitted SYN (~1 s)",
        "a Unix stream client is refused immediately with EAGAIN"},
       run_backlog},
      {"oob",
       "urgent data (MSG_OOB) and select's exception set",
       {"urgent data puts the socket in select's exception set",
        "only the last byte of the MSG_OOB send is urgent; recv(MSG_OOB) fetches it apart"},
       run_oob},
      {"fd-limit",
       "open sockets until EMFILE at a lowered RLIMIT_NOFILE (in a child)",
       {"socket() fails with EMFILE once the process's descriptors reach its soft limit",
        "/proc/sys/fs/file-max is the system-wide limit (ENFILE), far higher"},
       run_fd_limit},
      {"udp-source",
       "the source address and port the kernel picks for a UDP destination",
       {"connect() on a UDP socket sends nothing; getsockname() then shows the chosen source",
        "for 127.0.0.1, ::1 and 127.0.0.2 (any 127/8 address is loopback)"},
       run_udp_source},
      {"udp-icmp",
       "ICMP port-unreachable reaches only a connected UDP socket",
       {"an unconnected socket's sendto to a closed port succeeds and nothing is reported",
        "a connected socket's next recv fails with ECONNREFUSED"},
       run_udp_icmp},
      {"zombies",
       "a forking server's ended children: no handler, one wait(), a waitpid loop",
       {"with no SIGCHLD handling every ended child is a zombie (state Z in /proc)",
        "one wait() per signal leaves some when many exit at once (signals merge)",
        "a waitpid(WNOHANG) loop leaves none"},
       run_zombies},
  };
  return labs;
}

}  // namespace netkit::labs
