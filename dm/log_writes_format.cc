#include "dm/log_writes_format.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ice::logwrites {
namespace {

void PutLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

void PutLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint64_t GetLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint32_t GetLe32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

constexpr size_t kSuperFieldBytes = 28;  // three le64 and one le32

}  // namespace

void EncodeSuper(const Super& super, std::span<uint8_t> block) {
  std::fill(block.begin(), block.end(), 0);
  PutLe64(block.data(), super.magic);
  PutLe64(block.data() + 8, super.version);
  PutLe64(block.data() + 16, super.nr_entries);
  PutLe32(block.data() + 24, super.sectorsize);
}

void EncodeEntry(const EntryHeader& header, std::string_view mark, std::span<uint8_t> block) {
  std::fill(block.begin(), block.end(), 0);
  PutLe64(block.data(), header.sector);
  PutLe64(block.data() + 8, header.nr_sectors);
  PutLe64(block.data() + 16, header.flags);
  PutLe64(block.data() + 24, header.data_len);
  if ((header.flags & kMark) != 0 && !mark.empty()) {
    std::memcpy(block.data() + kEntryHeaderBytes, mark.data(),
                std::min(mark.size(), block.size() - kEntryHeaderBytes - 1));
  }
}

Result<Super> DecodeSuper(std::span<const uint8_t> block) {
  if (block.size() < kSuperFieldBytes) {
    return Status::Error(EINVAL,
                         "Error reading super: only " + std::to_string(block.size()) + " bytes");
  }
  Super s;
  s.magic = GetLe64(block.data());
  s.version = GetLe64(block.data() + 8);
  s.nr_entries = GetLe64(block.data() + 16);
  s.sectorsize = GetLe32(block.data() + 24);
  if (s.magic != kMagic) return Status::Error(EINVAL, "Magic doesn't match");
  if (s.version != kVersion) {
    return Status::Error(EINVAL, "Version mismatch, wanted " + std::to_string(kVersion) +
                                     ", have " + std::to_string(static_cast<int>(s.version)));
  }
  if (s.sectorsize < 512 || s.sectorsize > 65536 || (s.sectorsize & (s.sectorsize - 1)) != 0) {
    return Status::Error(EINVAL, "Invalid sector size " + std::to_string(s.sectorsize));
  }
  return s;
}

EntryHeader DecodeEntry(std::span<const uint8_t> block) {
  EntryHeader h;
  h.sector = GetLe64(block.data());
  h.nr_sectors = GetLe64(block.data() + 8);
  h.flags = GetLe64(block.data() + 16);
  h.data_len = GetLe64(block.data() + 24);
  return h;
}

bool EntryLooksValid(std::span<const uint8_t> block) {
  const EntryHeader h = DecodeEntry(block);
  if (h.flags == 0 && h.nr_sectors == 0) return false;
  if (h.flags != kMark && block[kEntryHeaderBytes] != 0) return false;
  return true;
}

std::string MarkText(std::span<const uint8_t> block) {
  const EntryHeader h = DecodeEntry(block);
  const size_t room = block.size() - kEntryHeaderBytes;
  const size_t len = static_cast<size_t>(std::min<uint64_t>(h.data_len, room));
  const auto* p = reinterpret_cast<const char*>(block.data() + kEntryHeaderBytes);
  return std::string(p, strnlen(p, len));
}

std::string FlagNames(uint64_t flags) {
  static constexpr struct {
    uint64_t bit;
    const char* name;
  } kNames[] = {{kFlush, "FLUSH"},
                {kFua, "FUA"},
                {kDiscard, "DISCARD"},
                {kMark, "MARK"},
                {kMetadata, "METADATA"}};
  std::string out;
  for (const auto& n : kNames) {
    if ((flags & n.bit) == 0) continue;
    if (!out.empty()) out += '|';
    out += n.name;
    flags &= ~n.bit;
  }
  if (flags != 0) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "UNKNOWN.0x%llx", static_cast<unsigned long long>(flags));
    if (!out.empty()) out += '|';
    out += hex;
  }
  return out.empty() ? "NONE" : out;
}

}  // namespace ice::logwrites
