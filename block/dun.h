// The data unit number: a 256-bit unsigned integer that selects the IV of one data unit (rule C4).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

namespace ice {

struct Dun {
  // Word 0 is the least significant.
  std::array<uint64_t, 4> words{};

  static Dun FromU64(uint64_t value) { return Dun{{value, 0, 0, 0}}; }

  // Adds `n` with carry between words, wrapping at 2^256.
  void Advance(uint64_t n) {
    uint64_t carry = n;
    for (auto& w : words) {
      const uint64_t before = w;
      w += carry;
      carry = (w < before) ? 1 : 0;
      if (carry == 0) break;
    }
  }

  Dun Plus(uint64_t n) const {
    Dun d = *this;
    d.Advance(n);
    return d;
  }

  // The number of bytes needed to hold this value (0 for zero).
  unsigned SignificantBytes() const {
    for (int i = 3; i >= 0; --i) {
      if (words[i] != 0) return i * 8 + (8 - __builtin_clzll(words[i]) / 8);
    }
    return 0;
  }

  // Writes the value little-endian into `iv`, zero-padded (or truncated) to `iv_size` bytes (C5).
  void ToLittleEndian(uint8_t* iv, unsigned iv_size) const {
    uint8_t le[32];
    for (int i = 0; i < 4; ++i) {
      for (int b = 0; b < 8; ++b) le[i * 8 + b] = static_cast<uint8_t>(words[i] >> (8 * b));
    }
    std::memcpy(iv, le, iv_size < 32 ? iv_size : 32);
    if (iv_size > 32) std::memset(iv + 32, 0, iv_size - 32);
  }

  friend bool operator==(const Dun&, const Dun&) = default;
};

}  // namespace ice
