#include <signal.h>

#include <string_view>

#include "core/cli.hpp"
#include "io/startup.hpp"

// `nucleus run` only (a sandbox's supervisor, short start-up, released by
// run_sandbox once the sandbox runs): its start-up in fewer page faults
// (io/startup.hpp). Before the static constructors of default priority
// (CLI11's validators, iostreams' locale, tables of names), which fault in
// pages too; glibc passes a constructor main's arguments.
__attribute__((constructor(101))) static void prepare_memory(int argc, char** argv, char**) {
    int command = 1;
    while (command < argc && argv[command][0] == '-') ++command;
    if (command < argc && std::string_view(argv[command]) == "run") nucleus::io::prepare_startup_memory();
}

int main(int argc, char** argv) {
    // A reader of our output that goes away must not kill the supervisor
    // (and strand the sandbox's state): writes fail with EPIPE instead. The
    // sandbox's child resets every disposition before exec.
    ::signal(SIGPIPE, SIG_IGN);
    return nucleus::core::main_cli(argc, argv);
}
