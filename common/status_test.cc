#include "common/status.h"

#include <gtest/gtest.h>

namespace sd2 {
namespace {

StatusOr<int> Half(int x) {
  if (x % 2) return InvalidArgumentError("odd");
  return x / 2;
}

Status UseHalf(int x, int* out) {
  SD2_ASSIGN_OR_RETURN(int h, Half(x));
  *out = h;
  return OkStatus();
}

TEST(StatusTest, OkAndError) {
  EXPECT_TRUE(OkStatus().ok());
  Status s = NotFoundError("x");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.ToString(), "NOT_FOUND: x");
  EXPECT_EQ(s.WithPrefix("file").message(), "file: x");
  EXPECT_EQ(ExitCodeFor(InvalidArgumentError("")), kExitBadInput);
  EXPECT_EQ(ExitCodeFor(InternalError("")), kExitFailure);
  EXPECT_EQ(ExitCodeFor(OkStatus()), kExitOk);
}

TEST(StatusTest, AssignOrReturn) {
  int out = 0;
  EXPECT_TRUE(UseHalf(8, &out).ok());
  EXPECT_EQ(out, 4);
  Status s = UseHalf(3, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(out, 4);
}

}  // namespace
}  // namespace sd2
