// Defects found by trying the daemon as an attacker and a new user would:
// a name standing in for another sandbox's id prefix, query values read
// loosely, a sandbox created inside another's cgroup, a cleanup record
// dropped while its cgroup remained, and `wait` reporting an exit status
// it cannot know.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "daemon_harness.hpp"
#include "isolation/cgroup.hpp"

using namespace nucleus::tests;
using nlohmann::json;

TEST_CASE("daemon: a name cannot stand in for another sandbox's id prefix", "[daemon][names]") {
    if (skip_without_root()) return;
    TestDaemon d;
    std::string victim = d.create({{"command", {"/bin/sleep", "60"}}})["id"];
    std::string prefix = victim.substr(0, 8);
    json impostor = sh("echo impostor; sleep 60");
    impostor["name"] = prefix;
    auto refused = d.call("POST", "/v1/sandboxes", impostor.dump());
    CHECK(refused.status == 400);
    CHECK(json::parse(refused.body)["error"].get<std::string>().find("id prefix") != std::string::npos);
    for (const char* name : {"cafe", "0123456789abcdef0123456789abcdef"}) {
        impostor["name"] = name;
        CHECK(d.call("POST", "/v1/sandboxes", impostor.dump()).status == 400);
    }
    // Names that are not hex, or have a capital, an other letter or a dash, are names.
    for (const char* name : {"job", "CAFE", "cafe-1", "abc"}) {
        impostor["name"] = name;
        std::string id = d.create(impostor)["id"];
        CHECK(json::parse(d.call("GET", std::string("/v1/sandboxes/") + name).body)["id"] == id);
        CHECK(d.call("DELETE", "/v1/sandboxes/" + id + "?force=true").status == 204);
    }
    // The prefix still names the victim, for every endpoint.
    CHECK(json::parse(d.call("GET", "/v1/sandboxes/" + prefix).body)["id"] == victim);
    auto exec = d.call("POST", "/v1/sandboxes/" + prefix + "/exec", R"({"command":["/bin/cat","/proc/1/cmdline"]})");
    CHECK(json::parse(exec.body)["stdout"].get<std::string>().find("sleep") != std::string::npos);
    CHECK(d.call("DELETE", "/v1/sandboxes/" + prefix + "?force=true").status == 204);
    CHECK(d.call("GET", "/v1/sandboxes/" + victim).status == 404);
}

TEST_CASE("daemon: query values are strict: a value a parameter does not take is a 400 naming it", "[daemon][query]") {
    if (skip_without_root()) return;
    TestDaemon d;
    std::string id = d.create({{"command", {"/bin/sleep", "60"}}})["id"];
    auto says = [&](std::string_view method, const std::string& target, std::string_view word) {
        auto r = d.call(method, target);
        INFO(method << " " << target << ": " << r.body);
        CHECK(r.status == 400);
        CHECK(json::parse(r.body)["error"].get<std::string>().find(word) != std::string::npos);
    };
    says("DELETE", "/v1/sandboxes/" + id + "?force=yes", "force");
    says("GET", "/v1/sandboxes?all=maybe", "all");
    says("GET", "/v1/sandboxes/" + id + "/logs?follow=on", "follow");
    says("GET", "/v1/sandboxes/" + id + "/logs?tail=-1", "tail");
    says("GET", "/v1/sandboxes/" + id + "/logs?stream=stdin", "stream");
    says("POST", "/v1/sandboxes/" + id + "/wait?timeout=soon", "timeout");
    says("POST", "/v1/sandboxes/" + id + "/stop?timeout=inf", "timeout");
    says("POST", "/v1/sandboxes/" + id + "/kill?signal=NOPE", "signal");
    says("POST", "/v1/sandboxes?start=later", "start");
    says("GET", "/v1/sandboxes?forse=true", "forse");
    // Nothing was removed, stopped or created by any of them.
    auto list = json::parse(d.call("GET", "/v1/sandboxes?all=1").body)["sandboxes"];
    REQUIRE(list.size() == 1);
    CHECK(list[0]["state"] == "running");
    CHECK(d.call("DELETE", "/v1/sandboxes/" + id + "?force=1").status == 204);
}

TEST_CASE("a cgroup parent inside another sandbox's cgroup is refused, by the daemon and nucleus run",
          "[daemon][cgroup]") {
    if (skip_without_root()) return;
    auto before = host_state();
    {
        TestDaemon d;
        auto a = d.create({{"command", {"/bin/sleep", "60"}}});
        std::string id = a["id"];
        std::string inside = "nucleus/sandbox-" + id;
        json b = {{"command", {"/bin/true"}}, {"cgroup_parent", inside}};
        auto refused = d.call("POST", "/v1/sandboxes", b.dump());
        CHECK(refused.status == 400);
        CHECK(json::parse(refused.body)["error"].get<std::string>().find("inside the cgroup of sandbox " + id) !=
              std::string::npos);
        b["cgroup_parent"] = inside + "/deeper";
        CHECK(d.call("POST", "/v1/sandboxes", b.dump()).status == 400);
        auto run = run_cli(d.socket(), {"run", "--cgroup-parent", inside, "--", "/bin/true"});
        CHECK(run.status == 125);
        CHECK(run.err.find("inside the cgroup of sandbox " + id) != std::string::npos);
        CHECK(json::parse(d.call("GET", "/v1/sandboxes/" + id).body)["state"] == "running");
        CHECK(d.call("DELETE", "/v1/sandboxes/" + id + "?force=true").status == 204);
    }
    CHECK(settled_host_state(before) == before.describe());
}

TEST_CASE("daemon: a cgroup that cannot be removed keeps its cleanup record until a retry removes both",
          "[daemon][cgroup]") {
    if (skip_without_root()) return;
    auto before = host_state();
    {
        TestDaemon d;
        auto a = d.create({{"command", {"/bin/sleep", "60"}}});
        std::string id = a["id"];
        std::string cgroup = a["cgroup"];
        // Something outside the sandbox made a cgroup below its own:
        // rmdir fails (EBUSY) until that one goes.
        std::string below = cgroup + "/held";
        REQUIRE(std::filesystem::create_directory(below));
        CHECK(d.call("DELETE", "/v1/sandboxes/" + id + "?force=true").status == 204);
        std::string record = d.state() + "/sandboxes/" + id + ".json";
        CHECK(std::filesystem::exists(record));
        CHECK(std::filesystem::exists(cgroup));
        REQUIRE(::rmdir(below.c_str()) == 0);
        // The daemon's retry (5 s after the failure) removes both.
        CHECK(settled([&] { return std::filesystem::exists(record) || std::filesystem::exists(cgroup); }, false) ==
              false);
    }
    CHECK(settled_host_state(before) == before.describe());
}

TEST_CASE("daemon: wait after re-adoption says the exit status is unknown; nucleus wait prints it and exits 123",
          "[daemon][recovery]") {
    if (skip_without_root()) return;
    TestDaemon d;
    std::string known = d.create(sh("exit 7"))["id"];
    CHECK(d.wait(known)["exit_code"] == 7);
    std::string id = d.create({{"command", {"/bin/sleep", "1"}}})["id"];
    d.kill9();
    d.start();
    auto waited = d.wait(id);
    CHECK(waited["reason"] == "exited_unobserved");
    CHECK(waited["exit_code"].is_null());
    CHECK(waited["exit_known"] == false);
    auto cli = run_cli(d.socket(), {"wait", id});
    CHECK(cli.out == "unknown\n");
    CHECK(cli.status == 123);
    CHECK(d.wait(known)["exit_known"] == true);
    auto seven = run_cli(d.socket(), {"wait", known});
    CHECK(seven.out == "7\n");
    CHECK(seven.status == 7);
}

TEST_CASE("daemon: copy-in-out workspaces and --context run and sync back through the daemon", "[daemon][workspace]") {
    if (skip_without_root()) return;
    auto base = std::filesystem::temp_directory_path() / ("nucleus-daemon-copy-" + std::to_string(::getpid()));
    std::filesystem::create_directories(base / "ws");
    std::filesystem::create_directories(base / "ctx");
    { std::ofstream(base / "ws" / "kept.txt") << "host\n"; }
    { std::ofstream(base / "ctx" / "input.txt") << "context\n"; }
    {
        TestDaemon d;
        json doc = sh("cat /context/input.txt > /workspace/from-context.txt && echo made >> /workspace/kept.txt");
        doc["workspace"] = (base / "ws").string();
        doc["workspace_mode"] = "copy-in-out";
        doc["context"] = (base / "ctx").string();
        std::string id = d.create(doc)["id"];
        auto done = d.wait(id);
        INFO(done.dump());
        CHECK(done["exit_code"] == 0);
        CHECK(d.call("DELETE", "/v1/sandboxes/" + id).status == 204);
    }
    auto read = [](const std::filesystem::path& p) {
        std::ifstream in(p);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    CHECK(read(base / "ws" / "from-context.txt") == "context\n");
    CHECK(read(base / "ws" / "kept.txt") == "host\nmade\n");
    std::filesystem::remove_all(base);
}
