#include "daemon/control_handler.h"

#include <openssl/crypto.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "block/status.h"
#include "daemon/engine.h"
#include "daemon/process_safety.h"
#include "ice_version.h"

namespace ice::daemon {
namespace {

using json = nlohmann::json;

json ErrorJson(const Status& s) {
  return {{"errno", s.code()}, {"code", ErrnoName(s.code())}, {"message", s.message()}};
}

std::string Reply(const json& id, const Result<json>& r) {
  json out = {{"v", ControlHandler::kProtocolVersion}, {"id", id}, {"ok", r.ok()}};
  if (r.ok()) {
    out["result"] = *r;
  } else {
    out["error"] = ErrorJson(r.status());
  }
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

Status BadArg(const std::string& what) { return Status::Error(EINVAL, what); }

// Typed access to a request's args, refusing unknown and mistyped ones.
class Args {
 public:
  Args(const json& args, const char* verb) : args_(args), verb_(verb) {}

  Status Only(std::initializer_list<const char*> allowed) const {
    for (const auto& [k, v] : args_.items()) {
      bool known = false;
      for (const char* a : allowed) known = known || k == a;
      if (!known) return BadArg(std::string(verb_) + ": unknown argument '" + k + "'");
    }
    return Status::Ok();
  }
  Result<std::string> String(const char* key) const {
    if (!args_.contains(key) || !args_[key].is_string())
      return BadArg(std::string(verb_) + ": argument '" + key + "' must be a string");
    return args_[key].get<std::string>();
  }
  Result<int64_t> Int(const char* key, std::optional<int64_t> fallback, int64_t min,
                      int64_t max) const {
    if (!args_.contains(key)) {
      if (fallback) return *fallback;
      return BadArg(std::string(verb_) + ": argument '" + key + "' is required");
    }
    if (!args_[key].is_number_integer())
      return BadArg(std::string(verb_) + ": argument '" + key + "' must be an integer");
    const int64_t v = args_[key].get<int64_t>();
    if (v < min || v > max)
      return BadArg(std::string(verb_) + ": argument '" + key + "' is out of range");
    return v;
  }
  Result<bool> Bool(const char* key, bool fallback) const {
    if (!args_.contains(key)) return fallback;
    if (!args_[key].is_boolean())
      return BadArg(std::string(verb_) + ": argument '" + key + "' must be true or false");
    return args_[key].get<bool>();
  }
  Result<std::vector<std::string>> Strings(const char* key, bool required) const {
    std::vector<std::string> out;
    if (!args_.contains(key)) {
      if (required) return BadArg(std::string(verb_) + ": argument '" + key + "' is required");
      return out;
    }
    if (!args_[key].is_array())
      return BadArg(std::string(verb_) + ": argument '" + key + "' must be a list of strings");
    for (const auto& e : args_[key]) {
      if (!e.is_string())
        return BadArg(std::string(verb_) + ": argument '" + key + "' must be a list of strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  }

 private:
  const json& args_;
  const char* verb_;
};

json InfoJson(Engine& e, const dm::DeviceInfo& i) {
  return {{"name", i.name},
          {"kind", i.kind == dm::DeviceKind::kHardware ? "hardware" : "mapped"},
          {"major", 253},
          {"minor", e.MinorOf(i.name)},
          {"size_bytes", i.size_bytes},
          {"state", i.suspended ? "SUSPENDED" : "ACTIVE"},
          {"suspending", i.suspending},
          {"live_table", i.live_table},
          {"inactive_table", i.inactive_table},
          {"open_count", i.open_count},
          {"holders", i.holders},
          {"num_targets", i.num_targets},
          {"event_nr", i.event_nr},
          {"capabilities", i.capabilities}};
}

// The daemon process: its version, and (hardening 7/8) whether its key material can reach a core
// file or swap.
json DaemonJson() {
  const ProcessSafety s = CurrentProcessSafety();
  return {{"version", kVersion},
          {"dumpable", s.dumpable},
          {"core_dumps", s.core_dumps},
          {"memory_locked", s.key_memory.locked},
          {"key_memory", s.key_memory.Describe()}};
}

json HwJson(Engine& e, const HardwareEntry& hw) {
  const HardwareCounters c = hw.device->counters();
  json slots = json::array();
  const auto states = hw.device->slots();
  for (size_t i = 0; i < states.size(); ++i) {
    json key = nullptr;
    if (states[i].key_id != 0) {
      const std::string name = e.KeyName(states[i].key_id);
      key = name.empty() ? "(table key)" : name;
    }
    slots.push_back({{"slot", i}, {"key", key}, {"refs", states[i].refs}});
  }
  return {{"name", hw.name},
          {"size_bytes", hw.device->size_bytes()},
          {"backing", hw.backing},
          {"keyslots", hw.device->num_slots()},
          {"capabilities", hw.capabilities.ToString()},
          {"slots", slots},
          {"prepared_ciphers", hw.device->prepared_ciphers()},
          {"counters",
           {{"slot_programs", c.slot_programs},
            {"slot_program_failures", c.slot_program_failures},
            {"slot_evictions", c.slot_evictions},
            {"slot_hits", c.slot_hits},
            {"slot_waits", c.slot_waits},
            {"resets", c.resets},
            {"fallback_ios", c.fallback_ios},
            {"reads", c.reads},
            {"writes", c.writes},
            {"flushes", c.flushes},
            {"zeroes", c.zeroes},
            {"discards", c.discards},
            {"read_bytes", c.read_bytes},
            {"write_bytes", c.write_bytes},
            {"errors", c.errors}}}};
}

Result<const HardwareEntry*> FindHw(Engine& e, const Args& a) {
  ICE_ASSIGN_OR_RETURN(std::string name, a.String("name"));
  const HardwareEntry* hw = e.FindHardware(name);
  if (!hw) return Status::Error(ENOENT, "no hardware device named '" + name + "'");
  return hw;
}

Result<std::vector<uint8_t>> DecodeHex(const std::string& hex) {
  if (hex.size() % 2 != 0) return BadArg("key.add: key_hex has an odd number of digits");
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int v = 0;
    for (int j = 0; j < 2; ++j) {
      const char c = hex[2 * i + j];
      const int d = (c >= '0' && c <= '9')   ? c - '0'
                    : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                    : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                             : -1;
      if (d < 0) {
        OPENSSL_cleanse(out.data(), out.size());
        return BadArg("key.add: key_hex holds a character that is not a hex digit");
      }
      v = v * 16 + d;
    }
    out[i] = static_cast<uint8_t>(v);
  }
  return out;
}

using Verb = std::function<Result<json>(Engine&, const Args&, const Interrupt&)>;

Result<json> Empty(const Status& s) {
  if (!s.ok()) return s;
  return json::object();
}

// create, load: {} or, when the new table has something to warn of, {"warnings": [...]}.
Result<json> WithWarnings(const Status& s, const std::vector<std::string>& warnings) {
  ICE_ASSIGN_OR_RETURN(json out, Empty(s));
  if (!warnings.empty()) out["warnings"] = warnings;
  return out;
}

Result<json> KeyAdd(Engine& e, const Args& a, const Interrupt&) {
  ICE_RETURN_IF_ERROR(a.Only({"name", "mode", "data_unit_size", "dun_bytes", "key_hex"}));
  ICE_ASSIGN_OR_RETURN(std::string name, a.String("name"));
  ICE_ASSIGN_OR_RETURN(std::string mode_name, a.String("mode"));
  auto mode = ParseCryptoMode(mode_name);
  if (!mode) return BadArg("key.add: unknown crypto mode '" + mode_name + "'");
  ICE_ASSIGN_OR_RETURN(int64_t du, a.Int("data_unit_size", std::nullopt, 0, 1 << 30));
  ICE_ASSIGN_OR_RETURN(int64_t dun, a.Int("dun_bytes", 8, 0, 64));
  ICE_ASSIGN_OR_RETURN(std::string hex, a.String("key_hex"));
  auto raw = DecodeHex(hex);
  OPENSSL_cleanse(hex.data(), hex.size());
  if (!raw.ok()) return raw.status();
  CryptoConfig cfg{*mode, static_cast<uint32_t>(du), static_cast<unsigned>(dun), KeyType::kRaw};
  Status s = e.AddKey(name, cfg, *raw);
  OPENSSL_cleanse(raw->data(), raw->size());
  return Empty(s);
}

const std::map<std::string, Verb>& Verbs() {
  static const std::map<std::string, Verb> kVerbs = {
      {"version",
       [](Engine&, const Args& a, const Interrupt&) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({}));
         return json{{"protocol", ControlHandler::kProtocolVersion}, {"version", kVersion}};
       }},
      {"ls",
       [](Engine& e, const Args& a, const Interrupt&) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({}));
         json list = json::array();
         for (const auto& i : e.devices().List()) list.push_back(InfoJson(e, i));
         return json{{"devices", list}};
       }},
      {"create",
       [](Engine& e, const Args& a, const Interrupt& stop) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({"name", "table"}));
         ICE_ASSIGN_OR_RETURN(std::string name, a.String("name"));
         ICE_ASSIGN_OR_RETURN(auto table, a.Strings("table", false));
         std::vector<std::string> warnings;
         Status s = e.devices().Create(name, table, &warnings, stop);
         if (s.ok()) e.MinorOf(name);
         return WithWarnings(s, warnings);
       }},
      {"load",
       [](Engine& e, const Args& a, const Interrupt& stop) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({"name", "table"}));
         ICE_ASSIGN_OR_RETURN(std::string name, a.String("name"));
         ICE_ASSIGN_OR_RETURN(auto table, a.Strings("table", true));
         std::vector<std::string> warnings;
         Status s = e.devices().Load(name, table, &warnings, stop);
         return WithWarnings(s, warnings);
       }},
      {"clear",
       [](Engine& e, const Args& a, const Interrupt& stop) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({"name"}));
         ICE_ASSIGN_OR_RETURN(std::string name, a.String("name"));
         return Empty(e.devices().Clear(name, stop));
       }},
      {"suspend",
       [](Engine& e, const Args& a, const Interrupt& stop) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({"name"}));
         ICE_ASSIGN_OR_RETURN(std::string name, a.String("name"));
         return Empty(e.devices().Suspend(name, stop));
       }},
      {"resume",
       [](Engine& e, const Args& a, const Interrupt& stop) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({"name"}));
         ICE_ASSIGN_OR_RETURN(std::string name, a.String("name"));
         return Empty(e.devices().Resume(name, stop));
       }},
      {"remove",
       [](Engine& e, const Args& a, const Interrupt& stop) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({"name"}));
         ICE_ASSIGN_OR_RETURN(std::string name, a.String("name"));
         return Empty(e.devices().Remove(name, stop));
       }},
      {"table",
       [](Engine& e, const Args& a, const Interrupt&) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({"name", "inactive"}));
         ICE_ASSIGN_OR_RETURN(std::string name, a.String("name"));
         ICE_ASSIGN_OR_RETURN(bool inactive, a.Bool("inactive", false));
         ICE_ASSIGN_OR_RETURN(auto lines, e.devices().Table(name, inactive));
         return json{{"lines", lines}};
       }},
      {"status",
       [](Engine& e, const Args& a, const Interrupt&) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({"name"}));
         ICE_ASSIGN_OR_RETURN(std::string name, a.String("name"));
         ICE_ASSIGN_OR_RETURN(auto lines, e.devices().StatusLines(name));
         return json{{"lines", lines}};
       }},
      {"info",
       [](Engine& e, const Args& a, const Interrupt&) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({"name"}));
         ICE_ASSIGN_OR_RETURN(std::string name, a.String("name"));
         ICE_ASSIGN_OR_RETURN(auto info, e.devices().Info(name));
         return InfoJson(e, info);
       }},
      {"message",
       [](Engine& e, const Args& a, const Interrupt& stop) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({"name", "sector", "words"}));
         ICE_ASSIGN_OR_RETURN(std::string name, a.String("name"));
         ICE_ASSIGN_OR_RETURN(int64_t sector, a.Int("sector", std::nullopt, 0, INT64_MAX));
         ICE_ASSIGN_OR_RETURN(auto words, a.Strings("words", true));
         if (words.empty()) return BadArg("message: no message words");
         ICE_ASSIGN_OR_RETURN(
             std::string reply,
             e.devices().Message(name, static_cast<uint64_t>(sector), words, stop));
         return json{{"reply", reply}};
       }},
      {"key.add", KeyAdd},
      {"key.rm",
       [](Engine& e, const Args& a, const Interrupt&) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({"name"}));
         ICE_ASSIGN_OR_RETURN(std::string name, a.String("name"));
         return Empty(e.RemoveKey(name));
       }},
      {"key.ls",
       [](Engine& e, const Args& a, const Interrupt&) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({}));
         json keys = json::array();
         for (const auto& k : e.keys().List()) {
           keys.push_back({{"name", k.name},
                           {"mode", ModeInfo(k.config.mode).name},
                           {"data_unit_size", k.config.data_unit_size},
                           {"dun_bytes", k.config.dun_bytes},
                           {"users", k.users}});
         }
         return json{{"keys", keys}};
       }},
      {"hw.ls",
       [](Engine& e, const Args& a, const Interrupt&) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({}));
         json list = json::array();
         for (const auto& hw : e.hardware()) list.push_back(HwJson(e, hw));
         return json{{"hardware", list}, {"daemon", DaemonJson()}};
       }},
      {"hw.info",
       [](Engine& e, const Args& a, const Interrupt&) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({"name"}));
         ICE_ASSIGN_OR_RETURN(const HardwareEntry* hw, FindHw(e, a));
         json info = HwJson(e, *hw);
         info["daemon"] = DaemonJson();
         return info;
       }},
      {"hw.reset",
       [](Engine& e, const Args& a, const Interrupt&) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({"name"}));
         ICE_ASSIGN_OR_RETURN(const HardwareEntry* hw, FindHw(e, a));
         hw->device->Reset();
         return json::object();
       }},
      {"hw.fault",
       [](Engine& e, const Args& a, const Interrupt&) -> Result<json> {
         ICE_RETURN_IF_ERROR(
             a.Only({"name", "fail_programs", "program_latency_ms", "fail_evictions"}));
         ICE_ASSIGN_OR_RETURN(const HardwareEntry* hw, FindHw(e, a));
         ICE_ASSIGN_OR_RETURN(int64_t fp, a.Int("fail_programs", -1, -1, 1 << 30));
         ICE_ASSIGN_OR_RETURN(int64_t lat, a.Int("program_latency_ms", -1, -1, 3600 * 1000));
         ICE_ASSIGN_OR_RETURN(int64_t fe, a.Int("fail_evictions", -1, -1, 1 << 30));
         if (fp < 0 && lat < 0 && fe < 0)
           return BadArg(
               "hw.fault: name at least one of fail_programs, program_latency_ms, "
               "fail_evictions");
         if (fp >= 0) hw->device->FailNextPrograms(static_cast<unsigned>(fp));
         if (lat >= 0) hw->device->SetProgramLatency(std::chrono::milliseconds(lat));
         if (fe >= 0) hw->device->FailNextEvictions(static_cast<unsigned>(fe));
         return json::object();
       }},
      {"export.check",
       [](Engine& e, const Args& a, const Interrupt&) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({"export"}));
         ICE_ASSIGN_OR_RETURN(std::string name, a.String("export"));
         ICE_ASSIGN_OR_RETURN(auto exp, e.OpenExport(name));
         return json{{"export", exp->name()},
                     {"size", exp->size_bytes()},
                     {"block_size", exp->block_size()},
                     {"keyed", exp->keyed()},
                     {"trim", exp->discards() ? "discard" : "zero"}};
       }},
      {"metrics",
       [](Engine& e, const Args& a, const Interrupt&) -> Result<json> {
         ICE_RETURN_IF_ERROR(a.Only({}));
         return json{{"text", e.MetricsText()}};
       }},
  };
  return kVerbs;
}

}  // namespace

std::string ControlHandler::ErrorReply(const Status& s) { return Reply(nullptr, s); }

std::string ControlHandler::TooLargeReply() {
  return ErrorReply(Status::Error(E2BIG, "request line exceeds 1 MiB"));
}

std::string ControlHandler::Handle(std::string_view line) {
  Interrupt never_cancelled;
  return Handle(line, never_cancelled);
}

std::string ControlHandler::Handle(std::string_view line, Interrupt& stop) {
  json id = nullptr;
  try {
    // Hardening 2: values nested deeper than any request needs are dropped while parsing, so no
    // later walk of the document (copy, dump, destruction) can recurse without bound.
    bool too_deep = false;
    const json::parser_callback_t bound = [&](int depth, json::parse_event_t, json&) {
      if (depth > kMaxDepth) too_deep = true;
      return depth <= kMaxDepth;
    };
    json req = json::parse(line, bound, /*allow_exceptions=*/false);
    if (req.is_discarded()) return Reply(id, Status::Error(EINVAL, "request is not valid JSON"));
    if (too_deep) {
      return Reply(id, Status::Error(EINVAL, "request nests deeper than " +
                                                 std::to_string(kMaxDepth) + " levels"));
    }
    if (!req.is_object()) return Reply(id, Status::Error(EINVAL, "request is not a JSON object"));
    if (req.contains("id")) {
      if (req["id"].is_structured())
        return Reply(id, Status::Error(EINVAL, "id must be a number, a string or null"));
      id = req["id"];
    }
    if (!req.contains("v") || req["v"] != kProtocolVersion)
      return Reply(id, Status::Error(EPROTO, "protocol version must be 1"));
    if (!req.contains("verb") || !req["verb"].is_string())
      return Reply(id, Status::Error(EINVAL, "request has no verb"));
    if (req.contains("timeout_ms")) {
      const json& t = req["timeout_ms"];
      if (!t.is_number_integer() || t.get<int64_t>() < 1 || t.get<int64_t>() > kMaxTimeoutMs)
        return Reply(id, Status::Error(EINVAL, "timeout_ms must be an integer from 1 to " +
                                                   std::to_string(kMaxTimeoutMs)));
      stop.SetDeadline(std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(t.get<int64_t>()));
    }
    const std::string verb = req["verb"].get<std::string>();
    static const json kNoArgs = json::object();
    const json& args = req.contains("args") ? req["args"] : kNoArgs;
    if (!args.is_object()) return Reply(id, Status::Error(EINVAL, "args must be an object"));
    auto it = Verbs().find(verb);
    if (it == Verbs().end())
      return Reply(id, Status::Error(EOPNOTSUPP, "unknown verb '" + verb + "'"));
    Result<json> r = it->second(engine_, Args(args, verb.c_str()), stop);
    // The request may hold key bytes (key.add): wipe the parsed copy before it is freed.
    if (verb == "key.add" && req.contains("args") && req["args"].contains("key_hex") &&
        req["args"]["key_hex"].is_string()) {
      auto& s = req["args"]["key_hex"].get_ref<std::string&>();
      OPENSSL_cleanse(s.data(), s.size());
    }
    return Reply(id, r);
  } catch (const std::exception& e) {
    return Reply(id, Status::Error(EIO, std::string("internal error: ") + e.what()));
  } catch (...) {
    return Reply(id, Status::Error(EIO, "internal error"));
  }
}

}  // namespace ice::daemon
