#include "daemon/logging.h"

#include <cerrno>
#include <cstdlib>
#include <memory>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>

namespace ice::daemon {

Status SetupLogging(const std::string& level, const std::string& target) {
  const auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    return Status::Error(EINVAL, "unknown log level '" + level + "'");
  const bool journald =
      target == "journald" || (target == "auto" && std::getenv("JOURNAL_STREAM") != nullptr);
  std::shared_ptr<spdlog::logger> logger;
  if (journald) {
    logger = std::make_shared<spdlog::logger>(
        "ice", std::make_shared<spdlog::sinks::systemd_sink_mt>("ice"));
    logger->set_pattern("%v");
  } else {
    logger =
        std::make_shared<spdlog::logger>("ice", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_pattern("ice: %Y-%m-%d %H:%M:%S.%e %l: %v");
  }
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  return Status::Ok();
}

}  // namespace ice::daemon
