// nucleus rootfs attest|verify DIR
#include <CLI/CLI.hpp>

#include "core/attestation.hpp"
#include "core/cli/commands.hpp"

namespace nucleus::core::cli {

namespace {

int attest(const std::string& dir) {
    auto summary = attest_rootfs(dir);
    if (!summary) return fail(summary.error());
    std::printf("attested %s: %zu entries, %llu bytes hashed\nmanifest %s\nsha256 %s\n", dir.c_str(),
                static_cast<size_t>(summary->entries), static_cast<unsigned long long>(summary->bytes_hashed),
                summary->manifest_path.c_str(), summary->manifest_sha256.c_str());
    return 0;
}

int verify(const std::string& dir) {
    auto diffs = verify_rootfs(dir);
    if (!diffs) return fail(diffs.error());
    for (const auto& d : *diffs) std::printf("%s\n", d.c_str());
    if (diffs->empty()) std::printf("%s matches its attestation\n", dir.c_str());
    return diffs->empty() ? 0 : 1;
}

}  // namespace

Command add_rootfs_command(CLI::App& root, Invocation&) {
    auto* app = root.add_subcommand("rootfs", "Root filesystem tools");
    auto dir = std::make_shared<std::string>();
    auto* attest_app =
        app->add_subcommand("attest", "Write DIR/.nucleus-rootfs-sha256 (path, mode, owner, size, sha256 per entry)");
    attest_app->add_option("dir", *dir, "The root filesystem directory")->required();
    auto* verify_app = app->add_subcommand("verify", "Check DIR against its .nucleus-rootfs-sha256");
    verify_app->add_option("dir", *dir, "The root filesystem directory")->required();
    app->require_subcommand(1);
    return {.app = app, .run = [attest_app, dir] { return attest_app->parsed() ? attest(*dir) : verify(*dir); }};
}

}  // namespace nucleus::core::cli
