// icectl's human output for each reply (rule T7: dmsetup's layouts where dmsetup has the verb).
// Every function takes a verb's "result" object, checks the fields it prints, and returns the text
// to print, or EPROTO naming the field that is missing or mistyped: a reply without the shape
// docs/control-protocol.md gives is a protocol failure, not something to print half of.
#pragma once

#include <string>
#include <vector>

#include "block/status.h"
#include "cli/control_client.h"

namespace ice::cli {

// `info`: dmsetup's `info` layout (labels padded to 19 columns; "Read Ahead" is 256, the kernel's
// default for a dm device, unless the result has "read_ahead"), then ice's "Size:" and
// "Crypto capabilities:" lines, then the blank line dmsetup ends each device with.
Result<std::string> FormatInfo(const Json& info);

// `ls`: dmsetup's `ls` layout, "name\t(major:minor)" a device, or "No devices found".
Result<std::string> FormatDeviceList(const Json& result);

// `table`, `status`: the lines, each ended by a newline, nothing for none (as dmsetup prints).
Result<std::string> FormatLines(const Json& result);

// `message`: the reply and a newline, or nothing for an empty reply (as dmsetup prints).
Result<std::string> FormatMessageReply(const Json& result);

// `key ls`: an aligned table NAME MODE DATA_UNIT_SIZE DUN_BYTES USERS, or "No keys found".
Result<std::string> FormatKeyList(const Json& result);

// `hw ls`: an aligned table NAME SIZE KEYSLOTS IN_USE BACKING CAPABILITIES, or
// "No hardware found". IN_USE counts the slots that hold a key.
Result<std::string> FormatHardwareList(const Json& result);

// `hw info`: Name/Size/Backing/Keyslots/Crypto capabilities lines, an aligned SLOT KEY REFS table
// (KEY "-" for an empty slot), and an aligned COUNTER VALUE table: the counters the protocol
// document lists, in its order, then any others in the order received.
Result<std::string> FormatHardwareInfo(const Json& hw);

// `metrics`: the Prometheus text as sent (a final newline added if it lacks one).
Result<std::string> FormatMetrics(const Json& result);

// `export check`: Export/Size/Block size lines (and Keyed/Trim when the daemon says).
Result<std::string> FormatExportCheck(const Json& result);

// `version`: "ice daemon V (control protocol P)".
Result<std::string> FormatVersion(const Json& result);

// Verbs whose result is `{}`: nothing is printed (as dmsetup prints nothing).
Result<std::string> FormatNothing(const Json& result);

// The "warnings" a result may carry (create, load): none when absent, EPROTO unless a list of
// strings. icectl prints each as "icectl: warning: …" on stderr, whatever the output mode.
Result<std::vector<std::string>> Warnings(const Json& result);

}  // namespace ice::cli
