// Tables: parsing (D1), capabilities (D3, D7), target construction and the lines `table` and
// `status` print (T1, T3, T7).
#include "dm/table.h"

#include <cerrno>
#include <cstdint>

#include <gtest/gtest.h>

#include "block/clock.h"
#include "dm/targets/error.h"
#include "dm/targets/linear.h"
#include "dm/targets/striped.h"
#include "dm/targets/zero.h"
#include "keyslot/blk_crypto.h"
#include "tests/unit/dm/dm_test_util.h"

namespace ice::dm {
namespace {

using testing::Caps;
using testing::MapLookup;
using testing::TestDevice;

constexpr uint64_t kMiB = 1 << 20;

class TableTest : public ::testing::Test {
 protected:
  TableTest() {
    // hw0: xts 512+4096, cbc 4096; hw1: xts 4096 only, cbc 4096, 4 DUN bytes; plain: no crypto.
    hw0_ = std::make_shared<TestDevice>(32 * kMiB, Caps({{CryptoMode::kAes256Xts, 512},
                                                         {CryptoMode::kAes256Xts, 4096},
                                                         {CryptoMode::kAes128CbcEssiv, 4096}},
                                                        8));
    hw1_ = std::make_shared<TestDevice>(
        32 * kMiB, Caps({{CryptoMode::kAes256Xts, 4096}, {CryptoMode::kAes128CbcEssiv, 4096}}, 4));
    plain_ = std::make_shared<TestDevice>(32 * kMiB);
    lookup_.Add("hw0", hw0_);
    lookup_.Add("hw1", hw1_);
    lookup_.Add("plain", plain_);
    env_.devices = &lookup_;
    env_.blk = &blk_;
  }

  Result<std::unique_ptr<Table>> Make(const std::vector<std::string>& lines) {
    return Table::Create(lines, env_);
  }

  // The error of a table that must be refused.
  Status Refused(const std::vector<std::string>& lines) {
    auto t = Make(lines);
    EXPECT_FALSE(t.ok());
    return t.status();
  }

  BlkCrypto blk_{4};
  std::shared_ptr<TestDevice> hw0_, hw1_, plain_;
  MapLookup lookup_;
  TargetEnv env_;
};

TEST_F(TableTest, D1_TargetsCoverTheDeviceFromSectorZero) {
  auto t = Make({"0 100 linear hw0 0", "100 28 zero", "128 72 linear hw1 8"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->num_targets(), 3u);
  EXPECT_EQ((*t)->size_sectors(), 200u);
  EXPECT_EQ((*t)->size_bytes(), 200u * 512);
  EXPECT_EQ((*t)->IndexOf(0), 0u);
  EXPECT_EQ((*t)->IndexOf(100 * 512 - 1), 0u);
  EXPECT_EQ((*t)->IndexOf(100 * 512), 1u);
  EXPECT_EQ((*t)->IndexOf(128 * 512), 2u);
  EXPECT_EQ((*t)->IndexOf(200 * 512 - 1), 2u);
}

TEST_F(TableTest, D1_BadNumbersAreRefusedNamingLineAndField) {
  Status s = Refused({"0 100 zero", "100 1x zero"});
  EXPECT_EQ(s.code(), EINVAL);
  EXPECT_NE(s.message().find("table line 2"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("length"), std::string::npos) << s.message();
  s = Refused({"-1 100 zero"});
  EXPECT_NE(s.message().find("table line 1: start"), std::string::npos) << s.message();
  s = Refused({"0 100 linear hw0 zz"});
  EXPECT_NE(s.message().find("table line 1: linear: offset 'zz'"), std::string::npos)
      << s.message();
  s = Refused({"0 18446744073709551615 zero"});
  EXPECT_EQ(s.code(), EINVAL);
}

TEST_F(TableTest, T7_ARefusedTargetIsNamedOnceAsTheKernelLogsIt) {
  // The kernel: "<type>: <error>". Targets whose errors name themselves are not named twice.
  Status s = Refused({"0 100 flakey hw0 0 1 1 1 bogus"});
  EXPECT_EQ(s.code(), EINVAL);
  EXPECT_NE(s.message().find("table line 1: flakey: Unrecognised flakey feature requested"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(s.message().find("flakey: flakey"), std::string::npos) << s.message();
  s = Refused({"0 100 delay hw0 0 1 hw1 65536 2"});
  EXPECT_NE(s.message().find("table line 1: delay: device 'hw1' too small"), std::string::npos)
      << s.message();
  s = Refused({"0 100 zero 1"});
  EXPECT_NE(s.message().find("table line 1: zero: no arguments required"), std::string::npos)
      << s.message();
}

TEST_F(TableTest, D1_ZeroLengthGapsOverlapsAndNonZeroStartAreRefused) {
  EXPECT_NE(Refused({"0 0 zero"}).message().find("zero-length"), std::string::npos);
  Status gap = Refused({"0 100 zero", "101 10 zero"});
  EXPECT_EQ(gap.code(), EINVAL);
  EXPECT_NE(gap.message().find("table line 2: gap"), std::string::npos) << gap.message();
  Status overlap = Refused({"0 100 zero", "99 10 zero"});
  EXPECT_NE(overlap.message().find("table line 2: overlap"), std::string::npos)
      << overlap.message();
  Status first = Refused({"8 100 zero"});
  EXPECT_NE(first.message().find("table line 1"), std::string::npos) << first.message();
  EXPECT_NE(first.message().find("not 0"), std::string::npos) << first.message();
}

TEST_F(TableTest, D1_UnknownTypeMissingFieldsAndEmptyTablesAreRefused) {
  Status s = Refused({"0 100 mirror hw0 0"});
  EXPECT_EQ(s.code(), EINVAL);
  EXPECT_NE(s.message().find("unknown target type 'mirror'"), std::string::npos);
  EXPECT_EQ(Refused({"0 100"}).code(), EINVAL);
  EXPECT_EQ(Refused({}).code(), EINVAL);
  EXPECT_EQ(Refused({"", "# nothing"}).code(), EINVAL);
}

TEST_F(TableTest, D1_BlankAndCommentLinesAreSkippedButCounted) {
  auto t = Make({"# a comment", "0 100 zero", "", "100 100 zero"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->num_targets(), 2u);
  Status s = Refused({"# a comment", "0 100 zero", "", "100 100 bogus"});
  EXPECT_NE(s.message().find("table line 4"), std::string::npos) << s.message();
}

TEST_F(TableTest, T1_LinearArgumentsAndRange) {
  EXPECT_NE(Refused({"0 100 linear hw0"}).message().find("expected 2 arguments"),
            std::string::npos);
  EXPECT_EQ(Refused({"0 100 linear hw0 0 7"}).code(), EINVAL);
  // ENXIO for a device that does not exist, with the line named.
  Status missing = Refused({"0 100 linear nosuch 0"});
  EXPECT_EQ(missing.code(), ENXIO);
  EXPECT_NE(missing.message().find("table line 1"), std::string::npos);
  // The range must lie within the device: 32 MiB = 65536 sectors.
  EXPECT_TRUE(Make({"0 65536 linear hw0 0"}).ok());
  EXPECT_TRUE(Make({"0 65535 linear hw0 1"}).ok());
  Status big = Refused({"0 65536 linear hw0 1"});
  EXPECT_EQ(big.code(), EINVAL);
  EXPECT_NE(big.message().find("too small"), std::string::npos) << big.message();
  EXPECT_EQ(Refused({"0 1 linear hw0 65536"}).code(), EINVAL);
}

TEST_F(TableTest, D3_LinearOverTwoDevicesExposesExactlyTheIntersection) {
  auto t = Make({"0 1000 linear hw0 0", "1000 1000 linear hw1 0"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_NE((*t)->capabilities(), nullptr);
  const CryptoCapabilities want =
      Caps({{CryptoMode::kAes256Xts, 4096}, {CryptoMode::kAes128CbcEssiv, 4096}}, 4);
  EXPECT_EQ(*(*t)->capabilities(), want) << (*t)->capabilities()->ToString();
}

TEST_F(TableTest, D3_OneDeviceKeepsItsCapabilities) {
  auto t = Make({"0 1000 linear hw0 0"});
  ASSERT_TRUE(t.ok());
  ASSERT_NE((*t)->capabilities(), nullptr);
  EXPECT_EQ(*(*t)->capabilities(), hw0_->crypto_profile()->capabilities());
}

TEST_F(TableTest, D3_D7_ANonPassingTargetClearsEverything) {
  for (const char* other : {"1000 8 zero", "1000 8 error", "1000 8 error hw0 0"}) {
    auto t = Make({"0 1000 linear hw0 0", other});
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ((*t)->capabilities(), nullptr) << other;
  }
}

TEST_F(TableTest, D3_ADeviceWithoutInlineCryptoClearsEverything) {
  auto t = Make({"0 1000 linear hw0 0", "1000 8 linear plain 0"});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->capabilities(), nullptr);
}

TEST_F(TableTest, D3_NoModeLeftMeansNoProfile) {
  auto only512 = std::make_shared<TestDevice>(kMiB, Caps({{CryptoMode::kAes256Xts, 512}}));
  lookup_.Add("only512", only512);
  // hw1 has no 512-byte units: the intersection keeps DUN bytes and key types but no mode.
  auto t = Make({"0 100 linear only512 0", "100 100 linear hw1 0"});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->capabilities(), nullptr);
}

TEST_F(TableTest, D3_StripedIntersectsEveryStripe) {
  auto t = Make({"0 256 striped 2 64 hw0 0 hw1 0"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_NE((*t)->capabilities(), nullptr);
  EXPECT_EQ((*t)->capabilities()->max_dun_bytes, 4u);
  EXPECT_EQ((*t)->capabilities()->data_unit_masks[static_cast<int>(CryptoMode::kAes256Xts)], 4096u);
}

TEST(TargetTypes, D7_LinearAndStripedPassCryptoZeroAndErrorDoNot) {
  EXPECT_EQ(FindTargetType("linear"), &kLinearTarget);
  EXPECT_EQ(FindTargetType("striped"), &kStripedTarget);
  EXPECT_EQ(FindTargetType("zero"), &kZeroTarget);
  EXPECT_EQ(FindTargetType("error"), &kErrorTarget);
  EXPECT_EQ(FindTargetType("nosuch"), nullptr);
  EXPECT_TRUE(kLinearTarget.passes_crypto);
  EXPECT_TRUE(kStripedTarget.passes_crypto);
  EXPECT_FALSE(kZeroTarget.passes_crypto);
  EXPECT_FALSE(kErrorTarget.passes_crypto);
  EXPECT_GE(AllTargetTypes().size(), 4u);
}

// The lines of real-kernel.md (kernel 6.1), with ice device names where the kernel prints MAJ:MIN.
TEST_F(TableTest, T7_TableAndStatusLinesMatchTheKernel) {
  struct Case {
    const char* line;
    const char* table;
    const char* status;
  } cases[] = {
      {"0 65536 linear hw0 0", "0 65536 linear hw0 0", "0 65536 linear "},
      {"0 65536 zero", "0 65536 zero ", "0 65536 zero "},
      {"0 65536 error", "0 65536 error ", "0 65536 error "},
      {"0 65536 error hw0 0", "0 65536 error ", "0 65536 error "},
      {"0 1024 striped 2 64 hw0 0 hw1 8", "0 1024 striped 2 64 hw0 0 hw1 8",
       "0 1024 striped 2 hw0 hw1 1 AA"},
  };
  for (const Case& c : cases) {
    auto t = Make({c.line});
    ASSERT_TRUE(t.ok()) << c.line << ": " << t.status().ToString();
    EXPECT_EQ((*t)->TableLines(), std::vector<std::string>{c.table});
    EXPECT_EQ((*t)->StatusLines(), std::vector<std::string>{c.status});
  }
  auto two = Make({"0 8 linear hw0 16", "8 8 linear hw1 0"});
  ASSERT_TRUE(two.ok());
  EXPECT_EQ((*two)->TableLines(),
            (std::vector<std::string>{"0 8 linear hw0 16", "8 8 linear hw1 0"}));
}

TEST_F(TableTest, T3_StripedArgumentsAreChecked) {
  EXPECT_EQ(Refused({"0 256 striped 2"}).code(), EINVAL);
  EXPECT_EQ(Refused({"0 256 striped 0 64"}).code(), EINVAL);
  EXPECT_EQ(Refused({"0 256 striped 2 0 hw0 0 hw1 0"}).code(), EINVAL);
  Status stripes = Refused({"0 255 striped 2 64 hw0 0 hw1 0"});
  EXPECT_NE(stripes.message().find("not divisible by number of stripes"), std::string::npos)
      << stripes.message();
  Status chunk = Refused({"0 256 striped 2 48 hw0 0 hw1 0"});
  EXPECT_NE(chunk.message().find("not divisible by chunk size"), std::string::npos)
      << chunk.message();
  EXPECT_EQ(Refused({"0 256 striped 2 64 hw0 0"}).code(), EINVAL);
  EXPECT_EQ(Refused({"0 256 striped 2 64 hw0 0 hw1 0 plain 0"}).code(), EINVAL);
  EXPECT_EQ(Refused({"0 256 striped 2 64 hw0 0 nosuch 0"}).code(), ENXIO);
  // Each stripe holds length / #stripes sectors from its offset.
  EXPECT_TRUE(Make({"0 131072 striped 2 64 hw0 0 hw1 0"}).ok());
  EXPECT_EQ(Refused({"0 131072 striped 2 64 hw0 0 hw1 8"}).code(), EINVAL);
  // A chunk that is not a power of two.
  EXPECT_TRUE(Make({"0 288 striped 3 24 hw0 0 hw1 0 plain 0"}).ok());
}

TEST_F(TableTest, T3_ZeroTakesNoArgumentsErrorTakesAnOptionalDevice) {
  EXPECT_EQ(Refused({"0 8 zero hw0"}).code(), EINVAL);
  auto with_dev = Make({"0 8 error hw0 0"});
  ASSERT_TRUE(with_dev.ok());
  ASSERT_EQ((*with_dev)->Devices().size(), 1u);
  EXPECT_EQ((*with_dev)->Devices()[0].name, "hw0");
  EXPECT_EQ(Refused({"0 8 error nosuch 0"}).code(), ENXIO);
  EXPECT_EQ(Refused({"0 8 error hw0 x"}).code(), EINVAL);
  EXPECT_EQ(Refused({"0 65537 error hw0 0"}).code(), EINVAL);
  // As mainline: any other number of arguments is ignored.
  auto ignored = Make({"0 8 error a b c"});
  ASSERT_TRUE(ignored.ok());
  EXPECT_TRUE((*ignored)->Devices().empty());
}

TEST_F(TableTest, DevicesDiscardsAndUse) {
  auto t =
      Make({"0 100 linear hw0 0", "100 100 linear hw0 200", "200 256 striped 2 64 hw1 0 hw0 8"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  std::vector<std::string> names;
  for (const DeviceRef& d : (*t)->Devices()) names.push_back(d.name);
  EXPECT_EQ(names, (std::vector<std::string>{"hw0", "hw1"}));
  EXPECT_TRUE((*t)->Uses("hw1"));
  EXPECT_FALSE((*t)->Uses("plain"));
  EXPECT_TRUE((*t)->supports_discard());
  plain_->set_supports_discard(false);
  auto nodiscard = Make({"0 100 linear hw0 0", "100 100 linear plain 0"});
  ASSERT_TRUE(nodiscard.ok());
  EXPECT_FALSE((*nodiscard)->supports_discard());
}

// Hardening 6: NBD sizes are signed, so a table may make at most INT64_MAX bytes; beyond that
// the device would be created but could never be opened.
TEST_F(TableTest, Hardening6_TableSizeAboveInt64MaxBytesIsRefused) {
  const uint64_t max_sectors = uint64_t{INT64_MAX} / 512;  // 2^54 - 1
  EXPECT_TRUE(Make({"0 " + std::to_string(max_sectors) + " zero"}).ok());
  const std::vector<std::vector<std::string>> refused = {
      {"0 " + std::to_string(max_sectors + 1) + " zero"},
      {"0 36028797018963967 zero"},  // 2^64 - 512 bytes
      {"0 8 zero", "8 " + std::to_string(max_sectors - 7) + " zero"},
  };
  for (const auto& lines : refused) {
    Status s = Refused(lines);
    EXPECT_EQ(s.code(), EINVAL) << lines.back();
    EXPECT_NE(s.message().find("NBD sizes are signed"), std::string::npos) << s.message();
  }
}

// Hardening 6: a device offset is turned into bytes; one whose area ends beyond the largest
// device would wrap (2^55 sectors is 0 bytes) and reach the start of the device instead. A device
// of size 0 (a mapped device without a table) has its area unchecked, so nothing else stops it.
// Every target that takes a device offset refuses such an area.
TEST_F(TableTest, Hardening6_DeviceOffsetsWhoseBytesOverflowAreRefused) {
  lookup_.Add("empty", std::make_shared<TestDevice>(0));
  env_.clock = &Clock::Real();
  const std::string key(128, 'a');
  const std::string wraps = "36028797018963968";  // 2^55: x 512 is 0
  const std::string ends = "36028797018963967";   // 2^55 - 1: its end wraps
  const std::string last = std::to_string(uint64_t{INT64_MAX} / 512 - 8);  // just fits
  for (const std::string& off : {wraps, ends, std::string("18014398509481976")}) {
    for (const std::string& line : {
             "0 8 linear empty " + off,
             "0 16 striped 2 8 empty 0 empty " + off,
             "0 8 flakey empty " + off + " 1 1",
             "0 8 delay empty " + off + " 0",
             "0 8 delay empty 0 0 empty " + off + " 0",
             "0 8 delay empty 0 0 empty 0 0 empty " + off + " 0",
             "0 8 dust empty " + off + " 512",
             "0 8 default-key aes-xts-plain64 " + key + " 0 empty " + off,
             "0 8 error empty " + off,
         }) {
      Status s = Refused({line});
      EXPECT_EQ(s.code(), EINVAL) << line;
      EXPECT_NE(s.message().find("ends beyond sector"), std::string::npos)
          << line << ": " << s.message();
      EXPECT_EQ(s.message().find(key), std::string::npos) << s.message();
    }
  }
  // The last area that fits is taken (log-writes maps from offset 0 only, so its area is the
  // table's own, bounded above).
  EXPECT_TRUE(Make({"0 8 linear empty " + last}).ok());
  EXPECT_TRUE(Make({"0 8 dust empty " + last + " 512"}).ok());
  EXPECT_TRUE(Make({"0 8 log-writes empty empty"}).ok());
}

// Hardening 9: an error never echoes a word that may be a key. A default-key line whose fields are
// shifted or garbled can hold the key in any field, so no message of such a line quotes its
// words: they are named by position. Any other line's words that look like a hex key are
// redacted from the target's messages too.
TEST_F(TableTest, Hardening9_ErrorsOfLinesHoldingAKeyNeverQuoteIt) {
  std::string K;  // 64 bytes, two different halves, in hex: 128 digits
  for (int i = 0; i < 64; ++i) {
    const int byte = (i * 37 + 11) & 0xff;
    K += "0123456789abcdef"[byte >> 4];
    K += "0123456789abcdef"[byte & 15];
  }
  const std::string dk = "0 8 default-key ";
  const std::string refused[] = {
      dk + K + " aes-xts-plain64 0 hw0 0",                 // cipher and key swapped
      dk + "aes-xts-plain64 0 " + K + " hw0 0",            // key and iv_offset swapped
      dk + "aes-xts-plain64 :64:logon:k " + K + " hw0 0",  // an extra word before the key
      dk + "aes-xts-plain64 " + K + " 0 " + K + " 0",      // the key for the device
      dk + "aes-xts-plain64 " + K + " 0 hw0 " + K,         // the key for the start
      dk + "aes-xts-plain64 " + K + " 0 hw0 0 1 " + K,     // the key for an option
      dk + "aes-xts-plain64 " + K + " 0 hw0 0 " + K,       // the key for the option count
      dk + "aes-xts-plain64 " + K + " 0 hw0 0 2 sector_size:" + K + " iv_large_sectors",
      dk + "aes-xts-plain64 " + K + " 99999999999999999999999 hw0 0",
      dk + "aes-xts-plain64 " + K + " 0 nosuch 0",
      dk + "aes-xts-plain64 " + K + "zz 0 hw0 0",               // a garbled key
      dk + "aes-xts-plain64 " + K.substr(0, 126) + " 0 hw0 0",  // a key one byte short
      dk + "aes-xts-plain64 :" + K + " 0 hw0 0",                // a key given a colon
      dk + "aes-xts-plain64 :" + K + ":logon:k 0 hw0 0",
      dk + "aes-xts-plain64 :64:" + K + ":k 0 hw0 0",
      dk + "aes-plain64 " + K + " 0 hw0 0",  // an unknown cipher
      "0 " + K + " default-key aes-xts-plain64 " + K + " 0 hw0 0",
      K + " 8 default-key aes-xts-plain64 0 hw0 0",
      "0 8 " + K + " aes-xts-plain64 0 hw0 0",
      "0 8 defaultkey aes-xts-plain64 " + K + " 0 hw0 0",
      "0 8 linear " + K + " 0",
      "0 8 striped 2 4 hw0 0 " + K + " 0",
      "0 8 flakey hw0 0 1 1 1 " + K,
  };
  for (const std::string& line : refused) {
    Status s = Refused({line});
    EXPECT_NE(s.code(), 0) << line;
    for (size_t at = 0; at + 32 <= K.size(); at += 16) {
      EXPECT_EQ(s.message().find(K.substr(at, 32)), std::string::npos)
          << "the error echoes the key: " << s.message();
    }
  }
  // Fields are named by position instead.
  EXPECT_NE(Refused({dk + K + " aes-xts-plain64 0 hw0 0"}).message().find("argument 1"),
            std::string::npos);
  Status lookup = Refused({dk + "aes-xts-plain64 " + K + " 0 " + K + " 0"});
  EXPECT_EQ(lookup.code(), ENXIO);
  EXPECT_NE(lookup.message().find("argument 4"), std::string::npos) << lookup.message();
  EXPECT_NE(Refused({"0 8 linear " + K + " 0"}).message().find("<argument 1>"), std::string::npos);
  // Lines without a key still quote what is wrong.
  EXPECT_NE(Refused({"0 8 linear nosuch 0"}).message().find("'nosuch'"), std::string::npos);
  EXPECT_NE(Refused({"0 8 mirror hw0 0"}).message().find("'mirror'"), std::string::npos);
}

// Hardening 8: config files with such lines must be private; only an inline key counts.
TEST(TableLines, Hardening8_LineHoldsKeyOnlyForAnInlineKey) {
  const std::string hex(128, 'a');
  EXPECT_TRUE(LineHoldsKey("0 8 default-key aes-xts-plain64 " + hex + " 0 hw0 0"));
  EXPECT_TRUE(
      LineHoldsKey("  0   8 default-key aes-xts-plain64 " + hex + " 0 hw0 0 1 allow_discards"));
  EXPECT_FALSE(LineHoldsKey("0 8 default-key aes-xts-plain64 :64:logon:k 0 hw0 0"));
  EXPECT_FALSE(LineHoldsKey("0 8 linear hw0 0"));
  EXPECT_FALSE(LineHoldsKey("0 8 default-key"));
  EXPECT_FALSE(LineHoldsKey("# 0 8 default-key aes-xts-plain64 " + hex));
  EXPECT_FALSE(LineHoldsKey(""));
}

}  // namespace
}  // namespace ice::dm
