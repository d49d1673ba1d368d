#include "block/backend_factory.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

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
