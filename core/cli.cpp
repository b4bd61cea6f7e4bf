#include "core/cli.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/attestation.hpp"
#include "core/daemon.hpp"
#include "core/client.hpp"
#include "core/policies.hpp"
#include "core/run.hpp"
#include "core/spec.hpp"
#include "core/state.hpp"
#include "io/unique_fd.hpp"
#include "isolation/seccomp_trace.hpp"

namespace nucleus::core {

namespace {

using nlohmann::json;

constexpr const char* version_text = "nucleus 0.1.0";

void remember_names(RunFlags& f, const std::string& names) {
    std::stringstream list(names);
    std::string name;
    while (std::getline(list, name, ',')) f.takes_value.insert(name);
}

}  // namespace

void add_run_flags(CLI::App& run, RunFlags& f) {
    auto str = [&](const std::string& flag, const std::string& key, const std::string& help) {
        run.add_option(flag, f.strings[key], help);
        remember_names(f, flag);
    };
    auto list = [&](const std::string& flag, const std::string& key, const std::string& help) {
        run.add_option(flag, f.lists[key], help);
        remember_names(f, flag);
    };
    str("--name", "name", "Name of the sandbox (default nucleus-<id>)");
    str("--rootfs", "rootfs", "Root filesystem directory, mounted read-only (default: the host's /usr, /bin, /lib... read-only)");
    str("--network", "network", "none (default: own namespace with lo), host, or bridge (veth on a host bridge with NAT)");
    list("-p,--publish", "publish", "Publish a port with --network bridge: [IP:]HOST:CONTAINER[/tcp|udp] (IP default 127.0.0.1; repeatable)");
    auto flag = [&](const std::string& name, const std::string& key, const std::string& help) {
        run.add_flag(name, f.bools[key], help);
    };
    flag("--time-namespace", "time_namespace", "Give the sandbox its own time namespace");
    str("--hostname", "hostname", "Hostname inside the sandbox (default: the short id)");
    str("-u,--user", "user", "UID[:GID] of the workload inside the sandbox (default 1000:1000)");
    str("--userns", "userns", "auto (default) or keep-id: map the workload's uid to the same host uid");
    str("--workspace", "workspace", "Host directory mounted at /workspace");
    str("--workspace-mode", "workspace_mode", "bind-rw (default), bind-ro or copy-in-out (synced back on exit)");
    flag("--workspace-exec", "workspace_exec", "Allow executing files from /workspace (default noexec)");
    list("-v,--volume", "volume", "Bind mount SRC:DST[:ro|rw] (repeatable)");
    str("--context", "context", "Host directory copied to a read-only /context");
    str("-w,--workdir", "workdir", "Working directory inside the sandbox");
    list("-e,--env", "env", "Set KEY=VALUE, or pass KEY from the host (repeatable)");
    list("--env-file", "env_file", "Read KEY=VALUE lines from a file (repeatable)");
    list("--cap-add", "cap_add", "Keep a capability, e.g. NET_BIND_SERVICE (repeatable; default: none)");
    list("--ulimit", "ulimit", "Resource limit NAME=SOFT[:HARD], e.g. nofile=1024:2048; -1 or unlimited = no limit (not for nofile) (repeatable)");
    str("--memory", "memory", "Memory limit (memory.max), e.g. 512m; OOM kills the whole sandbox (exit 137)");
    str("--memory-high", "memory_high", "Memory throttling threshold (memory.high)");
    str("--memory-swap", "memory_swap", "Memory plus swap limit, as Docker (-1: unlimited swap)");
    str("--cpus", "cpus", "CPU bandwidth in CPUs, e.g. 0.5 (cpu.max)");
    str("--cpu-weight", "cpu_weight", "CPU share 1-10000 (cpu.weight, default 100)");
    str("--pids", "pids", "Maximum tasks (pids.max; default 1024 for agent sandboxes)");
    str("--io-weight", "io_weight", "IO share 1-10000 (io.weight)");
    list("--io-max", "io_max", "IO limit DEV:rbps=N,wbps=N,riops=N,wiops=N (DEV a block device or MAJ:MIN; repeatable)");
    str("--tmpfs-size", "tmpfs_size", "Size of /tmp and the home tmpfs, e.g. 64m (charged to the sandbox's memory)");
    str("--cgroup-parent", "cgroup_parent", "Parent cgroup, relative to the cgroup2 mount (default: nucleus)");
    str("--service-mode", "service_mode", "agent (default), strict-agent (fail-closed) or production");
    flag("--strict-agent", "strict_agent", "Same as --service-mode strict-agent");
    flag("--allow-degraded-security", "allow_degraded_security", "Agent mode: accept running without a layer the host lacks");
    str("--seccomp-mode", "seccomp_mode", "enforce (default) or trace: record every syscall into --seccomp-log");
    str("--seccomp-log", "seccomp_log", "Where trace mode writes the syscalls seen (NDJSON)");
    str("--seccomp-profile", "seccomp_profile", "Seccomp profile in the OCI/Docker JSON format (default: the built-in allowlist)");
    str("--seccomp-profile-sha256", "seccomp_profile_sha256", "Refuse the profile unless its SHA-256 is HEX");
    flag("--seccomp-log-denied", "seccomp_log_denied", "Log denied syscalls to the kernel log (SECCOMP_FILTER_FLAG_LOG)");
    str("--caps-policy", "caps_policy", "Capability policy (TOML: bounding, ambient)");
    str("--caps-policy-sha256", "caps_policy_sha256", "Refuse the capability policy unless its SHA-256 is HEX");
    str("--landlock-policy", "landlock_policy", "Landlock policy (TOML: min_abi, [[rule]] path, access)");
    str("--landlock-policy-sha256", "landlock_policy_sha256", "Refuse the Landlock policy unless its SHA-256 is HEX");
    list("--secret", "secret", "Stage a host file read-only at /run/secrets/NAME: SRC[:NAME] (repeatable)");
    run.add_option("--env-fd", f.env_fd, "Read secret environment variables as a JSON object from descriptor N");
    remember_names(f, "--env-fd");
    flag("--verify-rootfs-attestation", "verify_rootfs_attestation", "Refuse a rootfs that differs from its .nucleus-rootfs-sha256");
    flag("--verify-context-integrity", "verify_context_integrity", "Refuse a --context that differs from its .nucleus-rootfs-sha256");
    str("--require-kernel-lockdown", "require_kernel_lockdown", "Refuse to run unless kernel lockdown is at least integrity|confidentiality");
    str("--audit-log", "audit_log", "Append one JSON line per security decision to PATH");
    run.add_option("--timeout", f.timeout, "Kill the sandbox after SECONDS; exit code 124");
    remember_names(f, "--timeout,--events-fd,--config,--config-fd");
    str("--log-dir", "log_dir", "Write stdout/stderr to DIR/<name>.stdout.log and .stderr.log");
    str("--events-jsonl", "events_jsonl", "Append lifecycle events (JSON lines) to PATH");
    run.add_option("--events-fd", f.events_fd, "Write lifecycle events (JSON lines) to descriptor N");
    run.add_option("--config", f.config, "Read the request from FILE.json or FILE.toml (keys: long flag names in snake_case)");
    run.add_option("--config-fd", f.config_fd, "Read the request (JSON or TOML) from descriptor N");
}

namespace {

Result<json> read_config(const RunFlags& f, const CLI::App& run) {
    json doc = json::object();
    if (run.count("--config")) {
        auto parsed = load_config_file(f.config);
        if (!parsed) return std::move(parsed).error().wrap("reading --config");
        doc = std::move(*parsed);
    }
    if (run.count("--config-fd")) {
        std::string text;
        char buf[4096];
        ssize_t n;
        while ((n = ::read(f.config_fd, buf, sizeof buf)) > 0) {
            text.append(buf, static_cast<size_t>(n));
            if (text.size() > (1 << 20)) return Error::plain("--config-fd: larger than 1 MiB");
        }
        if (n < 0) return Error::from_errno("reading --config-fd " + std::to_string(f.config_fd));
        auto first = text.find_first_not_of(" \t\r\n");
        bool is_json = first != std::string::npos && text[first] == '{';
        auto parsed = parse_config_text(text, is_json ? "json" : "toml", "config-fd " + std::to_string(f.config_fd));
        if (!parsed) return std::move(parsed).error();
        if (!parsed->is_object()) return Error::plain("--config-fd: the request must be an object");
        doc.update(*parsed);
    }
    if (!doc.is_object()) return Error::plain("--config: the request must be an object of settings");
    return doc;
}

}  // namespace

// Flags given on the command line override the config document.
Result<json> run_document(const RunFlags& f, const CLI::App& run, const std::vector<std::string>& command) {
    auto doc = read_config(f, run);
    if (!doc) return doc;
    // Flags whose document value is a number when it looks like one.
    static const std::set<std::string> numeric = {"cpu_weight", "pids", "io_weight", "memory_swap"};
    for (const auto& [key, value] : f.strings) {
        std::string flag = "--" + key;
        std::replace(flag.begin(), flag.end(), '_', '-');
        if (!run.count(flag)) continue;
        int64_t number = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
        if (numeric.count(key) && ec == std::errc{} && end == value.data() + value.size()) (*doc)[key] = number;
        else (*doc)[key] = value;
    }
    for (const auto& [key, values] : f.lists) {
        std::string flag = "--" + key;
        std::replace(flag.begin(), flag.end(), '_', '-');
        if (run.count(flag)) (*doc)[key] = values;
    }
    for (const auto& [key, value] : f.bools) {
        std::string name = "--" + key;
        std::replace(name.begin(), name.end(), '_', '-');
        if (!run.count(name)) continue;
        if (key == "strict_agent") (*doc)["service_mode"] = "strict-agent";
        else (*doc)[key] = value;
    }
    if (run.count("--env-fd")) (*doc)["env_fd"] = f.env_fd;
    if (run.count("--timeout")) (*doc)["timeout"] = f.timeout;
    if (run.count("--events-fd")) (*doc)["events_fd"] = f.events_fd;
    if (!command.empty()) (*doc)["command"] = command;
    return doc;
}

// Where the command starts in `nucleus run ...`: after "--", or at the
// first token that is neither a flag nor a flag's value (Docker's rule:
// flags after the command belong to the command).
size_t command_start(int argc, char** argv, int run_index, const RunFlags& f) {
    for (int i = run_index + 1; i < argc; ++i) {
        std::string token = argv[i];
        if (token == "--") return static_cast<size_t>(i);
        if (token.size() < 2 || token[0] != '-') return static_cast<size_t>(i);
        if (token.find('=') == std::string::npos && f.takes_value.count(token)) ++i;
    }
    return static_cast<size_t>(argc);
}

namespace {

int fail(const Error& e) {
    std::fprintf(stderr, "nucleus: error: %s\n", e.describe().c_str());
    return exit_runtime_error;
}

// Writes to a temporary file beside `path`, then renames: no half-written file.
Status write_atomically(const std::string& path, const std::string& content) {
    std::string tmp = path + ".tmp";
    auto fd = io::open_fd(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!fd) return std::move(fd).error();
    auto st = io::write_all(fd->get(), content);
    if (st && ::fsync(fd->get()) < 0) st = Error::from_errno("fsync " + tmp);
    if (st && ::rename(tmp.c_str(), path.c_str()) < 0) st = Error::from_errno("rename " + tmp);
    if (!st) ::unlink(tmp.c_str());
    return st;
}

int generate_profile(const std::string& trace_path, const std::string& profile_path) {
    auto names = isolation::read_trace(trace_path);
    if (!names) return fail(names.error());
    std::string profile = profile_from_trace(*names);
    if (auto st = write_atomically(profile_path, profile); !st) return fail(st.error());
    std::printf("wrote %s: %zu syscalls allowed, everything else EPERM\nsha256 %s\n", profile_path.c_str(),
                names->size(), sha256_hex(profile).c_str());
    return 0;
}

int attest_command(const std::string& dir) {
    auto summary = attest_rootfs(dir);
    if (!summary) return fail(summary.error());
    std::printf("attested %s: %zu entries, %llu bytes hashed\nmanifest %s\nsha256 %s\n", dir.c_str(),
                static_cast<size_t>(summary->entries), static_cast<unsigned long long>(summary->bytes_hashed),
                summary->manifest_path.c_str(), summary->manifest_sha256.c_str());
    return 0;
}

int verify_command(const std::string& dir) {
    auto diffs = verify_rootfs(dir);
    if (!diffs) return fail(diffs.error());
    for (const auto& d : *diffs) std::printf("%s\n", d.c_str());
    if (diffs->empty()) std::printf("%s matches its attestation\n", dir.c_str());
    return diffs->empty() ? 0 : 1;
}

}  // namespace

int main_cli(int argc, char** argv) {
    if (argc > 1 && std::string_view(argv[1]) == "daemon") return daemon_main(argc, argv);
    // The commands that talk to `nucleus daemon` have their own parser.
    if (argc > 1 && is_client_command(argv[1])) return client_main(argc, argv);

    CLI::App app{"Nucleus: a Linux sandbox runtime for agents and services.", "nucleus"};
    app.require_subcommand(1);
    app.set_version_flag("--version", version_text);
    app.footer("Exit codes: the workload's own; 124 timeout; 125 runtime error; 126 cannot execute;\n"
               "127 command not found; 128+N killed by signal N.");

    auto* run = app.add_subcommand("run", "Run a command in a new sandbox");
    RunFlags flags;
    add_run_flags(*run, flags);
    std::vector<std::string> command;

    auto* gc = app.add_subcommand("gc", "Clean up after supervisors that died without tearing down");

    auto* seccomp = app.add_subcommand("seccomp", "Seccomp profile tools");
    auto* generate = seccomp->add_subcommand("generate", "Write a minimal allowlist profile from a --seccomp-mode trace log");
    std::string trace_path, profile_path;
    generate->add_option("trace", trace_path, "The trace (NDJSON) written by --seccomp-log")->required();
    generate->add_option("-o,--output", profile_path, "Where to write the profile (JSON)")->required();
    seccomp->require_subcommand(1);

    auto* rootfs = app.add_subcommand("rootfs", "Root filesystem tools");
    auto* attest = rootfs->add_subcommand("attest", "Write DIR/.nucleus-rootfs-sha256 (path, mode, owner, size, sha256 per entry)");
    std::string attest_dir;
    attest->add_option("dir", attest_dir, "The root filesystem directory")->required();
    auto* verify = rootfs->add_subcommand("verify", "Check DIR against its .nucleus-rootfs-sha256");
    verify->add_option("dir", attest_dir, "The root filesystem directory")->required();
    rootfs->require_subcommand(1);
    app.add_subcommand("version", "Print the version")->callback([] { std::puts(version_text); });
    // Listed for --help only: client_main parses them.
    for (const auto& [name, help] : client_command_summaries()) app.add_subcommand(name, help)->group("Daemon commands");

    // Split `run`'s command off before CLI11 sees it.
    int run_index = 1;
    while (run_index < argc && argv[run_index][0] == '-') ++run_index;
    size_t split = static_cast<size_t>(argc);
    if (run_index < argc && std::string(argv[run_index]) == "run") {
        split = command_start(argc, argv, run_index, flags);
        size_t first = split < static_cast<size_t>(argc) && std::string(argv[split]) == "--" ? split + 1 : split;
        for (size_t i = first; i < static_cast<size_t>(argc); ++i) command.push_back(argv[i]);
    }
    try {
        app.parse(static_cast<int>(split), argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "nucleus: error: %s\nSee 'nucleus --help'.\n", e.what());
        return exit_runtime_error;
    }

    if (gc->parsed()) {
        auto paths = prepare_runtime_paths();
        if (!paths) {
            std::fprintf(stderr, "nucleus: error: %s\n", paths.error().describe().c_str());
            return exit_runtime_error;
        }
        auto report = collect_stale_sandboxes(*paths);
        std::printf("removed %d stale sandbox%s\n", report.sandboxes, report.sandboxes == 1 ? "" : "es");
        for (const auto& e : report.errors) std::fprintf(stderr, "nucleus: warning: %s\n", e.c_str());
        return report.errors.empty() ? 0 : exit_runtime_error;
    }
    if (generate->parsed()) return generate_profile(trace_path, profile_path);
    if (attest->parsed()) return attest_command(attest_dir);
    if (verify->parsed()) return verify_command(attest_dir);
    if (!run->parsed()) return 0;

    auto doc = run_document(flags, *run, command);
    if (!doc) {
        std::fprintf(stderr, "nucleus: error: %s\n", doc.error().describe().c_str());
        return exit_runtime_error;
    }
    auto spec = spec_from_document(*doc);
    if (!spec) {
        std::fprintf(stderr, "nucleus: error: %s\n", spec.error().describe().c_str());
        return exit_runtime_error;
    }
    return run_sandbox(*spec);
}

}  // namespace nucleus::core
