// A device-mapper table: targets covering [0, size) in 512-byte sectors, built from dmsetup lines
// (rules D1, D3, T7; the kernel's dm-table.c).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "block/status.h"
#include "dm/target.h"
#include "keyslot/capabilities.h"

namespace ice::dm {

inline constexpr uint64_t kSectorBytes = 512;
// The largest device, in sectors, that a table may make or a target may reach into: NBD sizes and
// the file offsets of backends are signed 64-bit byte counts, so no device ends beyond INT64_MAX
// bytes, and a sector below this bound never overflows when turned into bytes.
inline constexpr uint64_t kMaxDeviceSectors = INT64_MAX / kSectorBytes;

// One line of a table: where the target sits in the mapped device, and the target.
struct TableEntry {
  uint64_t start_sector = 0;
  uint64_t length_sectors = 0;
  const TargetType* type = nullptr;
  std::unique_ptr<Target> target;

  uint64_t start_bytes() const { return start_sector * kSectorBytes; }
  uint64_t end_bytes() const { return (start_sector + length_sectors) * kSectorBytes; }
};

// Whether a dmsetup line carries key material: a target type's key argument (TargetType::key_arg)
// given inline rather than as a keyring reference. Lines that cannot be parsed hold none.
bool LineHoldsKey(const std::string& line);

// Immutable once built, except for the targets' own state. Thread-safe for concurrent I/O (the
// targets are). Not copyable.
class Table {
 public:
  // Parses one target a line, "<start> <length> <type> <args…>" (blank lines and lines starting
  // with '#' are skipped, as in dmsetup's table files), and constructs every target with `env`.
  // Errors name the line (counted from 1 over all given lines) and the field:
  //  - EINVAL: a bad number, a zero length, a gap or overlap or a first target not at sector 0
  //    (D1), an unknown target type, a target's own refusal (argument counts, ranges beyond a
  //    device), a target start not aligned to its logical block size, no targets at all;
  //  - whatever env.devices->Find returns for a device (ENXIO for an unknown one).
  // Builds the table's capabilities per D3. Nothing survives a failure. Its copies of a line's
  // words are wiped when dropped (a key argument is secret); `lines` are the caller's to wipe.
  static Result<std::unique_ptr<Table>> Create(const std::vector<std::string>& lines,
                                               const TargetEnv& env);
  ~Table();
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  size_t num_targets() const { return entries_.size(); }
  const TableEntry& entry(size_t i) const { return entries_[i]; }
  TableEntry& entry(size_t i) { return entries_[i]; }
  uint64_t size_sectors() const { return size_sectors_; }
  uint64_t size_bytes() const { return size_sectors_ * kSectorBytes; }

  // The index of the entry holding byte `offset_bytes`. REQUIRES: offset_bytes < size_bytes().
  // O(log n), allocates nothing.
  size_t IndexOf(uint64_t offset_bytes) const;

  // D3: what every device below can do natively when every target passes crypto; nullptr when
  // that leaves no mode at all (the table then has no profile).
  const CryptoCapabilities* capabilities() const { return caps_ ? &*caps_ : nullptr; }
  // Every target supports discards.
  bool supports_discard() const { return supports_discard_; }
  // The largest logical block size of the targets and of their devices (the kernel stacks the
  // devices' queue limits into the table's).
  uint32_t logical_block_size() const { return logical_block_size_; }

  // Every device of every target, once each, in table order.
  std::vector<DeviceRef> Devices() const;
  // Whether a target of this table uses the device named `name`.
  bool Uses(const std::string& name) const;

  // The kernel checks device areas again when a table is swapped in; ice's targets checked theirs
  // against the sizes at load, so a table is still valid unless a device below has shrunk since
  // (a mapped device below may have had a smaller table resumed). EINVAL naming the device.
  Status CheckDevicesStillFit() const;

  // T7: "<start> <length> <type> <params>" per target, as dmsetup prints it ("%llu %llu %s %s"),
  // so empty params leave a trailing space.
  std::vector<std::string> TableLines() const;
  std::vector<std::string> StatusLines() const;
  // Every target's Warning, as "<type> at sector <start>: <warning>", in table order.
  std::vector<std::string> Warnings() const;

 private:
  Table() = default;
  Status Finish();

  std::vector<TableEntry> entries_;
  uint64_t size_sectors_ = 0;
  std::optional<CryptoCapabilities> caps_;
  bool supports_discard_ = true;
  uint32_t logical_block_size_ = 1;
  struct DeviceSize {
    DeviceRef ref;
    uint64_t size_bytes;
  };
  std::vector<DeviceSize>
      device_sizes_;  // each device once, with its size when the table was built
};

}  // namespace ice::dm
