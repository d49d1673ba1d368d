#include "block/backend_factory.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "block/memory_backend.h"

namespace ice {
namespace {

TEST(BackendFactory, MemoryIsASparseDeviceOfTheSize) {
  auto r = OpenBackend("memory", 1 << 20);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->size_bytes(), 1u << 20);
  EXPECT_TRUE((*r)->supports_discard());
  std::vector<uint8_t> in(512, 0x5A), out(512);
  IoRequest w;
  w.op = IoOp::kWrite;
  w.offset_bytes = 1024;
  w.length_bytes = in.size();
  w.write_buf = in.data();
  ASSERT_TRUE((*r)->Submit(w).ok());
  IoRequest rd;
  rd.offset_bytes = 1024;
  rd.length_bytes = out.size();
  rd.read_buf = out.data();
  ASSERT_TRUE((*r)->Submit(rd).ok());
  EXPECT_EQ(out, in);
}

// Hardening 6: sizes no backend can serve are refused with a message, not an abort (a memory
// device of 2^63 - 512 bytes needed a chunk table of 2^50 bytes).
TEST(BackendFactory, Hardening6_SizesNoBackendCanServeAreRefused) {
  const uint64_t huge = uint64_t{INT64_MAX} - 511;  // 2^63 - 512
  auto memory = OpenBackend("memory", huge);
  ASSERT_FALSE(memory.ok());
  EXPECT_EQ(memory.status().code(), EINVAL);
  EXPECT_NE(memory.status().message().find("9223372036854775296 bytes is too large"),
            std::string::npos)
      << memory.status().message();
  for (const char* spec : {"memory", "file:/nonexistent-ice-dir/disk.img"}) {
    auto r = OpenBackend(spec, uint64_t{1} << 63);
    ASSERT_FALSE(r.ok()) << spec;
    EXPECT_EQ(r.status().code(), EINVAL) << spec;
    EXPECT_NE(r.status().message().find("INT64_MAX"), std::string::npos) << r.status().message();
  }
  auto largest = OpenBackend("memory", MemoryBackend::kMaxSizeBytes);
  ASSERT_TRUE(largest.ok()) << largest.status().ToString();
  EXPECT_EQ((*largest)->size_bytes(), MemoryBackend::kMaxSizeBytes);
  EXPECT_EQ(OpenBackend("memory", MemoryBackend::kMaxSizeBytes + 512).status().code(), EINVAL);
}

TEST(BackendFactory, FileCreatesTheFile) {
  std::string dir = "/tmp/ice-backend-factory-XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/disk.img";
  {
    auto r = OpenBackend("file:" + path, 1 << 20);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)->size_bytes(), 1u << 20);
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 1 << 20);
  }
  std::filesystem::remove_all(dir);
}

TEST(BackendFactory, FileErrorsComeFromTheBackend) {
  auto r = OpenBackend("file:/nonexistent-ice-dir/disk.img", 4096);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ENOENT);
}

TEST(BackendFactory, FileWithoutAPathIsEinval) {
  auto r = OpenBackend("file:", 4096);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EINVAL);
  EXPECT_NE(r.status().message().find("file:PATH"), std::string::npos) << r.status().ToString();
}

TEST(BackendFactory, NbdIsNotImplementedYet) {
  auto r = OpenBackend("nbd://localhost/disk", 4096);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ENOTSUP);
  EXPECT_NE(r.status().message().find("not implemented"), std::string::npos);
}

TEST(BackendFactory, UnknownSpecsAreEinvalNamingTheSpec) {
  for (const char* spec : {"", "Memory", "memory:", "ram", "file", "/tmp/disk.img"}) {
    auto r = OpenBackend(spec, 4096);
    ASSERT_FALSE(r.ok()) << spec;
    EXPECT_EQ(r.status().code(), EINVAL) << spec;
    EXPECT_NE(r.status().message().find(std::string("'") + spec + "'"), std::string::npos)
        << r.status().ToString();
  }
}

}  // namespace
}  // namespace ice
