#include "rootfs.hpp"

#include <elf.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>

namespace fs = std::filesystem;

namespace nucleus::bench {
namespace {

// A dynamically linked busybox would need the host's loader and libc inside
// the rootfs; a program header of type PT_INTERP is what marks that.
bool elf_has_interpreter(const fs::path& binary) {
  std::ifstream in(binary, std::ios::binary);
  Elf64_Ehdr header{};
  if (!in.read(reinterpret_cast<char*>(&header), sizeof header) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 ||
      header.e_ident[EI_CLASS] != ELFCLASS64) {
    throw std::runtime_error(binary.string() + " is not a 64-bit ELF binary; install busybox-static");
  }
  for (unsigned i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr program_header{};
    in.seekg(static_cast<std::streamoff>(header.e_phoff + i * header.e_phentsize));
    if (!in.read(reinterpret_cast<char*>(&program_header), sizeof program_header)) break;
    if (program_header.p_type == PT_INTERP) return true;
  }
  return false;
}

void require_static_busybox() {
  if (!fs::exists(kHostBusybox)) {
    throw std::runtime_error(std::string(kHostBusybox) +
                             " not found: install busybox-static (apt-get install busybox-static)");
  }
  if (elf_has_interpreter(kHostBusybox)) {
    throw std::runtime_error(std::string(kHostBusybox) +
                             " is dynamically linked: install busybox-static instead of busybox");
  }
}

}  // namespace

void build_busybox_rootfs(const fs::path& root) {
  require_static_busybox();
  fs::create_directories(root / "bin");
  // Container roots map host uid 0 to an unprivileged uid, so every path
  // component must be world-traversable.
  fs::permissions(root, fs::perms(0755));
  // update_existing: a reused rootfs keeps its (possibly executing) copy.
  fs::copy_file(kHostBusybox, root / "bin/busybox", fs::copy_options::update_existing);
  fs::permissions(root / "bin/busybox", fs::perms(0755));
  for (const char* applet : {"true", "sh", "sleep", "echo", "cat"}) {
    const fs::path link = root / "bin" / applet;
    if (!fs::is_symlink(fs::symlink_status(link))) fs::create_symlink("busybox", link);
  }
  for (const char* dir : {"proc", "dev", "sys", "tmp", "etc"}) fs::create_directories(root / dir);
  fs::permissions(root / "tmp", fs::perms(01777));
  std::ofstream passwd(root / "etc/passwd", std::ios::trunc);
  passwd << "root:x:0:0:root:/root:/bin/sh\n"
            "agent:x:1000:1000:agent:/home/agent:/bin/sh\n";
  if (!passwd.flush()) throw std::runtime_error("cannot write " + (root / "etc/passwd").string());
}

ScratchDir::ScratchDir(const std::string& prefix, const std::string& parent) {
  std::string pattern = parent + "/" + prefix + ".XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  path_ = pattern;
  fs::permissions(path_, fs::perms(0755));
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

}  // namespace nucleus::bench
