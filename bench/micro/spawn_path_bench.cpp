// The parent-side work on the spawn path: parsing and validating a spec
// document, building the launch plan, and (for custom profiles) compiling a
// seccomp policy, against copying the precompiled default filter as the
// baseline measured in the same run.
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>

#include "core/events.hpp"
#include "core/spec.hpp"
#include "isolation/launch_plan.hpp"
#include "isolation/seccomp.hpp"

using namespace nucleus;

namespace {

nlohmann::json typical_document() {
    return {{"network", "none"},
            {"workspace", "/tmp"},
            {"workspace_mode", "bind-rw"},
            {"env", {"A=1", "B=2"}},
            {"timeout", 30},
            {"memory", "512m"},
            {"pids", 256},
            {"command", {"python3", "-c", "print(1)"}}};
}

void BM_SpecFromDocument(benchmark::State& state) {
    auto doc = typical_document();
    for (auto _ : state) {
        auto spec = core::spec_from_document(doc);
        benchmark::DoNotOptimize(spec);
    }
}

void BM_ParseConfigText(benchmark::State& state, const char* format) {
    std::string json_text = typical_document().dump();
    std::string toml_text =
        "network = \"none\"\nworkspace = \"/tmp\"\nenv = [\"A=1\", \"B=2\"]\ntimeout = 30\nmemory = \"512m\"\n"
        "pids = 256\ncommand = [\"python3\", \"-c\", \"print(1)\"]\n";
    const std::string& text = std::string(format) == "json" ? json_text : toml_text;
    for (auto _ : state) {
        auto doc = core::parse_config_text(text, format, "bench");
        benchmark::DoNotOptimize(doc);
    }
}

void BM_LaunchPlanBuild(benchmark::State& state) {
    isolation::LaunchRequest req;
    req.staging_dir = "/run/nucleus/staging";
    req.hostname = "bench";
    req.hosts_file = "127.0.0.1 localhost\n";
    req.argv = {"python3", "-c", "print(1)"};
    req.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/agent"};
    req.maps.uid = req.maps.gid = {{0, 1000000000, 65536}};
    req.landlock = false;  // the ruleset fd is a kernel object, not plan building
    for (auto _ : state) {
        auto plan = isolation::LaunchPlan::build(req);
        benchmark::DoNotOptimize(plan);
    }
}

void BM_SeccompDefault_Precompiled(benchmark::State& state) {
    for (auto _ : state) {
        auto filter = isolation::precompiled_default_seccomp();
        std::vector<sock_filter> copy(filter.begin(), filter.end());
        benchmark::DoNotOptimize(copy);
    }
}

void BM_SeccompDefault_CompiledWithLibseccomp(benchmark::State& state) {
    for (auto _ : state) {
        auto filter = isolation::compile_seccomp(isolation::default_seccomp_policy());
        benchmark::DoNotOptimize(filter);
    }
}

// The event encoder: a typical final record (as `nucleus run` and the
// daemon emit one per sandbox) serialised with its timestamp, into a sink
// that discards it, against serialising the same record bare.
nlohmann::json typical_exit_record() {
    return {{"event", "exit"},
            {"id", "ad5620bff6b7bb995b8d9791dc8bc7ab"},
            {"name", "nucleus-ad5620bff6b7"},
            {"exit_code", 0},
            {"reason", "exit"},
            {"signal", nullptr},
            {"wall_ms", 4.2},
            {"cpu", {{"usage_ms", 1.2}, {"user_ms", 0.4}, {"system_ms", 0.8}, {"source", "cgroup"}}},
            {"cleanup", {{"cgroup_removed", true}, {"state_removed", true}, {"ok", true}}},
            {"stats", {{"cpu_usage_usec", 1200}, {"pids_peak", 1}}}};
}

void BM_EventEncode_Bare(benchmark::State& state) {
    auto record = typical_exit_record();
    for (auto _ : state) {
        auto line = record.dump() + "\n";
        benchmark::DoNotOptimize(line);
    }
}

void BM_EventEncode_EventLog(benchmark::State& state) {
    auto record = typical_exit_record();
    size_t bytes = 0;
    auto log = core::EventLog::to([&](const nlohmann::json& r) { bytes += r.dump().size() + 1; });
    for (auto _ : state) {
        auto st = log.emit(record);
        benchmark::DoNotOptimize(st);
    }
    benchmark::DoNotOptimize(bytes);
}

}  // namespace

BENCHMARK(BM_SpecFromDocument);
BENCHMARK(BM_EventEncode_Bare);
BENCHMARK(BM_EventEncode_EventLog);
BENCHMARK_CAPTURE(BM_ParseConfigText, json, "json");
BENCHMARK_CAPTURE(BM_ParseConfigText, toml, "toml");
BENCHMARK(BM_LaunchPlanBuild);
BENCHMARK(BM_SeccompDefault_Precompiled);
BENCHMARK(BM_SeccompDefault_CompiledWithLibseccomp);
