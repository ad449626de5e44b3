// sd2ctl: the researcher's command line. `sd2ctl --help` lists the commands; every command
// answers --help.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstring>
#include <iostream>
#include <string>

#include "cli/command.h"
#include "common/status.h"

namespace sd2::cli {

std::vector<Command>& Commands() {
  static std::vector<Command> commands;
  return commands;
}

bool RegisterCommand(Command c) {
  Commands().push_back(std::move(c));
  return true;
}

std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    std::cerr << app.get_name() << ": " << e.what() << "\n(see " << app.get_name() << " --help)\n";
    return kExitBadInput;
  }
  return std::nullopt;
}

namespace {

void PrintHelp(std::ostream& os) {
  auto cmds = Commands();
  std::sort(cmds.begin(), cmds.end(),
            [](const Command& a, const Command& b) { return a.name < b.name; });
  os << "sd2ctl: run and report the SD2 deepfake-detection scaling experiments.\n\n"
        "Usage: sd2ctl COMMAND [ARGS...]   (sd2ctl COMMAND --help for details)\n\n"
        "Commands:\n";
  for (const auto& c : cmds) {
    os << "  " << c.name << std::string(c.name.size() < 26 ? 26 - c.name.size() : 1, ' ')
       << c.summary << "\n";
  }
  os << "\nExit codes: 0 success, 2 bad input, 1 other failure.\n";
}

}  // namespace
}  // namespace sd2::cli

int main(int argc, char** argv) {
  using sd2::cli::Commands;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    sd2::cli::PrintHelp(std::cout);
    return argc < 2 ? sd2::kExitBadInput : sd2::kExitOk;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::cout << "sd2ctl " << SD2_VERSION << "\n";
    return 0;
  }
  // Longest match first, so "data stats" wins over "data".
  const sd2::cli::Command* best = nullptr;
  int best_words = 0;
  for (const auto& c : Commands()) {
    int words = 1 + int(std::count(c.name.begin(), c.name.end(), ' '));
    if (words > argc - 1 || words <= best_words) continue;
    std::string joined = argv[1];
    for (int i = 2; i <= words; ++i) joined += std::string(" ") + argv[i];
    if (joined == c.name) {
      best = &c;
      best_words = words;
    }
  }
  if (!best) {
    std::cerr << "sd2ctl: unknown command '" << argv[1] << "' (see sd2ctl --help)\n";
    return sd2::kExitBadInput;
  }
  std::string name = "sd2ctl " + best->name;
  std::vector<char*> args;
  args.push_back(name.data());
  for (int i = 1 + best_words; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  return best->run(int(args.size()) - 1, args.data());
}
