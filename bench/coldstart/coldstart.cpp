// nucleus-bench coldstart: how long `nucleus run -- /bin/true` takes on a
// static busybox rootfs, against bare exec, crun and bubblewrap on the same
// rootfs, interleaved (A B C A B C ...) in one run after a warm-up.
//
// crun 1.8 refuses a hybrid cgroup host, so the benchmark runs every subject
// in a private mount namespace of its own with a cgroup2 filesystem mounted
// at /sys/fs/cgroup (the host's mount table is untouched); nucleus finds the
// same hierarchy there.
#include <sched.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using nlohmann::json;

extern char** environ;

namespace {

struct Subject {
    std::string name;
    std::vector<std::string> argv;
    std::string cwd;
    std::vector<double> samples_ms;
    int failures = 0;
};

struct NotRun {
    std::string name, reason;
};

// Runs argv once; returns milliseconds, or a negative value on failure.
double time_once(const Subject& s) {
    std::vector<char*> raw;
    for (const auto& a : s.argv) raw.push_back(const_cast<char*>(a.c_str()));
    raw.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    if (!s.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, s.cwd.c_str());
    auto start = std::chrono::steady_clock::now();
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, raw[0], &actions, nullptr, raw.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return -1;
    int status = 0;
    ::waitpid(pid, &status, 0);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? ms : -1;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

std::string make_rootfs() {
    char tmpl[] = "/var/tmp/nucleus-bench-rootfs-XXXXXX";
    fs::path root = ::mkdtemp(tmpl);
    // mkdtemp makes it 0700; the sandboxes' mapped users must traverse it.
    fs::permissions(root, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    fs::create_directories(root / "bin");
    fs::copy_file("/bin/busybox", root / "bin/busybox");
    for (const char* applet : {"true", "sh"}) fs::create_symlink("busybox", root / "bin" / applet);
    for (const char* d : {"proc", "dev", "sys", "tmp"}) fs::create_directories(root / d);
    return root.string();
}

std::string find(const std::string& name) {
    for (const char* dir : {"/usr/bin", "/usr/sbin", "/bin", "/usr/local/bin"})
        if (::access((std::string(dir) + "/" + name).c_str(), X_OK) == 0) return std::string(dir) + "/" + name;
    return "";
}

// A private mount namespace with cgroup2 at /sys/fs/cgroup (for crun).
std::string enter_benchmark_namespace() {
    if (::unshare(CLONE_NEWNS) < 0) return std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) return "making / private failed";
    if (::mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, nullptr) < 0)
        return std::string("mounting cgroup2: ") + std::strerror(errno);
    return "";
}

// An OCI bundle running /bin/true with the namespaces nucleus uses, made
// from crun's own rootless template so every field is one crun accepts.
std::string make_crun_bundle(const std::string& crun, const std::string& rootfs) {
    fs::path bundle = rootfs + "-bundle";
    fs::create_directories(bundle);
    Subject spec{"crun spec", {crun, "spec", "--rootless", "--bundle", bundle.string()}, "", {}, 0};
    if (time_once(spec) < 0) return "";
    json config;
    std::ifstream(bundle / "config.json") >> config;
    config["process"]["args"] = {"/bin/true"};
    config["process"]["terminal"] = false;
    config["root"] = {{"path", rootfs}, {"readonly", true}};
    json map = json::array({{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}});
    config["linux"]["uidMappings"] = map;
    config["linux"]["gidMappings"] = map;
    json ns = json::array();
    for (const char* t : {"pid", "ipc", "uts", "mount", "user", "cgroup"}) ns.push_back({{"type", t}});
    config["linux"]["namespaces"] = ns;
    json mounts = json::array();  // no /sys: sysfs needs a network namespace
    for (const auto& m : config["mounts"])
        if (m.value("destination", "").rfind("/sys", 0) != 0) mounts.push_back(m);
    config["mounts"] = mounts;
    std::ofstream(bundle / "config.json") << config.dump(2);
    return bundle.string();
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"nucleus-bench: Nucleus against bare metal and peers, in one run", "nucleus-bench"};
    app.require_subcommand(1);
    auto* cold = app.add_subcommand("coldstart", "Cold start of /bin/true on a static busybox rootfs, interleaved");
    int runs = 200, warmup = 10;
    bool quick = false;
    std::string nucleus = NUCLEUS_DEFAULT_BINARY, json_out, peers_text = "crun,bwrap";
    cold->add_option("--runs", runs, "Measured rounds (default 200)");
    cold->add_option("--warmup", warmup, "Discarded rounds first (default 10)");
    cold->add_option("--peers", peers_text, "Peers to run: crun,bwrap (default both)");
    cold->add_option("--nucleus", nucleus, "The nucleus binary");
    cold->add_option("--json", json_out, "Also write the results as JSON");
    cold->add_flag("--quick", quick, "A smoke run: 10 rounds, 2 warm-up");
    CLI11_PARSE(app, argc, argv);
    if (quick) runs = 10, warmup = 2;
    if (::geteuid() != 0) {
        std::fprintf(stderr, "nucleus-bench: needs root (user namespaces with full id maps, cgroups)\n");
        return 2;
    }

    std::vector<NotRun> not_run;
    std::string ns_error = enter_benchmark_namespace();
    std::string rootfs = make_rootfs();
    std::vector<Subject> subjects = {
        {"bare exec", {rootfs + "/bin/true"}, "", {}, 0},
        {"nucleus (no netns)", {nucleus, "run", "--network", "host", "--rootfs", rootfs, "--", "/bin/true"}, "", {}, 0},
        {"nucleus", {nucleus, "run", "--rootfs", rootfs, "--", "/bin/true"}, "", {}, 0},
        {"nucleus strict-agent", {nucleus, "run", "--strict-agent", "--rootfs", rootfs, "--", "/bin/true"}, "", {}, 0},
    };
    auto want = [&](const char* peer) { return peers_text.find(peer) != std::string::npos; };
    std::string crun = find("crun"), bwrap = find("bwrap"), bundle;
    if (want("crun")) {
        if (crun.empty()) not_run.push_back({"crun", "not installed (apt-get install crun)"});
        else if (!ns_error.empty()) not_run.push_back({"crun", ns_error});
        else {
            bundle = make_crun_bundle(crun, rootfs);
            if (bundle.empty()) not_run.push_back({"crun", "`crun spec --rootless` failed"});
            else subjects.push_back({"crun", {crun, "--cgroup-manager=disabled", "--root", bundle + "/state", "run", "--bundle", bundle, "bench"}, "", {}, 0});
        }
    }
    if (want("bwrap")) {
        if (bwrap.empty()) not_run.push_back({"bwrap", "not installed (apt-get install bubblewrap)"});
        else subjects.push_back({"bwrap --unshare-all", {bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", rootfs, "/",
                                                          "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "/bin/true"}, "", {}, 0});
    }
    // A subject that cannot run once is listed with the reason, not dropped silently.
    for (auto it = subjects.begin(); it != subjects.end();) {
        if (time_once(*it) < 0) {
            not_run.push_back({it->name, "its probe run failed (run the command by hand to see why)"});
            it = subjects.erase(it);
        } else ++it;
    }
    for (int round = -warmup; round < runs; ++round) {
        for (auto& s : subjects) {
            double ms = time_once(s);
            if (round < 0) continue;
            if (ms < 0) ++s.failures;
            else s.samples_ms.push_back(ms);
        }
        if (round >= 0 && (round % 10 == 9 || round == runs - 1)) std::fprintf(stderr, "\rround %d/%d", round + 1, runs);
    }
    std::fprintf(stderr, "\n");

    double nucleus_median = 0;
    for (const auto& s : subjects)
        if (s.name == "nucleus (no netns)") nucleus_median = percentile(s.samples_ms, 0.5);
    utsname u{};
    ::uname(&u);
    std::printf("cold start of /bin/true, %d interleaved rounds after %d warm-up; kernel %s, %ld CPUs; rootfs %s\n\n",
                runs, warmup, u.release, ::sysconf(_SC_NPROCESSORS_ONLN), rootfs.c_str());
    std::printf("| subject | runs | median ms | p90 ms | p99 ms | median / nucleus (no netns) | failures |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
    json results = json::array();
    for (const auto& s : subjects) {
        double median = percentile(s.samples_ms, 0.5);
        std::printf("| %s | %zu | %.2f | %.2f | %.2f | %.2fx | %d |\n", s.name.c_str(), s.samples_ms.size(), median,
                    percentile(s.samples_ms, 0.9), percentile(s.samples_ms, 0.99),
                    nucleus_median > 0 ? median / nucleus_median : 0.0, s.failures);
        results.push_back({{"name", s.name}, {"command", s.argv}, {"samples_ms", s.samples_ms}, {"median_ms", median},
                           {"p90_ms", percentile(s.samples_ms, 0.9)}, {"p99_ms", percentile(s.samples_ms, 0.99)},
                           {"failures", s.failures}});
    }
    for (const auto& n : not_run) std::printf("\nnot run: %s: %s\n", n.name.c_str(), n.reason.c_str());
    if (!json_out.empty())
        std::ofstream(json_out) << json{{"kernel", u.release}, {"runs", runs}, {"subjects", results}, {"not_run", json::array()}}.dump(2);
    std::error_code ec;
    fs::remove_all(rootfs, ec);
    if (!bundle.empty()) fs::remove_all(bundle, ec);
    bool ok = std::all_of(subjects.begin(), subjects.end(), [](const Subject& s) { return !s.samples_ms.empty(); });
    return ok ? 0 : 1;
}
