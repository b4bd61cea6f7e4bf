// nucleus rootfs attest|verify|build|closure-manifest
#include <CLI/CLI.hpp>

#include "core/attestation.hpp"
#include "core/cli/commands.hpp"
#include "core/closure_attestation.hpp"
#include "core/closure_manifest.hpp"
#include "core/rootfs_build.hpp"

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

// A directory against its .nucleus-rootfs-sha256, or a closure manifest's
// store paths against their NAR hashes.
int verify(const std::string& target) {
    if (is_closure_manifest_file(target)) {
        auto manifest = load_closure_manifest(target);
        if (!manifest) return fail(manifest.error());
        auto diffs = verify_closure(*manifest);
        if (!diffs) return fail(diffs.error());
        for (const auto& d : *diffs) std::printf("%s\n", d.c_str());
        if (diffs->empty())
            std::printf("%s: %zu store paths match their NAR hashes\n", target.c_str(), manifest->paths.size());
        return diffs->empty() ? 0 : 1;
    }
    auto diffs = verify_rootfs(target);
    if (!diffs) return fail(diffs.error());
    for (const auto& d : *diffs) std::printf("%s\n", d.c_str());
    if (diffs->empty()) std::printf("%s matches its attestation\n", target.c_str());
    return diffs->empty() ? 0 : 1;
}

struct RootfsOptions {
    std::string dir;
    std::string attrs_file, manifest_out;
    RootfsBuildRequest build;
};

}  // namespace

Command add_rootfs_command(CLI::App& root, Invocation&) {
    auto* app = root.add_subcommand("rootfs", "Root filesystem tools");
    auto o = std::make_shared<RootfsOptions>();
    auto* attest_app =
        app->add_subcommand("attest", "Write DIR/.nucleus-rootfs-sha256 (path, mode, owner, size, sha256 per entry)");
    attest_app->add_option("dir", o->dir, "The root filesystem directory")->required();
    auto* verify_app =
        app->add_subcommand("verify", "Check DIR against its .nucleus-rootfs-sha256, or a closure's NAR hashes");
    verify_app->add_option("dir", o->dir, "The root filesystem directory, or a closure manifest")->required();
    auto* build_app = app->add_subcommand("build", "Build DIR from host programs, their ELF closures and --add paths");
    build_app->add_option("--from-host", o->build.programs, "A host program (ELF) to include with its libraries")
        ->allow_extra_args(false);
    build_app->add_option("--add", o->build.adds, "A host file or directory to include as it is")
        ->allow_extra_args(false);
    build_app->add_option("-o,--output", o->build.output, "The rootfs to create (absent or empty)")->required();
    auto* manifest_app = app->add_subcommand(
        "closure-manifest", "Write a closure manifest from a Nix builder's .attrs.json (lib.mkRootfs)");
    manifest_app->add_option(
        "--attrs", o->attrs_file,
        "Structured attributes with exportReferencesGraph's closure (default: $NIX_ATTRS_JSON_FILE)");
    manifest_app->add_option("-o,--output", o->manifest_out, "Where to write it (default: outputs.out)");
    app->require_subcommand(1);
    return {.app = app, .run = [=] {
                if (attest_app->parsed()) return attest(o->dir);
                if (verify_app->parsed()) return verify(o->dir);
                if (build_app->parsed()) return rootfs_build_command(o->build);
                return closure_manifest_command(o->attrs_file, o->manifest_out);
            }};
}

}  // namespace nucleus::core::cli
