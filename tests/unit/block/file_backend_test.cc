#include "block/file_backend.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace ice {
namespace {

std::vector<uint8_t> Pattern(uint64_t offset, uint64_t length, uint8_t seed) {
  std::vector<uint8_t> v(length);
  for (uint64_t i = 0; i < length; ++i) v[i] = static_cast<uint8_t>((offset + i) * 31 + seed);
  return v;
}

Status Write(BlockDevice& dev, uint64_t offset, const std::vector<uint8_t>& data,
             bool fua = false) {
  IoRequest req;
  req.op = IoOp::kWrite;
  req.offset_bytes = offset;
  req.length_bytes = data.size();
  req.write_buf = data.data();
  req.fua = fua;
  return dev.Submit(req);
}

Status ReadInto(BlockDevice& dev, uint64_t offset, std::vector<uint8_t>* out) {
  IoRequest req;
  req.op = IoOp::kRead;
  req.offset_bytes = offset;
  req.length_bytes = out->size();
  req.read_buf = out->data();
  return dev.Submit(req);
}

std::vector<uint8_t> Read(BlockDevice& dev, uint64_t offset, uint64_t length) {
  std::vector<uint8_t> v(length, 0xAA);
  Status s = ReadInto(dev, offset, &v);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return v;
}

Status Op(BlockDevice& dev, IoOp op, uint64_t offset, uint64_t length, bool fua = false) {
  IoRequest req;
  req.op = op;
  req.offset_bytes = offset;
  req.length_bytes = length;
  req.fua = fua;
  return dev.Submit(req);
}

bool AllZero(const std::vector<uint8_t>& v) {
  for (uint8_t b : v) {
    if (b != 0) return false;
  }
  return true;
}

// Reads the file through a descriptor of its own, not the backend's.
std::vector<uint8_t> ReadFile(const std::string& path, uint64_t offset, uint64_t length) {
  std::vector<uint8_t> v(length, 0xAA);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path;
  EXPECT_EQ(pread(fd, v.data(), length, static_cast<off_t>(offset)), static_cast<ssize_t>(length));
  close(fd);
  return v;
}

void MakeFile(const std::string& path, uint64_t size) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
  close(fd);
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  return static_cast<uint64_t>(st.st_size);
}

// A fresh directory under `parent` per test, removed afterwards.
class TempDirTest : public testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("/tmp"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static std::string MakeTempDir(const std::string& parent) {
    std::string tmpl = parent + "/ice-file-backend-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) return "";
    return tmpl;
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

using FileBackendTest = TempDirTest;

std::unique_ptr<FileBackend> OpenOk(const std::string& path, uint64_t size) {
  auto r = FileBackend::Open(path, size);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

TEST_F(FileBackendTest, CreatesAMissingFileAtSizeWithMode0600) {
  ASSERT_FALSE(dir_.empty());
  const std::string path = Path("disk.img");
  auto dev = OpenOk(path, 3 << 20);
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->size_bytes(), 3u << 20);
  EXPECT_EQ(dev->path(), path);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_size, 3 << 20);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_TRUE(AllZero(Read(*dev, 0, 3 << 20)));
  // Created sparse: the size costs no blocks.
  EXPECT_EQ(st.st_blocks, 0);
}

TEST_F(FileBackendTest, RefusesAFileSmallerThanConfigured) {
  const std::string path = Path("small.img");
  MakeFile(path, 4096);
  auto r = FileBackend::Open(path, 8192);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EINVAL);
  EXPECT_NE(r.status().message().find("4096"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("8192"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().ToString();
  EXPECT_EQ(FileSize(path), 4096u);  // Left as it was.
}

TEST_F(FileBackendTest, ServesTheConfiguredSizeOfALargerFile) {
  const std::string path = Path("large.img");
  MakeFile(path, 16384);
  auto dev = OpenOk(path, 8192);
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->size_bytes(), 8192u);
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ(Write(*dev, 8192, buf).code(), EINVAL);  // Beyond the configured size.
  EXPECT_EQ(Write(*dev, 4096, buf).code(), 0);
  EXPECT_EQ(FileSize(path), 16384u);
}

TEST_F(FileBackendTest, RoundTripAtOddOffsetsAndLengths) {
  auto dev = OpenOk(Path("disk.img"), 1 << 20);
  ASSERT_NE(dev, nullptr);
  const struct {
    uint64_t offset, length;
  } cases[] = {{0, 1}, {1, 511}, {4095, 2}, {12345, 67891}, {(1 << 20) - 7, 7}};
  uint8_t seed = 0;
  for (const auto& c : cases) {
    const auto data = Pattern(c.offset, c.length, ++seed);
    ASSERT_TRUE(Write(*dev, c.offset, data).ok());
    EXPECT_EQ(Read(*dev, c.offset, c.length), data) << c.offset << "+" << c.length;
  }
  // Unwritten bytes between the cases read as zeros.
  EXPECT_TRUE(AllZero(Read(*dev, 100000, 4096)));
}

TEST_F(FileBackendTest, DataSurvivesCloseAndReopen) {
  const std::string path = Path("disk.img");
  const auto data = Pattern(777, 100000, 4);
  {
    auto dev = OpenOk(path, 1 << 20);
    ASSERT_NE(dev, nullptr);
    ASSERT_TRUE(Write(*dev, 777, data).ok());
    ASSERT_TRUE(Op(*dev, IoOp::kFlush, 0, 0).ok());
  }
  auto dev = OpenOk(path, 1 << 20);
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(Read(*dev, 777, data.size()), data);
  EXPECT_EQ(FileSize(path), 1u << 20);
}

TEST_F(FileBackendTest, N4_FlushAndFuaPutTheDataInTheFile) {
  const std::string path = Path("disk.img");
  auto dev = OpenOk(path, 1 << 20);
  ASSERT_NE(dev, nullptr);
  const auto fua_data = Pattern(8192, 5000, 1);
  ASSERT_TRUE(Write(*dev, 8192, fua_data, /*fua=*/true).ok());
  EXPECT_EQ(ReadFile(path, 8192, fua_data.size()), fua_data);

  const auto plain = Pattern(65536, 3000, 2);
  ASSERT_TRUE(Write(*dev, 65536, plain).ok());
  ASSERT_TRUE(Op(*dev, IoOp::kFlush, 0, 0).ok());
  EXPECT_EQ(ReadFile(path, 65536, plain.size()), plain);

  ASSERT_TRUE(Op(*dev, IoOp::kWriteZeroes, 8192, 100, /*fua=*/true).ok());
  EXPECT_TRUE(AllZero(ReadFile(path, 8192, 100)));
  ASSERT_TRUE(Op(*dev, IoOp::kDiscard, 0, 4096, /*fua=*/true).ok());
}

void CheckZeroingOp(BlockDevice& dev, IoOp op) {
  const auto data = Pattern(0, 256 << 10, 6);
  ASSERT_TRUE(Write(dev, 0, data).ok());
  // Odd bounds: fallocate must zero partial blocks as well.
  const uint64_t start = 1000, end = (200 << 10) + 3;
  ASSERT_TRUE(Op(dev, op, start, end - start).ok());
  EXPECT_TRUE(AllZero(Read(dev, start, end - start)));
  EXPECT_EQ(Read(dev, 0, start), std::vector<uint8_t>(data.begin(), data.begin() + start));
  EXPECT_EQ(Read(dev, end, data.size() - end),
            std::vector<uint8_t>(data.begin() + end, data.end()));
}

TEST_F(FileBackendTest, WriteZeroesReadsBackZeros) {
  auto dev = OpenOk(Path("disk.img"), 1 << 20);
  ASSERT_NE(dev, nullptr);
  CheckZeroingOp(*dev, IoOp::kWriteZeroes);
}

TEST_F(FileBackendTest, DiscardPunchesAHole) {
  const std::string path = Path("disk.img");
  auto dev = OpenOk(path, 1 << 20);
  ASSERT_NE(dev, nullptr);
  EXPECT_TRUE(dev->supports_discard());
  CheckZeroingOp(*dev, IoOp::kDiscard);  // /tmp punches holes (ext4, tmpfs, xfs, btrfs all do).

  ASSERT_TRUE(Write(*dev, 0, Pattern(0, 1 << 20, 8)).ok());
  ASSERT_TRUE(Op(*dev, IoOp::kFlush, 0, 0).ok());
  struct stat before, after;
  ASSERT_EQ(stat(path.c_str(), &before), 0);
  ASSERT_TRUE(Op(*dev, IoOp::kDiscard, 0, 1 << 20).ok());
  ASSERT_EQ(stat(path.c_str(), &after), 0);
  EXPECT_LT(after.st_blocks, before.st_blocks);
  EXPECT_EQ(after.st_size, 1 << 20);  // KEEP_SIZE.
}

// Issue 19 (N6): the file's holes are reported, so that copies stay sparse.
TEST_F(FileBackendTest, Issue19_ExtentsReportTheFilesHoles) {
  const std::string path = Path("sparse.img");
  auto dev = OpenOk(path, 4 << 20);
  ASSERT_NE(dev, nullptr);
  std::vector<std::pair<uint64_t, bool>> got;
  auto extents = [&](uint64_t off, uint64_t len) {
    got.clear();
    EXPECT_TRUE(dev->Extents(off, len,
                             [&](uint64_t n, bool hole) {
                               got.emplace_back(n, hole);
                               return true;
                             })
                    .ok());
    return got;
  };
  using V = std::vector<std::pair<uint64_t, bool>>;
  EXPECT_EQ(extents(0, 4 << 20), (V{{4 << 20, true}}));
  ASSERT_TRUE(Write(*dev, 1 << 20, Pattern(0, 1 << 20, 3)).ok());
  ASSERT_TRUE(Op(*dev, IoOp::kFlush, 0, 0).ok());
  EXPECT_EQ(extents(0, 4 << 20), (V{{1 << 20, true}, {1 << 20, false}, {2 << 20, true}}));
  EXPECT_EQ(extents((1 << 20) + 512, 4096), (V{{4096, false}}));
}

// tmpfs refuses FALLOC_FL_ZERO_RANGE: write-zeroes falls back to punching a hole.
TEST_F(FileBackendTest, WriteZeroesOnTmpfsFallsBack) {
  if (access("/dev/shm", W_OK) != 0) GTEST_SKIP() << "no writable /dev/shm";
  const std::string dir = MakeTempDir("/dev/shm");
  ASSERT_FALSE(dir.empty());
  {
    auto dev = OpenOk(dir + "/disk.img", 1 << 20);
    ASSERT_NE(dev, nullptr);
    CheckZeroingOp(*dev, IoOp::kWriteZeroes);
    CheckZeroingOp(*dev, IoOp::kWriteZeroes);  // Again, with the refused mode remembered.
  }
  std::filesystem::remove_all(dir);
}

TEST_F(FileBackendTest, ConcurrentWritersToDisjointRanges) {
  constexpr int kThreads = 4;
  constexpr uint64_t kBlock = 4099;
  constexpr uint64_t kBlocksPerThread = 100;
  auto dev = OpenOk(Path("disk.img"), kThreads * kBlocksPerThread * kBlock);
  ASSERT_NE(dev, nullptr);
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < kBlocksPerThread; ++i) {
        const uint64_t offset = (i * kThreads + t) * kBlock;
        const auto data = Pattern(offset, kBlock, static_cast<uint8_t>(t));
        if (!Write(*dev, offset, data, /*fua=*/i % 10 == 0).ok() ||
            Read(*dev, offset, kBlock) != data) {
          ++failures[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  for (uint64_t b = 0; b < kThreads * kBlocksPerThread; ++b) {
    const uint64_t offset = b * kBlock;
    ASSERT_EQ(Read(*dev, offset, kBlock),
              Pattern(offset, kBlock, static_cast<uint8_t>(b % kThreads)))
        << "block " << b;
  }
}

TEST_F(FileBackendTest, OpenErrorsAreReturned) {
  auto missing_dir = FileBackend::Open(Path("no/such/dir/disk.img"), 4096);
  ASSERT_FALSE(missing_dir.ok());
  EXPECT_EQ(missing_dir.status().code(), ENOENT);
  EXPECT_NE(missing_dir.status().message().find("no/such/dir"), std::string::npos);

  auto directory = FileBackend::Open(dir_, 4096);
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.status().code(), EISDIR);

  auto char_device = FileBackend::Open("/dev/null", 4096);
  ASSERT_FALSE(char_device.ok());
  EXPECT_EQ(char_device.status().code(), EINVAL);
}

// Root ignores permission bits, but not the file size limit: RLIMIT_FSIZE makes writes beyond it
// fail with EFBIG (SIGXFSZ ignored), which is how these tests provoke real OS errors.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t limit) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = signal(SIGXFSZ, SIG_IGN);
    struct rlimit r = saved_;
    r.rlim_cur = limit;
    ok_ = setrlimit(RLIMIT_FSIZE, &r) == 0;
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    signal(SIGXFSZ, old_handler_);
  }
  bool ok() const { return ok_; }

 private:
  struct rlimit saved_;
  sighandler_t old_handler_;
  bool ok_;
};

TEST_F(FileBackendTest, WriteErrorsAreReturnedWithPathAndOffset) {
  const std::string path = Path("disk.img");
  auto dev = OpenOk(path, 1 << 20);
  ASSERT_NE(dev, nullptr);
  const auto data = Pattern(0, 4096, 1);
  FileSizeLimit limit(512 << 10);
  ASSERT_TRUE(limit.ok());
  EXPECT_TRUE(Write(*dev, 0, data).ok());  // Below the limit.

  Status s = Write(*dev, 600 << 10, data);
  EXPECT_EQ(s.code(), EFBIG) << s.ToString();
  EXPECT_NE(s.message().find("pwrite " + path + " at " + std::to_string(600 << 10)),
            std::string::npos)
      << s.ToString();

  Status fua = Write(*dev, 600 << 10, data, /*fua=*/true);
  EXPECT_EQ(fua.code(), EFBIG) << fua.ToString();

  // A write straddling the limit writes what it can, then reports the failure at the limit.
  Status straddle = Write(*dev, (512 << 10) - 100, data);
  EXPECT_EQ(straddle.code(), EFBIG) << straddle.ToString();
  EXPECT_NE(straddle.message().find(" at " + std::to_string(512 << 10)), std::string::npos)
      << straddle.ToString();
}

TEST_F(FileBackendTest, CreationFailureLeavesNoFile) {
  const std::string path = Path("disk.img");
  FileSizeLimit limit(1 << 20);
  ASSERT_TRUE(limit.ok());
  auto r = FileBackend::Open(path, 2 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EFBIG) << r.status().ToString();
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

TEST_F(FileBackendTest, ReadOfAFileShrunkUnderneathIsEio) {
  const std::string path = Path("disk.img");
  auto dev = OpenOk(path, 1 << 20);
  ASSERT_NE(dev, nullptr);
  ASSERT_EQ(truncate(path.c_str(), 4096), 0);
  std::vector<uint8_t> buf(4096);
  Status s = ReadInto(*dev, 8192, &buf);
  EXPECT_EQ(s.code(), EIO) << s.ToString();
  EXPECT_NE(s.message().find("end of file"), std::string::npos) << s.ToString();
}

TEST_F(FileBackendTest, CryptoContextIsRefusedWithEio) {
  const std::string path = Path("disk.img");
  auto dev = OpenOk(path, 1 << 20);
  ASSERT_NE(dev, nullptr);
  std::vector<uint8_t> buf(4096, 1);
  for (IoOp op : {IoOp::kRead, IoOp::kWrite, IoOp::kWriteZeroes}) {
    IoRequest req;
    req.op = op;
    req.length_bytes = buf.size();
    req.read_buf = buf.data();
    req.write_buf = buf.data();
    req.crypt = CryptoContext{};
    Status s = dev->Submit(req);
    EXPECT_EQ(s.code(), EIO) << IoOpName(op);
    EXPECT_NE(s.message().find("crypto context"), std::string::npos) << s.ToString();
  }
  EXPECT_TRUE(AllZero(ReadFile(path, 0, 4096)));
}

}  // namespace
}  // namespace ice
