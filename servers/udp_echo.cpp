#include "udp_echo.hpp"

#include "registry.hpp"

namespace netkit::servers {

int run_dgram_echo_server(const dgram_server_options& opts) {
  const auto& model = find_model(opts.model, opts.listen);
  model_settings settings;
  settings.listen = opts.listen;
  settings.max_datagram = opts.max_datagram;
  settings.verbose = opts.verbose;
  settings.unix_mode = opts.unix_mode;
  return run_model(model, settings);
}

}  // namespace netkit::servers
