#include "dm/target.h"

#include <cerrno>
#include <charconv>

namespace ice::dm {

Result<std::string> Target::Message(const std::vector<std::string>& words) {
  return Status::Error(EINVAL,
                       "target accepts no message '" + (words.empty() ? "" : words[0]) + "'");
}

Result<uint64_t> ParseU64(std::string_view text, std::string_view field) {
  uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v, 10);
  if (text.empty() || ec != std::errc() || p != end) {
    return Status::Error(EINVAL, std::string(field) + " '" + std::string(text) +
                                     "' is not a number" +
                                     (ec == std::errc::result_out_of_range ? " in range" : ""));
  }
  return v;
}

Result<unsigned> ParseUnsigned(std::string_view text, std::string_view field, unsigned max) {
  ICE_ASSIGN_OR_RETURN(uint64_t v, ParseU64(text, field));
  if (v > max) {
    return Status::Error(
        EINVAL, std::string(field) + " " + std::string(text) + " is above " + std::to_string(max));
  }
  return static_cast<unsigned>(v);
}

}  // namespace ice::dm
