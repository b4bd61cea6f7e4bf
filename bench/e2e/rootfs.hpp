// A minimal static-busybox root filesystem, identical for every subject.
#pragma once

#include <filesystem>
#include <string>

namespace nucleus::bench {

// Source of the static busybox (Debian package busybox-static).
inline constexpr const char* kHostBusybox = "/bin/busybox";

// Populates `root` (created if missing; reusing an existing one is fine):
// bin/busybox plus true/sh/sleep/echo/cat applets, empty proc dev sys tmp etc,
// and etc/passwd with root and agent. Throws std::runtime_error with an
// actionable message, e.g. when busybox-static is not installed.
void build_busybox_rootfs(const std::filesystem::path& root);

// A fresh 0755 directory from mkdtemp, <parent>/<prefix>.XXXXXX (parent
// /var/tmp by default), removed recursively by the destructor (symlinks are
// removed, never followed).
class ScratchDir {
public:
  explicit ScratchDir(const std::string& prefix = "nucleus-bench", const std::string& parent = "/var/tmp");
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

private:
  std::filesystem::path path_;
};

}  // namespace nucleus::bench
