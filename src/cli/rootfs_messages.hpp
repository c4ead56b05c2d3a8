// The rootfs engine's own lines during `up` ("image 3f2a... found in the
// cache in 0.002 s", a dropped xattr) go through the command line's progress
// sink, above the live line and at their level, instead of straight to stderr.
#pragma once

#include <memory>

#include "cli/progress_sink.hpp"
#include "haco/ops.hpp"

namespace haco::cli {

// `engine` with its fleet-wide lines sent to `sink`, as "haco-fleet: LINE".
// Lines about one instance stay unprinted, as the engine leaves them.
std::unique_ptr<ops::RootfsPreparer> rootfs_reporting_to(std::unique_ptr<ops::RootfsPreparer> engine,
                                                         ProgressSink& sink);

// The level of one of those lines: what the engine did (the image found or
// extracted, a tree made again, ids shifted by extracting) is information;
// anything else, a line it has no other way to warn with, is a warning.
LogLevel level_of_rootfs_line(std::string_view line);

}  // namespace haco::cli
