// Runs under mpirun -np 2 (label mpi) and also as a single process.
#include "worker/comm/mpi_communicator.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <thread>
#include <vector>

namespace sd2::worker {
namespace {

TEST(MpiCommunicatorTest, AllReduceGatherBroadcast) {
  auto comm = MakeMpiCommunicator(MPI_COMM_WORLD);
  int r = comm->rank(), n = comm->size();
  std::vector<float> v = {float(r + 1), 2.0f};
  ASSERT_TRUE(comm->AllReduceSum(v.data(), v.size()).ok());
  EXPECT_FLOAT_EQ(v[0], n * (n + 1) / 2.0f);
  EXPECT_FLOAT_EQ(v[1], 2.0f * n);
  std::vector<float> in = {float(r), float(10 * r)}, out(2 * size_t(n));
  ASSERT_TRUE(comm->AllGather(in.data(), 2, out.data()).ok());
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(out[2 * i], float(i));
    EXPECT_EQ(out[2 * i + 1], float(10 * i));
  }
  std::string s = r == 0 ? std::string("spec from root") : std::string();
  ASSERT_TRUE(comm->Broadcast(&s, 0).ok());
  EXPECT_EQ(s, "spec from root");
  EXPECT_TRUE(comm->Barrier().ok());
}

// A peer that does not join a collective in time: DeadlineExceeded on the waiting rank, and
// every later collective fails at once (the group is torn down in real use).
TEST(MpiCommunicatorTest, CollectiveTimesOutWhenAPeerHangs) {
  if (MakeMpiCommunicator(MPI_COMM_WORLD)->size() < 2) GTEST_SKIP() << "needs mpirun -np 2";
  MPI_Comm dup;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  auto comm = MakeMpiCommunicator(dup, /*timeout_s=*/0.3);
  EXPECT_EQ(comm->backend(), "mpi");
  EXPECT_FALSE(comm->device_buffers());
  float x = 1;
  if (comm->rank() == 0) {
    auto t0 = std::chrono::steady_clock::now();
    Status s = comm->AllReduceSum(&x, 1);
    double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
    EXPECT_NE(s.message().find("timed out after 0.3 s"), std::string::npos) << s.ToString();
    EXPECT_GE(waited, 0.3);
    EXPECT_LT(waited, 1.5);
    EXPECT_EQ(comm->Barrier().code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(comm->AllReduceSum(&x, 1).code(), StatusCode::kFailedPrecondition);
    EXPECT_TRUE(TEST_WaitPendingCollectives(comm.get()));
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the "hung" rank
    EXPECT_TRUE(comm->AllReduceSum(&x, 1).ok());
  }
  EXPECT_TRUE(comm->Barrier().ok());
  MPI_Comm_free(&dup);
}

TEST(LocalCommunicatorTest, InjectedFailure) {
  auto comm = MakeLocalCommunicator(/*fail_after=*/1);
  float x = 1;
  EXPECT_TRUE(comm->AllReduceSum(&x, 1).ok());
  EXPECT_EQ(comm->AllReduceSum(&x, 1).code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace sd2::worker

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  MPI_Finalize();
  return rc;
}
