// Ctrl-C and SIGTERM for the commands that wait on instances (`up`, `start`,
// `restart`): noted in a flag that the operation checks, instead of ending
// the process half-way.
#pragma once

#include <atomic>

namespace haco::cli {

// Set by the handler catch_interrupts installs.
std::atomic<bool>& interrupted_flag();
// From now on, SIGINT and SIGTERM set interrupted_flag().
void catch_interrupts();

}  // namespace haco::cli
