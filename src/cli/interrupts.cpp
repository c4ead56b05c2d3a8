#include "cli/interrupts.hpp"

#include <signal.h>

namespace haco::cli {
namespace {

std::atomic<bool> g_interrupted{false};

void on_interrupt(int) { g_interrupted.store(true); }

}  // namespace

std::atomic<bool>& interrupted_flag() { return g_interrupted; }

void catch_interrupts() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

}  // namespace haco::cli
