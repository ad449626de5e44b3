// sd2ctl data ... and sd2ctl synth: manifests (import, stats, verify, nested subsets) and the
// synthetic MMI-DD. docs/data.md describes the formats.
//
//   sd2ctl data import-deepfakebench dataset_json/ --root /data --out ff.jsonl
//   sd2ctl data import-deepfakebench df40_json/ --root /data --rebase /home/me/df40=/data/df40
//       --methods my_df40_methods.toml --out df40.jsonl
//   sd2ctl data stats ff.jsonl
//   sd2ctl data subset ff.jsonl --scales 100K,1M --seed 0 --out subsets/
//   sd2ctl synth --out /tmp/mmidd --images 30000 --seed 1
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "common/file_util.h"
#include "common/status.h"
#include "worker/data/importers.h"
#include "worker/data/manifest.h"
#include "worker/data/scales.h"
#include "worker/data/stats.h"
#include "worker/data/synth.h"

namespace sd2::cli {
namespace {

namespace wd = sd2::worker::data;

int Fail(const std::string& cmd, const Status& s) {
  std::cerr << cmd << ": " << s << "\n";
  return ExitCodeFor(s);
}

std::string Folder(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

int WriteOut(const std::string& cmd, const std::string& out,
             const std::vector<wd::Record>& records) {
  StatusOr<std::string> digest = wd::WriteManifest(out, records);
  if (!digest.ok()) return Fail(cmd, digest.status());
  std::cout << "wrote " << records.size() << " records to " << out << " (sha256 " << *digest
            << ")\n";
  return kExitOk;
}

int ImportDeepfakeBench(int argc, char** argv) {
  CLI::App app("Turn DeepfakeBench dataset JSON files into a manifest", argv[0]);
  wd::DeepfakeBenchOptions o;
  std::string out, map, methods;
  std::vector<std::string> rebases;
  app.add_option("JSON", o.json_path, "A dataset JSON file or a folder of them")->required();
  app.add_option("--root", o.root, "Data root: absolute frame paths under it become relative");
  app.add_option("--out", out, "Manifest to write (M.jsonl; also M.jsonl.sha256)")->required();
  app.add_option("--map", map, "TOML file overriding the label -> type table ([labels])");
  app.add_option("--methods", methods,
                 "DF40 methods table (default: the shipped data/df40_methods.toml)");
  app.add_option("--rebase", rebases,
                 "OLD=NEW: frame paths under the folder OLD move under NEW (repeatable; for a "
                 "JSON made on another machine)");
  app.add_option("--compression", o.compression,
                 "Compression level to import where splits have levels (\"\" = all)")
      ->capture_default_str();
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  if (!map.empty()) {
    StatusOr<wd::LabelMap> m = wd::LoadLabelMap(map);
    if (!m.ok()) return Fail(argv[0], m.status());
    o.map = *m;
  }
  for (const std::string& r : rebases) {
    StatusOr<wd::Rebase> rb = wd::ParseRebase(r);
    if (!rb.ok()) return Fail(argv[0], rb.status());
    o.rebases.push_back(*rb);
  }
  if (methods.empty()) {
    StatusOr<std::string> located = wd::LocateDf40Table();
    if (!located.ok()) return Fail(argv[0], located.status());
    methods = *located;
  }
  StatusOr<wd::Df40Table> table = wd::LoadDf40Table(methods);
  if (!table.ok()) return Fail(argv[0], table.status());
  o.df40 = *table;
  wd::DeepfakeBenchReport report;
  StatusOr<std::vector<wd::Record>> recs = wd::ImportDeepfakeBench(o, &report);
  if (!recs.ok()) return Fail(argv[0], recs.status());
  // Every dataset name the DF40 table could not place, one per line: none goes unnoticed.
  for (const wd::UnplacedDataset& u : report.unplaced) {
    std::cerr << argv[0] << ": " << u.file << ": dataset \"" << u.name << "\" is not in the DF40 "
              << "methods table " << methods << ": " << u.frames << " frames imported as dataset \""
              << u.dataset << "\" without domain, method_type or known\n";
  }
  std::cerr << argv[0] << ": " << report.placed.size() << " dataset names placed by " << methods
            << ", " << report.unplaced.size() << " not placed\n";
  return WriteOut(argv[0], out, *recs);
}

int ImportGenImage(int argc, char** argv) {
  CLI::App app("Turn GenImage folders (<generator>/.../{train,val}/{ai,nature}) into a manifest",
               argv[0]);
  std::string root, out;
  app.add_option("DIR", root, "GenImage root folder; manifest paths are relative to it")
      ->required();
  app.add_option("--out", out, "Manifest to write")->required();
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  StatusOr<std::vector<wd::Record>> recs = wd::ImportGenImage(root);
  if (!recs.ok()) return Fail(argv[0], recs.status());
  return WriteOut(argv[0], out, *recs);
}

int Stats(int argc, char** argv) {
  CLI::App app("Images per dataset, type and split, laid out like the paper's Table 1", argv[0]);
  std::string manifest;
  app.add_option("MANIFEST", manifest, "Manifest (JSONL)")->required();
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  StatusOr<std::vector<wd::Record>> recs = wd::ReadManifest(manifest);
  if (!recs.ok()) return Fail(argv[0], recs.status());
  std::cout << wd::RenderStats(wd::ComputeStats(*recs));
  return kExitOk;
}

int Verify(int argc, char** argv) {
  CLI::App app("Decode every image of a manifest on all cores and list the unreadable ones",
               argv[0]);
  std::string manifest, root;
  int threads = 0;
  app.add_option("MANIFEST", manifest, "Manifest (JSONL)")->required();
  app.add_option("--root", root, "Image root (default: the manifest's folder)");
  app.add_option("--threads", threads, "Decode threads (0 = all cores)");
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  // A bad row (invalid JSON, a path outside the root, ...) is reported and the others are
  // still checked.
  std::vector<Status> row_errors;
  wd::ManifestReadOptions ro;
  ro.row_errors = &row_errors;
  StatusOr<std::vector<wd::Record>> recs = wd::ReadManifest(manifest, ro);
  if (!recs.ok()) return Fail(argv[0], recs.status());
  for (const Status& e : row_errors) std::cout << e.message() << "\n";
  if (root.empty()) root = Folder(manifest);
  const bool tty = isatty(2);
  auto progress = [&](size_t done, size_t total) {
    const int width = 40;
    int filled = total ? static_cast<int>(width * done / total) : width;
    std::fprintf(stderr, "\r[%s%s] %zu/%zu", std::string(filled, '#').c_str(),
                 std::string(width - filled, ' ').c_str(), done, total);
    if (!tty || done == total) std::fprintf(stderr, "\n");
  };
  std::vector<wd::BadImage> bad = wd::VerifyImages(*recs, root, threads, progress);
  for (const wd::BadImage& b : bad) std::cout << b.path << "\t" << b.reason << "\n";
  const size_t rows = recs->size() + row_errors.size();
  std::cout << recs->size() - bad.size() << " of " << rows << " images readable, " << bad.size()
            << " unreadable, " << row_errors.size() << " bad rows\n";
  return bad.empty() && row_errors.empty() ? kExitOk : kExitFailure;
}

int Subset(int argc, char** argv) {
  CLI::App app("Write the nested scale subsets of a manifest (as training draws them)", argv[0]);
  std::string manifest, scales, out;
  uint64_t seed = 0;
  wd::Filter filter;
  filter.splits = {"train"};
  app.add_option("MANIFEST", manifest, "Manifest (JSONL)")->required();
  app.add_option("--scales", scales, "Comma-separated sizes, e.g. 100K,1M,3M")->required();
  app.add_option("--seed", seed, "Seed of the draw")->capture_default_str();
  app.add_option("--out", out, "Folder for subset_<SCALE>.jsonl")->required();
  app.add_option("--split", filter.splits, "Splits drawn from (default train)");
  app.add_option("--dataset", filter.datasets, "Datasets drawn from (default all)");
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  StatusOr<std::vector<wd::Record>> all = wd::ReadManifest(manifest);
  if (!all.ok()) return Fail(argv[0], all.status());
  std::vector<wd::Record> recs;
  for (const wd::Record& r : *all) {
    if (wd::Matches(filter, r)) recs.push_back(r);
  }
  std::vector<int64_t> sizes;
  for (size_t start = 0; start <= scales.size();) {
    size_t comma = scales.find(',', start);
    if (comma == std::string::npos) comma = scales.size();
    StatusOr<int64_t> s = wd::ParseScale(scales.substr(start, comma - start));
    if (!s.ok()) return Fail(argv[0], s.status());
    if (*s > static_cast<int64_t>(recs.size())) {
      return Fail(argv[0], InvalidArgumentError("scale " + wd::FormatScale(*s) + " exceeds the " +
                                                std::to_string(recs.size()) + " matching records"));
    }
    sizes.push_back(*s);
    start = comma + 1;
  }
  if (Status st = MakeDirs(out); !st.ok()) return Fail(argv[0], st);
  for (int64_t s : sizes) {
    std::vector<wd::Record> sub;
    for (size_t i : wd::NestedSubset(recs, s, seed)) sub.push_back(recs[i]);
    const std::string path = out + "/subset_" + wd::FormatScale(s) + ".jsonl";
    if (int rc = WriteOut(argv[0], path, sub); rc != kExitOk) return rc;
  }
  std::cout << "paths stay relative to " << Folder(manifest) << " (pass it as the root)\n";
  return kExitOk;
}

int Synth(int argc, char** argv) {
  CLI::App app("Write the synthetic MMI-DD (procedural portraits, five types) and its manifest",
               argv[0]);
  wd::SynthOptions o;
  app.add_option("--out", o.out_dir, "Output folder (images/ and manifest.jsonl)")->required();
  app.add_option("--images", o.images, "Number of images")->capture_default_str();
  app.add_option("--seed", o.seed, "Seed")->capture_default_str();
  app.add_option("--size", o.image_size, "Base image side in pixels")->capture_default_str();
  app.add_option("--threads", o.threads, "Threads (0 = all cores)")->capture_default_str();
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  StatusOr<wd::SynthSummary> s = wd::Synthesize(o);
  if (!s.ok()) return Fail(argv[0], s.status());
  for (const auto& [dataset, n] : s->per_dataset) std::cout << "  " << dataset << ": " << n << "\n";
  std::printf("wrote %lld images and %s (sha256 %s) in %.1f s\n", static_cast<long long>(s->images),
              s->manifest.c_str(), s->digest.c_str(), s->seconds);
  return kExitOk;
}

SD2_REGISTER_COMMAND("data import-deepfakebench", "Manifest from DeepfakeBench dataset JSON",
                     ImportDeepfakeBench);
SD2_REGISTER_COMMAND("data import-genimage", "Manifest from GenImage folders", ImportGenImage);
SD2_REGISTER_COMMAND("data stats", "Images per dataset/type/split (Table 1 layout)", Stats);
SD2_REGISTER_COMMAND("data verify", "Decode every image of a manifest; list unreadable ones",
                     Verify);
SD2_REGISTER_COMMAND("data subset", "Write nested scale subsets of a manifest", Subset);
SD2_REGISTER_COMMAND("synth", "Write the synthetic MMI-DD dataset", Synth);

}  // namespace
}  // namespace sd2::cli
