// The device rule of worker/runtime/devices.h: local ranks from each launcher's variable,
// CUDA_VISIBLE_DEVICES with all of a node's GPUs or one per rank, and the refusals.
#include "worker/runtime/devices.h"

#include <gtest/gtest.h>

#include <map>

namespace sd2::worker {
namespace {

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

DeviceRequest Cuda(int visible, int local_rank, int local_ranks) {
  DeviceRequest r;
  r.devices = "cuda";
  r.visible_devices = visible;
  r.node_local_rank = local_rank;
  r.node_local_ranks = local_ranks;
  return r;
}

TEST(LocalRankFromEnv, TakesTheFirstVariableSetInOrder) {
  auto none = LocalRankFromEnv(Env({}));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
  for (const char* name : kLocalRankVariables) {
    auto r = LocalRankFromEnv(Env({{name, "5"}}));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(r->has_value()) << name;
    EXPECT_EQ((*r)->rank, 5);
    EXPECT_EQ((*r)->source, name);
  }
  auto both = LocalRankFromEnv(Env({{"LOCAL_RANK", "1"}, {"SLURM_LOCALID", "3"}}));
  ASSERT_TRUE(both.ok());
  EXPECT_EQ((*both)->rank, 3);
  EXPECT_EQ((*both)->source, "SLURM_LOCALID");
  auto ompi = LocalRankFromEnv(
      Env({{"OMPI_COMM_WORLD_LOCAL_RANK", "2"}, {"SLURM_LOCALID", "0"}, {"LOCAL_RANK", "7"}}));
  ASSERT_TRUE(ompi.ok());
  EXPECT_EQ((*ompi)->rank, 2);
}

TEST(LocalRankFromEnv, RefusesValuesThatAreNotRanks) {
  for (const char* bad : {"", "-1", "x", "1.5", " 1", "12345678901"}) {
    auto r = LocalRankFromEnv(Env({{"SLURM_LOCALID", bad}}));
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(std::string("SLURM_LOCALID='") + bad + "'"),
              std::string::npos)
        << r.status();
  }
}

TEST(ResolveDevice, CpuNeedsNoGpu) {
  DeviceRequest r;
  auto b = ResolveDevice(r, Env({{"CUDA_VISIBLE_DEVICES", ""}}));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->device, "cpu");
  EXPECT_EQ(b->ordinal, -1);
  r.devices = "gpu";
  auto bad = ResolveDevice(r, Env({}));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("expected cpu or cuda"), std::string::npos);
}

TEST(ResolveDevice, EachLocalRankTakesItsOwnOrdinalWhenTheNodesGpusAreVisible) {
  // mpirun -np 8 on an 8-GPU node: every rank sees all eight.
  for (int r = 0; r < 8; ++r) {
    auto b = ResolveDevice(Cuda(8, 0, 8), Env({{"OMPI_COMM_WORLD_LOCAL_RANK", std::to_string(r)}}));
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->device, "cuda:" + std::to_string(r));
    EXPECT_EQ(b->ordinal, r);
    EXPECT_EQ(b->local_rank_source, "OMPI_COMM_WORLD_LOCAL_RANK");
    EXPECT_EQ(b->physical, std::to_string(r));
  }
  // srun under `#SBATCH --gpus-per-node=4`: Slurm lists the job's GPUs of this node.
  auto b = ResolveDevice(Cuda(4, 0, 4),
                         Env({{"SLURM_LOCALID", "2"}, {"CUDA_VISIBLE_DEVICES", "4,5,6,7"}}));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->device, "cuda:2");
  EXPECT_EQ(b->physical, "6");  // ordinal 2 of the visible list is the node's GPU 6
  EXPECT_NE(b->rule.find("local rank 2 (SLURM_LOCALID) of 4"), std::string::npos) << b->rule;
  // More GPUs than ranks: the first ones are used.
  auto spare = ResolveDevice(Cuda(8, 0, 2), Env({{"MPI_LOCALRANKID", "1"}}));
  ASSERT_TRUE(spare.ok());
  EXPECT_EQ(spare->device, "cuda:1");
}

TEST(ResolveDevice, WithoutVariablesMpisNodeLocalRankDecides) {
  auto b = ResolveDevice(Cuda(2, 1, 2), Env({}));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->device, "cuda:1");
  EXPECT_EQ(b->local_rank_source, "mpi");
  auto single = ResolveDevice(Cuda(1, 0, 1), Env({}));
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(single->device, "cuda:0");
}

TEST(ResolveDevice, OneDeviceBoundPerRankIsOrdinalZero) {
  // srun --gpus-per-task=1 / --gpu-bind=single:1: each rank sees only its own GPU.
  for (int r = 0; r < 4; ++r) {
    auto b = ResolveDevice(Cuda(1, 0, 4), Env({{"SLURM_LOCALID", std::to_string(r)},
                                               {"CUDA_VISIBLE_DEVICES", std::to_string(r)}}));
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->device, "cuda:0");
    EXPECT_EQ(b->physical, std::to_string(r));
  }
  auto uuid = ResolveDevice(Cuda(1, 0, 2),
                            Env({{"LOCAL_RANK", "1"}, {"CUDA_VISIBLE_DEVICES", "GPU-8f1c2b7a"}}));
  ASSERT_TRUE(uuid.ok());
  EXPECT_EQ(uuid->physical, "GPU-8f1c2b7a");
}

TEST(ResolveDevice, FewerGpusThanLocalRanksIsRefusedWithTheNumbers) {
  // Four ranks, two visible GPUs, node-wide list.
  auto b = ResolveDevice(
      Cuda(2, 0, 4), Env({{"OMPI_COMM_WORLD_LOCAL_RANK", "3"}, {"CUDA_VISIBLE_DEVICES", "0,1"}}));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kFailedPrecondition);
  const std::string m = b.status().message();
  EXPECT_NE(m.find("4 rank(s) on this node need one GPU each"), std::string::npos) << m;
  EXPECT_NE(m.find("sees 2 (CUDA_VISIBLE_DEVICES='0,1')"), std::string::npos) << m;
  EXPECT_NE(m.find("local rank 3 (OMPI_COMM_WORLD_LOCAL_RANK)"), std::string::npos) << m;
  // Even local rank 0, which would have a device, refuses: the group as a whole cannot run.
  auto zero = ResolveDevice(Cuda(2, 0, 4), Env({{"OMPI_COMM_WORLD_LOCAL_RANK", "0"}}));
  EXPECT_EQ(zero.status().code(), StatusCode::kFailedPrecondition);
  // One GPU without CUDA_VISIBLE_DEVICES, two ranks: they would share it.
  auto shared = ResolveDevice(Cuda(1, 0, 2), Env({{"LOCAL_RANK", "1"}}));
  ASSERT_FALSE(shared.ok());
  EXPECT_NE(shared.status().message().find("CUDA_VISIBLE_DEVICES not set"), std::string::npos);
}

TEST(ResolveDevice, NoCudaAtAllIsRefused) {
  auto none = ResolveDevice(Cuda(0, 0, 1), Env({{"CUDA_VISIBLE_DEVICES", ""}}));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(none.status().message().find("sees no GPU (CUDA_VISIBLE_DEVICES='')"),
            std::string::npos)
      << none.status();
  auto unbuilt = ResolveDevice(Cuda(-1, 0, 1), Env({}));
  ASSERT_FALSE(unbuilt.ok());
  EXPECT_NE(unbuilt.status().message().find("built without LibTorch"), std::string::npos);
}

TEST(ResolveDevice, ALocalRankBeyondTheNodesRanksIsRefused) {
  auto b = ResolveDevice(Cuda(8, 0, 2), Env({{"LOCAL_RANK", "5"}}));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(b.status().message().find("LOCAL_RANK says local rank 5, but MPI counts 2"),
            std::string::npos)
      << b.status();
  auto bad = ResolveDevice(Cuda(8, 0, 2), Env({{"SLURM_LOCALID", "one"}}));
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(VisibleDeviceList, SplitsAtCommas) {
  EXPECT_TRUE(VisibleDeviceList(Env({})).empty());
  EXPECT_TRUE(VisibleDeviceList(Env({{"CUDA_VISIBLE_DEVICES", ""}})).empty());
  EXPECT_EQ(VisibleDeviceList(Env({{"CUDA_VISIBLE_DEVICES", "3,1,,2"}})),
            (std::vector<std::string>{"3", "1", "2"}));
}

TEST(SlurmJobFromEnv, ReadsJobAndArrayIds) {
  SlurmJobIds none = SlurmJobFromEnv(Env({}));
  EXPECT_EQ(none.job_id, "");
  SlurmJobIds ids = SlurmJobFromEnv(Env(
      {{"SLURM_JOB_ID", "1240"}, {"SLURM_ARRAY_JOB_ID", "1234"}, {"SLURM_ARRAY_TASK_ID", "6"}}));
  EXPECT_EQ(ids.job_id, "1240");
  EXPECT_EQ(ids.array_job_id, "1234");
  EXPECT_EQ(ids.array_task_id, "6");
}

}  // namespace
}  // namespace sd2::worker
