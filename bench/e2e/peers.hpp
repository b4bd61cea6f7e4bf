// The cold-start subjects: bare exec, nucleus run variants, and the peer
// runtimes, each running /bin/true on the same busybox rootfs. A peer either
// becomes a subject or is reported "not run" with the reason.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace nucleus::bench {

struct Subject {
  std::string name;  // shown in tables and charts
  std::string kind;  // "bare", "nucleus" or the peer's key ("crun", ...)
  std::string version;  // the tool's own version line, if it tells
  std::vector<std::string> argv;  // argv[0] absolute
  // Runtimes that refuse to reuse a container ID get "nb-<pid>-<n>" here.
  std::optional<std::size_t> container_id_arg;
  std::vector<std::vector<std::string>> cleanup;  // run once at the end (docker rmi)

  std::vector<std::string> argv_for_run(unsigned long sequence) const;
  std::string display_command() const;
};

struct PeerSetup {
  std::optional<Subject> subject;
  std::string not_run_reason;
};

// Peer keys in report order, and their accepted spellings.
const std::vector<std::string>& known_peers();  // crun runc bwrap runsc docker podman
std::optional<std::string> canonical_peer(const std::string& name);  // "bubblewrap" -> "bwrap", "gvisor" -> "runsc"
bool peer_needs_cgroup2(const std::string& key);

Subject make_bare_subject(const std::filesystem::path& rootfs);
Subject make_nucleus_subject(const std::string& name, const std::string& binary, const std::filesystem::path& rootfs,
                             const std::vector<std::string>& extra_args);
// Bundles, state directories and tarballs go under `workdir`.
PeerSetup prepare_peer(const std::string& key, const std::filesystem::path& rootfs,
                       const std::filesystem::path& workdir);

// crun 1.8 refuses hybrid cgroup v1/v2 hosts. Unless /sys/fs/cgroup is
// already cgroup2, move this process into a private mount namespace (/ made
// recursively private: the host's mounts are never touched) with a fresh
// cgroup2 on /sys/fs/cgroup. Every subject spawned later shares it, nucleus
// included, keeping the comparison fair. Returns an error, or "".
std::string enter_private_cgroup2_namespace();

}  // namespace nucleus::bench
