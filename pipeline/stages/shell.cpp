#include "pipeline/stages/shell.hpp"

#include <sys/wait.h>

#include <cstdio>

#include "pipeline/core/errors.hpp"

namespace saepipe {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string capture(const std::string& command, int* rc) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) internal_error("cannot run: " + command);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int status = ::pclose(pipe);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace saepipe
