// The server-model registry: every model `netkit echo-server` can run, and the checks and
// listings the command line derives from it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "server_model.hpp"

namespace netkit::servers {

// Every registered model, stream models first, in registry order. Built once.
const std::vector<server_model>& server_models();

// The model called `name` for `family` ("epoll" names a stream and a datagram model).
// Throws usage_error: "unknown I/O model 'NAME' (...)" when no model has that name, and,
// when the name exists only for the other family, "--model NAME serves FAMILY, not URI".
const server_model& find_model(std::string_view name, const endpoint& listen);

// The model a command line without --model runs for `listen`: epoll for stream endpoints,
// blocking for datagram ones.
std::string_view default_model(const endpoint& listen);

// Throws usage_error "FLAG is only for --model A, B" for the first option given that
// `model` does not take. `given_common` and `given_own` are the options on the command line.
void check_options(const server_model& model, const std::vector<common_option>& given_common,
                   const std::vector<std::string>& given_own);

// Every distinct own option the models declare (first declaration of each flag).
std::vector<model_option> own_options();

// The models that take `flag` (a common option's or an own option's), e.g. "prefork" or
// "select, poll, epoll, epoll-et, uring, multi-reactor".
std::string models_taking(std::string_view flag);

// The --list-models text: one line per model, "  NAME       available     DESCRIPTION",
// under a header per family.
std::string list_models_text();

// Runs `model` with `settings`, after checking the endpoint's family against it.
int run_model(const server_model& model, const model_settings& settings);

}  // namespace netkit::servers
