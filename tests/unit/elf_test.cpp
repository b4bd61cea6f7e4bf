// The ELF and ld.so.cache parsers, and the loader's search rules, on ELF
// files made here (so every rule is exercised on purpose) and on the host's
// own programs (so the parser meets real toolchain output).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch_test_macros.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "isolation/elf.hpp"
#include "isolation/elf_closure.hpp"

using namespace nucleus::isolation;
namespace fs = std::filesystem;

namespace {

struct ElfSpec {
    bool is_64 = true;
    uint16_t machine = 62;  // EM_X86_64
    std::string interp{};
    std::vector<std::string> needed{};
    std::string rpath{}, runpath{}, soname{};
    bool nodeflib = false;
};

void put(std::string& out, size_t at, uint64_t value, int bytes) {
    for (int i = 0; i < bytes; ++i) out[at + static_cast<size_t>(i)] = static_cast<char>((value >> (8 * i)) & 0xff);
}

// A minimal little-endian ELF file: one PT_LOAD mapping the whole file at
// 0x400000, PT_INTERP when asked, PT_DYNAMIC with the names asked for.
std::string make_elf(const ElfSpec& spec) {
    const bool w64 = spec.is_64;
    const size_t eh = w64 ? 64 : 52, ph = w64 ? 56 : 32, word = w64 ? 8 : 4;
    const size_t phnum = spec.interp.empty() ? 2 : 3;
    std::string strtab(1, '\0');
    auto str = [&](const std::string& s) {
        size_t at = strtab.size();
        strtab += s + '\0';
        return at;
    };
    std::vector<std::pair<uint64_t, uint64_t>> dyn;
    for (const auto& n : spec.needed) dyn.push_back({1, str(n)});
    if (!spec.soname.empty()) dyn.push_back({14, str(spec.soname)});
    if (!spec.rpath.empty()) dyn.push_back({15, str(spec.rpath)});
    if (!spec.runpath.empty()) dyn.push_back({29, str(spec.runpath)});
    if (spec.nodeflib) dyn.push_back({0x6ffffffb, 0x800});
    size_t interp_at = eh + ph * phnum;
    size_t strtab_at = interp_at + spec.interp.size() + 1;
    size_t dyn_at = (strtab_at + strtab.size() + 7) & ~size_t{7};
    dyn.push_back({5, 0x400000 + strtab_at});
    dyn.push_back({10, strtab.size()});
    dyn.push_back({0, 0});
    size_t total = dyn_at + dyn.size() * 2 * word;
    std::string f(total, '\0');
    std::memcpy(f.data(),
                "\x7f"
                "ELF",
                4);
    f[4] = w64 ? 2 : 1;
    f[5] = 1;
    f[6] = 1;
    put(f, 16, 3, 2);  // ET_DYN
    put(f, 18, spec.machine, 2);
    put(f, 20, 1, 4);
    put(f, w64 ? 32 : 28, eh, static_cast<int>(word));  // e_phoff
    put(f, w64 ? 52 : 40, eh, 2);  // e_ehsize
    put(f, w64 ? 54 : 42, ph, 2);  // e_phentsize
    put(f, w64 ? 56 : 44, phnum, 2);  // e_phnum
    auto phdr = [&](size_t index, uint32_t type, size_t offset, size_t size) {
        size_t at = eh + index * ph;
        put(f, at, type, 4);
        put(f, at + (w64 ? 8 : 4), offset, static_cast<int>(word));
        put(f, at + (w64 ? 16 : 8), 0x400000 + offset, static_cast<int>(word));
        put(f, at + (w64 ? 32 : 16), size, static_cast<int>(word));
        put(f, at + (w64 ? 40 : 20), size, static_cast<int>(word));
    };
    phdr(0, 1, 0, total);
    phdr(1, 2, dyn_at, dyn.size() * 2 * word);
    if (!spec.interp.empty()) phdr(2, 3, interp_at, spec.interp.size() + 1);
    std::memcpy(f.data() + interp_at, spec.interp.data(), spec.interp.size());
    std::memcpy(f.data() + strtab_at, strtab.data(), strtab.size());
    for (size_t i = 0; i < dyn.size(); ++i) {
        put(f, dyn_at + i * 2 * word, dyn[i].first, static_cast<int>(word));
        put(f, dyn_at + i * 2 * word + word, dyn[i].second, static_cast<int>(word));
    }
    return f;
}

// A fake root with ELF files at chosen paths, removed at the end.
struct FakeRoot {
    fs::path root;
    FakeRoot() {
        std::string pattern = (fs::temp_directory_path() / "nucleus-elf-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        root = pattern;
    }
    ~FakeRoot() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    void file(const std::string& path, const std::string& content) const {
        fs::create_directories((root / path.substr(1)).parent_path());
        std::ofstream(root / path.substr(1), std::ios::binary) << content;
    }
    void elf(const std::string& path, const ElfSpec& spec) const { file(path, make_elf(spec)); }
    void link(const std::string& path, const std::string& target) const {
        fs::create_directories((root / path.substr(1)).parent_path());
        fs::create_symlink(target, root / path.substr(1));
    }
    LoaderConfig loader(std::vector<std::string> defaults = {"/lib", "/usr/lib"}) const {
        LoaderConfig c;
        c.root = root.string();
        c.default_dirs = std::move(defaults);
        c.platform_token = "x86_64";
        return c;
    }
};

std::vector<std::string> files_of(const nucleus::Result<ElfClosure>& c) {
    REQUIRE(c.ok());
    return c.value().files;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

}  // namespace

TEST_CASE("parse_elf reads interpreter, needed, rpath, runpath, soname and flags") {
    ElfSpec spec{.interp = "/lib64/ld.so",
                 .needed = {"liba.so", "libb.so.2"},
                 .rpath = "/r",
                 .runpath = "$ORIGIN/../lib",
                 .soname = "libself.so.1",
                 .nodeflib = true};
    auto info = parse_elf(make_elf(spec));
    REQUIRE(info.ok());
    CHECK(info->is_64);
    CHECK(info->machine == 62);
    CHECK(info->interpreter == "/lib64/ld.so");
    CHECK(info->needed == std::vector<std::string>{"liba.so", "libb.so.2"});
    CHECK(info->rpath == "/r");
    CHECK(info->runpath == "$ORIGIN/../lib");
    CHECK(info->soname == "libself.so.1");
    CHECK(info->nodeflib);

    spec.is_64 = false;
    spec.machine = 3;
    auto info32 = parse_elf(make_elf(spec));
    REQUIRE(info32.ok());
    CHECK(!info32->is_64);
    CHECK(info32->needed.size() == 2);
    CHECK(!info32->compatible_with(*info));
}

TEST_CASE("parse_elf refuses truncated and malformed files with a reason") {
    CHECK(!parse_elf("#!/bin/sh\necho hi\n").ok());
    CHECK(parse_elf("#!/bin/sh\n").error().message.find("not an ELF") != std::string::npos);
    std::string elf = make_elf({.needed = {"liba.so"}});
    for (size_t cut : {size_t{5}, size_t{40}, size_t{70}, elf.size() - 8}) CHECK(!parse_elf(elf.substr(0, cut)).ok());
    std::string bad_class = elf;
    bad_class[4] = 9;
    CHECK(parse_elf(bad_class).error().message.find("class") != std::string::npos);
    // A DT_NEEDED offset far outside the string table.
    std::string far = elf;
    size_t dyn_at = far.size() - 4 * 16;  // needed, strtab, strsz, null
    put(far, dyn_at + 8, 0xffffffffffULL, 8);
    CHECK(!parse_elf(far).ok());
}

TEST_CASE("the host's own programs parse: a dynamic one has an interpreter and libc") {
    for (const char* program : {"/bin/ls", "/usr/bin/python3"}) {
        if (::access(program, R_OK) != 0) continue;
        auto info = read_elf_file(program);
        REQUIRE(info.ok());
        CHECK(info->interpreter.has_value());
        CHECK(contains(info->needed, "libc.so.6"));
    }
    auto busybox = read_elf_file("/bin/busybox");
    if (busybox.ok()) {
        CHECK(!busybox->interpreter);
        CHECK(busybox->needed.empty());
    }
}

TEST_CASE("the host's ld.so.cache parses and names libc") {
    if (::access("/etc/ld.so.cache", R_OK) != 0) SKIP("this host has no /etc/ld.so.cache");
    std::ifstream in("/etc/ld.so.cache", std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto entries = parse_ld_so_cache(data);
    REQUIRE(entries.ok());
    CHECK(std::any_of(entries->begin(), entries->end(), [](const LdCacheEntry& e) { return e.soname == "libc.so.6"; }));
    CHECK(!parse_ld_so_cache(data.substr(0, 30)).ok());
    CHECK(!parse_ld_so_cache("garbage").ok());
}

TEST_CASE("RPATH is searched before RUNPATH-less defaults, and inherited from the loading chain") {
    FakeRoot t;
    t.elf("/bin/prog", {.interp = "/lib/ld.so", .needed = {"libmid.so"}, .rpath = "/opt/rp"});
    t.elf("/lib/ld.so", {});
    t.elf("/opt/rp/libmid.so", {.needed = {"libleaf.so"}});
    t.elf("/opt/rp/libleaf.so", {});  // found through the program's RPATH, inherited by libmid
    t.elf("/lib/libleaf.so", {});  // the default directory would come later
    auto closure = resolve_elf_closure("/bin/prog", t.loader());
    auto files = files_of(closure);
    CHECK(files == std::vector<std::string>{"/bin/prog", "/lib/ld.so", "/opt/rp/libmid.so", "/opt/rp/libleaf.so"});
}

TEST_CASE("RUNPATH voids RPATH, applies only to its own object, and $ORIGIN is the object's directory") {
    FakeRoot t;
    // prog has both: RPATH /rp is ignored because RUNPATH is there.
    t.elf("/app/bin/prog", {.needed = {"liba.so"}, .rpath = "/rp", .runpath = "$ORIGIN/../lib"});
    t.elf("/rp/liba.so", {});
    t.elf("/app/lib/liba.so", {.needed = {"libb.so"}});
    // liba has no search path of its own; prog's RUNPATH is not inherited,
    // so libb comes from the default directories, not /app/lib.
    t.elf("/app/lib/libb.so", {});
    t.elf("/usr/lib/libb.so", {});
    auto files = files_of(resolve_elf_closure("/app/bin/prog", t.loader()));
    // The loader opens the expanded path as it is, without normalising it.
    CHECK(files == std::vector<std::string>{"/app/bin/prog", "/app/bin/../lib/liba.so", "/usr/lib/libb.so"});
}

TEST_CASE("the program's $ORIGIN comes from its canonical path, through symlinks") {
    FakeRoot t;
    t.elf("/opt/tool/bin/tool", {.needed = {"libt.so"}, .runpath = "${ORIGIN}/../lib"});
    t.elf("/opt/tool/lib/libt.so", {});
    t.link("/usr/bin/tool", "../../opt/tool/bin/tool");
    auto files = files_of(resolve_elf_closure("/usr/bin/tool", t.loader()));
    CHECK(contains(files, "/opt/tool/bin/../lib/libt.so"));
}

TEST_CASE("ld.so.cache comes before the default directories; NODEFLIB skips both") {
    FakeRoot t;
    t.elf("/bin/prog", {.needed = {"libc.so"}});
    t.elf("/cache/libc.so", {});
    t.elf("/lib/libc.so", {});
    auto loader = t.loader();
    loader.cache = {{"libc.so", "/cache/libc.so", 0x303, 0}};
    CHECK(contains(files_of(resolve_elf_closure("/bin/prog", loader)), "/cache/libc.so"));
    loader.cache.clear();
    CHECK(contains(files_of(resolve_elf_closure("/bin/prog", loader)), "/lib/libc.so"));

    t.elf("/bin/strict", {.needed = {"libc.so"}, .nodeflib = true});
    auto strict = resolve_elf_closure("/bin/strict", loader);
    REQUIRE(strict.ok());
    CHECK(strict->missing == std::vector<std::string>{"libc.so (needed by /bin/strict)"});
}

TEST_CASE("a library of another class or machine is passed over; a missing one is reported") {
    FakeRoot t;
    t.elf("/bin/prog", {.needed = {"libx.so", "libnone.so"}});
    t.elf("/lib/libx.so", {.is_64 = false, .machine = 3});
    t.file("/usr/lib/libnone.so", "not elf at all");
    t.elf("/usr/lib/libx.so", {});
    auto closure = resolve_elf_closure("/bin/prog", t.loader());
    REQUIRE(closure.ok());
    CHECK(contains(closure->files, "/usr/lib/libx.so"));
    CHECK(!contains(closure->files, "/lib/libx.so"));
    CHECK(closure->missing == std::vector<std::string>{"libnone.so (needed by /bin/prog)"});
}

TEST_CASE("a name loaded once is not searched again, and sonames count as loaded names") {
    FakeRoot t;
    t.elf("/bin/prog", {.needed = {"liba.so", "libb.so"}, .runpath = "/first"});
    t.elf("/first/liba.so", {.needed = {"libshared.so"}, .runpath = "/first"});
    t.elf("/first/libshared.so", {.soname = "libshared.so"});
    t.elf("/lib/libb.so", {.needed = {"libshared.so"}});  // would find /lib/libshared.so, but it is loaded
    t.elf("/lib/libshared.so", {});
    auto files = files_of(resolve_elf_closure("/bin/prog", t.loader()));
    CHECK(contains(files, "/first/libshared.so"));
    CHECK(!contains(files, "/lib/libshared.so"));
    CHECK(std::count(files.begin(), files.end(), "/first/libshared.so") == 1);
}

TEST_CASE("a dependency cycle terminates; a relative slash name is an error") {
    FakeRoot t;
    t.elf("/bin/prog", {.needed = {"liba.so"}});
    t.elf("/lib/liba.so", {.needed = {"libb.so"}});
    t.elf("/lib/libb.so", {.needed = {"liba.so"}});
    CHECK(files_of(resolve_elf_closure("/bin/prog", t.loader())).size() == 3);
    t.elf("/bin/rel", {.needed = {"sub/libc.so"}});
    CHECK(!resolve_elf_closure("/bin/rel", t.loader()).ok());
}

TEST_CASE("expand_dst replaces the loader's tokens and nothing else") {
    LoaderConfig c;
    c.lib_token = "lib64";
    c.platform_token = "x86_64";
    CHECK(expand_dst("$ORIGIN/../lib", "/opt/x/bin", c) == "/opt/x/bin/../lib");
    CHECK(expand_dst("${ORIGIN}/$LIB/${PLATFORM}", "/o", c) == "/o/lib64/x86_64");
    CHECK(expand_dst("/a/$ORIGINAL/$x", "/o", c) == "/a/$ORIGINAL/$x");
}

TEST_CASE("the host's python3 closure includes its interpreter and libc, found by the host's loader rules") {
    if (::access("/usr/bin/python3", X_OK) != 0) SKIP("no /usr/bin/python3 on this host");
    auto loader = host_loader_config();
    REQUIRE(loader.ok());
    auto closure = resolve_elf_closure("/usr/bin/python3", *loader);
    REQUIRE(closure.ok());
    CHECK(closure->missing.empty());
    CHECK(std::any_of(closure->files.begin(), closure->files.end(),
                      [](const std::string& f) { return f.ends_with("/libc.so.6"); }));
    CHECK(std::any_of(closure->files.begin(), closure->files.end(),
                      [](const std::string& f) { return f.find("ld-linux") != std::string::npos; }));
}
