#include "block/dun.h"

#include <gtest/gtest.h>

namespace ice {
namespace {

TEST(Dun, C4_AdvanceCarriesAcrossWords) {
  Dun d{{~0ull, ~0ull, 5, 0}};
  d.Advance(1);
  EXPECT_EQ(d, (Dun{{0, 0, 6, 0}}));
}

TEST(Dun, C4_WrapsAt2To256) {
  Dun d{{~0ull, ~0ull, ~0ull, ~0ull}};
  d.Advance(3);
  EXPECT_EQ(d, Dun::FromU64(2));
}

TEST(Dun, C5_LittleEndianZeroPadded) {
  uint8_t iv[16];
  Dun{{0x0102030405060708ull, 0x1122, 0, 0}}.ToLittleEndian(iv, 16);
  const uint8_t want[16] = {8, 7, 6, 5, 4, 3, 2, 1, 0x22, 0x11, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(0, memcmp(iv, want, 16));
}

TEST(Dun, SignificantBytes) {
  EXPECT_EQ(Dun{}.SignificantBytes(), 0u);
  EXPECT_EQ(Dun::FromU64(0xff).SignificantBytes(), 1u);
  EXPECT_EQ(Dun::FromU64(0x100).SignificantBytes(), 2u);
  EXPECT_EQ((Dun{{0, 1, 0, 0}}).SignificantBytes(), 9u);
}

}  // namespace
}  // namespace ice
