// Nix, checked offline with Debian's nix-bin:
//   - every .nix file of the project parses;
//   - the NixOS module's rendering evaluates against tests/nix/stub-lib.nix
//     (tests/nix/module-eval.nix holds the checks);
//   - a real closure, built without nixpkgs in a throw-away store by
//     nix/mk-rootfs.nix (lib.mkRootfs's own code), is a sandbox's root: the
//     closure is readable, another store path is not, the store cannot be
//     listed, the manifest's NAR hashes verify (Nix computed them, nucleus
//     recomputes them), a tampered file is caught, and the sandbox keeps a
//     gc root for its closure exactly while it runs.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch_test_macros.hpp>
#include <filesystem>
#include <fstream>

#include "harness.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path source_dir = NUCLEUS_SOURCE_DIR;

bool have_nix() { return ::access("/usr/bin/nix-instantiate", X_OK) == 0 && ::access("/usr/bin/nix-build", X_OK) == 0; }

// A throw-away Nix: its own store, state and configuration under a scratch
// directory outside /tmp (the sandbox mounts its own /tmp, which would hide
// a store below it; the runtime refuses such a store).
struct ScratchNix {
    fs::path root;
    nit::SpawnOptions options;

    ScratchNix() {
        std::string pattern = "/var/tmp/nucleus-nix-XXXXXX";
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        root = pattern;
        ::chmod(root.c_str(), 0755);
        fs::create_directories(root / "etc");
        std::ofstream(root / "etc/nix.conf") << "sandbox = false\nbuild-users-group =\nsubstituters =\n";
        options.env = {"NIX_STORE_DIR=" + (root / "store").string(),
                       "NIX_STATE_DIR=" + (root / "var").string(),
                       "NIX_LOG_DIR=" + (root / "var/log").string(),
                       "NIX_CONF_DIR=" + (root / "etc").string(),
                       "HOME=" + root.string(),
                       "XDG_CACHE_HOME=" + (root / "cache").string()};
        options.deadline = std::chrono::seconds(240);
    }
    ~ScratchNix() {
        std::error_code ec;
        fs::remove_all(root, ec);  // store paths are read-only, which root's unlink ignores
    }
    nit::Result run(const std::vector<std::string>& argv) const { return nit::run(argv, options); }
};

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

std::vector<std::string> gcroots_of(const fs::path& dir) {
    std::vector<std::string> found;
    if (!fs::exists(dir)) return found;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (fs::is_symlink(e.symlink_status())) found.push_back(fs::read_symlink(e.path()).string());
    return found;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("every .nix file parses (nix-instantiate --parse)") {
    if (!have_nix()) SKIP("nix-instantiate is not installed (Debian's nix-bin; scripts/install-deps.sh installs it)");
    ScratchNix nix;
    std::vector<fs::path> files = {source_dir / "flake.nix"};
    for (const char* dir : {"nix", "tests/nix"})
        for (const auto& e : fs::directory_iterator(source_dir / dir))
            if (e.path().extension() == ".nix") files.push_back(e.path());
    CHECK(files.size() >= 8);
    for (const auto& f : files) {
        auto r = nix.run({"nix-instantiate", "--parse", f.string()});
        INFO(f.string() << "\n" << r.describe());
        CHECK(r.exit_code == 0);
    }
}

TEST_CASE("the NixOS module renders its units (module-eval.nix against the stub lib)") {
    if (!have_nix()) SKIP("nix-instantiate is not installed (Debian's nix-bin; scripts/install-deps.sh installs it)");
    ScratchNix nix;
    auto r = nix.run({"nix-instantiate", "--eval", "--strict", "--readonly-mode",
                      (source_dir / "tests/nix/module-eval.nix").string()});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK(contains(r.out, "\"a bad value is refused\""));
}

TEST_CASE("a sandbox on a real store closure sees its closure and nothing else of the store") {
    if (!have_nix()) SKIP("nix-build is not installed (Debian's nix-bin; scripts/install-deps.sh installs it)");
    if (::geteuid() != 0) SKIP("needs root: sandboxes with full id maps");
    if (::access("/bin/busybox", X_OK) != 0) SKIP("needs Debian's busybox-static at /bin/busybox");
    ScratchNix nix;
    fs::create_directories(nix.root / "in/nucleus/bin");
    fs::create_directories(nix.root / "in/busybox");
    fs::copy_file(nit::kNucleus, nix.root / "in/nucleus/bin/nucleus");
    fs::copy_file("/bin/busybox", nix.root / "in/busybox/busybox");
    auto build = [&](const std::string& attr) {
        auto r = nix.run({"nix-build", (source_dir / "tests/nix/e2e.nix").string(), "--arg", "nucleusDir",
                          (nix.root / "in/nucleus").string(), "--arg", "busyboxDir", (nix.root / "in/busybox").string(),
                          "-A", attr, "--no-out-link"});
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
        return trimmed(r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1));
    };
    std::string manifest = build("rootfs");
    std::string tool = build("tool");
    std::string outside = build("outside");
    const std::string store = (nix.root / "store").string();

    // The manifest: what mk-rootfs.nix asked for, and the closure only.
    auto doc = json::parse(nit::read_file(manifest));
    CHECK(doc["store_dir"] == store);
    CHECK(doc["roots"] == json::array({tool}));
    std::vector<std::string> paths;
    for (const auto& p : doc["paths"]) paths.push_back(p["path"]);
    CHECK(std::find(paths.begin(), paths.end(), tool) != paths.end());
    CHECK(std::find(paths.begin(), paths.end(), outside) == paths.end());

    // Nix's NAR hashes, recomputed by nucleus.
    auto verified = nix.run({nit::kNucleus, "rootfs", "verify", manifest});
    INFO(verified.describe());
    CHECK(verified.exit_code == 0);

    std::string script = "cat " + tool + "/share/data; echo \"greeting:$GREETING\"; cat " + outside +
                         "; echo \"outside:$?\"; ls " + store + " >/dev/null; echo \"list:$?\"; ls " + tool +
                         "/bin >/dev/null; echo \"own:$?\"";
    auto r =
        nix.run(nit::nucleus_argv({"--rootfs-closure", manifest, "--verify-rootfs-attestation"}, {"sh", "-c", script}));
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK(contains(r.out, "inside-the-closure"));
    CHECK(contains(r.out, "greeting:hello"));  // the manifest's env
    CHECK(contains(r.out, "outside:1"));  // another store path: EACCES
    CHECK(!contains(r.out, "top-secret"));
    CHECK(contains(r.err, "Permission denied"));
    CHECK(contains(r.out, "list:1"));  // the store cannot be listed
    CHECK(contains(r.out, "own:0"));  // the closure's directories can

    // No command: the manifest's entrypoint.
    auto entry = nix.run(nit::nucleus_argv({"--rootfs-closure", manifest}, {}));
    INFO(entry.describe());
    CHECK(entry.exit_code == 0);
    CHECK(contains(entry.out, "entrypoint says hello"));

    // A gc root while the sandbox runs, none after: the closure is dead to
    // nix-collect-garbage only once no sandbox uses it.
    const fs::path gcroots = nix.root / "var/gcroots/nucleus";
    {
        auto live = nit::Process::start(
            nit::nucleus_argv({"--rootfs-closure", manifest}, {"sh", "-c", "echo up; sleep 30"}), nix.options);
        REQUIRE(live.wait_for_output("up", std::chrono::seconds(20)));
        // One symlink to the manifest, whose references are the closure.
        CHECK(gcroots_of(gcroots) == std::vector<std::string>{manifest});
        auto dead = nix.run({"nix-store", "--gc", "--print-dead"});
        INFO(dead.describe());
        CHECK(!contains(dead.out, tool));
        CHECK(contains(dead.out, outside));
        live.signal(SIGTERM);
        live.wait();
    }
    CHECK(gcroots_of(gcroots).empty());
    CHECK(contains(nix.run({"nix-store", "--gc", "--print-dead"}).out, tool));

    // A file changed in the store: the attestation refuses the closure.
    fs::path data = fs::path(tool) / "share/data";
    ::chmod(data.parent_path().c_str(), 0755);
    ::chmod(data.c_str(), 0644);
    std::ofstream(data, std::ios::app) << "tampered\n";
    auto refused = nix.run(nit::nucleus_argv({"--rootfs-closure", manifest, "--verify-rootfs-attestation"}, {"true"}));
    INFO(refused.describe());
    CHECK(refused.exit_code == 125);
    CHECK(contains(refused.err, "modified: " + tool));
    CHECK(nix.run({nit::kNucleus, "rootfs", "verify", manifest}).exit_code == 1);
}
