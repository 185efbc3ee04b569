// Runs a whole benchmark: --processes worker processes (forked; needed above the
// per-process descriptor limit), each with --threads workers, all starting traffic at the
// same instant; merges their results; draws the progress line on a terminal. SIGINT and
// SIGTERM end the run early with the results so far.
#pragma once

#include "config.hpp"
#include "result.hpp"

namespace netkit::loadgen {

// Throws usage_error for a configuration that cannot run (a mode the transport does not
// have, a source on a Unix target...) and sys_error for setup failures. Errors of the run
// itself are in the result.
bench_result run_bench(const bench_config& config);

// Checks what run_bench() would refuse, without running.
void validate(const bench_config& config);

}  // namespace netkit::loadgen
