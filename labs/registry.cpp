// Every lab, one line each: declared here, defined in its own file.
#include "lab.hpp"

namespace netkit::labs {

void run_states(lab_context&);

const std::vector<lab>& all_labs() {
  static const std::vector<lab> labs{
      {"states",
       "a connection through TCP's eleven states, both ends, read from the kernel",
       {"each state is read from the kernel (sock_diag or /proc), never inferred from the calls",
        "the end that closes first ends in TIME_WAIT; the kernel's timer says for how long",
        "both ends closing with unread data pass through CLOSING (simultaneous close)"},
       run_states},
  };
  return labs;
}

}  // namespace netkit::labs
