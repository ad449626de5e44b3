// sd2ctl keys init / db backup / db check: CURVE key pairs for the coordinator and its clients,
// online backups of the store, and integrity checks (docs/security.md).
//
//   sd2ctl keys init --dir ~/.sd2/keys [--client worker --client ctl] [--force]
//   sd2ctl db backup /backups/sd2-2026-01-01.db --db sd2.db [--force]
//   sd2ctl db check --db sd2.db [--full]
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "common/status.h"
#include "coordinator/auth.h"
#include "storage/backup.h"
#include "storage/integrity.h"

namespace sd2::cli {
namespace {

// Parses a CLI11 app; returns -1 to go on, else the exit code (0 for --help, 2 for bad flags).
int Fail(const std::string& cmd, const Status& s) {
  std::cerr << cmd << ": " << s << "\n";
  return ExitCodeFor(s);
}

int KeysInit(int argc, char** argv) {
  CLI::App app{"Create CURVE key pairs for the coordinator and its clients", argv[0]};
  std::string dir;
  coordinator::KeysInitOptions options;
  std::vector<std::string> clients;
  app.add_option("--dir", dir, "Directory for the keys (created 0700)")->required();
  app.add_option("--client", clients,
                 "Client key pair to create and allow (repeatable; default: worker, ctl)");
  app.add_flag("--force", options.overwrite, "Replace existing keys");
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  if (!clients.empty()) options.clients = clients;
  auto written = coordinator::InitKeys(dir, options);
  if (!written.ok()) return Fail(argv[0], written.status());
  for (const auto& p : *written) std::cout << p << "\n";
  std::cout << "coordinator: sd2-coordinator --keys " << dir
            << "\nclients:     SD2_KEYS_DIR=" << dir << " SD2_KEY_NAME=" << options.clients[0]
            << " (copy the client's .key and coordinator.pub to its host)\n";
  return kExitOk;
}

int DbBackup(int argc, char** argv) {
  CLI::App app{"Copy the store with SQLite's online backup (safe while the coordinator runs)",
               argv[0]};
  std::string db, dest;
  storage::BackupOptions options;
  app.add_option("PATH", dest, "Backup file to write")->required();
  app.add_option("--db", db, "The store to copy")->required();
  app.add_flag("--force", options.overwrite, "Replace an existing backup file");
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  auto r = storage::BackupDatabase(db, dest, options);
  if (!r.ok()) return Fail(argv[0], r.status());
  std::cout << dest << ": " << r->pages << " pages, " << r->bytes << " bytes, schema version "
            << r->schema_version << ", checked, in " << r->seconds << " s\n";
  return kExitOk;
}

int DbCheck(int argc, char** argv) {
  CLI::App app{"Check the store's integrity (PRAGMA quick_check, or integrity_check with --full)",
               argv[0]};
  std::string db;
  storage::IntegrityOptions options;
  app.add_option("--db", db, "The store to check")->required();
  app.add_flag("--full", options.full, "Run the slower, complete integrity_check");
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  auto r = storage::CheckDatabaseFile(db, options);
  if (!r.ok()) return Fail(argv[0], r.status());
  if (!r->ok) {
    std::cerr << db << ": CORRUPT\n";
    for (const auto& p : r->problems) std::cerr << "  " << p << "\n";
    return kExitFailure;
  }
  std::cout << db << ": ok (schema version " << r->schema_version << ", " << r->pages
            << " pages of " << r->page_size << " bytes)\n";
  return kExitOk;
}

SD2_REGISTER_COMMAND("keys init", "Create CURVE key pairs (coordinator, workers, sd2ctl)",
                     KeysInit);
SD2_REGISTER_COMMAND("db backup", "Online backup of the store to PATH", DbBackup);
SD2_REGISTER_COMMAND("db check", "Integrity check of the store", DbCheck);

}  // namespace
}  // namespace sd2::cli
