#include "pipeline/core/fs_util.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "pipeline/core/errors.hpp"

namespace saepipe {

bool is_system_output_errno(int err) { return err == ENOSPC || err == EDQUOT || err == EIO || err == EFBIG; }

void output_error(const std::string& message, int err) {
  const std::string text = message + ": " + std::strerror(err);
  if (is_system_output_errno(err)) internal_error(text);
  user_error(text);
}

void make_dirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) output_error(dir + ": cannot create directory", ec.value());
}

void write_file_atomic(const std::string& path, const std::string& text) {
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) make_dirs(parent.string());
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) output_error(tmp + ": cannot open for writing", errno);
    out << text;
    out.flush();
    if (!out) {
      std::filesystem::remove(tmp);
      output_error(tmp + ": write failed", errno);
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) user_error(path + ": cannot rename the finished file into place: " + ec.message());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error(path + ": cannot open for reading");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool path_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

int64_t free_bytes(const std::string& path) {
  std::error_code ec;
  const std::filesystem::space_info info = std::filesystem::space(path, ec);
  if (ec || info.available == static_cast<std::uintmax_t>(-1)) return -1;
  return int64_t(std::min<std::uintmax_t>(info.available, std::uintmax_t(INT64_MAX)));
}

void require_free_space(const std::string& dir, int64_t needed, const std::string& what) {
  const int64_t free = free_bytes(dir);
  if (free >= 0 && free < needed)
    internal_error(dir + ": " + what + " needs " + format_bytes(needed) + " but its file system has " +
                   format_bytes(free) + " free; free some space or choose another run.dir");
}

std::string format_bytes(int64_t bytes) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1000 && u < 6) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, kUnits[u]);
  return buf;
}

}  // namespace saepipe
