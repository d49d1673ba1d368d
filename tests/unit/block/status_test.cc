#include "block/status.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace ice {
namespace {

TEST(Status, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), 0);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(Status, ErrorCarriesErrnoAndMessage) {
  Status s = Status::Error(EINVAL, "bad data unit size 1000");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), EINVAL);
  EXPECT_EQ(s.ToString(), "EINVAL: bad data unit size 1000");
  EXPECT_EQ(s.WithContext("key k1").ToString(), "EINVAL: key k1: bad data unit size 1000");
}

Result<int> Half(int v) {
  if (v % 2) return Status::Error(EINVAL, "odd");
  return v / 2;
}

Result<int> Quarter(int v) {
  ICE_ASSIGN_OR_RETURN(int h, Half(v));
  return Half(h);
}

TEST(Result, ValueOrError) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EINVAL);
}

}  // namespace
}  // namespace ice
