#include "cli/format.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <vector>

namespace ice::cli {
namespace {

Status Missing(const std::string& key, const char* what) {
  return Status::Error(EPROTO, "field \"" + key + "\" is missing or not " + what);
}

Result<std::string> Str(const Json& o, const std::string& key) {
  if (!o.is_object() || !o.contains(key) || !o[key].is_string()) return Missing(key, "a string");
  return o[key].get<std::string>();
}

Result<int64_t> Int(const Json& o, const std::string& key) {
  if (!o.is_object() || !o.contains(key) || !o[key].is_number_integer())
    return Missing(key, "an integer");
  return o[key].get<int64_t>();
}

Result<bool> Bool(const Json& o, const std::string& key) {
  if (!o.is_object() || !o.contains(key) || !o[key].is_boolean()) return Missing(key, "a boolean");
  return o[key].get<bool>();
}

Result<const Json*> Array(const Json& o, const std::string& key) {
  if (!o.is_object() || !o.contains(key) || !o[key].is_array()) return Missing(key, "a list");
  return &o[key];
}

Result<std::vector<std::string>> Strings(const Json& o, const std::string& key) {
  ICE_ASSIGN_OR_RETURN(const Json* list, Array(o, key));
  std::vector<std::string> out;
  for (const Json& e : *list) {
    if (!e.is_string()) return Missing(key, "a list of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

// Capabilities come as CryptoCapabilities::ToString() text; a list of pairs is accepted too.
Result<std::string> Capabilities(const Json& o) {
  const std::string key = "capabilities";
  if (o.is_object() && o.contains(key) && o[key].is_string()) {
    std::string text = o[key].get<std::string>();
    return text.empty() ? std::string("none") : text;
  }
  ICE_ASSIGN_OR_RETURN(std::vector<std::string> pairs, Strings(o, key));
  if (pairs.empty()) return std::string("none");
  std::string text;
  for (const std::string& p : pairs) text += (text.empty() ? "" : " ") + p;
  return text;
}

// dmsetup's `info` pads every label to 19 columns ("Number of targets: " is the longest).
std::string Labelled(const std::string& label, const std::string& value) {
  std::string line = label + ":";
  if (line.size() < 18) line.resize(18, ' ');
  return line + " " + value + "\n";
}

std::string SizeText(int64_t bytes) {
  return std::to_string(bytes) + " bytes (" + std::to_string(bytes / 512) + " sectors)";
}

// Columns left-aligned, two spaces apart, the last one unpadded.
std::string AlignedTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) out += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += "\n";
  }
  return out;
}

Status InContext(const Status& s, const std::string& where) {
  return Status::Error(s.code(), where + ": " + s.message());
}

// A string of the reply's "daemon" object (daemons before hardening 7 send none): "" if absent.
std::string DaemonField(const Json& reply, const char* field) {
  if (!reply.contains("daemon") || !reply["daemon"].is_object()) return "";
  const Json& daemon = reply["daemon"];
  return daemon.contains(field) && daemon[field].is_string() ? daemon[field].get<std::string>()
                                                             : "";
}

}  // namespace

Result<std::string> FormatInfo(const Json& info) {
  ICE_ASSIGN_OR_RETURN(std::string name, Str(info, "name"));
  ICE_ASSIGN_OR_RETURN(std::string state, Str(info, "state"));
  ICE_ASSIGN_OR_RETURN(bool live, Bool(info, "live_table"));
  ICE_ASSIGN_OR_RETURN(bool inactive, Bool(info, "inactive_table"));
  ICE_ASSIGN_OR_RETURN(int64_t open_count, Int(info, "open_count"));
  ICE_ASSIGN_OR_RETURN(int64_t event_nr, Int(info, "event_nr"));
  ICE_ASSIGN_OR_RETURN(int64_t major, Int(info, "major"));
  ICE_ASSIGN_OR_RETURN(int64_t minor, Int(info, "minor"));
  ICE_ASSIGN_OR_RETURN(int64_t num_targets, Int(info, "num_targets"));
  ICE_ASSIGN_OR_RETURN(int64_t size_bytes, Int(info, "size_bytes"));
  ICE_ASSIGN_OR_RETURN(std::string caps, Capabilities(info));
  int64_t read_ahead = 256;
  if (info.contains("read_ahead")) {
    ICE_ASSIGN_OR_RETURN(read_ahead, Int(info, "read_ahead"));
  }
  std::string tables = "None";
  if (live || inactive) {
    tables = std::string(live ? "LIVE" : "") + (live && inactive ? " & " : "") +
             (inactive ? "INACTIVE" : "");
  }
  std::string out;
  out += Labelled("Name", name);
  out += Labelled("State", state);
  out += Labelled("Read Ahead", std::to_string(read_ahead));
  out += Labelled("Tables present", tables);
  out += Labelled("Open count", std::to_string(open_count));
  out += Labelled("Event number", std::to_string(event_nr));
  out += Labelled("Major, minor", std::to_string(major) + ", " + std::to_string(minor));
  out += Labelled("Number of targets", std::to_string(num_targets));
  out += Labelled("Size", SizeText(size_bytes));
  out += Labelled("Crypto capabilities", caps);
  out += "\n";
  return out;
}

Result<std::string> FormatDeviceList(const Json& result) {
  ICE_ASSIGN_OR_RETURN(const Json* devices, Array(result, "devices"));
  if (devices->empty()) return std::string("No devices found\n");
  std::string out;
  for (const Json& d : *devices) {
    ICE_ASSIGN_OR_RETURN(std::string name, Str(d, "name"));
    ICE_ASSIGN_OR_RETURN(int64_t major, Int(d, "major"));
    ICE_ASSIGN_OR_RETURN(int64_t minor, Int(d, "minor"));
    out += name + "\t(" + std::to_string(major) + ":" + std::to_string(minor) + ")\n";
  }
  return out;
}

Result<std::string> FormatLines(const Json& result) {
  ICE_ASSIGN_OR_RETURN(std::vector<std::string> lines, Strings(result, "lines"));
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

Result<std::string> FormatMessageReply(const Json& result) {
  ICE_ASSIGN_OR_RETURN(std::string reply, Str(result, "reply"));
  if (!reply.empty() && reply.back() != '\n') reply += "\n";
  return reply;
}

Result<std::string> FormatKeyList(const Json& result) {
  ICE_ASSIGN_OR_RETURN(const Json* keys, Array(result, "keys"));
  if (keys->empty()) return std::string("No keys found\n");
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "MODE", "DATA_UNIT_SIZE", "DUN_BYTES", "USERS"}};
  for (const Json& k : *keys) {
    ICE_ASSIGN_OR_RETURN(std::string name, Str(k, "name"));
    ICE_ASSIGN_OR_RETURN(std::string mode, Str(k, "mode"));
    ICE_ASSIGN_OR_RETURN(int64_t du, Int(k, "data_unit_size"));
    ICE_ASSIGN_OR_RETURN(int64_t dun, Int(k, "dun_bytes"));
    ICE_ASSIGN_OR_RETURN(int64_t users, Int(k, "users"));
    rows.push_back({name, mode, std::to_string(du), std::to_string(dun), std::to_string(users)});
  }
  return AlignedTable(rows);
}

Result<std::string> FormatHardwareList(const Json& result) {
  ICE_ASSIGN_OR_RETURN(const Json* hardware, Array(result, "hardware"));
  if (hardware->empty()) return std::string("No hardware found\n");
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "SIZE", "KEYSLOTS", "IN_USE", "BACKING", "CAPABILITIES"}};
  for (const Json& hw : *hardware) {
    ICE_ASSIGN_OR_RETURN(std::string name, Str(hw, "name"));
    ICE_ASSIGN_OR_RETURN(int64_t size, Int(hw, "size_bytes"));
    ICE_ASSIGN_OR_RETURN(int64_t keyslots, Int(hw, "keyslots"));
    ICE_ASSIGN_OR_RETURN(std::string backing, Str(hw, "backing"));
    ICE_ASSIGN_OR_RETURN(std::string caps, Capabilities(hw));
    ICE_ASSIGN_OR_RETURN(const Json* slots, Array(hw, "slots"));
    int64_t in_use = 0;
    for (const Json& s : *slots) {
      if (!s.is_object() || !s.contains("key")) return Missing("slots", "a list of slots");
      in_use += s["key"].is_null() ? 0 : 1;
    }
    rows.push_back({name, std::to_string(size), std::to_string(keyslots), std::to_string(in_use),
                    backing, caps});
  }
  std::string out = AlignedTable(rows);
  // Said only when something is wrong: keys in memory that may be swapped out or dumped.
  const std::string memory = DaemonField(result, "key_memory");
  if (!memory.empty() && memory != "locked") out += "Warning: key memory " + memory + "\n";
  if (DaemonField(result, "core_dumps") == "on") out += "Warning: core dumps are on\n";
  return out;
}

Result<std::string> FormatHardwareInfo(const Json& hw) {
  ICE_ASSIGN_OR_RETURN(std::string name, Str(hw, "name"));
  ICE_ASSIGN_OR_RETURN(int64_t size, Int(hw, "size_bytes"));
  ICE_ASSIGN_OR_RETURN(std::string backing, Str(hw, "backing"));
  ICE_ASSIGN_OR_RETURN(int64_t keyslots, Int(hw, "keyslots"));
  ICE_ASSIGN_OR_RETURN(std::string caps, Capabilities(hw));
  ICE_ASSIGN_OR_RETURN(const Json* slots, Array(hw, "slots"));
  if (!hw.contains("counters") || !hw["counters"].is_object())
    return Missing("counters", "an object");

  std::string out;
  out += Labelled("Name", name);
  out += Labelled("Size", SizeText(size));
  out += Labelled("Backing", backing);
  out += Labelled("Keyslots", std::to_string(keyslots));
  out += Labelled("Crypto capabilities", caps);
  if (const std::string memory = DaemonField(hw, "key_memory"); !memory.empty()) {
    out += Labelled("Key memory", memory);
  }
  if (const std::string dumps = DaemonField(hw, "core_dumps"); !dumps.empty()) {
    out += Labelled("Core dumps", dumps);
  }
  out += "\n";
  if (slots->empty()) {
    out += "No keyslots\n";
  } else {
    std::vector<std::vector<std::string>> rows = {{"SLOT", "KEY", "REFS"}};
    for (const Json& s : *slots) {
      auto slot = Int(s, "slot");
      auto refs = Int(s, "refs");
      if (!slot.ok()) return InContext(slot.status(), "slots");
      if (!refs.ok()) return InContext(refs.status(), "slots");
      std::string key = "-";
      if (!s.contains("key")) return Missing("slots", "a list of slots with a key");
      if (s["key"].is_string()) {
        key = s["key"].get<std::string>();
      } else if (!s["key"].is_null()) {
        return Missing("key", "a string or null");
      }
      rows.push_back({std::to_string(*slot), key, std::to_string(*refs)});
    }
    out += AlignedTable(rows);
  }
  out += "\n";
  // The protocol document's order (the daemon's JSON objects arrive sorted by name), then any
  // counter this icectl does not know, as sent.
  static constexpr const char* kCounterOrder[] = {"slot_programs",  "slot_program_failures",
                                                  "slot_evictions", "slot_hits",
                                                  "slot_waits",     "resets",
                                                  "fallback_ios",   "reads",
                                                  "writes",         "flushes",
                                                  "zeroes",         "discards",
                                                  "read_bytes",     "write_bytes",
                                                  "errors"};
  const Json& counters = hw["counters"];
  std::vector<std::string> names;
  for (const char* c : kCounterOrder)
    if (counters.contains(c)) names.push_back(c);
  for (const auto& [counter, value] : counters.items())
    if (std::find(names.begin(), names.end(), counter) == names.end()) names.push_back(counter);
  std::vector<std::vector<std::string>> rows = {{"COUNTER", "VALUE"}};
  for (const std::string& counter : names) {
    const Json& value = counters[counter];
    if (!value.is_number_integer()) return Missing(counter, "an integer");
    rows.push_back({counter, value.dump()});
  }
  out += AlignedTable(rows);
  return out;
}

Result<std::string> FormatMetrics(const Json& result) {
  ICE_ASSIGN_OR_RETURN(std::string text, Str(result, "text"));
  if (!text.empty() && text.back() != '\n') text += "\n";
  return text;
}

Result<std::string> FormatExportCheck(const Json& result) {
  ICE_ASSIGN_OR_RETURN(std::string name, Str(result, "export"));
  ICE_ASSIGN_OR_RETURN(int64_t size, Int(result, "size"));
  ICE_ASSIGN_OR_RETURN(int64_t block_size, Int(result, "block_size"));
  std::string out = Labelled("Export", name) + Labelled("Size", SizeText(size)) +
                    Labelled("Block size", std::to_string(block_size));
  if (result.contains("keyed")) {
    ICE_ASSIGN_OR_RETURN(bool keyed, Bool(result, "keyed"));
    out += Labelled("Keyed", keyed ? "yes" : "no");
  }
  if (result.contains("trim")) {  // how a TRIM is served: "discard" or "zero"
    ICE_ASSIGN_OR_RETURN(std::string trim, Str(result, "trim"));
    out += Labelled("Trim", trim == "discard" ? "discards" : "writes zeros");
  }
  return out;
}

Result<std::string> FormatVersion(const Json& result) {
  ICE_ASSIGN_OR_RETURN(int64_t protocol, Int(result, "protocol"));
  ICE_ASSIGN_OR_RETURN(std::string version, Str(result, "version"));
  return "ice daemon " + version + " (control protocol " + std::to_string(protocol) + ")\n";
}

Result<std::string> FormatNothing(const Json& result) {
  if (!result.is_object()) return Status::Error(EPROTO, "the result is not an object");
  return std::string();
}

Result<std::vector<std::string>> Warnings(const Json& result) {
  if (!result.is_object() || !result.contains("warnings")) return std::vector<std::string>();
  return Strings(result, "warnings");
}

}  // namespace ice::cli
