// sd2-worker: a worker group (under mpirun or alone), the local single-trial runner, and the
// mpirun sweep launch.
//
//   mpirun -np 2 sd2-worker --coordinator tcp://head:5557 [--work-dir D] [--idle-exit 60]
//   sd2-worker run --config trial.toml --out DIR
//   mpirun -np 4 sd2-worker --sweep sweep.toml --group-size 2 --db sd2.db
#include <mpi.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <thread>

#include "common/bounded_parse.h"
#include "coordinator/server.h"
#include "coordinator/submit.h"
#include "storage/store.h"
#include "worker/comm/mpi_communicator.h"
#ifdef SD2_HAVE_NCCL
#include "worker/comm/nccl_communicator.h"
#endif
#ifdef SD2_HAVE_MODELS
#include "worker/models/export.h"
#endif
#include "worker/runtime/devices.h"
#include "worker/runtime/runtime.h"

namespace {

using nlohmann::json;
namespace proto = sd2::protocol;

struct Flags {
  // devices "": cpu in group mode; in the sweep launch cuda when a trial asks for GPUs.
  std::string coordinator, work_dir = "./sd2-work", group_id, devices;
  std::vector<std::string> allow_read_roots;
  int max_trials = -1;
  double idle_exit = -1, give_up = 60, lease_s = 10, heartbeat_s = 1;
  std::string sweep, db, scale_map, override_json;
  std::vector<std::string> vars;
  int group_size = 1;
  bool force = false;
  std::string config, out;
#ifdef SD2_HAVE_MODELS
  sd2::worker::models::ExportClipOptions export_clip;
#endif
};

std::string ProcessorName() {
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_Get_processor_name(name, &len);
  return std::string(name, len);
}

int Fail(const sd2::Status& s, const char* what) {
  std::cerr << "sd2-worker: " << what << ": " << s << "\n";
  return sd2::ExitCodeFor(s);
}

int RunLocalMode(const Flags& f) {
  auto opts = sd2::coordinator::ParseExpandFlags(f.vars, f.scale_map, f.override_json);
  if (!opts.ok()) return Fail(opts.status(), "run");
  auto trials = sd2::coordinator::ExpandFile(f.config, *opts);
  if (!trials.ok()) return Fail(trials.status(), "run");
  if (trials->size() != 1) {
    return Fail(
        sd2::InvalidArgumentError(f.config + " expands to " + std::to_string(trials->size()) +
                                  " trials; `run` needs exactly one"),
        "run");
  }
  auto comm = sd2::worker::MakeMpiCommunicator(MPI_COMM_WORLD);
  sd2::Status s = sd2::worker::RunLocal((*trials)[0].config, (*trials)[0].key, f.out, comm.get());
  if (!s.ok()) return Fail(s, "run");
  if (comm->rank() == 0) std::cout << "trial " << (*trials)[0].key << " done: " << f.out << "\n";
  return 0;
}

sd2::worker::GroupOptions GroupOpts(const Flags& f) {
  sd2::worker::GroupOptions o;
  o.coordinator = f.coordinator;
  o.work_dir = f.work_dir;
  o.allow_read_roots = f.allow_read_roots;
  o.group_id = f.group_id;
  o.devices = f.devices.empty() ? "cpu" : f.devices;
  o.slurm = [] {
    sd2::worker::SlurmJobIds ids = sd2::worker::SlurmJobFromEnv(sd2::worker::ProcessEnv());
    return proto::SlurmIds{ids.job_id, ids.array_job_id, ids.array_task_id};
  }();
  o.max_trials = f.max_trials;
  o.idle_exit_s = f.idle_exit;
  o.give_up_s = f.give_up;
  return o;
}

// Every rank's string, in rank order, on rank 0 of `comm` (empty elsewhere).
std::vector<std::string> GatherToRoot(MPI_Comm comm, const std::string& mine) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int len = static_cast<int>(mine.size());
  std::vector<int> lens(rank == 0 ? size : 0), offsets(rank == 0 ? size : 0);
  MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, comm);
  std::string all;
  if (rank == 0) {
    for (int i = 0, off = 0; i < size; off += lens[i], ++i) offsets[i] = off;
    all.resize(static_cast<size_t>(offsets.back() + lens.back()));
  }
  MPI_Gatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), offsets.data(), MPI_CHAR, 0,
              comm);
  std::vector<std::string> out;
  for (int i = 0; rank == 0 && i < size; ++i) out.push_back(all.substr(offsets[i], lens[i]));
  return out;
}

// True on every rank of `comm` when `failed` is true on any.
bool AnyFailed(MPI_Comm comm, bool failed) {
  int mine = failed ? 1 : 0, any = 0;
  MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, comm);
  return any != 0;
}

// Before the group registers: each rank picks its device (worker/runtime/devices.h, node-local
// ranks counted over `world`), every rank of `world` learns whether all could, rank 0 of `group`
// learns every rank's host and device, and a cuda group gets its training communicator (NCCL
// when built with it; otherwise gradients go through MPI on the CPU). Collective over `world`
// and `group`; an error on any rank is an error on all.
sd2::Status SetUpDevices(MPI_Comm world, MPI_Comm group, sd2::worker::GroupOptions* o,
                         std::unique_ptr<sd2::worker::Communicator>* train_comm) {
  int world_rank = 0, group_rank = 0;
  MPI_Comm_rank(world, &world_rank);
  MPI_Comm_rank(group, &group_rank);
  MPI_Comm node;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, world_rank, MPI_INFO_NULL, &node);
  sd2::worker::DeviceRequest req;
  req.devices = o->devices;
  MPI_Comm_rank(node, &req.node_local_rank);
  MPI_Comm_size(node, &req.node_local_ranks);
  MPI_Comm_free(&node);
  // Only a cuda group touches the CUDA runtime.
  req.visible_devices = o->devices == "cuda" ? sd2::worker::VisibleCudaDevices() : 0;
  auto b = sd2::worker::ResolveDevice(req, sd2::worker::ProcessEnv());
  const std::string host = ProcessorName();
  if (!b.ok()) {
    std::cerr << "sd2-worker: rank " << world_rank << " on " << host << ": " << b.status() << "\n";
  }
  if (AnyFailed(world, !b.ok())) {
    return b.ok() ? sd2::FailedPreconditionError("another rank has no device (see its message)")
                  : b.status();
  }
  o->device = b->device;
  if (o->devices == "cuda") {
    std::cerr << "sd2-worker: rank " << world_rank << " on " << host << ": " << b->rule
              << " (CUDA_VISIBLE_DEVICES entry " << b->physical << ")\n";
  }
  std::vector<std::string> places = GatherToRoot(group, host + "\n" + b->device);
  o->ranks.clear();
  for (const std::string& p : places) {
    auto nl = p.find('\n');
    o->ranks.push_back({p.substr(0, nl), p.substr(nl + 1)});
  }
  if (o->devices != "cuda") return sd2::OkStatus();
#ifdef SD2_HAVE_NCCL
  auto nccl = sd2::worker::MakeNcclCommunicator(group, b->ordinal);
  if (!nccl.ok()) {
    std::cerr << "sd2-worker: rank " << world_rank << ": NCCL: " << nccl.status() << "\n";
  }
  if (AnyFailed(group, !nccl.ok())) {
    return nccl.ok() ? sd2::UnavailableError("NCCL set-up failed on another rank of the group")
                     : nccl.status().WithPrefix("NCCL on " + b->device);
  }
  *train_comm = std::move(*nccl);
  if (group_rank == 0) {
    std::cerr << "sd2-worker: group of " << places.size() << " rank(s) on cuda: gradients are "
              << "all-reduced with NCCL on the GPUs\n";
  }
#else
  (void)train_comm;
  if (group_rank == 0) {
    std::cerr << "sd2-worker: group of " << places.size() << " rank(s) on cuda, but this build "
              << "has no NCCL: gradients are all-reduced through MPI on the CPU (build with "
              << "-DSD2_WITH_NCCL=ON to keep them on the GPUs)\n";
  }
#endif
  return sd2::OkStatus();
}

int RunSweepLaunch(const Flags& f) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  // Rank 0 hosts the coordinator; everyone learns its endpoint (or the error that stopped it).
  std::unique_ptr<sd2::storage::Store> store;
  std::unique_ptr<sd2::coordinator::SystemClock> clock;
  std::unique_ptr<sd2::coordinator::Core> core;
  std::unique_ptr<sd2::coordinator::Server> server;
  std::thread server_thread;
  int64_t sweep_id = 0;
  std::string devices;
  json hello;
  if (rank == 0) {
    auto setup = [&]() -> sd2::Status {
      if (f.group_size < 1 || size % f.group_size != 0) {
        return sd2::InvalidArgumentError("--group-size " + std::to_string(f.group_size) +
                                         " does not divide the " + std::to_string(size) +
                                         " ranks of the job");
      }
      SD2_ASSIGN_OR_RETURN(
          auto opts, sd2::coordinator::ParseExpandFlags(f.vars, f.scale_map, f.override_json));
      SD2_ASSIGN_OR_RETURN(proto::Submit submit,
                           sd2::coordinator::BuildSubmit(f.sweep, opts, f.force));
      // The groups' devices: --devices when given, else cuda when any trial asks for GPUs.
      int gpus = 0;
      for (const auto& t : submit.trials) {
        const auto g = t.resources.find("gpus_per_rank");
        if (g != t.resources.end() && g->is_number_integer()) gpus = std::max(gpus, g->get<int>());
      }
      devices = !f.devices.empty() ? f.devices : (gpus > 0 ? "cuda" : "cpu");
      if (devices == "cpu" && gpus > 0) {
        return sd2::InvalidArgumentError("--devices cpu, but trials of " + f.sweep +
                                         " ask for gpus_per_rank = " + std::to_string(gpus) +
                                         ": cpu groups cannot take them (run on GPUs, or give the "
                                         "sweep [resources] gpus_per_rank = 0)");
      }
      SD2_ASSIGN_OR_RETURN(store, sd2::storage::Store::Open(f.db));
      clock = std::make_unique<sd2::coordinator::SystemClock>();
      sd2::coordinator::CoreOptions co;
      co.lease_s = f.lease_s;
      co.heartbeat_s = f.heartbeat_s;
      co.expire_leases_on_recover = true;
      core = std::make_unique<sd2::coordinator::Core>(store.get(), clock.get(), co);
      SD2_RETURN_IF_ERROR(core->Recover());
      SD2_ASSIGN_OR_RETURN(proto::Message submit_message, proto::Decode(proto::Encode(submit)));
      auto reply = proto::Decode(core->Handle(std::move(submit_message)));
      if (!reply.ok()) return reply.status();
      SD2_RETURN_IF_ERROR(proto::ReplyStatus(*reply));
      SD2_ASSIGN_OR_RETURN(auto sub, proto::ParseAs<proto::Submitted>(*reply));
      sweep_id = sub.sweep_id;
      std::cerr << "sd2-worker: sweep " << submit.name << " (id " << sweep_id << "): " << sub.trials
                << " trials, " << sub.reused << " reused, " << sub.queued << " to run on "
                << size / f.group_size << " groups of " << f.group_size << "\n";
      // All ranks on this host: loopback; otherwise every interface and our host name.
      sd2::coordinator::ServerOptions so;
      so.bind = "tcp://127.0.0.1:*";
      so.tick_s = std::min(0.2, co.lease_s / 10);
      server = std::make_unique<sd2::coordinator::Server>(core.get(), so);
      SD2_RETURN_IF_ERROR(server->Bind());
      return sd2::OkStatus();
    };
    sd2::Status s = setup();
    if (!s.ok()) {
      hello = {{"error", s.ToString()}, {"exit", sd2::ExitCodeFor(s)}};
    } else {
      hello = {{"endpoint", server->endpoint()}, {"devices", devices}};
      server_thread = std::thread([&] { (void)server->Run(); });
    }
  }
  // Multi-host jobs need a reachable address: rebind on all interfaces.
  std::string my_host = ProcessorName();
  std::string host0 = rank == 0 ? my_host : "";
  auto world = sd2::worker::MakeMpiCommunicator(MPI_COMM_WORLD);
  (void)world->Broadcast(&host0, 0);
  double remote = my_host != host0 ? 1 : 0;
  (void)world->AllReduceSum(&remote, 1);
  if (remote > 0 && rank == 0 && hello.contains("endpoint")) {
    hello = {{"error", "the sweep launch runs on one host for now (ranks on several hosts)"},
             {"exit", 1}};
  }
  std::string hello_bytes = rank == 0 ? hello.dump() : "";
  (void)world->Broadcast(&hello_bytes, 0);
  hello = sd2::ParseJsonBoundedOrThrow(hello_bytes);
  if (hello.contains("error")) {
    if (rank == 0) {
      std::cerr << "sd2-worker: " << hello["error"].get<std::string>() << "\n";
      if (server_thread.joinable()) {
        server->Stop();
        server_thread.join();
      }
    }
    return hello.value("exit", 1);
  }
  MPI_Comm group;
  MPI_Comm_split(MPI_COMM_WORLD, rank / f.group_size, rank, &group);
  auto comm = sd2::worker::MakeMpiCommunicator(group);
  Flags gf = f;
  gf.coordinator = hello["endpoint"].get<std::string>();
  gf.devices = hello.value("devices", std::string("cpu"));
  sd2::worker::GroupOptions o = GroupOpts(gf);
  o.exit_when_drained = true;
  std::unique_ptr<sd2::worker::Communicator> train;
  sd2::Status dev = SetUpDevices(MPI_COMM_WORLD, group, &o, &train);
  if (!dev.ok()) {
    if (rank == 0) {
      std::cerr << "sd2-worker: device set-up failed, no group registered: " << dev << "\n";
      server->Stop();
      server_thread.join();
    }
    MPI_Comm_free(&group);
    return sd2::worker::kExitNoDevice;
  }
  o.train_comm = train.get();
  if (rank % f.group_size == 0) {
    std::cerr << "sd2-worker: group of rank " << rank << ": " << o.devices << "\n";
  }
  sd2::Status s = sd2::worker::RunGroup(o, comm.get());
  train.reset();
  if (!s.ok()) std::cerr << "sd2-worker: group of rank " << rank << ": " << s << "\n";
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Comm_free(&group);
  if (rank != 0) return s.ok() ? 0 : 1;
  server->Stop();
  server_thread.join();
  // The verdict: every trial of this sweep succeeded or was reused.
  auto ids = store->SweepTrialIds(sweep_id);
  if (!ids.ok()) return Fail(ids.status(), "sweep");
  std::vector<std::string> bad;
  for (int64_t id : *ids) {
    auto t = store->GetTrial(id);
    if (!t.ok()) return Fail(t.status(), "sweep");
    if (t->state != "succeeded") {
      bad.push_back(t->trial_key + " (" + (t->label.empty() ? t->method : t->label) +
                    "): " + t->state + (t->last_error.empty() ? "" : ": " + t->last_error));
    }
  }
  auto c = store->CountSweep(sweep_id);
  if (c.ok()) {
    std::cout << "sweep " << sweep_id << ": " << c->total << " trials, " << c->succeeded
              << " succeeded, " << c->reused << " reused, " << c->failed << " failed, "
              << c->cancelled << " cancelled" << std::endl;
  }
  if (!bad.empty()) {
    std::cerr << "sd2-worker: " << bad.size() << " trials did not succeed:\n";
    for (const auto& b : bad) std::cerr << "  " << b << "\n";
    return 1;
  }
  return s.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sd2 worker group: pulls trials from a coordinator and runs them"};
  Flags f;
  app.add_option("--coordinator", f.coordinator, "coordinator endpoint (group mode)");
  app.add_option("--work-dir", f.work_dir, "trial work dirs (checkpoints) live here");
  app.add_option("--allow-read-root", f.allow_read_roots,
                 "a folder trials may read data and pretrained weights from (repeatable); a "
                 "trial reading outside every one fails; none given: reads are not restricted");
  app.add_option("--group-id", f.group_id, "stable group id (default host:pid)");
  app.add_option("--devices", f.devices,
                 "cpu or cuda (default: cpu; in a sweep launch cuda when the sweep asks for GPUs)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--max-trials", f.max_trials, "exit after N trials");
  app.add_option("--idle-exit", f.idle_exit, "exit after this many seconds without work");
  app.add_option("--give-up", f.give_up, "seconds to wait for a silent coordinator");
  app.add_option("--sweep", f.sweep, "sweep launch: the sweep file");
  app.add_option("--group-size", f.group_size, "sweep launch: ranks per group");
  app.add_option("--db", f.db, "sweep launch: the SQLite store");
  app.add_option("--var", f.vars, "sweep variable NAME=VALUE");
  app.add_option("--scale-map", f.scale_map, "scale replacements, e.g. 100000=300,1000000=3000");
  app.add_option("--override", f.override_json, "JSON merged into every trial config");
  app.add_option("--lease-s", f.lease_s, "sweep launch: lease duration");
  app.add_flag("--force", f.force, "sweep launch: retrain trials that already succeeded");
  auto* run = app.add_subcommand("run", "run one trial locally, without a coordinator");
  run->add_option("--config", f.config, "a sweep file that expands to one trial")->required();
  run->add_option("--out", f.out, "output directory")->required();
  run->add_option("--var", f.vars, "sweep variable NAME=VALUE");
  run->add_option("--scale-map", f.scale_map, "scale replacements");
  run->add_option("--override", f.override_json, "JSON merged into the trial config");
#ifdef SD2_HAVE_MODELS
  auto* exp = app.add_subcommand(
      "export-clip",
      "write a trained trial's CLIP towers as a Hugging Face folder (for pretrained=)");
  exp->add_option("--checkpoint", f.export_clip.checkpoint, "checkpoint-*.safetensors of a trial")
      ->required();
  exp->add_option("--model", f.export_clip.model, "named config (tiny, vit_b16, ...) or HF folder")
      ->required();
  exp->add_option("--out", f.export_clip.out, "output folder")->required();
  exp->add_option("--tokenizer", f.export_clip.tokenizer, "folder with vocab.json + merges.txt");
#endif
  CLI11_PARSE(app, argc, argv);
#ifdef SD2_HAVE_MODELS
  if (*exp) {
    auto summary = sd2::worker::models::ExportClip(f.export_clip);
    if (!summary.ok()) {
      std::cerr << "sd2-worker: export-clip: " << summary.status() << "\n";
      return summary.status().code() == sd2::StatusCode::kInternal ? 1 : sd2::kExitBadInput;
    }
    std::cout << *summary << "\n";
    return 0;
  }
#endif

  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  sd2::worker::RegisterAllMethods();
  sd2::worker::InstallPreemptionHandlers();
  int code = 0;
  if (*run) {
    code = RunLocalMode(f);
  } else if (!f.sweep.empty()) {
    if (f.db.empty()) {
      std::cerr << "sd2-worker: --sweep needs --db PATH\n";
      code = sd2::kExitBadInput;
    } else {
      code = RunSweepLaunch(f);
    }
  } else if (!f.coordinator.empty()) {
    auto comm = sd2::worker::MakeMpiCommunicator(MPI_COMM_WORLD);
    sd2::worker::GroupOptions o = GroupOpts(f);
    std::unique_ptr<sd2::worker::Communicator> train;
    sd2::Status dev = SetUpDevices(MPI_COMM_WORLD, MPI_COMM_WORLD, &o, &train);
    if (!dev.ok()) {
      // Every rank agreed on the failure: exit before registering, so no lease is taken.
      if (comm->rank() == 0) {
        std::cerr << "sd2-worker: device set-up failed, not registering: " << dev << "\n";
      }
      code = sd2::worker::kExitNoDevice;
    } else {
      o.train_comm = train.get();
      sd2::Status s = sd2::worker::RunGroup(o, comm.get());
      if (!s.ok()) {
        std::cerr << "sd2-worker: " << s << "\n";
        comm->Abort(1);  // take the whole group down so its lease expires
      }
    }
  } else {
    std::cerr << "sd2-worker: give --coordinator ENDPOINT, --sweep FILE, or `run`\n" << app.help();
    code = sd2::kExitBadInput;
  }
  // A preempted worker exits 3 whatever its mode, so a batch script can requeue the job.
  if (sd2::worker::PreemptionRequested() && code != sd2::kExitBadInput) {
    code = sd2::worker::kExitPreempted;
  }
  MPI_Finalize();
  return code;
}
