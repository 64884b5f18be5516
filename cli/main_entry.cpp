// Top level of `lina`: global flags, subcommand dispatch and the error-to-exit-code policy.
#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/program_options/errors.hpp>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.hpp"
#include "sched/error.hpp"
#include "sched/version.hpp"

namespace lina::cli {
namespace {

void print_usage(std::FILE* out) {
  std::fprintf(out, "usage: lina [-v|-q] COMMAND [ARGS...]\n\ncommands:\n");
  for (const auto& c : commands()) {
    std::fprintf(out, "  %-12.*s %.*s\n", static_cast<int>(c.name.size()), c.name.data(),
                 static_cast<int>(c.summary.size()), c.summary.data());
  }
  std::fprintf(out, "  %-12s %s\n", "help", "help [COMMAND]: this list, or a command's options");
  std::fprintf(out, "\nglobal flags: -v (debug log), -q (errors only), --version\n");
}

// An error message as one printable line: a message may quote the bytes of a corrupt input (the JSON parser's
// "last read: '...'"), which can be control characters or invalid UTF-8. Those are written as \xNN; valid UTF-8
// sequences pass through.
std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto escape = [&](unsigned char c) { out += fmt::format("\\x{:02x}", c); };
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) {
        escape(c);
      } else {
        out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // Length of a well-formed UTF-8 sequence starting here (0: not one).
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    for (size_t k = 1; n > 0 && k < n; ++k) {
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) n = 0;
    }
    if (n == 0) {
      escape(c);
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace

int main_entry(int argc, const char* const* argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // Log lines (info, warnings) go to stderr: stdout carries the results (tables, --json), which must stay parseable.
  static const bool logger_set = [] {
    spdlog::set_default_logger(
        std::make_shared<spdlog::logger>("lina", std::make_shared<spdlog::sinks::stderr_sink_mt>()));
    return true;
  }();
  (void)logger_set;
  spdlog::set_pattern("lina: %l: %v");
  spdlog::set_level(spdlog::level::info);
  size_t i = 0;
  for (; i < args.size(); ++i) {
    if (args[i] == "-v") {
      spdlog::set_level(spdlog::level::debug);
    } else if (args[i] == "-q") {
      spdlog::set_level(spdlog::level::err);
    } else {
      break;
    }
  }
  args.erase(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(i));
  if (args.empty()) {
    print_usage(stderr);
    return kInputErrorExit;
  }
  const std::string name = args.front();
  args.erase(args.begin());
  if (name == "--version" || name == "version") {
    std::printf("lina %.*s (%.*s)\n", static_cast<int>(version().size()), version().data(),
                static_cast<int>(git_commit().size()), git_commit().data());
    return 0;
  }
  if (name == "help" || name == "--help" || name == "-h") {
    if (args.empty()) {
      print_usage(stdout);
      return 0;
    }
    const Command* c = find_command(args.front());
    if (!c) {
      std::fprintf(stderr, "lina: unknown command '%s' (see 'lina help')\n", args.front().c_str());
      return kInputErrorExit;
    }
    return c->run({"--help"});
  }
  const Command* c = find_command(name);
  if (!c) {
    std::fprintf(stderr, "lina: unknown command '%s' (see 'lina help')\n", name.c_str());
    return kInputErrorExit;
  }
  try {
    return c->run(args);
  } catch (const InputError& e) {
    std::fprintf(stderr, "lina %s: error: %s\n", name.c_str(), printable(e.what()).c_str());
    return kInputErrorExit;
  } catch (const boost::program_options::error& e) {
    std::fprintf(stderr, "lina %s: error: %s (see 'lina help %s')\n", name.c_str(), printable(e.what()).c_str(),
                 name.c_str());
    return kInputErrorExit;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lina %s: internal error: %s\n", name.c_str(), printable(e.what()).c_str());
    return 1;
  }
}

}  // namespace lina::cli
