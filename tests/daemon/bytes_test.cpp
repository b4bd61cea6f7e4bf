// Bytes that are not UTF-8, everywhere the daemon stores or sends them:
// paths in records and answers, exec output, logs, events, references.
// Each answer must be JSON a client can parse, and each byte must survive
// (docs/API.md, "Bytes": a string when UTF-8, else {"base64": ...}).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "daemon_harness.hpp"
#include "io/bytes_json.hpp"

using namespace nucleus::tests;
using nlohmann::json;
namespace io = nucleus::io;

namespace {

// A directory whose canonical path holds byte 0xff, reached through an
// ASCII symlink: the document is plain JSON, the path the daemon resolves
// and records is not UTF-8.
struct ByteDir {
    ByteDir() {
        char tmpl[] = "/tmp/nucleus-bytes-XXXXXX";
        root = ::mkdtemp(tmpl);
        // The sandbox's own uids must reach it to mount it.
        std::filesystem::permissions(root, std::filesystem::perms(0755));
        target = root + "/v\xff\xfe";
        std::filesystem::create_directory(target);
        link = root + "/link";
        std::filesystem::create_directory_symlink(target, link);
    }
    ~ByteDir() {
        std::error_code ec;
        std::filesystem::remove_all(root, ec);
    }
    std::string root, target, link;
};

std::string bytes_of(const json& value) {
    auto bytes = io::bytes_from_json(value, "value");
    REQUIRE(bytes.ok());
    return *bytes;
}

// Every line of a record file is a JSON object.
void check_record_file(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    int lines = 0;
    while (std::getline(in, line)) {
        INFO(path << ": " << line);
        CHECK(json::parse(line, nullptr, false).is_object());
        ++lines;
    }
    CHECK(lines > 0);
}

}  // namespace

TEST_CASE("daemon: a volume whose source path is not UTF-8 starts, answers, is recorded and removed",
          "[daemon][bytes]") {
    if (skip_without_root()) return;
    auto before = host_state();
    ByteDir dir;
    {
        TestDaemon d;
        json doc = {{"command", {"/bin/sleep", "60"}}, {"volume", {dir.link + ":/mnt"}}};
        // It used to hang: the task died serialising the start record.
        auto created = timed_call(d.socket(), "POST", "/v1/sandboxes", doc.dump());
        INFO(created.body << "\n" << d.log());
        REQUIRE(created.status == 201);
        std::string id = json::parse(created.body)["id"];
        auto inspect = timed_call(d.socket(), "GET", "/v1/sandboxes/" + id);
        REQUIRE(inspect.status == 200);
        auto sandbox = json::parse(inspect.body);
        CHECK(sandbox["state"] == "running");
        bool found = false;
        for (const auto& mount : sandbox["start"]["mounts"])
            found = found || bytes_of(mount).find(dir.target) != std::string::npos;
        CHECK(found);
        check_record_file(d.state() + "/daemon/" + id + ".json");
        // Read back by a restarted daemon, the bytes are the same.
        d.kill9();
        d.start();
        auto again = json::parse(d.call("GET", "/v1/sandboxes/" + id).body);
        CHECK(again["adopted"] == true);
        CHECK(again["start"]["mounts"] == sandbox["start"]["mounts"]);
        auto removed = timed_call(d.socket(), "DELETE", "/v1/sandboxes/" + id + "?force=true");
        CHECK(removed.status == 204);
        CHECK(count_dir(d.state() + "/daemon") == 0);
        CHECK(count_dir(d.state() + "/sandboxes") == 0);
    }
    CHECK(settled_host_state(before) == before.describe());
}

TEST_CASE("daemon: exec output that is not UTF-8 comes back whole, through the API and the CLI", "[daemon][bytes]") {
    if (skip_without_root()) return;
    TestDaemon d;
    std::string id = d.create({{"command", {"/bin/sleep", "60"}}})["id"];
    // The event stream, read on the side until the exec event (or 10 s).
    std::string events;
    auto stream = raw_connect(d.socket(), 10);
    std::string follow = "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n";
    REQUIRE(::write(stream.get(), follow.data(), follow.size()) == static_cast<ssize_t>(follow.size()));
    std::thread follower([&] {
        char buf[4096];
        for (ssize_t n;
             events.find("\"event\":\"exec\"") == std::string::npos && (n = ::read(stream.get(), buf, sizeof buf)) > 0;)
            events.append(buf, static_cast<size_t>(n));
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto r = timed_call(d.socket(), "POST", "/v1/sandboxes/" + id + "/exec",
                        json{{"command", {"/bin/sh", "-c", "printf 'ok\\377\\n'; printf 'e\\376' >&2"}}}.dump());
    follower.join();
    INFO(r.body);
    REQUIRE(r.status == 200);
    auto out = json::parse(r.body);
    CHECK(out["stdout"] == json{{"base64", io::base64_encode("ok\xff\n")}});
    CHECK(bytes_of(out["stderr"]) == "e\xfe");
    // A command may be given as bytes, too.
    json word = json::object({{"base64", io::base64_encode("x\xff")}});
    json bytes_command = {{"command", json::array({"/bin/sh", "-c", "printf %s \"$0\"", word})}};
    auto echoed = d.call("POST", "/v1/sandboxes/" + id + "/exec", bytes_command.dump());
    REQUIRE(echoed.status == 200);
    CHECK(bytes_of(json::parse(echoed.body)["stdout"]) == "x\xff");
    // Chunked framing aside, every event line is JSON.
    std::istringstream lines(events.substr(events.find("\r\n\r\n") + 4));
    int parsed = 0;
    for (std::string line; std::getline(lines, line);) {
        if (line.empty() || line[0] != '{') continue;  // a chunk size line
        CHECK(json::parse(line, nullptr, false).is_object());
        ++parsed;
    }
    CHECK(parsed > 0);
    // The CLI writes the bytes, not their encoding.
    auto cli = run_cli(d.socket(), {"exec", id, "--", "printf", "ok\\377\\n"});
    CHECK(cli.status == 0);
    CHECK(cli.out == "ok\xff\n");
    CHECK(d.call("DELETE", "/v1/sandboxes/" + id + "?force=true").status == 204);
}

TEST_CASE("daemon: logs are the bytes written; a reference that is not UTF-8 is a 404", "[daemon][bytes]") {
    if (skip_without_root()) return;
    TestDaemon d;
    std::string id = d.create(sh("printf 'a\\377b\\n'; printf '\\376' >&2"))["id"];
    d.wait(id);
    CHECK(d.call("GET", "/v1/sandboxes/" + id + "/logs").body ==
          "a\xff"
          "b\n");
    CHECK(d.call("GET", "/v1/sandboxes/" + id + "/logs?stream=stderr").body == "\xfe");
    for (const char* target : {"/v1/sandboxes/%ff%fe/logs", "/v1/sandboxes/%ff%fe", "/v1/sandboxes/%ffabc/wait"}) {
        INFO(target);
        auto r = timed_call(d.socket(), target == std::string("/v1/sandboxes/%ffabc/wait") ? "POST" : "GET", target);
        CHECK(r.status == 404);
        CHECK(json::parse(r.body, nullptr, false).contains("error"));
    }
}
