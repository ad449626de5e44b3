// sd2ctl's command table. Each command lives in its own cli/cmd_*.cc file and registers itself
// with SD2_REGISTER_COMMAND; the files are compiled straight into the sd2ctl executable (not a
// static library), so registration cannot be dropped by the linker.
//
// A command's Run gets the arguments after its name (argv[0] is "sd2ctl NAME") and returns an
// exit code: 0 success, 2 bad input (sd2::kExitBadInput), 1 other failure.
#ifndef SD2_CLI_COMMAND_H_
#define SD2_CLI_COMMAND_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace sd2::cli {

struct Command {
  std::string name;     // may contain a space for sub-commands, e.g. "data stats"
  std::string summary;  // one line for `sd2ctl --help`
  std::function<int(int argc, char** argv)> run;
};

std::vector<Command>& Commands();
bool RegisterCommand(Command c);

// Parses a command's arguments into `app` (CLI11). Returns nullopt when the command should go
// on, or the exit code to return now: 0 after --help (printed on stdout), 2 after a bad
// argument (printed on stderr with a pointer to --help).
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv);

}  // namespace sd2::cli

#define SD2_CLI_CONCAT_INNER_(a, b) a##b
#define SD2_CLI_CONCAT_(a, b) SD2_CLI_CONCAT_INNER_(a, b)
#define SD2_REGISTER_COMMAND(name, summary, fn)                                       \
  static const bool SD2_CLI_CONCAT_(sd2_cmd_registered_, __LINE__) [[maybe_unused]] = \
      ::sd2::cli::RegisterCommand(::sd2::cli::Command{name, summary, fn})

#endif  // SD2_CLI_COMMAND_H_
