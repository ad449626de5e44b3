// NCCL communicator (built with -DSD2_WITH_NCCL=ON). On a machine without a GPU it checks that
// set-up fails with a clear error instead of crashing; with GPUs (one per rank: run under
// `mpirun -np N` with N <= visible GPUs) it checks the collectives on device buffers.
#include "worker/comm/nccl_communicator.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include <string>
#include <vector>

namespace sd2::worker {
namespace {

int VisibleGpus() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

int LocalRank() {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"})
    if (const char* s = std::getenv(v)) return std::atoi(s);
  return 0;
}

TEST(NcclCommunicatorTest, WithoutAGpuSetUpFailsClearly) {
  if (VisibleGpus() > 0) GTEST_SKIP() << "this machine has a GPU";
  auto comm = MakeNcclCommunicator(MPI_COMM_WORLD, 0, /*timeout_s=*/10);
  ASSERT_FALSE(comm.ok());
  EXPECT_EQ(comm.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(comm.status().message().find("no usable CUDA device"), std::string::npos)
      << comm.status();
}

TEST(NcclCommunicatorTest, DeviceBufferCollectives) {
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (VisibleGpus() < 1) GTEST_SKIP() << "needs a GPU per rank";
  const int device = LocalRank() % VisibleGpus();
  auto made = MakeNcclCommunicator(MPI_COMM_WORLD, device, /*timeout_s=*/60);
  ASSERT_TRUE(made.ok()) << made.status();
  auto& comm = *made;
  EXPECT_EQ(comm->backend(), "nccl");
  EXPECT_TRUE(comm->device_buffers());
  const int r = comm->rank(), n = comm->size();
  const size_t len = (size_t(1) << 20) + 3;  // > one NCCL chunk, odd length
  std::vector<float> host(len, float(r + 1));
  float* dev = nullptr;
  ASSERT_EQ(cudaMalloc(&dev, len * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dev, host.data(), len * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_TRUE(comm->AllReduceSum(dev, len).ok());
  ASSERT_EQ(cudaMemcpy(host.data(), dev, len * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_FLOAT_EQ(host.front(), n * (n + 1) / 2.0f);
  EXPECT_FLOAT_EQ(host.back(), n * (n + 1) / 2.0f);
  float* gathered = nullptr;
  ASSERT_EQ(cudaMalloc(&gathered, size_t(n) * 4 * sizeof(float)), cudaSuccess);
  std::vector<float> mine = {float(r), float(10 * r), 1, 2};
  ASSERT_EQ(cudaMemcpy(dev, mine.data(), 4 * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_TRUE(comm->AllGather(dev, 4, gathered).ok());
  std::vector<float> all(size_t(n) * 4);
  ASSERT_EQ(cudaMemcpy(all.data(), gathered, all.size() * sizeof(float), cudaMemcpyDeviceToHost),
            cudaSuccess);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(all[size_t(4 * i)], float(i));
    EXPECT_EQ(all[size_t(4 * i + 1)], float(10 * i));
  }
  std::string s = r == 0 ? "from root" : "";
  ASSERT_TRUE(comm->Broadcast(&s, 0).ok());
  EXPECT_EQ(s, "from root");
  EXPECT_TRUE(comm->Barrier().ok());
  cudaFree(dev);
  cudaFree(gathered);
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
