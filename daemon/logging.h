// Sets up spdlog's default logger for the daemon: stderr, or journald when run under systemd.
#pragma once

#include <string>

#include "block/status.h"

namespace ice::daemon {

// `level`: trace, debug, info, warn, error, off. `target`: stderr, journald, or auto (journald
// when systemd connected our stderr to the journal, i.e. JOURNAL_STREAM is set).
Status SetupLogging(const std::string& level, const std::string& target);

}  // namespace ice::daemon
