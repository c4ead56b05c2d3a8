// glibc's pidfd calls: pidfd_open, pidfd_send_signal, pidfd_getfd. The
// <sys/pidfd.h> of glibc 2.36 (Debian 12) declares them without the
// extern "C" block its other headers have (glibc 2.37 adds it), so C++ must
// include it through this header to link against them.
#pragma once

#include <fcntl.h>
#include <signal.h>

extern "C" {
#include <sys/pidfd.h>
}
