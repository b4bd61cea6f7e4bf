#include "peers.hpp"

#include <linux/magic.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "process.hpp"
#include "report.hpp"

namespace fs = std::filesystem;

namespace nucleus::bench {
namespace {

// An OCI config for crun, runc and runsc: the namespaces nucleus uses by
// default (its own network namespace included), container root mapped to an
// unprivileged range as nucleus does, read-only root, no capabilities beyond
// crun's rootless template.
json oci_config(const fs::path& rootfs) {
  const bool root = ::geteuid() == 0;
  const json uid_mapping = {{"containerID", 0}, {"hostID", root ? 100000 : ::geteuid()}, {"size", root ? 65536 : 1}};
  const json gid_mapping = {{"containerID", 0}, {"hostID", root ? 100000 : ::getegid()}, {"size", root ? 65536 : 1}};
  json devpts_options = {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"};
  if (root) devpts_options.push_back("gid=5");  // tty group exists only with a full mapping
  const json capabilities = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
  json namespaces = json::array();
  for (const char* type : {"pid", "ipc", "uts", "user", "mount", "cgroup", "network"}) {
    namespaces.push_back({{"type", type}});
  }
  return {
      {"ociVersion", "1.0.0"},
      {"process",
       {{"terminal", false},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", {"/bin/true"}},
        {"env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"}},
        {"cwd", "/"},
        {"capabilities",
         {{"bounding", capabilities},
          {"effective", capabilities},
          {"inheritable", json::array()},
          {"permitted", capabilities},
          {"ambient", capabilities}}},
        {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}}},
        {"noNewPrivileges", true}}},
      {"root", {{"path", rootfs.string()}, {"readonly", true}}},
      {"hostname", "bench"},
      {"mounts",
       {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
        {{"destination", "/dev"},
         {"type", "tmpfs"},
         {"source", "tmpfs"},
         {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
        {{"destination", "/dev/pts"}, {"type", "devpts"}, {"source", "devpts"}, {"options", devpts_options}},
        {{"destination", "/dev/shm"},
         {"type", "tmpfs"},
         {"source", "shm"},
         {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
        {{"destination", "/dev/mqueue"},
         {"type", "mqueue"},
         {"source", "mqueue"},
         {"options", {"nosuid", "noexec", "nodev"}}},
        {{"destination", "/sys"},
         {"type", "sysfs"},
         {"source", "sysfs"},
         {"options", {"nosuid", "noexec", "nodev", "ro"}}},
        {{"destination", "/sys/fs/cgroup"},
         {"type", "cgroup"},
         {"source", "cgroup"},
         {"options", {"nosuid", "noexec", "nodev", "relatime", "ro"}}}}},
      {"linux",
       {{"uidMappings", {uid_mapping}},
        {"gidMappings", {gid_mapping}},
        {"resources", {{"devices", {{{"allow", false}, {"access", "rwm"}}}}}},
        {"namespaces", namespaces},
        {"maskedPaths",
         {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}},
        {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}}}},
  };
}

PeerSetup unavailable(std::string reason) { return {std::nullopt, std::move(reason)}; }

std::optional<fs::path> write_bundle(const fs::path& rootfs, const fs::path& workdir, const std::string& key) {
  const fs::path bundle = workdir / (key + "-bundle");
  fs::create_directories(bundle);
  fs::create_directories(workdir / (key + "-state"));
  std::ofstream out(bundle / "config.json");
  out << oci_config(rootfs).dump(2) << '\n';
  if (!out.flush()) return std::nullopt;
  return bundle;
}

// podman sets RLIMIT_NOFILE/NPROC/MEMLOCK to large defaults; raising a hard
// limit needs CAP_SYS_RESOURCE, which root lacks in some containers and VMs.
// Asking for the current limits keeps the comparison about start-up.
std::vector<std::string> current_ulimit_args() {
  std::vector<std::string> args;
  const std::pair<const char*, int> limits[] = {
      {"nofile", RLIMIT_NOFILE}, {"nproc", RLIMIT_NPROC}, {"memlock", RLIMIT_MEMLOCK}};
  for (const auto& [name, resource] : limits) {
    rlimit current{};
    if (::getrlimit(resource, &current) != 0) continue;
    // Observed with podman 4.3 + crun 1.8 as root without CAP_SYS_RESOURCE:
    // nproc=N:N fails for N = 65536 and above (even at the current limit),
    // while 4096 works; 4096 is plenty for /bin/true.
    if (resource == RLIMIT_NPROC) current.rlim_cur = current.rlim_max = std::min<rlim_t>(current.rlim_max, 4096);
    auto text = [](rlim_t value) { return value == RLIM_INFINITY ? std::string("-1") : std::to_string(value); };
    args.insert(args.end(),
                {"--ulimit", std::string(name) + "=" + text(current.rlim_cur) + ":" + text(current.rlim_max)});
  }
  return args;
}

PeerSetup prepare_oci(const std::string& key, const std::string& binary, const fs::path& rootfs,
                      const fs::path& workdir) {
  const auto tool = find_executable(binary);
  if (!tool) return unavailable(binary + " not installed (apt-get install " + binary + ")");
  const auto bundle = write_bundle(rootfs, workdir, key);
  if (!bundle) return unavailable("cannot write its OCI bundle under " + workdir.string());
  Subject subject;
  subject.kind = key;
  subject.version = tool_version({*tool, "--version"});
  const std::string state = (workdir / (key + "-state")).string();
  if (key == "crun") {
    subject.name = "crun";
    subject.argv = {*tool, "--cgroup-manager=disabled", "--root", state, "run", "--bundle", bundle->string(), "<id>"};
  } else if (key == "runc") {
    subject.name = "runc";
    subject.argv = {*tool, "--root", state, "run", "--bundle", bundle->string(), "<id>"};
  } else {
    // runsc 2022's default platform is ptrace (no /dev/kvm needed); the
    // sandbox gets no network stack at all, like the others' empty netns.
    subject.name = "gVisor runsc";
    subject.argv = {*tool,      "--root",         state, "--network=none", "--ignore-cgroups", "run",
                    "--bundle", bundle->string(), "<id>"};
  }
  subject.container_id_arg = subject.argv.size() - 1;
  return {std::move(subject), ""};
}

PeerSetup prepare_bwrap(const fs::path& rootfs) {
  const auto bwrap = find_executable("bwrap");
  if (!bwrap) return unavailable("bwrap not installed (apt-get install bubblewrap)");
  Subject subject;
  subject.name = "bubblewrap";
  subject.kind = "bwrap";
  subject.version = tool_version({*bwrap, "--version"});
  subject.argv = {*bwrap,  "--unshare-all", "--die-with-parent", "--ro-bind", rootfs.string(), "/", "--proc", "/proc",
                  "--dev", "/dev",          "--tmpfs",           "/tmp",      "/bin/true"};
  return {std::move(subject), ""};
}

PeerSetup prepare_docker(const fs::path& rootfs, const fs::path& workdir) {
  const auto docker = find_executable("docker");
  if (!docker) return unavailable("docker not installed");
  CaptureOptions quick;
  quick.timeout_s = 15;
  const Captured info = run_capture({*docker, "version", "--format", "{{.Server.Version}}"}, quick);
  if (!info.ok()) return unavailable("no Docker daemon answers: " + info.failure());
  // The same rootfs as everyone else, imported as an image (no registry).
  const auto tar = find_executable("tar");
  if (!tar) return unavailable("tar not found (needed to import the rootfs)");
  const std::string tarball = (workdir / "rootfs.tar").string();
  const Captured packed = run_capture({*tar, "-C", rootfs.string(), "-cf", tarball, "."}, quick);
  if (!packed.ok()) return unavailable("tar of the rootfs failed: " + packed.failure());
  const std::string image = "nucleus-bench-busybox:" + std::to_string(::getpid());
  CaptureOptions slow;
  slow.timeout_s = 120;
  const Captured imported = run_capture({*docker, "import", tarball, image}, slow);
  if (!imported.ok()) return unavailable("docker import failed: " + imported.failure());
  Subject subject;
  subject.name = "docker";
  subject.kind = "docker";
  subject.version = "Docker " + one_line(info.out);
  subject.argv = {*docker, "run", "--rm", "--network", "none", "--log-driver", "none", image, "/bin/true"};
  subject.cleanup.push_back({*docker, "rmi", "-f", image});
  return {std::move(subject), ""};
}

PeerSetup prepare_podman(const fs::path& rootfs) {
  const auto podman = find_executable("podman");
  if (!podman) return unavailable("podman not installed (apt-get install podman)");
  Subject subject;
  subject.name = "podman (--cgroups=disabled)";
  subject.kind = "podman";
  subject.version = tool_version({*podman, "--version"});
  // --cgroups=disabled: on a cgroup2 mount crun loads an eBPF device filter,
  // raising RLIMIT_MEMLOCK first (needs CAP_SYS_RESOURCE); the crun peer runs
  // with --cgroup-manager=disabled too.
  subject.argv = {*podman, "run", "--rm", "--network", "none", "--cgroups=disabled", "--log-driver", "none"};
  for (auto& arg : current_ulimit_args()) subject.argv.push_back(arg);
  subject.argv.insert(subject.argv.end(), {"--rootfs", rootfs.string(), "/bin/true"});
  return {std::move(subject), ""};
}

}  // namespace

std::vector<std::string> Subject::argv_for_run(unsigned long sequence) const {
  std::vector<std::string> result = argv;
  if (container_id_arg) result[*container_id_arg] = "nb-" + std::to_string(::getpid()) + "-" + std::to_string(sequence);
  return result;
}

std::string Subject::display_command() const {
  std::vector<std::string> shown = argv;
  if (container_id_arg) shown[*container_id_arg] = "nb-<pid>-<n>";
  return join_command(shown);
}

const std::vector<std::string>& known_peers() {
  static const std::vector<std::string> peers = {"crun", "runc", "bwrap", "runsc", "docker", "podman"};
  return peers;
}

std::optional<std::string> canonical_peer(const std::string& name) {
  if (name == "bubblewrap") return "bwrap";
  if (name == "gvisor" || name == "gVisor") return "runsc";
  for (const auto& key : known_peers())
    if (key == name) return key;
  return std::nullopt;
}

bool peer_needs_cgroup2(const std::string& key) { return key == "crun" || key == "runc" || key == "podman"; }

Subject make_bare_subject(const fs::path& rootfs) {
  Subject subject;
  subject.name = "bare exec";
  subject.kind = "bare";
  subject.argv = {(rootfs / "bin/true").string()};
  return subject;
}

Subject make_nucleus_subject(const std::string& name, const std::string& binary, const fs::path& rootfs,
                             const std::vector<std::string>& extra_args) {
  Subject subject;
  subject.name = name;
  subject.kind = "nucleus";
  subject.version = tool_version({binary, "--version"});
  subject.argv = {binary, "run", "--rootfs", rootfs.string()};
  subject.argv.insert(subject.argv.end(), extra_args.begin(), extra_args.end());
  subject.argv.insert(subject.argv.end(), {"--", "/bin/true"});
  return subject;
}

PeerSetup prepare_peer(const std::string& key, const fs::path& rootfs, const fs::path& workdir) {
  if (key == "crun" || key == "runc" || key == "runsc") return prepare_oci(key, key, rootfs, workdir);
  if (key == "bwrap") return prepare_bwrap(rootfs);
  if (key == "docker") return prepare_docker(rootfs, workdir);
  if (key == "podman") return prepare_podman(rootfs);
  return unavailable("unknown peer");
}

std::string enter_private_cgroup2_namespace() {
  struct statfs current {};
  if (::statfs("/sys/fs/cgroup", &current) == 0 && current.f_type == CGROUP2_SUPER_MAGIC) return {};
  if (::unshare(CLONE_NEWNS) != 0) return std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return std::string("making / recursively private: ") + std::strerror(errno);
  }
  if (::mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return std::string("mounting cgroup2 on /sys/fs/cgroup: ") + std::strerror(errno);
  }
  return {};
}

}  // namespace nucleus::bench
