#include "keyslot/data_unit_cipher.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "keyslot/data_unit_cipher_iv.h"

namespace ice {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes FromHex(const std::string& hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::string ToHex(const uint8_t* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

std::string Sha256Hex(const Bytes& data) {
  uint8_t md[32];
  unsigned n = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr), 1);
  return ToHex(md, n);
}

// The plaintext pattern the offline python3-cryptography constants below were made from.
Bytes Pattern(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 31 + 7);
  return b;
}

Bytes XtsKey() {
  Bytes k(64);
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(7 * i + 3);
  return k;
}

Bytes EssivKey() {
  Bytes k(16);
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(0x10 + i);
  return k;
}

KeyPtr MakeKey(CryptoMode mode, const Bytes& raw, uint32_t data_unit_size, unsigned dun_bytes) {
  auto key = CryptoKey::Create({mode, data_unit_size, dun_bytes, KeyType::kRaw}, raw);
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  return key.ok() ? *key : nullptr;
}

std::unique_ptr<DataUnitCipher> MakeCipher(const CryptoKey& key) {
  auto cipher = DataUnitCipher::Create(key);
  EXPECT_TRUE(cipher.ok()) << cipher.status().ToString();
  return cipher.ok() ? std::move(cipher).value() : nullptr;
}

Bytes Encrypt(const DataUnitCipher& c, const Dun& dun, const Bytes& in) {
  Bytes out(in.size());
  Status s = c.Encrypt(dun, in.data(), out.data(), in.size());
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

Bytes Decrypt(const DataUnitCipher& c, const Dun& dun, const Bytes& in) {
  Bytes out(in.size());
  Status s = c.Decrypt(dun, in.data(), out.data(), in.size());
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

Bytes Slice(const Bytes& b, size_t off, size_t n) {
  return Bytes(b.begin() + static_cast<long>(off), b.begin() + static_cast<long>(off + n));
}

// ---- Reference computations: a fresh EVP context per call, not the product's pooled contexts.

Bytes RefCipher(const EVP_CIPHER* cipher, const Bytes& key, const uint8_t* iv, const Bytes& in,
                int enc) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  Bytes out(in.size() + 32);
  int n1 = 0, n2 = 0;
  EXPECT_EQ(EVP_CipherInit_ex(ctx, cipher, nullptr, key.data(), iv, enc), 1);
  EVP_CIPHER_CTX_set_padding(ctx, 0);
  EXPECT_EQ(EVP_CipherUpdate(ctx, out.data(), &n1, in.data(), static_cast<int>(in.size())), 1);
  EXPECT_EQ(EVP_CipherFinal_ex(ctx, out.data() + n1, &n2), 1);
  EVP_CIPHER_CTX_free(ctx);
  out.resize(static_cast<size_t>(n1 + n2));
  return out;
}

Bytes RefIv(const Dun& dun) {
  Bytes iv(16);
  for (int w = 0; w < 2; ++w) {
    for (int b = 0; b < 8; ++b) iv[w * 8 + b] = static_cast<uint8_t>(dun.words[w] >> (8 * b));
  }
  return iv;
}

Bytes RefXtsUnit(const Bytes& key, const Dun& dun, const Bytes& unit) {
  return RefCipher(EVP_aes_256_xts(), key, RefIv(dun).data(), unit, 1);
}

Bytes RefEssivUnit(const Bytes& key, const Dun& dun, const Bytes& unit) {
  Bytes salt(32);
  unsigned n = 0;
  EXPECT_EQ(EVP_Digest(key.data(), key.size(), salt.data(), &n, EVP_sha256(), nullptr), 1);
  const Bytes iv = RefCipher(EVP_aes_256_ecb(), salt, nullptr, RefIv(dun), 1);
  return RefCipher(EVP_aes_128_cbc(), key, iv.data(), unit, 1);
}

// IEEE Std 1619-2007 vector 10 (XTS-AES-256, 512-byte data unit, data unit sequence number 0xff),
// as in the kernel's crypto/testmgr.h (aes_xts_tv_template); the kernel carries no other
// XTS-AES-256 vector of that annex.
const char kIeee10Key[] =
    "2718281828459045235360287471352662497757247093699959574966967627"
    "3141592653589793238462643383279502884197169399375105820974944592";
const char kIeee10Ciphertext[] =
    "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b"
    "5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd"
    "5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0"
    "c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca"
    "2a3e7a7d7df7b10355165c8b9a6d0a7de8b062c4500dc4cd120c0f7418dae3d0"
    "b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f"
    "93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec"
    "583e9645e07b8d9670655ba5bbcfecc6dc3966380ad8fecb17b6ba02469a020a"
    "84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1"
    "505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae"
    "9be69a2ffeceb1bec9de244fbe15992b11b77c040f12bd8f6a975a44a0f90c29"
    "a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac"
    "6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f"
    "645e8b7e9bfdef33943054ff84011493c27b3429eaedb4ed5376441a77ed4385"
    "1ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa"
    "773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151";

TEST(DataUnitCipher, C5_XtsIeee1619Vector10) {
  Bytes plaintext(512);
  for (size_t i = 0; i < plaintext.size(); ++i) plaintext[i] = static_cast<uint8_t>(i);
  const Bytes ciphertext = FromHex(kIeee10Ciphertext);
  ASSERT_EQ(ciphertext.size(), 512u);
  auto key = MakeKey(CryptoMode::kAes256Xts, FromHex(kIeee10Key), 512, 1);
  auto cipher = MakeCipher(*key);
  ASSERT_NE(cipher, nullptr);
  EXPECT_EQ(Encrypt(*cipher, Dun::FromU64(0xff), plaintext), ciphertext);
  EXPECT_EQ(Decrypt(*cipher, Dun::FromU64(0xff), ciphertext), plaintext);
}

// Generated once, offline, with Debian 12's python3-cryptography 38.0.4 (/usr/bin/python3):
//   key[i] = (7*i + 3) & 0xff (64 bytes); plaintext[i] = (31*i + 7) & 0xff (8192 bytes);
//   for each 4096-byte unit u in 0, 1:
//     Cipher(algorithms.AES(key), modes.XTS(iv_u)).encryptor(), with iv_u = the 16-byte
//     little-endian DUN {0x0123456789abcdef, 0xfedcba9876543210} + u;
//   then hashlib.sha256(ciphertext).hexdigest() and ciphertext[4096:4112].hex().
TEST(DataUnitCipher, C5_XtsMatchesPythonCryptography) {
  auto key = MakeKey(CryptoMode::kAes256Xts, XtsKey(), 4096, 16);
  auto cipher = MakeCipher(*key);
  ASSERT_NE(cipher, nullptr);
  const Bytes ct =
      Encrypt(*cipher, Dun{{0x0123456789abcdefull, 0xfedcba9876543210ull, 0, 0}}, Pattern(8192));
  EXPECT_EQ(ToHex(ct.data() + 4096, 16), "f6727c56968beb4e48da60dd042d2ab5");
  EXPECT_EQ(Sha256Hex(ct), "dd3e9361b76850be3563a3f9af63abda239cd8ae9fda10350e17b010538de7db");
}

// Generated the same way with key[i] = 0x10 + i (16 bytes) and, per 4096-byte unit u in 0, 1:
//   salt = hashlib.sha256(key).digest();
//   iv_u = AES(salt) in ECB mode over the 16-byte little-endian DUN {2^64 - 1, 0x99} + u;
//   Cipher(algorithms.AES(key), modes.CBC(iv_u)).encryptor() over the unit.
TEST(DataUnitCipher, C5_EssivMatchesPythonCryptography) {
  auto key = MakeKey(CryptoMode::kAes128CbcEssiv, EssivKey(), 4096, 16);
  auto cipher = MakeCipher(*key);
  ASSERT_NE(cipher, nullptr);
  const Bytes ct = Encrypt(*cipher, Dun{{~0ull, 0x99, 0, 0}}, Pattern(8192));
  EXPECT_EQ(ToHex(ct.data() + 4096, 16), "0bcdf36be9f572cafb160e66faa282cf");
  EXPECT_EQ(Sha256Hex(ct), "892a92beea2b6c6efcc77ea33eb28368124a61be0bf23946089fc8dae27a8a94");
}

TEST(DataUnitCipher, C5_EssivMatchesIndependentComputation) {
  for (uint32_t unit : {512u, 4096u}) {
    auto key = MakeKey(CryptoMode::kAes128CbcEssiv, EssivKey(), unit, 8);
    auto cipher = MakeCipher(*key);
    ASSERT_NE(cipher, nullptr);
    for (uint64_t dun : {0ull, 1ull, 0x0102030405060708ull}) {
      const Bytes pt = Pattern(unit);
      const Bytes ct = Encrypt(*cipher, Dun::FromU64(dun), pt);
      EXPECT_EQ(ct, RefEssivUnit(EssivKey(), Dun::FromU64(dun), pt)) << unit << " " << dun;
      EXPECT_EQ(Decrypt(*cipher, Dun::FromU64(dun), ct), pt);
    }
  }
}

TEST(DataUnitCipher, C5_XtsIvIsLittleEndianDun) {
  auto key = MakeKey(CryptoMode::kAes256Xts, XtsKey(), 512, 16);
  auto cipher = MakeCipher(*key);
  ASSERT_NE(cipher, nullptr);
  const Dun dun{{0x1122334455667788ull, 0x99aabbccddeeff00ull, 0, 0}};
  const Bytes pt = Pattern(512);
  const Bytes iv = FromHex(
      "8877665544332211"
      "00ffeeddccbbaa99");
  EXPECT_EQ(Encrypt(*cipher, dun, pt), RefCipher(EVP_aes_256_xts(), XtsKey(), iv.data(), pt, 1));
}

// The essential property of an ESSIV data unit: its IV is secret-derived, not the DUN itself.
TEST(DataUnitCipher, C5_EssivIvIsNotThePlainDun) {
  auto key = MakeKey(CryptoMode::kAes128CbcEssiv, EssivKey(), 512, 8);
  auto cipher = MakeCipher(*key);
  ASSERT_NE(cipher, nullptr);
  const Bytes pt = Pattern(512);
  EXPECT_NE(Encrypt(*cipher, Dun::FromU64(5), pt),
            RefCipher(EVP_aes_128_cbc(), EssivKey(), RefIv(Dun::FromU64(5)).data(), pt, 1));
}

struct ModeCase {
  CryptoMode mode;
  Bytes key;
};

std::vector<ModeCase> Modes() {
  return {{CryptoMode::kAes256Xts, XtsKey()}, {CryptoMode::kAes128CbcEssiv, EssivKey()}};
}

Bytes RefUnit(CryptoMode mode, const Bytes& key, const Dun& dun, const Bytes& unit) {
  return mode == CryptoMode::kAes256Xts ? RefXtsUnit(key, dun, unit) : RefEssivUnit(key, dun, unit);
}

TEST(DataUnitCipher, C4_DunAdvancesPerUnitWithCarryAcrossWords) {
  const uint32_t unit = 512;
  const Dun first{{~0ull, 0, 0, 0}};
  const Dun expected[3] = {first, Dun{{0, 1, 0, 0}}, Dun{{1, 1, 0, 0}}};
  for (const auto& m : Modes()) {
    auto key = MakeKey(m.mode, m.key, unit, 16);
    auto cipher = MakeCipher(*key);
    ASSERT_NE(cipher, nullptr);
    const Bytes pt = Pattern(3 * unit);
    const Bytes whole = Encrypt(*cipher, first, pt);
    for (int u = 0; u < 3; ++u) {
      const Bytes piece = Slice(pt, u * unit, unit);
      // Encrypting three units at once equals encrypting each separately with its own DUN...
      EXPECT_EQ(Slice(whole, u * unit, unit), Encrypt(*cipher, expected[u], piece)) << u;
      // ...and that DUN is the carried one, checked against an independent computation.
      EXPECT_EQ(Slice(whole, u * unit, unit), RefUnit(m.mode, m.key, expected[u], piece)) << u;
    }
    EXPECT_EQ(Decrypt(*cipher, first, whole), pt);
  }
}

TEST(DataUnitCipher, C4_DunWrapsAt2To256) {
  const uint32_t unit = 512;
  const Dun last{{~0ull, ~0ull, ~0ull, ~0ull}};
  for (const auto& m : Modes()) {
    auto key = MakeKey(m.mode, m.key, unit, 16);
    auto cipher = MakeCipher(*key);
    ASSERT_NE(cipher, nullptr);
    const Bytes pt = Pattern(2 * unit);
    const Bytes whole = Encrypt(*cipher, last, pt);
    EXPECT_EQ(Slice(whole, unit, unit), Encrypt(*cipher, Dun{}, Slice(pt, unit, unit)));
  }
}

TEST(DataUnitCipher, RoundTripsAtEveryDataUnitSize) {
  for (const auto& m : Modes()) {
    for (uint32_t unit : {512u, 1024u, 4096u, 65536u}) {
      auto key = MakeKey(m.mode, m.key, unit, 8);
      auto cipher = MakeCipher(*key);
      ASSERT_NE(cipher, nullptr);
      EXPECT_EQ(cipher->data_unit_size(), unit);
      const Bytes pt = Pattern(2 * unit);
      const Bytes ct = Encrypt(*cipher, Dun::FromU64(77), pt);
      EXPECT_NE(ct, pt);
      EXPECT_NE(Slice(ct, 0, unit), Slice(ct, unit, unit)) << "units must get different IVs";
      EXPECT_EQ(Decrypt(*cipher, Dun::FromU64(77), ct), pt);
      EXPECT_NE(Decrypt(*cipher, Dun::FromU64(78), ct), pt);
    }
  }
}

TEST(DataUnitCipher, InPlaceAndOutOfPlaceAgree) {
  const uint32_t unit = 4096;
  for (const auto& m : Modes()) {
    auto key = MakeKey(m.mode, m.key, unit, 8);
    auto cipher = MakeCipher(*key);
    ASSERT_NE(cipher, nullptr);
    const Bytes pt = Pattern(4 * unit);
    Bytes in = pt;
    Bytes out(in.size());
    ASSERT_TRUE(cipher->Encrypt(Dun::FromU64(9), in.data(), out.data(), in.size()).ok());
    EXPECT_EQ(in, pt) << "the input buffer is unchanged";
    Bytes buf = pt;
    ASSERT_TRUE(cipher->Encrypt(Dun::FromU64(9), buf.data(), buf.data(), buf.size()).ok());
    EXPECT_EQ(buf, out);
    ASSERT_TRUE(cipher->Decrypt(Dun::FromU64(9), buf.data(), buf.data(), buf.size()).ok());
    EXPECT_EQ(buf, pt);
  }
}

TEST(DataUnitCipher, RejectsPartialDataUnits) {
  auto key = MakeKey(CryptoMode::kAes256Xts, XtsKey(), 4096, 8);
  auto cipher = MakeCipher(*key);
  ASSERT_NE(cipher, nullptr);
  Bytes buf(8192);
  EXPECT_EQ(cipher->Encrypt(Dun{}, buf.data(), buf.data(), 4096 + 512).code(), EINVAL);
  EXPECT_EQ(cipher->Decrypt(Dun{}, buf.data(), buf.data(), 100).code(), EINVAL);
  EXPECT_TRUE(cipher->Encrypt(Dun{}, buf.data(), buf.data(), 0).ok());
}

TEST(DataUnitCipher, OutlivesItsKey) {
  auto key = MakeKey(CryptoMode::kAes256Xts, XtsKey(), 512, 8);
  auto cipher = MakeCipher(*key);
  ASSERT_NE(cipher, nullptr);
  const Bytes expected = Encrypt(*cipher, Dun::FromU64(3), Pattern(512));
  key.reset();
  EXPECT_EQ(Encrypt(*cipher, Dun::FromU64(3), Pattern(512)), expected);
}

TEST(DataUnitCipher, C2_AdiantumIsNotSupported) {
  auto key = MakeKey(CryptoMode::kAdiantum, Bytes(32, 0x42), 4096, 8);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(DataUnitCipher::Create(*key).status().code(), ENOTSUP);
}

// OpenSSL 3.0 has no SM4-XTS: ENOTSUP. Where OpenSSL has it, the cipher must work.
TEST(DataUnitCipher, C2_Sm4XtsNeedsOpenSslSupport) {
  Bytes raw(32);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(i);
  auto key = MakeKey(CryptoMode::kSm4Xts, raw, 4096, 8);
  ASSERT_NE(key, nullptr);
  EVP_CIPHER* sm4 = EVP_CIPHER_fetch(nullptr, "SM4-XTS", nullptr);
  auto cipher = DataUnitCipher::Create(*key);
  if (sm4 == nullptr) {
    EXPECT_EQ(cipher.status().code(), ENOTSUP);
  } else {
    ASSERT_TRUE(cipher.ok()) << cipher.status().ToString();
    const Bytes pt = Pattern(8192);
    EXPECT_EQ(Decrypt(**cipher, Dun::FromU64(1), Encrypt(**cipher, Dun::FromU64(1), pt)), pt);
  }
  EVP_CIPHER_free(sm4);
}

TEST(DataUnitCipher, ConcurrentUseGivesCorrectResults) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  constexpr uint32_t kUnit = 4096;
  for (const auto& m : Modes()) {
    auto key = MakeKey(m.mode, m.key, kUnit, 8);
    auto cipher = MakeCipher(*key);
    ASSERT_NE(cipher, nullptr);
    const Bytes pt = Pattern(4 * kUnit);
    std::vector<Bytes> expected;
    for (int t = 0; t < kThreads; ++t) {
      expected.push_back(Encrypt(*cipher, Dun::FromU64(1000 * t), pt));
    }
    std::vector<int> failures(kThreads, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        Bytes out(pt.size()), back(pt.size());
        for (int r = 0; r < kRounds; ++r) {
          const bool ok =
              cipher->Encrypt(Dun::FromU64(1000 * t), pt.data(), out.data(), pt.size()).ok() &&
              cipher->Decrypt(Dun::FromU64(1000 * t), out.data(), back.data(), out.size()).ok();
          if (!ok || out != expected[t] || back != pt) ++failures[t];
        }
      });
    }
    for (auto& th : threads) th.join();
    for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  }
}

// The fast IV path (a store into the context's live IV) is self-tested per process; on OpenSSL 3.0
// it must pass, or ice silently loses ~8% of its XTS throughput.
TEST(DataUnitCipher, C5_LiveIvSelfTestPassesForAesXtsAndCbc) {
  EXPECT_TRUE(cipher_internal::LiveIvWorks(EVP_aes_256_xts()));
  EXPECT_TRUE(cipher_internal::LiveIvWorks(EVP_aes_128_cbc()));
  EXPECT_FALSE(cipher_internal::LiveIvWorks(EVP_aes_256_ecb())) << "ECB has no IV";
}

// Both IV paths give the same bytes: the EVP_CipherInit_ex2 path is what any OpenSSL whose
// provider fails the self-test runs.
TEST(DataUnitCipher, C5_InitIvPathMatchesLiveIvPath) {
  const uint32_t unit = 4096;
  const Dun first{{~0ull - 1, 7, 0, 0}};
  const Bytes pt = Pattern(5 * unit);
  for (const auto& m : Modes()) {
    auto key = MakeKey(m.mode, m.key, unit, 16);
    auto live = MakeCipher(*key);
    cipher_internal::AllowLiveIvForTesting(false);
    auto init = MakeCipher(*key);
    cipher_internal::AllowLiveIvForTesting(true);
    ASSERT_TRUE(live != nullptr && init != nullptr);
    const Bytes ct = Encrypt(*init, first, pt);
    EXPECT_EQ(ct, Encrypt(*live, first, pt));
    EXPECT_EQ(Slice(ct, 2 * unit, unit),
              RefUnit(m.mode, m.key, first.Plus(2), Slice(pt, 2 * unit, unit)));
    EXPECT_EQ(Decrypt(*init, first, ct), pt);
  }
  cipher_internal::AllowLiveIvForTesting(false);
  auto key = MakeKey(CryptoMode::kAes256Xts, FromHex(kIeee10Key), 512, 1);
  auto init = MakeCipher(*key);
  cipher_internal::AllowLiveIvForTesting(true);
  ASSERT_NE(init, nullptr);
  Bytes plaintext(512);
  for (size_t i = 0; i < plaintext.size(); ++i) plaintext[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(Encrypt(*init, Dun::FromU64(0xff), plaintext), FromHex(kIeee10Ciphertext));
}

}  // namespace
}  // namespace ice
