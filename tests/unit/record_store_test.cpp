// The daemon's records: the line format (sandbox_record), and the files
// (record_store): appended, rewritten, read back after a crash or from a
// hostile disk.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <catch2/catch_test_macros.hpp>

#include "core/daemon/record_store.hpp"
#include "core/daemon/sandbox_record.hpp"
#include "io/bytes_json.hpp"

using namespace nucleus::core::daemon;
using nlohmann::json;

namespace {

PersistedSandbox sample() {
    PersistedSandbox s;
    s.id = "0123456789abcdef0123456789abcdef";
    s.name = "job";
    s.command = {"/bin/echo", "caf\xc3\xa9", "x\xff\xfe"};
    s.mode = "agent";
    s.phase = Phase::Running;
    s.pid = 4242;
    s.start_ticks = 123456789;
    s.cgroup_path = "/sys/fs/cgroup/nucleus/\xffodd/sandbox-0123456789abcdef0123456789abcdef";
    s.created_at = "2026-12-03T10:00:00.000Z";
    s.started_at = "2026-12-03T10:00:00.010Z";
    s.id_slot = 17;
    s.pipes = {PipeId{5, 77}, PipeId{5, 78}};
    s.document = json{{"command", {"/bin/echo", "hi"}}};
    s.start_event = json{{"event", "start"}, {"mounts", {nucleus::io::bytes_json("/mnt (rw, from /d\xff)")}}};
    return s;
}

std::string temp_dir() {
    char tmpl[] = "/tmp/nucleus-records-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    return tmpl;
}

std::string read(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("sandbox record: bytes survive a round trip through a record line") {
    auto s = sample();
    std::string line = encode_record(s);
    REQUIRE(line.back() == '\n');
    REQUIRE(std::count(line.begin(), line.end(), '\n') == 1);
    json parsed = json::parse(line);  // valid JSON, so valid UTF-8
    CHECK(parsed["command"][1] == "caf\xc3\xa9");
    CHECK(parsed["command"][2] == json{{"base64", nucleus::io::base64_encode("x\xff\xfe")}});
    auto back = decode_record(parsed);
    REQUIRE(back.ok());
    CHECK(back->command == s.command);
    CHECK(back->cgroup_path == s.cgroup_path);
    CHECK(back->pid == s.pid);
    CHECK(back->start_ticks == s.start_ticks);
    CHECK(back->id_slot == s.id_slot);
    CHECK(back->pipes == s.pipes);
    CHECK(back->phase == Phase::Running);
    CHECK(back->document.get() == s.document.get());
    CHECK(back->start_event.get() == s.start_event.get());
    CHECK(encode_record(*back) == line);
}

TEST_CASE("sandbox record: the API object shows pid only while running; exited_unobserved has no status") {
    auto s = sample();
    CHECK(sandbox_json(s)["pid"] == 4242);
    s.phase = Phase::Exited;
    s.reason = "exited_unobserved";
    CHECK(sandbox_json(s)["pid"].is_null());
    CHECK(s.exit_unknown());
    s.reason = "exit";
    CHECK(!s.exit_unknown());
    // Exited records drop the pipes (nothing will re-attach to them).
    CHECK(!json::parse(encode_record(s)).contains("pipes"));
}

TEST_CASE("sandbox record: a hostile record is refused with the field named, never thrown on") {
    json good = json::parse(encode_record(sample()));
    auto refused = [&](const char* key, json value) {
        json r = good;
        if (value.is_discarded()) r.erase(key);
        else r[key] = std::move(value);
        auto decoded = decode_record(r);
        INFO(key << " = " << r.dump());
        REQUIRE(!decoded.ok());
        CHECK(decoded.error().message.find(key) != std::string::npos);
    };
    const json absent(json::value_t::discarded);
    refused("id", "not-an-id");
    refused("id", 5);
    refused("state", "dancing");
    refused("state", absent);
    refused("document", "text");
    refused("document", absent);
    refused("name", json::array());
    refused("command", "/bin/sh");
    refused("command", json::array({json{{"base64", "!!"}}}));
    refused("pid", -1);
    refused("pid", 1.5);
    refused("pid", "4242");
    refused("exit_code", 1e300);
    refused("signal", 99);
    refused("id_slot", 1LL << 40);
    refused("cgroup", json{{"base64", 3}});
    refused("pipes", json::array({1, 2}));
    refused("adopted", "yes");
    refused("start_event", 7);
    CHECK(!decode_record(json::array()).ok());
    CHECK(!decode_record(json(nullptr)).ok());
    // Optional fields may be absent or null.
    json minimal = {{"id", good["id"]}, {"state", "exited"}, {"document", json::object()}, {"pid", nullptr}};
    auto decoded = decode_record(minimal);
    REQUIRE(decoded.ok());
    CHECK(decoded->name == decoded->id);
    CHECK(!decoded->pid);
}

TEST_CASE("sandbox record: ids and what could be read as one") {
    CHECK(looks_like_id_prefix("abcd"));
    CHECK(looks_like_id_prefix("0123456789abcdef0123456789abcdef"));
    CHECK(!looks_like_id_prefix("abc"));
    CHECK(!looks_like_id_prefix("0123456789abcdef0123456789abcdef0"));
    CHECK(!looks_like_id_prefix("ABCD"));
    CHECK(!looks_like_id_prefix("abcg"));
    CHECK(!looks_like_id_prefix("ab-cd"));
    CHECK(phase_from("running") == Phase::Running);
    CHECK(!phase_from("Running"));
}

TEST_CASE("record store: the last complete, valid line is current; a torn tail is never appended to") {
    CHECK(last_record("").record.is_discarded());
    CHECK(last_record("{\"a\":1}").record.is_discarded());  // no newline: torn
    auto one = last_record("{\"a\":1}\n");
    CHECK(one.record["a"] == 1);
    CHECK(one.appendable_lines == 1);
    auto torn = last_record("{\"a\":1}\n{\"a\":2}\n{\"a\":3");
    CHECK(torn.record["a"] == 2);
    CHECK(torn.appendable_lines == 0);
    auto garbage = last_record("{\"a\":1}\n{\"a\":2}\nnot json\n");
    CHECK(garbage.record["a"] == 2);
    CHECK(garbage.appendable_lines == 0);
    auto not_object = last_record("{\"a\":1}\n[1,2]\n");
    CHECK(not_object.record["a"] == 1);
    CHECK(not_object.appendable_lines == 0);
    CHECK(last_record("\xff\xfe\n\n\n").record.is_discarded());
}

TEST_CASE("record store: append while small, rewrite after 8 records or 1 MiB") {
    CHECK(!can_append({0, 0}, 10));
    CHECK(can_append({1, 100}, 10));
    CHECK(can_append({7, 100}, 10));
    CHECK(!can_append({8, 100}, 10));
    CHECK(!can_append({1, max_record_file_bytes - 5}, 10));
}

TEST_CASE("record store: writes append, rewrite, and load the current record back") {
    std::string dir = temp_dir();
    RecordStore store(dir);
    auto s = sample();
    RecordFile file;
    for (int i = 0; i < 20; ++i) {
        s.start_ticks = static_cast<unsigned long long>(i);
        REQUIRE(store.write(s.id, encode_record(s), file).ok());
        CHECK(file.lines == i % max_record_lines + 1);
        auto text = read(store.path(s.id));
        CHECK(file.bytes == text.size());
        CHECK(std::count(text.begin(), text.end(), '\n') == file.lines);
    }
    // A crash mid-append leaves a fragment: the record before it stands,
    // and the next write replaces the file rather than appending.
    { std::ofstream(store.path(s.id), std::ios::app) << "{\"id\":\"" << s.id << "\",\"state\":\"ex"; }
    std::ofstream(dir + "/stale.json.tmp") << "half";
    std::ofstream(dir + "/not-a-record.json") << "{}\n";
    auto loaded = store.load();
    REQUIRE(loaded.size() == 1);
    CHECK(loaded[0].id == s.id);
    CHECK(loaded[0].file.lines == 0);
    auto back = decode_record(loaded[0].record);
    REQUIRE(back.ok());
    CHECK(back->start_ticks == 19);
    CHECK(!std::filesystem::exists(dir + "/stale.json.tmp"));
    RecordFile reread = loaded[0].file;
    REQUIRE(store.write(s.id, encode_record(s), reread).ok());
    CHECK(reread.lines == 1);
    auto text = read(store.path(s.id));
    CHECK(text == encode_record(s));
    store.remove(s.id);
    CHECK(store.load().empty());
    std::filesystem::remove_all(dir);
}
