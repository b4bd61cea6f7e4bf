// nucleus seccomp generate TRACE -o PROFILE
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "core/cli/commands.hpp"
#include "core/attestation.hpp"
#include "core/policies.hpp"
#include "io/unique_fd.hpp"
#include "isolation/seccomp_trace.hpp"

namespace nucleus::core::cli {

namespace {

// Writes to a temporary file beside `path`, then renames: no half-written file.
Status write_atomically(const std::string& path, const std::string& content) {
    std::string tmp = path + ".tmp";
    auto fd = io::open_fd(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
    if (!fd) return std::move(fd).error();
    auto st = io::write_all(fd->get(), content);
    if (st && ::fsync(fd->get()) < 0) st = Error::from_errno("fsync " + tmp);
    if (st && ::rename(tmp.c_str(), path.c_str()) < 0) st = Error::from_errno("rename " + tmp);
    if (!st) ::unlink(tmp.c_str());
    return st;
}

struct GenerateOptions {
    std::string trace, profile;
};

int generate(const GenerateOptions& o) {
    auto names = isolation::read_trace(o.trace);
    if (!names) return fail(names.error());
    std::string profile = profile_from_trace(*names);
    if (auto st = write_atomically(o.profile, profile); !st) return fail(st.error());
    std::printf("wrote %s: %zu syscalls allowed, everything else EPERM\nsha256 %s\n", o.profile.c_str(), names->size(),
                sha256_hex(profile).c_str());
    return 0;
}

}  // namespace

Command add_seccomp_command(CLI::App& root, Invocation&) {
    auto* app = root.add_subcommand("seccomp", "Seccomp profile tools");
    auto* gen = app->add_subcommand("generate", "Write a minimal allowlist profile from a --seccomp-mode trace log");
    auto o = std::make_shared<GenerateOptions>();
    gen->add_option("trace", o->trace, "The trace (NDJSON) written by --seccomp-log")->required();
    gen->add_option("-o,--output", o->profile, "Where to write the profile (JSON)")->required();
    app->require_subcommand(1);
    return {.app = app, .run = [o] { return generate(*o); }};
}

}  // namespace nucleus::core::cli
