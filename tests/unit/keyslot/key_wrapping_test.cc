// Emulated hardware key wrapping (rules W1–W4, W7).
#include "keyslot/key_wrapping.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <vector>

namespace ice {
namespace {

std::vector<uint8_t> Bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + 7 * i);
  return v;
}

const std::vector<uint8_t> kSecretA = Bytes(32, 1), kSecretB = Bytes(32, 2);

KeyWrapping Hw(const std::vector<uint8_t>& secret = kSecretA) {
  return KeyWrapping::Create(secret).value();
}

// Calls op(out) with a buffer of `size` bytes; returns the bytes written, or the error.
template <typename Op>
Result<std::vector<uint8_t>> Call(Op op, size_t size = kMaxWrappedKeyBytes) {
  std::vector<uint8_t> buf(size);
  ICE_ASSIGN_OR_RETURN(size_t n, op(WrapOutput{buf}));
  buf.resize(n);
  return buf;
}

TEST(KeyWrapping, W2_ImportPrepareAndTheKeyslotGetsTheRawKeyBack) {
  const KeyWrapping hw = Hw();
  const auto raw = Bytes(64, 9);
  auto lt = Call([&](const WrapOutput& o) { return hw.ImportKey(raw, o); });
  ASSERT_TRUE(lt.ok()) << lt.status().ToString();
  EXPECT_EQ(lt->size(), raw.size() + kWrapOverheadBytes);
  EXPECT_EQ(std::search(lt->begin(), lt->end(), raw.begin(), raw.begin() + 16), lt->end())
      << "the blob does not hold the raw key in the clear";
  auto eph = Call([&](const WrapOutput& o) { return hw.PrepareKey(*lt, o); });
  ASSERT_TRUE(eph.ok()) << eph.status().ToString();
  EXPECT_NE(*eph, *lt);
  auto unwrapped = hw.UnwrapForKeyslot(*eph);
  ASSERT_TRUE(unwrapped.ok());
  EXPECT_EQ(std::vector<uint8_t>(unwrapped->data(), unwrapped->data() + unwrapped->size()), raw);
  // Every size the uapi allows.
  for (size_t n : {kMinRawKeyBytes, size_t{32}, kMaxRawKeyBytes}) {
    EXPECT_TRUE(Call([&](const WrapOutput& o) { return hw.ImportKey(Bytes(n, 3), o); }).ok()) << n;
  }
}

TEST(KeyWrapping, W2_GenerateMakesANewKeyEachTime) {
  const KeyWrapping hw = Hw();
  auto a = Call([&](const WrapOutput& o) { return hw.GenerateKey(o); });
  auto b = Call([&](const WrapOutput& o) { return hw.GenerateKey(o); });
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), kGeneratedKeyBytes + kWrapOverheadBytes);
  auto ea = Call([&](const WrapOutput& o) { return hw.PrepareKey(*a, o); });
  auto eb = Call([&](const WrapOutput& o) { return hw.PrepareKey(*b, o); });
  ASSERT_TRUE(ea.ok() && eb.ok());
  auto ka = hw.UnwrapForKeyslot(*ea), kb = hw.UnwrapForKeyslot(*eb);
  ASSERT_TRUE(ka.ok() && kb.ok());
  EXPECT_NE(std::vector<uint8_t>(ka->data(), ka->data() + 64),
            std::vector<uint8_t>(kb->data(), kb->data() + 64));
}

TEST(KeyWrapping, W2_SoftwareSecretIs32BytesOfTheKeyNotOfTheBlob) {
  const KeyWrapping hw = Hw();
  auto lt = Call([&](const WrapOutput& o) { return hw.ImportKey(Bytes(64, 4), o); }).value();
  auto e1 = Call([&](const WrapOutput& o) { return hw.PrepareKey(lt, o); }).value();
  auto e2 = Call([&](const WrapOutput& o) { return hw.PrepareKey(lt, o); }).value();
  EXPECT_NE(e1, e2) << "a fresh nonce every time";
  auto s1 = Call([&](const WrapOutput& o) { return hw.DeriveSwSecret(e1, o); });
  auto s2 = Call([&](const WrapOutput& o) { return hw.DeriveSwSecret(e2, o); });
  ASSERT_TRUE(s1.ok() && s2.ok());
  EXPECT_EQ(s1->size(), kSwSecretBytes);
  EXPECT_EQ(*s1, *s2);
  auto other = Call([&](const WrapOutput& o) { return hw.ImportKey(Bytes(64, 5), o); }).value();
  auto e3 = Call([&](const WrapOutput& o) { return hw.PrepareKey(other, o); }).value();
  EXPECT_NE(*Call([&](const WrapOutput& o) { return hw.DeriveSwSecret(e3, o); }), *s1);
}

TEST(KeyWrapping, W3_ErrorsAsTheIoctlsGiveThem) {
  const KeyWrapping hw = Hw();
  const auto raw = Bytes(64, 9);
  // Output too small: EOVERFLOW (nothing written beyond it).
  auto small = Call([&](const WrapOutput& o) { return hw.ImportKey(raw, o); }, 99);
  EXPECT_EQ(small.status().code(), EOVERFLOW);
  EXPECT_TRUE(Call([&](const WrapOutput& o) { return hw.ImportKey(raw, o); }, 100).ok());
  EXPECT_EQ(Call([&](const WrapOutput& o) { return hw.GenerateKey(o); }, 10).status().code(),
            EOVERFLOW);
  // Raw size outside 16…64: EINVAL.
  for (size_t n : {size_t{0}, size_t{15}, size_t{65}}) {
    EXPECT_EQ(
        Call([&](const WrapOutput& o) { return hw.ImportKey(Bytes(n, 1), o); }).status().code(),
        EINVAL)
        << n;
  }
  // Non-zero reserved fields: EINVAL.
  std::vector<uint8_t> buf(kMaxWrappedKeyBytes);
  WrapOutput reserved{buf};
  reserved.reserved[2] = 1;
  EXPECT_EQ(hw.ImportKey(raw, reserved).status().code(), EINVAL);
  EXPECT_EQ(hw.GenerateKey(reserved).status().code(), EINVAL);
}

TEST(KeyWrapping, W3_BlobsThatAreNotOursAreRefusedWithEbadmsg) {
  const KeyWrapping a = Hw(kSecretA), b = Hw(kSecretB);
  auto lt = Call([&](const WrapOutput& o) { return a.ImportKey(Bytes(64, 9), o); }).value();
  auto eph = Call([&](const WrapOutput& o) { return a.PrepareKey(lt, o); }).value();
  auto code = [](const auto& r) { return r.status().code(); };
  // Another device's blob.
  EXPECT_EQ(code(Call([&](const WrapOutput& o) { return b.PrepareKey(lt, o); })), EBADMSG);
  EXPECT_EQ(code(b.UnwrapForKeyslot(eph)), EBADMSG);
  // A long-term blob given to a keyslot, an ephemeral one given to prepare.
  EXPECT_EQ(code(a.UnwrapForKeyslot(lt)), EBADMSG);
  EXPECT_EQ(code(Call([&](const WrapOutput& o) { return a.PrepareKey(eph, o); })), EBADMSG);
  EXPECT_EQ(code(Call([&](const WrapOutput& o) { return a.DeriveSwSecret(lt, o); })), EBADMSG);
  // Any changed byte, a cut blob, garbage.
  for (size_t i : {size_t{0}, size_t{5}, size_t{10}, size_t{30}, eph.size() - 1}) {
    auto bad = eph;
    bad[i] ^= 1;
    EXPECT_EQ(code(a.UnwrapForKeyslot(bad)), EBADMSG) << i;
  }
  EXPECT_EQ(code(a.UnwrapForKeyslot({eph.data(), eph.size() - 1})), EBADMSG);
  EXPECT_EQ(code(a.UnwrapForKeyslot(std::vector<uint8_t>(100, 0))), EBADMSG);
  EXPECT_EQ(code(a.UnwrapForKeyslot({})), EBADMSG);
}

TEST(KeyWrapping, W4_ARestartKeepsLongTermBlobsAndLosesEphemeralOnes) {
  const KeyWrapping before = Hw(kSecretA);
  auto lt = Call([&](const WrapOutput& o) { return before.ImportKey(Bytes(64, 9), o); }).value();
  auto eph = Call([&](const WrapOutput& o) { return before.PrepareKey(lt, o); }).value();
  const KeyWrapping after = Hw(kSecretA);  // the same wrapping_key_file, a new start
  EXPECT_EQ(after.UnwrapForKeyslot(eph).status().code(), EBADMSG);
  auto again = Call([&](const WrapOutput& o) { return after.PrepareKey(lt, o); });
  ASSERT_TRUE(again.ok());
  auto raw = after.UnwrapForKeyslot(*again);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(std::vector<uint8_t>(raw->data(), raw->data() + raw->size()), Bytes(64, 9));
  // Without a wrapping_key_file, even long-term blobs die with the daemon.
  const KeyWrapping random1 = KeyWrapping::Create({}).value();
  const KeyWrapping random2 = KeyWrapping::Create({}).value();
  auto lt1 = Call([&](const WrapOutput& o) { return random1.ImportKey(Bytes(64, 9), o); }).value();
  EXPECT_EQ(Call([&](const WrapOutput& o) { return random2.PrepareKey(lt1, o); }).status().code(),
            EBADMSG);
  EXPECT_EQ(KeyWrapping::Create(Bytes(31, 1)).status().code(), EINVAL);
}

}  // namespace
}  // namespace ice
